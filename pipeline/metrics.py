"""Metrics over evaluation traces (paper §4, Figs 1 and 5; spec §5.4 and §8): pure functions of checked traces.

What this module owns:
  * the trace: one question's record, checked once when read (`read_traces`, `traces_from`) into a `Trace`;
  * accuracy at k attempts for one run (one checkpoint x one benchmark x one k), with a percentile-bootstrap CI;
  * retry behaviour: how often a retry turns wrong into right, how often it repeats an earlier wrong answer;
  * attempts used, formatted (boxed) rate, stop reasons, all gathered by `summarize` into one JSON-ready dict;
  * the macro average over benchmarks (a plain mean, as the paper reports) and its stratified bootstrap CI;
  * the paired bootstrap CI of a gain between two runs on the same questions (e.g. k=2 minus k=1);
  * metrics.json (`metrics_for`): one model x benchmark over its k runs, naming the model, its variant and seed
    (parsed from the workflow's model names), so the report reads them from the file, not from folder names.

What it does not know: how traces were produced or graded (it trusts each attempt's `correct` flag and the
record's `solved_at`, and only checks that they agree), tokens, prompts, or models' weights. It reads traces
(`read_traces`) and writes nothing: callers write the results. No torch.

A trace is one question's record in a run's traces jsonl:
    {"id": str, "benchmark": str, "N": int (= k), "attempts": [{"text": str, "answer": str|None, "correct": bool},
     ...], "solved_at": int|None, "stop_reason": "correct"|"attempts_exhausted"|"token_budget"|"context",
     "token_exact": bool (optional: the stored ids were the ids the model saw)}
`attempts` has 1..N entries (0 only when the prompt alone filled the context, stop reason "context") and stops at
the first correct one, so every attempt before the last is wrong. An answer of "" (an empty box) is no answer.
Other keys (an attempt's n_tokens, timed_out) are kept in the file and ignored here.

The paper rounds each benchmark's accuracy to 0.1 percentage points before averaging (spec §5.4); this module
never rounds: do it at presentation time if reproducing the paper's exact figures.

Try it: `pytest tests/test_metrics.py -q`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import DataError, read_jsonl

STOP_REASONS = ("correct", "attempts_exhausted", "token_budget", "context")
BASE = "base"
MODEL_NAME = re.compile(r"^(?P<variant>[a-z][a-z0-9]*(?:_[a-z0-9]+)*)_s(?P<seed>\d+)$")  # config variant names

# Keep each bootstrap block under about this many resampled entries (8 bytes each) to bound memory.
_BLOCK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Attempt:
    """One attempt: its text, the extracted answer (None or "" when it boxed none) and the verdict."""

    text: str
    answer: str | None
    correct: bool


@dataclass(frozen=True)
class Trace:
    """One question's dialogue in one run, checked once when read (`from_record`), so the metrics trust it.

    `n` is the record's "N" (attempts allowed, = k). `where` (file:line, or a record index) names the record in
    the errors of checks across records (duplicates, mixed runs).
    """

    id: str
    benchmark: str
    n: int
    attempts: tuple[Attempt, ...]
    solved_at: int | None
    stop_reason: str
    token_exact: bool = True  # the stored ids were the ids the model saw (older traces lack the flag)
    where: str = field(default="", compare=False, repr=False)

    def error(self, problem: str) -> DataError:
        return _error(self.where, self.id, problem)

    @classmethod
    def from_record(cls, record: Any, where: str) -> Trace:
        """The trace of one jsonl record; DataError naming `where`, the record's id and the field at fault when
        the record breaks the trace format (module docstring) or contradicts itself."""
        if not isinstance(record, Mapping):
            raise DataError(f"{where}: expected a dict, got {type(record).__name__}")

        def fail(problem: str) -> DataError:
            return _error(where, record.get("id"), problem)

        for key in ("id", "benchmark", "N", "attempts", "solved_at", "stop_reason"):
            if key not in record:
                raise fail(f"missing key {key!r}")
        if not isinstance(record["id"], str):
            raise fail(f"id must be a str, got {type(record['id']).__name__}")
        if not isinstance(record["benchmark"], str) or not record["benchmark"]:
            raise fail(f"benchmark must be a non-empty str, got {record['benchmark']!r}")
        n = record["N"]
        if not _is_int(n) or n < 1:
            raise fail(f"N must be an int >= 1, got {n!r}")
        attempts = record["attempts"]
        if not isinstance(attempts, Sequence) or isinstance(attempts, (str, bytes)):
            raise fail(f"attempts must be a list, got {type(attempts).__name__}")
        least = 0 if record["stop_reason"] == "context" else 1  # a prompt that fills the context gets no attempt
        if not least <= len(attempts) <= n:
            raise fail(f"attempts has {len(attempts)} entries, expected {least}..N={n}")
        for j, a in enumerate(attempts, start=1):
            if not isinstance(a, Mapping):
                raise fail(f"attempt {j} must be a dict, got {type(a).__name__}")
            for key in ("text", "answer", "correct"):
                if key not in a:
                    raise fail(f"attempt {j} is missing key {key!r}")
            if not isinstance(a["text"], str):
                raise fail(f"attempt {j} text must be a str")
            if a["answer"] is not None and not isinstance(a["answer"], str):
                raise fail(f"attempt {j} answer must be a str or null, got {a['answer']!r}")
            if not isinstance(a["correct"], (bool, np.bool_)):
                raise fail(f"attempt {j} correct must be a bool, got {a['correct']!r}")
            if a["correct"] and j < len(attempts):
                raise fail(f"attempt {j} is correct but the dialogue went on to attempt {j + 1}")
        solved_at = record["solved_at"]
        expected = len(attempts) if attempts and attempts[-1]["correct"] else None
        if solved_at is not None and not _is_int(solved_at):
            raise fail(f"solved_at must be an int or null, got {solved_at!r}")
        if solved_at != expected:
            raise fail(f"solved_at={solved_at!r} disagrees with the attempts (expected {expected!r})")
        reason = record["stop_reason"]
        if reason not in STOP_REASONS:
            raise fail(f"stop_reason {reason!r} is not one of {STOP_REASONS}")
        if (reason == "correct") != (solved_at is not None):
            raise fail(f"stop_reason {reason!r} disagrees with solved_at={solved_at!r}")
        if reason == "attempts_exhausted" and len(attempts) != n:
            raise fail(f"stop_reason 'attempts_exhausted' but only {len(attempts)} of N={n} attempts")
        return cls(
            id=record["id"],
            benchmark=record["benchmark"],
            n=int(n),
            attempts=tuple(Attempt(a["text"], a["answer"], bool(a["correct"])) for a in attempts),
            solved_at=expected,
            stop_reason=reason,
            token_exact=bool(record.get("token_exact", True)),
            where=where,
        )


def _error(where: str, rid: Any, problem: str) -> DataError:
    return DataError(f"{where}" + (f" (id {rid!r})" if rid is not None else "") + f": {problem}")


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def read_traces(path: str | Path) -> list[Trace]:
    """A run's traces jsonl, every record checked; errors name file:line, the record's id and the field."""
    return _unique([Trace.from_record(record, f"{path}:{line}") for line, record in read_jsonl(path)], str(path))


def traces_from(records: Sequence[Mapping], source: str = "") -> list[Trace]:
    """Records in memory (a fresh evaluation, tests) as traces; errors name the record's index (after `source`)."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise DataError(f"traces must be a list of records, got {type(records).__name__}")
    prefix = f"{source}: " if source else ""
    return _unique([Trace.from_record(r, f"{prefix}record {i}") for i, r in enumerate(records)], source or "traces")


def _unique(traces: list[Trace], source: str) -> list[Trace]:
    """The traces, unless there are none or two share a (benchmark, id): nothing to score, or a run counted twice."""
    if not traces:
        raise DataError(f"{source} is empty: no records to score")
    first: dict[tuple[str, str], Trace] = {}
    for t in traces:
        seen = first.setdefault((t.benchmark, t.id), t)
        if seen is not t:
            raise t.error(f"duplicate id in benchmark {t.benchmark!r} (first at {seen.where})")
    return traces


def _one_run(traces: Sequence[Trace]) -> None:
    """Raise unless the traces share one N and one benchmark (what `summarize` scores)."""
    if not traces:
        raise DataError("traces is empty: no records to score")
    first = traces[0]
    for t in traces:
        if t.n != first.n:
            raise t.error(f"N={t.n} differs from {first.where}'s N={first.n} (one run, one k)")
        if t.benchmark != first.benchmark:
            raise t.error(f"benchmark {t.benchmark!r} differs from {first.where}'s {first.benchmark!r}")


def _normalise(answer: str) -> str:
    """Answer key for 'same answer' checks: all whitespace removed ('x + 1' == 'x+1'). Not a math grader."""
    return "".join(answer.split())


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


# ----------------------------------------------------------------------------------------------- one run


def accuracy(traces: Sequence[Trace]) -> float:
    """Fraction of questions solved within the run's N attempts: the paper's per-benchmark accuracy at k = N.

    Args:
        traces: checked traces (any mix of runs is accepted; summarize() enforces a single run).
    Returns:
        a float in [0, 1].
    Example:
        >>> accuracy(traces_from([{"id": "q", "benchmark": "b", "N": 1, "solved_at": 1, "stop_reason": "correct",
        ...                        "attempts": [{"text": "", "answer": "1", "correct": True}]}]))
        1.0
    """
    return sum(solved_vector(traces)) / len(traces)


def retry_stats(traces: Sequence[Trace]) -> dict:
    """Does the model use the feedback? Per retry index j >= 2: wrong->right rate and repeated-wrong-answer rate.

    A dialogue reaches attempt j only if attempt j-1 was wrong, so every earlier attempt is wrong.
      * wrong_to_right_rate[j] = (# dialogues whose attempt j is correct) / (# dialogues reaching j).
      * repeat_rate[j] = (# attempt-j answers equal, after whitespace removal, to any earlier answer of the same
        dialogue) / (# dialogues reaching j whose attempt j gave an answer). Null answers never count.
    Rates are None when their denominator is 0. Keys are strings "2".."maxN" so the dict serialises to JSON;
    with max N = 1 the per-attempt dicts are empty.

    Returns:
        {"wrong_to_right_rate": {"2": float|None, ...}, "repeat_rate": {...},
         "n_reached": {"2": int, ...}, "n_answered": {...}, "n_repeats": {...}, "n_corrected": {...},
         "overall": {"wrong_to_right_rate": float|None, "repeat_rate": float|None,
                     "n_retries": int, "n_answered": int, "n_repeats": int, "n_corrected": int}}
    Example:
        attempts "3" (wrong) then "3 " (wrong): n_reached["2"] = 1, repeat_rate["2"] = 1.0.
    """
    max_n = max(t.n for t in traces)
    keys = [str(j) for j in range(2, max_n + 1)]
    reached = dict.fromkeys(keys, 0)
    answered = dict.fromkeys(keys, 0)
    repeats = dict.fromkeys(keys, 0)
    corrected = dict.fromkeys(keys, 0)
    for t in traces:
        earlier: set[str] = set()
        for j, a in enumerate(t.attempts, start=1):
            key = str(j)
            if j >= 2:
                reached[key] += 1
                corrected[key] += a.correct
                if a.answer:
                    answered[key] += 1
                    repeats[key] += _normalise(a.answer) in earlier
            if a.answer:
                earlier.add(_normalise(a.answer))
    tot = {
        name: sum(d.values())
        for name, d in (
            ("n_retries", reached),
            ("n_answered", answered),
            ("n_repeats", repeats),
            ("n_corrected", corrected),
        )
    }
    return {
        "wrong_to_right_rate": {k: _rate(corrected[k], reached[k]) for k in keys},
        "repeat_rate": {k: _rate(repeats[k], answered[k]) for k in keys},
        "n_reached": reached,
        "n_answered": answered,
        "n_repeats": repeats,
        "n_corrected": corrected,
        "overall": {
            "wrong_to_right_rate": _rate(tot["n_corrected"], tot["n_retries"]),
            "repeat_rate": _rate(tot["n_repeats"], tot["n_answered"]),
            **tot,
        },
    }


def attempts_used(traces: Sequence[Trace]) -> dict:
    """Mean attempts used on solved and on unsolved questions: how much of the k budget the model spends.

    Returns:
        {"success": float|None, "failure": float|None}; None when no question falls in that group. A failure
        ended by the token budget may have used fewer than N attempts.
    """
    ok = [len(t.attempts) for t in traces if t.solved_at is not None]
    bad = [len(t.attempts) for t in traces if t.solved_at is None]
    return {"success": sum(ok) / len(ok) if ok else None, "failure": sum(bad) / len(bad) if bad else None}


def solved_vector(traces: Sequence[Trace]) -> list[int]:
    """Per-question 0/1 solved indicators in trace order: the input to the bootstrap functions."""
    return [int(t.solved_at is not None) for t in traces]


def summarize(traces: Sequence[Trace], n_boot: int = 1000, seed: int = 0) -> dict:
    """Everything reported for one run (one checkpoint, one benchmark, one k) as one JSON-ready dict.

    Args:
        traces: the run's traces; they must share one N and one benchmark.
        n_boot, seed: for the accuracy's 95% percentile-bootstrap CI.
    Returns:
        {"benchmark": str, "n": int, "k": int, "accuracy": float, "accuracy_ci95": [lo, hi],
         "formatted_rate": float (fraction of all attempts that gave a boxed answer),
         "attempts_used": attempts_used(...), "retry": retry_stats(...), "stop_reasons": {reason: count},
         "token_mismatches": int}
    Raises:
        DataError on an empty list or mixed N / benchmark (naming the trace).
    """
    _one_run(traces)
    solved = solved_vector(traces)
    lo, hi = bootstrap_ci(solved, n_boot=n_boot, alpha=0.05, seed=seed)
    all_attempts = [a for t in traces for a in t.attempts]
    return {
        "benchmark": traces[0].benchmark,
        "n": len(traces),
        "k": traces[0].n,
        "accuracy": sum(solved) / len(solved),
        "accuracy_ci95": [lo, hi],
        "formatted_rate": _rate(sum(bool(a.answer) for a in all_attempts), len(all_attempts)),
        "attempts_used": attempts_used(traces),
        "retry": retry_stats(traces),
        "stop_reasons": dict(sorted(Counter(t.stop_reason for t in traces).items())),
        # dialogues whose stored ids were not the ids the model saw (0 expected)
        "token_mismatches": sum(not t.token_exact for t in traces),
    }


# ----------------------------------------------------------------------------------------------- bootstrap


def _as_vector(values: Sequence[float], name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def _check_boot(n_boot: int, alpha: float) -> None:
    if not _is_int(n_boot) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def _boot_means(v: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot bootstrap means of v, drawn in blocks of rows (vectorised, bounded memory).

    Deviations from v[0] are averaged and v[0] added back, so a constant vector gives exactly its value.
    """
    n = v.size
    dev = v - v[0]
    out = np.empty(n_boot, dtype=np.float64)
    rows = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = dev[idx].mean(axis=1)
    return out + v[0]


def _interval(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap (1 - alpha) CI of the mean: the paper gives no error bars (spec §9), we do.

    Deterministic for a given seed (numpy Generator); 1000 x 5000 resamples take well under a second.

    Args:
        values: per-question scores (0/1 solved indicators, or floats).
        n_boot: number of resamples; alpha: two-sided level; seed: RNG seed.
    Returns:
        (low, high) as floats; (c, c) exactly for a constant vector.
    Example:
        >>> bootstrap_ci([1, 1, 1])
        (1.0, 1.0)
    """
    _check_boot(n_boot, alpha)
    v = _as_vector(values)
    return _interval(_boot_means(v, n_boot, np.random.default_rng(seed)), alpha)


# ----------------------------------------------------------------------------------------------- across runs


def macro_average(per_benchmark: Mapping[str, float]) -> float:
    """Plain (unweighted) mean of per-benchmark accuracies: the paper's 'average' over its 5 benchmarks.

    Example:
        >>> macro_average({"a": 0.5, "b": 1.0})
        0.75
    """
    if not per_benchmark:
        raise ValueError("per_benchmark is empty: nothing to average")
    vals = [float(x) for x in per_benchmark.values()]
    if not all(np.isfinite(vals)):
        raise ValueError(f"per_benchmark contains NaN or infinite values: {dict(per_benchmark)}")
    return sum(vals) / len(vals)


def macro_ci(
    per_benchmark_values: Mapping[str, Sequence[float]], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap CI of the macro average, resampling questions within each benchmark independently (stratified).

    Stratifying keeps each benchmark's size fixed, as in the real evaluation, so small benchmarks (AIME24: 30
    questions) carry their own, larger, uncertainty into the average with weight 1/B.

    Args:
        per_benchmark_values: {benchmark: per-question 0/1 (or float) scores}.
    Returns:
        (low, high). Benchmarks are resampled in sorted-name order, so the result ignores dict order.
    """
    _check_boot(n_boot, alpha)
    if not per_benchmark_values:
        raise ValueError("per_benchmark_values is empty: nothing to average")
    rng = np.random.default_rng(seed)
    names = sorted(per_benchmark_values)
    means = np.stack([_boot_means(_as_vector(per_benchmark_values[b], f"benchmark {b!r}"), n_boot, rng) for b in names])
    return _interval(means.mean(axis=0), alpha)


def paired(traces_a: Sequence[Trace], traces_b: Sequence[Trace]) -> tuple[list[int], list[int]]:
    """Align two runs on the same questions by id, for a paired comparison (e.g. k=1 vs k=2).

    Returns:
        (solved_a, solved_b): 0/1 lists in sorted-id order, question i of one matching question i of the other.
    Raises:
        DataError if either run mixes benchmarks, or the id sets differ (counts and a few examples).
    """
    bench_a = {t.benchmark for t in traces_a}
    bench_b = {t.benchmark for t in traces_b}
    if len(bench_a) != 1 or bench_a != bench_b:
        raise DataError(
            f"paired runs must cover one and the same benchmark, got {sorted(bench_a)} and {sorted(bench_b)}"
        )
    a = dict(zip((t.id for t in traces_a), solved_vector(traces_a)))
    b = dict(zip((t.id for t in traces_b), solved_vector(traces_b)))
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise DataError(
            f"id sets differ: {len(only_a)} only in traces_a (e.g. {only_a[:3]}), "
            f"{len(only_b)} only in traces_b (e.g. {only_b[:3]})"
        )
    ids = sorted(a)
    return [a[i] for i in ids], [b[i] for i in ids]


def gain_ci(
    values_a: Sequence[float], values_b: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Paired bootstrap CI of mean(values_b) - mean(values_a): the gain from run a to run b on the same questions.

    Question indices are resampled jointly, so the per-question correlation between the runs (most questions are
    solved or failed at every k) narrows the interval compared with two independent CIs.

    Args:
        values_a, values_b: aligned per-question scores, e.g. `paired(traces_k1, traces_k2)`.
    Returns:
        (low, high); (0.0, 0.0) for identical runs.
    Example:
        >>> gain_ci([0, 0, 1], [1, 1, 1])  # per-question gains (1, 1, 0): resampled means lie in [0, 1]
        (0.0, 1.0)
    """
    a = _as_vector(values_a, "values_a")
    b = _as_vector(values_b, "values_b")
    if a.shape != b.shape:
        raise ValueError(f"values_a and values_b must be aligned (same length), got {a.size} and {b.size}")
    return bootstrap_ci(b - a, n_boot=n_boot, alpha=alpha, seed=seed)


# ----------------------------------------------------------------------------------------------- metrics.json


def parse_model(name: str) -> tuple[str, int | None]:
    """The workflow's model names: 'multi_attempt_s1' -> ('multi_attempt', 1); 'base' -> ('base', None)."""
    if name == BASE:
        return BASE, None
    m = MODEL_NAME.match(name)
    if not m:
        raise DataError(f"model name {name!r} is neither {BASE!r} nor <variant>_s<seed>")
    return m["variant"], int(m["seed"])


def metrics_for(model: str, runs: Mapping[int, Sequence[Trace]], seed: int = 0) -> dict:
    """metrics.json of one model x benchmark from its runs {k: traces}: the model (name, variant, seed), then
    `summarize` per k, plus the gain of each k over k = 1 on the same questions with a paired bootstrap 95%
    interval. `seed` is the bootstraps' seed."""
    variant, model_seed = parse_model(model)
    by_k = {int(k): summarize(traces, seed=seed) for k, traces in sorted(runs.items())}
    out = {
        "model": model,
        "variant": variant,
        "seed": model_seed,
        "benchmark": next(iter(by_k.values()))["benchmark"],
        "by_k": {str(k): m for k, m in by_k.items()},
    }
    if 1 in runs:
        gains = {}
        for k, traces in sorted(runs.items()):
            if k == 1:
                continue
            a, b = paired(runs[1], traces)
            lo, hi = gain_ci(a, b, seed=seed)
            gains[str(k)] = {"gain": by_k[k]["accuracy"] - by_k[1]["accuracy"], "gain_ci95": [lo, hi]}
        out["gain_over_k1"] = gains
    return out
