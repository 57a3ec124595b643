"""Supervised warm-up of the tiny base model: the task and the dialogue format, not yet the use of failures.

Once training is under way (below), a share `multi_attempt_fraction` of the examples are multi-attempt
transcripts: one to `max_wrong` wrong earlier answers, each followed by the environment's feedback, then the right
answer — with the loss only on that final answer, as in the single-attempt examples. Without them a prototype's
retries after feedback came out unformatted and no later training could gain from a second attempt. The wrong
answers are other questions' answers, so nothing in the data ties the final answer to them: the base model learns
to answer after feedback, not yet to avoid a failed answer — that is left to RL. The feedback is the configured
provider's (`env.feedback`, `pipeline.feedback`) on those synthetic wrong answers, so the base model has met the
format it will meet in RL and evaluation (an echo of its answer, a direction hint...); with
`model.sft.feedback_providers`, each transcript draws one of those providers, so one base model serves a feedback
ablation.

Accuracy on such tasks sits near 0 for a few hundred steps, then jumps towards 90% within a few hundred more;
multi-attempt transcripts (long, with the answer at varying positions) delay that jump a lot. So the first
phase trains on single-attempt examples only; once held-out accuracy passes `multi_attempt_after`, the
multi-attempt transcripts join. Training stops as soon as greedy first-attempt accuracy on held-out questions
reaches `target_accuracy` and greedy accuracy *after* a wrong answer and the environment's feedback reaches
`retry_accuracy_target` — not after a fixed step count, which would land anywhere on the jump. (Checking only
that retries are formatted is not enough: a model whose retries are well-formed guesses gives RL no successful
retry to learn from; one measured at 0.3% after-feedback accuracy never got a retry right in training.) Every
example is tokenized segment by segment with `rollout.encode`, exactly as rollouts feed the model.

Try it: `python -m pipeline build-base --config config.yaml --train T.jsonl --heldout H.jsonl --out /tmp/base`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline import models
from pipeline.backends import make_backend
from pipeline.config import Config
from pipeline.dialogue import Attempt, Dialogue
from pipeline.env import render_prompt
from pipeline.evaluate import GREEDY, evaluate
from pipeline.feedback import Provider, make_provider, with_provider
from pipeline.grading import Grader
from pipeline.io import write_json
from pipeline.layout import BASE
from pipeline.progress import progress_bar
from pipeline.rollout import encode, sample_once

log = logging.getLogger(__name__)
IGNORE = -100
# Torch threads of SFT on a CPU, whatever the job's threads (the numbers depend on the count: pipeline.numerics):
# its batches of 128 transcripts run 1.6x faster per step on two than on one, and it runs alone in the DAG.
CPU_THREADS = 2


def wrong_answer(records: Sequence[dict], rng: random.Random, avoid: set[str]) -> str:
    """Another question's answer: the right format, and nothing in it points at the right answer."""
    while True:
        wrong = rng.choice(records)["answer"]
        if wrong not in avoid:
            return wrong


def boxed(answer: str) -> str:
    return "\\boxed{" + answer + "}"


def synthetic_feedback(provider: Provider, d: Dialogue, wrong: str) -> str:
    """The provider's feedback after the synthetic wrong attempt `boxed(wrong)`, recorded in `d` as an attempt;
    the attempt did not end its turn, so the feedback keeps its leading end-of-turn marker."""
    d.attempts.append(Attempt(boxed(wrong), wrong, formatted=True, correct=False, n_tokens=0))
    return provider.render(d.attempts[-1], d)


def sft_providers(cfg: Config) -> list[Provider]:
    """The providers SFT transcripts draw from: model.sft.feedback_providers, or else env.feedback.provider."""
    names = cfg.model.sft.feedback_providers
    return [make_provider(with_provider(cfg.env, name)) for name in names] if names else [make_provider(cfg.env)]


def example_segments(
    records: Sequence[dict], cfg: Config, rng: random.Random, max_attempts: int, multi_fraction: float
) -> list[tuple[str, bool]]:
    """One random training example as (text, trained?) segments: prompt, [wrong answer, feedback]*, right answer."""
    env, sft = cfg.env, cfg.model.sft
    record = rng.choice(records)
    answer = record["answer"]
    n_wrong = rng.randint(1, min(sft.max_wrong, max_attempts - 1)) if rng.random() < multi_fraction else 0
    n_allowed = rng.randint(n_wrong + 1, max_attempts)
    segments = [(render_prompt(env.prompt_template, record["question"], n_allowed), False)]
    providers, tried = sft_providers(cfg), {answer}
    provider = rng.choice(providers) if len(providers) > 1 else providers[0]  # one provider: no draw, as before
    dialogue = Dialogue("sft", record["question"], str(answer), n_allowed)
    for _ in range(n_wrong):
        wrong = wrong_answer(records, rng, tried)
        tried.add(wrong)
        segments.append((boxed(wrong), False))
        segments.append((synthetic_feedback(provider, dialogue, wrong), False))
    segments.append((boxed(answer) + env.end_of_turn, True))
    return segments


def tokenize_example(tokenizer, segments: Sequence[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    ids, labels = [], []
    for text, trained in segments:
        seg = encode(tokenizer, text)
        ids.extend(seg)
        labels.extend(seg if trained else [IGNORE] * len(seg))
    return ids, labels


def tokenizer_corpus(records: Sequence[dict], cfg: Config, max_attempts: int, n: int = 2000) -> list[str]:
    rng = random.Random(cfg.model.tiny.seed)
    fraction = cfg.model.sft.multi_attempt_fraction
    return ["".join(t for t, _ in example_segments(records, cfg, rng, max_attempts, fraction)) for _ in range(n)]


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, (input_ids, target) in enumerate(batch):
        ids[b, : len(input_ids)], labels[b, : len(target)] = torch.tensor(input_ids), torch.tensor(target)
        mask[b, : len(input_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def greedy_check(model, tokenizer, cfg: Config, records: Sequence[dict], train: Sequence[dict], grader: Grader) -> dict:
    """Greedy held-out accuracy at the first attempt (through the evaluation path, N = 1) and right after a
    wrong answer (another question's, as in the SFT transcripts) and the feedback (N = 2): under each provider the
    transcripts draw from (`sft_providers`), the lowest of them, so a base for a feedback ablation learns every
    format it will meet (one provider, the default: its own)."""
    backend = make_backend(cfg, tokenizer, model=model)
    first = evaluate(backend, tokenizer, cfg, records, "heldout", k=1, grader=grader, progress=False)
    retry = [_retry_accuracy(backend, tokenizer, cfg, records, train, grader, p) for p in sft_providers(cfg)]
    return {"accuracy": sum(t["solved_at"] == 1 for t in first) / len(first), "retry_accuracy": min(retry)}


def _retry_accuracy(backend, tokenizer, cfg: Config, records, train, grader: Grader, provider: Provider) -> float:
    """Greedy accuracy right after another question's answer and `provider`'s feedback (the same wrong answers
    for every provider)."""
    rng, contexts = random.Random(0), []
    for r in records:
        wrong = wrong_answer(train, rng, {r["answer"]})
        dialogue = Dialogue(r["id"], r["question"], str(r["answer"]), 2)
        contexts.append(
            render_prompt(cfg.env.prompt_template, r["question"], 2)
            + boxed(wrong)
            + synthetic_feedback(provider, dialogue, wrong)
        )
    session = backend.open(len(records), GREEDY)
    rows = range(len(records))
    session.feed(rows, [encode(tokenizer, c) for c in contexts])
    sampled = sample_once(session, rows, [cfg.env.max_attempt_tokens] * len(records))
    answers = [tokenizer.decode(s.ids) for s in sampled]
    grades = grader.grade(answers, [str(r["answer"]) for r in records])
    return sum(g.correct for g in grades) / len(grades)


def train_base(
    cfg: Config, train: Sequence[dict], heldout: Sequence[dict], out: Path, grader: Grader, base: str = BASE
) -> dict:
    """Build the tiny model and tokenizer, train until the target held-out accuracy, save to `out` (as base model
    `base`: its transcripts go up to the most attempts of its variants, Config.most_attempts)."""
    sft, max_attempts = cfg.model.sft, cfg.most_attempts(base)
    t0 = time.time()
    tokenizer = models.build_tokenizer(tokenizer_corpus(train, cfg, max_attempts), cfg.model.tiny.vocab_size)
    model = models.build_model(cfg.model.tiny, tokenizer)
    log.info("tiny Qwen2: %d parameters, vocabulary %d", models.n_params(model), len(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=sft.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, sft.warmup_steps)))
    rng = random.Random(sft.seed)
    torch.manual_seed(sft.seed)
    eval_set = list(heldout[: sft.eval_questions])
    history, check, step, multi_fraction = [], {"accuracy": 0.0, "retry_accuracy": 0.0}, 0, 0.0
    bar = progress_bar(range(1, sft.max_steps + 1), desc="sft", unit="step")
    for step in bar:
        model.train()
        batch = [
            tokenize_example(tokenizer, example_segments(train, cfg, rng, max_attempts, multi_fraction))
            for _ in range(sft.batch_size)
        ]
        loss = model(**collate(batch, tokenizer.pad_token_id), use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % sft.eval_every == 0 or step == sft.max_steps:
            model.eval()
            check = greedy_check(model, tokenizer, cfg, eval_set, train, grader)
            history.append({"step": step, "loss": float(loss.detach()), "multi_fraction": multi_fraction, **check})
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", acc=f"{check['accuracy']:.3f}")
            log.info(
                "step %d loss %.4f held-out greedy accuracy %.3f, after feedback %.3f",
                step,
                float(loss.detach()),
                check["accuracy"],
                check["retry_accuracy"],
            )
            if check["accuracy"] >= sft.multi_attempt_after:
                multi_fraction = sft.multi_attempt_fraction
            if check["accuracy"] >= sft.target_accuracy and check["retry_accuracy"] >= sft.retry_accuracy_target:
                break
    bar.close()
    if check["accuracy"] < sft.target_accuracy or check["retry_accuracy"] < sft.retry_accuracy_target:
        raise RuntimeError(
            f"SFT reached held-out accuracy {check['accuracy']:.3f} (target model.sft.target_accuracy = "
            f"{sft.target_accuracy}) and after-feedback accuracy {check['retry_accuracy']:.3f} (target "
            f"model.sft.retry_accuracy_target = {sft.retry_accuracy_target}) in {sft.max_steps} steps; "
            "raise model.sft.max_steps or lr"
        )
    model.eval()
    models.save(model, tokenizer, out)
    summary = {
        "steps": step,
        "heldout_accuracy": check["accuracy"],
        "retry_accuracy": check["retry_accuracy"],
        "seconds": round(time.time() - t0, 1),
        "parameters": models.n_params(model),
        "vocab_size": len(tokenizer),
        "history": history,
    }
    write_json(out / "sft_summary.json", summary)
    return summary


def build_base(
    cfg: Config, name: str, train: Sequence[dict], heldout: Sequence[dict], out: str | Path, run_dir: str | None
) -> dict:
    """The folder `out` of base model `name` (`base`, or one of config `bases` with its own SFT keys), written whole
    or not at all: train_base's model, its provenance and card; the SFT curves under `run_dir`/tensorboard when
    given. Returns train_base's summary."""
    from pipeline import card, provenance, runlog
    from pipeline.io import atomic_path

    cfg = cfg.for_base(name)
    prov = provenance.record(cfg, computes=True)
    with atomic_path(out) as tmp, Grader.from_config(cfg.grading) as grader:
        summary = train_base(cfg, train, heldout, tmp, grader, name)
        provenance.write(tmp, prov)
        made_by = (
            f"`python -m pipeline build-base`: {summary['parameters']} parameters, tokenizer trained on the task, "
            f"SFT for {summary['steps']} steps"
        )
        base = "none: a tiny Qwen2 built from scratch (`model.tiny`)"
        results = {k: summary[k] for k in ("heldout_accuracy", "retry_accuracy")}
        card.write(tmp, card.render(prov, Path(out).name, made_by, base, results))
    if run_dir:
        runlog.write_history(Path(run_dir) / "tensorboard", cfg.to_dict(), summary["history"], "sft/")
    return summary
