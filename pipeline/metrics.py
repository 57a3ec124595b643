"""Metrics over evaluation traces (paper §4, Figs 1 and 5; spec §5.4 and §8): pure functions, no I/O, no torch.

What this module owns:
  * accuracy at k attempts for one run (one checkpoint x one benchmark x one k), with a percentile-bootstrap CI;
  * retry behaviour: how often a retry turns wrong into right, how often it repeats an earlier wrong answer;
  * attempts used, formatted (boxed) rate, stop reasons, all gathered by `summarize` into one JSON-ready dict;
  * the macro average over benchmarks (a plain mean, as the paper reports) and its stratified bootstrap CI;
  * the paired bootstrap CI of a gain between two runs on the same questions (e.g. k=2 minus k=1).

What it does not know: how traces were produced or graded (it trusts each attempt's `correct` flag and the
record's `solved_at`, and only checks that they agree), where files live, tokens, prompts, or models. Callers
read the jsonl (pipeline.io) and write the results.

A trace is one question's record in a run's traces jsonl:
    {"id": str, "benchmark": str, "N": int (= k), "attempts": [{"text": str, "answer": str|None,
     "correct": bool}, ...], "solved_at": int|None, "stop_reason": "correct"|"attempts_exhausted"|"token_budget"|"context",
     "token_exact": bool (optional: the stored ids were the ids the model saw)}
`attempts` has 1..N entries (0 only when the prompt alone filled the context, stop reason "context") and stops at
the first correct one, so every attempt before the last is wrong. An answer of "" (an empty box) is no answer.

The paper rounds each benchmark's accuracy to 0.1 percentage points before averaging (spec §5.4); this module
never rounds: do it at presentation time if reproducing the paper's exact figures.

Try it: `pytest tests/test_metrics.py -q`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

STOP_REASONS = ("correct", "attempts_exhausted", "token_budget", "context")

# Keep each bootstrap block under about this many resampled entries (8 bytes each) to bound memory.
_BLOCK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------------------------- validation


def _record_error(i: int, rec: Any, problem: str) -> ValueError:
    rid = rec.get("id") if isinstance(rec, Mapping) else None
    where = f"record {i}" + (f" (id {rid!r})" if rid is not None else "")
    return ValueError(f"{where}: {problem}")


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_record(i: int, rec: Any) -> None:
    """Raise ValueError naming record i if it breaks the trace schema or is internally inconsistent."""
    if not isinstance(rec, Mapping):
        raise _record_error(i, rec, f"expected a dict, got {type(rec).__name__}")
    for key in ("id", "benchmark", "N", "attempts", "solved_at", "stop_reason"):
        if key not in rec:
            raise _record_error(i, rec, f"missing key {key!r}")
    if not isinstance(rec["id"], str):
        raise _record_error(i, rec, f"id must be a str, got {type(rec['id']).__name__}")
    if not isinstance(rec["benchmark"], str) or not rec["benchmark"]:
        raise _record_error(i, rec, f"benchmark must be a non-empty str, got {rec['benchmark']!r}")
    n = rec["N"]
    if not _is_int(n) or n < 1:
        raise _record_error(i, rec, f"N must be an int >= 1, got {n!r}")
    attempts = rec["attempts"]
    if not isinstance(attempts, Sequence) or isinstance(attempts, (str, bytes)):
        raise _record_error(i, rec, f"attempts must be a list, got {type(attempts).__name__}")
    least = 0 if rec["stop_reason"] == "context" else 1  # a prompt that fills the context gets no attempt
    if not least <= len(attempts) <= n:
        raise _record_error(i, rec, f"attempts has {len(attempts)} entries, expected {least}..N={n}")
    for j, a in enumerate(attempts, start=1):
        if not isinstance(a, Mapping):
            raise _record_error(i, rec, f"attempt {j} must be a dict, got {type(a).__name__}")
        for key in ("text", "answer", "correct"):
            if key not in a:
                raise _record_error(i, rec, f"attempt {j} is missing key {key!r}")
        if not isinstance(a["text"], str):
            raise _record_error(i, rec, f"attempt {j} text must be a str")
        if a["answer"] is not None and not isinstance(a["answer"], str):
            raise _record_error(i, rec, f"attempt {j} answer must be a str or null, got {a['answer']!r}")
        if not isinstance(a["correct"], (bool, np.bool_)):
            raise _record_error(i, rec, f"attempt {j} correct must be a bool, got {a['correct']!r}")
        if a["correct"] and j < len(attempts):
            raise _record_error(i, rec, f"attempt {j} is correct but the dialogue went on to attempt {j + 1}")
    solved_at = rec["solved_at"]
    expected = len(attempts) if attempts and attempts[-1]["correct"] else None
    if solved_at is not None and not _is_int(solved_at):
        raise _record_error(i, rec, f"solved_at must be an int or null, got {solved_at!r}")
    if solved_at != expected:
        raise _record_error(i, rec, f"solved_at={solved_at!r} disagrees with the attempts (expected {expected!r})")
    reason = rec["stop_reason"]
    if reason not in STOP_REASONS:
        raise _record_error(i, rec, f"stop_reason {reason!r} is not one of {STOP_REASONS}")
    if (reason == "correct") != (solved_at is not None):
        raise _record_error(i, rec, f"stop_reason {reason!r} disagrees with solved_at={solved_at!r}")
    if reason == "attempts_exhausted" and len(attempts) != n:
        raise _record_error(i, rec, f"stop_reason 'attempts_exhausted' but only {len(attempts)} of N={n} attempts")


def validate_traces(traces: Sequence[Mapping], single_run: bool = False) -> None:
    """Check every record, so that metrics never silently average malformed data.

    Args:
        traces: the records of one or more runs.
        single_run: also require one shared N and one shared benchmark (what `summarize` needs).
    Raises:
        ValueError naming the offending record index (and id) and the problem; also on an empty list and on a
        duplicate (benchmark, id).
    """
    if isinstance(traces, (str, bytes, Mapping)) or not isinstance(traces, Sequence):
        raise ValueError(f"traces must be a list of records, got {type(traces).__name__}")
    if len(traces) == 0:
        raise ValueError("traces is empty: no records to score")
    seen: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(traces):
        _check_record(i, rec)
        key = (rec["benchmark"], rec["id"])
        if key in seen:
            raise _record_error(i, rec, f"duplicate id in benchmark {rec['benchmark']!r} (first at record {seen[key]})")
        seen[key] = i
        if single_run:
            if rec["N"] != traces[0]["N"]:
                raise _record_error(i, rec, f"N={rec['N']} differs from record 0's N={traces[0]['N']} (one run, one k)")
            if rec["benchmark"] != traces[0]["benchmark"]:
                raise _record_error(
                    i, rec, f"benchmark {rec['benchmark']!r} differs from record 0's {traces[0]['benchmark']!r}"
                )


def _normalise(answer: str) -> str:
    """Answer key for 'same answer' checks: all whitespace removed ('x + 1' == 'x+1'). Not a math grader."""
    return "".join(answer.split())


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


# ----------------------------------------------------------------------------------------------- one run


def accuracy(traces: Sequence[Mapping]) -> float:
    """Fraction of questions solved within the run's N attempts: the paper's per-benchmark accuracy at k = N.

    Args:
        traces: validated records (any mix of runs is accepted; summarize() enforces a single run).
    Returns:
        a float in [0, 1].
    Example:
        >>> accuracy([{"id": "q", "benchmark": "b", "N": 1, "solved_at": 1, "stop_reason": "correct",
        ...            "attempts": [{"text": "", "answer": "1", "correct": True}]}])
        1.0
    """
    validate_traces(traces)
    return sum(_solved(traces)) / len(traces)


def retry_stats(traces: Sequence[Mapping]) -> dict:
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
    validate_traces(traces)
    return _retry_stats(traces)


def _retry_stats(traces: Sequence[Mapping]) -> dict:
    max_n = max(r["N"] for r in traces)
    keys = [str(j) for j in range(2, max_n + 1)]
    reached = dict.fromkeys(keys, 0)
    answered = dict.fromkeys(keys, 0)
    repeats = dict.fromkeys(keys, 0)
    corrected = dict.fromkeys(keys, 0)
    for r in traces:
        earlier: set[str] = set()
        for j, a in enumerate(r["attempts"], start=1):
            key = str(j)
            if j >= 2:
                reached[key] += 1
                corrected[key] += bool(a["correct"])
                if a["answer"]:
                    answered[key] += 1
                    repeats[key] += _normalise(a["answer"]) in earlier
            if a["answer"]:
                earlier.add(_normalise(a["answer"]))
    tot = {name: sum(d.values()) for name, d in
           (("n_retries", reached), ("n_answered", answered), ("n_repeats", repeats), ("n_corrected", corrected))}
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


def attempts_used(traces: Sequence[Mapping]) -> dict:
    """Mean attempts used on solved and on unsolved questions: how much of the k budget the model spends.

    Returns:
        {"success": float|None, "failure": float|None}; None when no question falls in that group. A failure
        ended by the token budget may have used fewer than N attempts.
    """
    validate_traces(traces)
    return _attempts_used(traces)


def _attempts_used(traces: Sequence[Mapping]) -> dict:
    ok = [len(r["attempts"]) for r in traces if r["solved_at"] is not None]
    bad = [len(r["attempts"]) for r in traces if r["solved_at"] is None]
    return {"success": sum(ok) / len(ok) if ok else None, "failure": sum(bad) / len(bad) if bad else None}


def solved_vector(traces: Sequence[Mapping]) -> list[int]:
    """Per-question 0/1 solved indicators in record order: the input to the bootstrap functions."""
    validate_traces(traces)
    return _solved(traces)


def _solved(traces: Sequence[Mapping]) -> list[int]:
    return [int(r["solved_at"] is not None) for r in traces]


def summarize(traces: Sequence[Mapping], n_boot: int = 1000, seed: int = 0) -> dict:
    """Everything reported for one run (one checkpoint, one benchmark, one k) as one JSON-ready dict.

    Args:
        traces: the run's records; they must share one N and one benchmark.
        n_boot, seed: for the accuracy's 95% percentile-bootstrap CI.
    Returns:
        {"benchmark": str, "n": int, "k": int, "accuracy": float, "accuracy_ci95": [lo, hi],
         "formatted_rate": float (fraction of all attempts that gave a boxed answer),
         "attempts_used": attempts_used(...), "retry": retry_stats(...), "stop_reasons": {reason: count},
         "token_mismatches": int}
    Raises:
        ValueError on an empty list, a malformed record (naming its index), or mixed N / benchmark.
    """
    validate_traces(traces, single_run=True)
    solved = _solved(traces)
    lo, hi = bootstrap_ci(solved, n_boot=n_boot, alpha=0.05, seed=seed)
    all_attempts = [a for r in traces for a in r["attempts"]]
    return {
        "benchmark": traces[0]["benchmark"],
        "n": len(traces),
        "k": int(traces[0]["N"]),
        "accuracy": sum(solved) / len(solved),
        "accuracy_ci95": [lo, hi],
        "formatted_rate": _rate(sum(bool(a["answer"]) for a in all_attempts), len(all_attempts)),
        "attempts_used": _attempts_used(traces),
        "retry": _retry_stats(traces),
        "stop_reasons": dict(sorted(Counter(r["stop_reason"] for r in traces).items())),
        # dialogues whose stored ids were not the ids the model saw (0 expected; older traces lack the flag)
        "token_mismatches": sum(not r.get("token_exact", True) for r in traces),
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


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
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


def macro_ci(per_benchmark_values: Mapping[str, Sequence[float]], n_boot: int = 1000, alpha: float = 0.05,
             seed: int = 0) -> tuple[float, float]:
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
    means = np.stack([_boot_means(_as_vector(per_benchmark_values[b], f"benchmark {b!r}"), n_boot, rng)
                      for b in names])
    return _interval(means.mean(axis=0), alpha)


def paired(traces_a: Sequence[Mapping], traces_b: Sequence[Mapping]) -> tuple[list[int], list[int]]:
    """Align two runs on the same questions by id, for a paired comparison (e.g. k=1 vs k=2).

    Returns:
        (solved_a, solved_b): 0/1 lists in sorted-id order, question i of one matching question i of the other.
    Raises:
        ValueError if either run is invalid, mixes benchmarks, or the id sets differ (counts and a few examples).
    """
    for name, tr in (("traces_a", traces_a), ("traces_b", traces_b)):
        try:
            validate_traces(tr)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    bench_a = {r["benchmark"] for r in traces_a}
    bench_b = {r["benchmark"] for r in traces_b}
    if len(bench_a) != 1 or bench_a != bench_b:
        raise ValueError(
            f"paired runs must cover one and the same benchmark, got {sorted(bench_a)} and {sorted(bench_b)}"
        )
    a = dict(zip((r["id"] for r in traces_a), _solved(traces_a)))
    b = dict(zip((r["id"] for r in traces_b), _solved(traces_b)))
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise ValueError(
            f"id sets differ: {len(only_a)} only in traces_a (e.g. {only_a[:3]}), "
            f"{len(only_b)} only in traces_b (e.g. {only_b[:3]})"
        )
    ids = sorted(a)
    return [a[i] for i in ids], [b[i] for i in ids]


def gain_ci(values_a: Sequence[float], values_b: Sequence[float], n_boot: int = 1000, alpha: float = 0.05,
            seed: int = 0) -> tuple[float, float]:
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
