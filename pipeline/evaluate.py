"""Evaluation at k attempts: greedy dialogues with N = k, feedback driven by the gold answer.

The paper's protocol (spec §5.4): one separate run per k, the prompt states N = k, a wrong answer gets the
environment's feedback and another try until the answer is right or k attempts are used. Accuracy@k is the share
of questions solved within k attempts. Each run writes per-question traces (the record format of
`pipeline.metrics`, whose `metrics_for` turns the runs of one model x benchmark into the metrics json).

Try it: `python -m pipeline evaluate --config config.yaml --model results/tiny/models/base
--data results/tiny/data/synthetic_heldout.jsonl --benchmark synthetic --k 2 --out /tmp/k2.jsonl`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pipeline import hub, models
from pipeline.backends import make_backend
from pipeline.config import AttemptRange, Config, EnvConfig
from pipeline.env import MultiAttemptEnv
from pipeline.grading import Grader
from pipeline.rollout import Backend, Question, SamplingParams, Transcript, rollout

GREEDY = SamplingParams(temperature=1.0, top_p=1.0, greedy=True, seed=0)


def trace(t: Transcript, benchmark: str) -> dict:
    """One question's record: every attempt's text, extracted answer and verdict."""
    d = t.dialogue
    return {
        "id": d.id,
        "benchmark": benchmark,
        "N": d.n_allowed,
        "attempts": [
            {
                "text": a.text,
                "answer": a.answer,
                "correct": a.correct,
                "n_tokens": a.n_tokens,
                "timed_out": a.timed_out,
                "truncated": a.truncated,
            }
            for a in d.attempts
        ],
        "solved_at": d.solved_at,
        "stop_reason": d.stop_reason,
        "token_exact": t.token_exact,
        **({"scored_on": d.scored_on} if d.scored_on != "any" else {}),  # feedback `none`: the last answer counts
    }


def open_backend(cfg: Config, source: str | Path) -> tuple[Backend, object]:
    """(backend, tokenizer) of the configured `rollout.backend` on the model at `source`: on the GPU in bf16
    when there is one (as the released evaluation), else on the CPU in float32."""
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    tokenizer = models.load_tokenizer(source, hub.model_revision(cfg, source))
    return make_backend(cfg, tokenizer, source=source, dtype=dtype), tokenizer


def eval_env(cfg: Config) -> EnvConfig:
    """The environment of evaluation: training's, with the evaluation budgets (0: the context bounds them)."""

    def budget(n: int) -> int:
        return n or sys.maxsize

    return dataclasses.replace(
        cfg.env,
        max_attempt_tokens=budget(cfg.eval.max_attempt_tokens),
        max_total_tokens=budget(cfg.eval.max_total_tokens),
    )


def evaluate(
    backend: Backend,
    tokenizer,
    cfg: Config,
    records: Sequence[Mapping],
    benchmark: str,
    k: int,
    grader: Grader,
    progress: bool = True,
) -> list[dict]:
    """Greedy k-attempt dialogues on every record; one trace per record, in the records' order."""
    env = MultiAttemptEnv(eval_env(cfg), AttemptRange(k, k), grader)
    questions = [Question(str(r["id"]), r["question"], str(r["answer"]), k) for r in records]
    transcripts = rollout(backend, tokenizer, env, questions, GREEDY, cfg.eval.batch_size, progress=progress)
    return [trace(t, benchmark) for t in transcripts]
