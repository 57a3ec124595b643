"""Controls for "did the model learn from failure?" (issue 18 items 1-2): parallel sampling at equal budget and
the counterfactual feedback probe. One home for both: how their dialogues are generated and the pure functions
that score them (kept out of `pipeline.metrics`, which scores the k-attempt traces of the paper's protocol).

Parallel control. Accuracy@k of the k-attempt dialogue rises for any model that samples differently on a retry;
the control is k independent single-attempt samples (the evaluation prompt and budgets with N = 1, temperature
`train.temperature` and top-p `train.top_p`: evaluation itself is greedy and has no temperature of its own).
`eval.max_k` = n samples per question, each with its own sampling stream `derive_seed(PARALLEL_SEED, benchmark,
id, sample)` (`rollout.Question.seed`), so a sample does not depend on what it was batched with. Scored by
  * pass@k, the unbiased estimator of Chen et al. 2021 from n >= k samples: 1 - C(n-c, k) / C(n, k);
  * majority@k over the first k samples: the most frequent answer (compared after whitespace removal, the key of
    `metrics._normalise`; no answer never votes), ties to the answer given first; right if that sample was;
  * policy tokens per question: k x the mean tokens of one sample, beside the k-attempt dialogue's own (its
    attempts' n_tokens summed, from the evaluation's k-traces).

Flip probe (SCoRe's Δc→i). The dialogue of evaluation at k = 2 (the prompt says N = 2; the first attempt is the
model's greedy one, token for token) in which the feedback after the first attempt always says "wrong"
(`SaysWrong`). Questions whose first attempt is really right are probed: how often is the second attempt wrong
(flip rate), how often does it repeat the first answer? The first attempt is generated, not read from the k1
traces: those were written under the N = 1 prompt and keep text, not ids, so re-tokenising them would not be
exactly what the model wrote. Nothing in `rollout` or the environment changes for it.

Outputs, per model x evaluation set (rules/evaluate.smk), beside the k-traces in results/<exp>/eval/<model>/<set>/:
  parallel.jsonl: one trace per sample (the format of `pipeline.metrics`, N = 1, attempts with n_tokens) plus
    "sample": 0..n-1; question by question, samples in order.
  parallel.json: {"model", "benchmark", "temperature", "top_p", "seed": PARALLEL_SEED, "n_questions",
    "n_samples": n, "mean_sample_tokens", "token_mismatches",
    "by_k": {"1".."n": {"pass_at_k", "pass_at_k_ci95": [lo, hi], "majority_at_k", "majority_at_k_ci95",
                         "mean_tokens": k x mean_sample_tokens}},
    "sequential": {"1".."K": {"accuracy", "accuracy_ci95", "mean_tokens"}}}  (from the evaluation's k-traces)
    majority@1 is sample 0's accuracy (pass@1 averages all n samples), and majority@2 = majority@1 (two answers
    agree, or tie and the first wins).
  flip_probe.jsonl: per question {"id", "benchmark", "attempts": [{"text", "answer", "correct" (the real
    verdict), "n_tokens", "timed_out"}, ...], "stop_reason" (of the counterfactual dialogue), "token_exact",
    "probed"}.
  flip_probe.json: {"model", "benchmark", **flip_stats(...)}: "n_questions", "n_first_correct", "n_probed",
    "n_flipped", "flip_rate", "flip_rate_ci95", "n_repeated", "repeat_rate", "token_mismatches".
CIs are 95% percentile bootstraps over questions (`stats.bootstrap_ci`, 1000 resamples, seed 0).

Try it: `pytest tests/test_probes.py -q`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import AttemptRange, Config
from pipeline.env import MultiAttemptEnv
from pipeline.evaluate import GREEDY, eval_env, trace
from pipeline.grading import Grade, Grader
from pipeline.io import DataError, read_jsonl
from pipeline.metrics import Trace, _normalise
from pipeline.rollout import Backend, Question, SamplingParams, rollout
from pipeline.seeds import derive_seed
from pipeline.stats import bootstrap_ci

PARALLEL_SEED = 0  # the run seed of the parallel samples' streams (evaluation has no seed of its own)


# ----------------------------------------------------------------------------------------------- parallel: sampling


def parallel_samples(
    backend: Backend,
    tokenizer,
    cfg: Config,
    records: Sequence[Mapping],
    benchmark: str,
    grader: Grader,
    progress: bool = True,
) -> list[dict]:
    """`eval.max_k` single-attempt samples per record at `train.temperature`: one trace each (N = 1) with its
    "sample" index, record by record, samples in order."""
    n = cfg.eval.max_k
    env = MultiAttemptEnv(eval_env(cfg), AttemptRange(1, 1), grader)
    params = SamplingParams(cfg.train.temperature, cfg.train.top_p, greedy=False, seed=PARALLEL_SEED)
    questions = [
        Question(str(r["id"]), r["question"], str(r["answer"]), 1, seed=sample_seed(benchmark, str(r["id"]), j))
        for r in records
        for j in range(n)
    ]
    transcripts = rollout(backend, tokenizer, env, questions, params, cfg.eval.batch_size, progress=progress)
    return [{**trace(t, benchmark), "sample": i % n} for i, t in enumerate(transcripts)]


def sample_seed(benchmark: str, question_id: str, sample: int) -> int:
    return derive_seed(PARALLEL_SEED, "parallel", benchmark, question_id, sample)


@dataclass(frozen=True)
class Sample:
    """One dialogue of a run, checked (`Trace`), with the policy tokens it spent."""

    trace: Trace
    n_tokens: int
    index: int = 0  # the sample's number among its question's parallel samples (0 for a k-attempt dialogue)


def sample_of(record: Any, where: str) -> Sample:
    """A checked trace record (the format of `pipeline.metrics`, whose attempts here must carry n_tokens) with its
    "sample" index if it has one; DataError naming `where` and the field at fault."""
    t = Trace.from_record(record, where)
    tokens = [a.get("n_tokens") for a in record["attempts"]]
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in tokens):
        raise t.error(f"every attempt needs n_tokens, an int >= 0, got {tokens!r}")
    j = record.get("sample", 0)
    if not isinstance(j, int) or isinstance(j, bool) or j < 0:
        raise t.error(f"sample must be an int >= 0, got {j!r}")
    return Sample(t, sum(tokens), j)


def read_samples(path: str | Path) -> list[Sample]:
    """`sample_of` every record of a traces jsonl; errors name file:line."""
    samples = [sample_of(r, f"{path}:{line}") for line, r in read_jsonl(path)]
    if not samples:
        raise DataError(f"{path} is empty: no records")
    return samples


def group_samples(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    """Parallel samples by question id, each question's in sample order; DataError unless every question has
    samples 0..n-1 (the same n) of one attempt allowed."""
    if not samples:
        raise DataError("parallel samples: no records")
    by_id: dict[str, dict[int, Sample]] = {}
    for s in samples:
        if s.trace.n != 1:
            raise s.trace.error(f"a parallel sample has N=1, got N={s.trace.n}")
        if s.index in by_id.setdefault(s.trace.id, {}):
            raise s.trace.error(f"sample {s.index} appears twice")
        by_id[s.trace.id][s.index] = s
    n = len(next(iter(by_id.values())))
    for q, got in by_id.items():
        if sorted(got) != list(range(n)):
            raise got[min(got)].trace.error(f"question {q!r} has samples {sorted(got)}, expected 0..{n - 1}")
    return {q: [got[j] for j in range(n)] for q, got in by_id.items()}


# ----------------------------------------------------------------------------------------------- parallel: metrics


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021) of a question with c right among n samples: 1 - C(n-c, k) / C(n, k),
    as the product 1 - prod_{i=n-c+1..n} (1 - k/i) (no huge binomials).

    Example:
        >>> pass_at_k(5, 2, 1), pass_at_k(5, 2, 4)
        (0.4, 1.0)
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def majority_vote(samples: Sequence[Trace]) -> bool:
    """Is the most frequent answer among `samples` right? Answers are compared after whitespace removal; no
    answer (None or "") never votes; a tie goes to the answer that came first; right if its first sample was.
    No answer at all: wrong."""
    answers = [(_normalise(t.attempts[0].answer), t) for t in samples if t.attempts and t.attempts[0].answer]
    if not answers:
        return False
    counts = Counter(key for key, _ in answers)
    best = max(counts.values())
    first = next(t for key, t in answers if counts[key] == best)
    return first.attempts[0].correct


def parallel_summary(
    parallel: Sequence[Sample], sequential: Mapping[int, Sequence[Sample]], n_boot: int = 1000, seed: int = 0
) -> dict:
    """parallel.json's numbers from the parallel samples and the k-attempt runs {k: dialogues} of the same
    questions (DataError when the question sets differ).

    Per k = 1..n: pass@k and majority@k (means over questions, each with a 95% percentile-bootstrap CI over
    questions) and the mean policy tokens per question, k x the mean tokens of one sample. Per sequential k:
    accuracy@k, its CI, and the mean policy tokens of the k-attempt dialogue.
    """
    by_id = group_samples(parallel)
    ids = sorted(by_id)
    n = len(by_id[ids[0]])
    for k, run in sequential.items():
        got = [s.trace.id for s in run]
        if len(set(got)) != len(got) or set(got) != set(ids):
            raise DataError(f"the k={k} traces do not cover the parallel samples' {len(ids)} questions once each")
    mean_sample_tokens = float(np.mean([s.n_tokens for q in ids for s in by_id[q]]))
    by_k = {}
    for k in range(1, n + 1):
        passk = [pass_at_k(n, sum(s.trace.solved_at is not None for s in by_id[q]), k) for q in ids]
        major = [float(majority_vote([s.trace for s in by_id[q][:k]])) for q in ids]
        by_k[str(k)] = {
            "pass_at_k": float(np.mean(passk)),
            "pass_at_k_ci95": list(bootstrap_ci(passk, n_boot=n_boot, seed=seed)),
            "majority_at_k": float(np.mean(major)),
            "majority_at_k_ci95": list(bootstrap_ci(major, n_boot=n_boot, seed=seed)),
            "mean_tokens": k * mean_sample_tokens,
        }
    seq = {}
    for k, run in sorted(sequential.items()):
        solved = [float(s.trace.solved_at is not None) for s in run]
        seq[str(k)] = {
            "accuracy": float(np.mean(solved)),
            "accuracy_ci95": list(bootstrap_ci(solved, n_boot=n_boot, seed=seed)),
            "mean_tokens": float(np.mean([s.n_tokens for s in run])),
        }
    return {
        "n_questions": len(ids),
        "n_samples": n,
        "mean_sample_tokens": mean_sample_tokens,
        "by_k": by_k,
        "sequential": seq,
    }


def read_sequential(paths: Sequence[str | Path]) -> dict[int, list[Sample]]:
    """The model's k-attempt traces as samples, {k: run}; read before any sampling, so a bad file fails first."""
    sequential: dict[int, list[Sample]] = {}
    for path in paths:
        run = read_samples(path)
        if run[0].trace.n in sequential:
            raise DataError(f"{path}: a second traces file of k={run[0].trace.n}")
        sequential[run[0].trace.n] = run
    return sequential


def parallel_json(
    cfg: Config,
    name: str,
    benchmark: str,
    samples: Sequence[Mapping],
    sequential: Mapping[int, Sequence[Sample]],
    where: str,
) -> dict:
    """parallel.json: who and how it was sampled, parallel_summary's numbers, and how many samples' tokens differ
    from what the backend's text would tokenize to."""
    summary = parallel_summary([sample_of(r, f"{where}: record {i}") for i, r in enumerate(samples)], sequential)
    return {
        "model": name,
        "benchmark": benchmark,
        "temperature": cfg.train.temperature,
        "top_p": cfg.train.top_p,
        "seed": PARALLEL_SEED,
        **summary,
        "token_mismatches": sum(not s["token_exact"] for s in samples),
    }


# ----------------------------------------------------------------------------------------------- flip probe


class SaysWrong:
    """The probe's grader: the real grader's answer extraction, every verdict "wrong" (so the environment gives
    its feedback after a right first attempt). The real verdicts are taken again afterwards."""

    def __init__(self, grader: Grader):
        self.grader = grader

    def submit(self, responses: Sequence[str], golds: Sequence[str], fallback: bool = False) -> Future[list[Grade]]:
        said: Future[list[Grade]] = Future()

        def wrong(real: Future[list[Grade]]) -> None:
            try:
                said.set_result([Grade(False, g.answer, g.timed_out, g.via, g.elapsed_s) for g in real.result()])
            except BaseException as e:  # the real grader's failure, passed on
                said.set_exception(e)

        self.grader.submit(responses, golds, fallback).add_done_callback(wrong)
        return said


def flip_probe(
    backend: Backend,
    tokenizer,
    cfg: Config,
    records: Sequence[Mapping],
    benchmark: str,
    grader: Grader,
    progress: bool = True,
) -> list[dict]:
    """Greedy dialogues with N = 2 whose first attempt is always told it is wrong; one record per question:
    {"id", "benchmark", "attempts": [{"text", "answer", "correct", "n_tokens", "timed_out"}, ...] (real verdicts),
     "probed": the first attempt is right and a second one was made, "stop_reason", "token_exact"}."""
    env = MultiAttemptEnv(eval_env(cfg), AttemptRange(2, 2), SaysWrong(grader))
    questions = [Question(str(r["id"]), r["question"], str(r["answer"]), 2) for r in records]
    transcripts = rollout(backend, tokenizer, env, questions, GREEDY, cfg.eval.batch_size, progress=progress)
    out = []
    for t in transcripts:
        rec = trace(t, benchmark)
        del rec["N"], rec["solved_at"]  # counterfactual: not a dialogue of the trace format
        out.append(rec)
    attempts = [(a, t.dialogue.gold) for rec, t in zip(out, transcripts) for a in rec["attempts"]]
    grades = grader.grade([a["text"] for a, _ in attempts], [gold for _, gold in attempts])  # the real verdicts
    for (a, _), g in zip(attempts, grades):
        a["correct"], a["timed_out"] = g.correct, g.timed_out
    for rec in out:
        rec["probed"] = len(rec["attempts"]) == 2 and rec["attempts"][0]["correct"]
    return out


def flip_stats(records: Sequence[Mapping], n_boot: int = 1000, seed: int = 0) -> dict:
    """flip_probe.json from the probe's records: of the probed questions (first attempt right, a second made),
    the share whose second attempt is wrong (right->wrong flip rate, 95% percentile-bootstrap CI) and the share
    that repeat the first answer (after whitespace removal). Rates are None when nothing was probed.
    A right first attempt with no second one (token budget or context) is counted, not probed."""
    first_right = [r for r in records if r["attempts"] and r["attempts"][0]["correct"]]
    probed = [r for r in records if r["probed"]]
    flips = [float(not r["attempts"][1]["correct"]) for r in probed]
    repeats = [float(_same_answer(r["attempts"][0]["answer"], r["attempts"][1]["answer"])) for r in probed]
    return {
        "n_questions": len(records),
        "n_first_correct": len(first_right),
        "n_probed": len(probed),
        "n_flipped": int(sum(flips)),
        "flip_rate": float(np.mean(flips)) if probed else None,
        "flip_rate_ci95": list(bootstrap_ci(flips, n_boot=n_boot, seed=seed)) if probed else None,
        "n_repeated": int(sum(repeats)),
        "repeat_rate": float(np.mean(repeats)) if probed else None,
        "token_mismatches": sum(not r.get("token_exact", True) for r in records),
    }


def _same_answer(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and _normalise(a) == _normalise(b)
