"""Metrics over evaluation traces (paper §4, Figs 1 and 5; spec §5.4 and §8): pure functions of checked traces.

What this module owns:
  * the trace: one question's record, checked once when read (`read_traces`, `traces_from`) into a `Trace`;
  * accuracy at k attempts for one run (one checkpoint x one benchmark x one k), with a percentile-bootstrap CI;
  * retry behaviour: how often a retry turns wrong into right, how often it repeats an earlier wrong answer (as a
    string, and as the grader judges it from verdicts the caller hands in), with bootstrap CIs over questions;
  * attempts used, formatted (boxed) rate, stop reasons, all gathered by `summarize` into one JSON-ready dict;
  * two runs aligned on the same questions (`paired`), for the gain between them (e.g. k=2 minus k=1);
  * metrics.json (`metrics_for`): one model x benchmark over its k runs, naming the model, its variant and seed
    (parsed from the workflow's model names), so the report reads them from the file, not from folder names.
The intervals themselves (of a mean, a macro average over benchmarks, a paired gain) are `pipeline.stats`.

What it does not know: how traces were produced or graded (it trusts each attempt's `correct` flag and the
record's `solved_at`, and only checks that they agree), tokens, prompts, or models' weights. It reads traces
(`read_traces`) and writes nothing: callers write the results. No torch.

A trace is one question's record in a run's traces jsonl:
    {"id": str, "benchmark": str, "N": int (= k), "attempts": [{"text": str, "answer": str|None, "correct": bool},
     ...], "solved_at": int|None, "stop_reason": "correct"|"attempts_exhausted"|"token_budget"|"context",
     "token_exact": bool (optional: the stored ids were the ids the model saw),
     "scored_on": "any"|"last" (optional, default "any")}
`attempts` has 1..N entries (0 only when the prompt alone filled the context, stop reason "context") and stops at
the first correct one, so every attempt before the last is wrong. An answer of "" (an empty box) is no answer.
A trace "scored_on": "last" (feedback provider `none`, `pipeline.feedback`) does not stop at a correct attempt:
it is scored on its last one, so earlier attempts may be right, and solved_at / stop reason "correct" say that
the LAST attempt is right (accuracy@k = share of dialogues whose last answer is right).
An attempt may say "truncated": bool (cut by its token budget or the context; older traces lack it). Other keys
(an attempt's n_tokens, timed_out) are kept in the file and ignored here.

The paper rounds each benchmark's accuracy to 0.1 percentage points before averaging (spec §5.4); this module
never rounds: do it at presentation time if reproducing the paper's exact figures.

Try it: `pytest tests/test_metrics.py -q`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import stats
from pipeline.feedback import SCORED_ON
from pipeline.io import DataError, read_jsonl
from pipeline.layout import MODEL_NAME, parse_model

STOP_REASONS = ("correct", "attempts_exhausted", "token_budget", "context")


# ----------------------------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Attempt:
    """One attempt: its text, the extracted answer (None or "" when it boxed none) and the verdict."""

    text: str
    answer: str | None
    correct: bool
    truncated: bool | None = None  # cut by its budget or the context (None: the trace does not say)


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
    scored_on: str = "any"  # "last": scored on the last attempt, which may follow a right one (feedback `none`)
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
        scored_on = record.get("scored_on", "any")
        if scored_on not in SCORED_ON:
            raise fail(f"scored_on must be one of {SCORED_ON}, got {scored_on!r}")
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
            if not isinstance(a.get("truncated", False), (bool, np.bool_)):
                raise fail(f"attempt {j} truncated must be a bool, got {a['truncated']!r}")
            if a["correct"] and j < len(attempts) and scored_on == "any":
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
            attempts=tuple(
                Attempt(a["text"], a["answer"], bool(a["correct"]), bool(a["truncated"]) if "truncated" in a else None)
                for a in attempts
            ),
            solved_at=expected,
            stop_reason=reason,
            token_exact=bool(record.get("token_exact", True)),
            scored_on=scored_on,
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


# The retry rates as (numerator, denominator) of `_retry_counts`' counts: one definition for `retry_stats`' point
# estimates and for what `retry_intervals` resamples.
_RETRY_RATES = {
    "wrong_to_right_rate": ("corrected", "reached"),
    "repeat_rate": ("repeats", "answered"),
    "repeat_rate_equiv": ("repeats_equiv", "answered"),
}


def retry_stats(traces: Sequence[Trace], equivalent: Mapping[tuple[str, str], bool] | None = None) -> dict:
    """Does the model use the feedback? Per retry index j >= 2: wrong->right rate and repeated-wrong-answer rate.

    A dialogue reaches attempt j only if attempt j-1 was wrong, so every earlier attempt is wrong.
      * wrong_to_right_rate[j] = (# dialogues whose attempt j is correct) / (# dialogues reaching j).
      * repeat_rate[j] = (# attempt-j answers equal, after whitespace removal, to any earlier answer of the same
        dialogue) / (# dialogues reaching j whose attempt j gave an answer). Null answers never count.
      * repeat_rate_equiv[j] (only with `equivalent`): the same, but an answer also repeats an earlier one that the
        grader judges the same answer (`0.5` after `\\frac{1}{2}`): `equivalent[(answer, earlier)]` is that
        verdict for every pair `retry_pairs` lists (the caller grades them; this module stays pure).
    Rates are None when their denominator is 0. Keys are strings "2".."maxN" so the dict serialises to JSON;
    with max N = 1 the per-attempt dicts are empty.

    Returns:
        {"wrong_to_right_rate": {"2": float|None, ...}, "repeat_rate": {...},
         "n_reached": {"2": int, ...}, "n_answered": {...}, "n_repeats": {...}, "n_corrected": {...},
         "overall": {"wrong_to_right_rate": float|None, "repeat_rate": float|None,
                     "n_retries": int, "n_answered": int, "n_repeats": int, "n_corrected": int}}
        and, with `equivalent`, "repeat_rate_equiv" and "n_repeats_equiv" per index and in "overall".
    Example:
        attempts "3" (wrong) then "3 " (wrong): n_reached["2"] = 1, repeat_rate["2"] = 1.0.
    """
    keys, counts = _retry_counts(traces, equivalent)
    per = {name: dict(zip(keys, (int(x) for x in c.sum(axis=0)))) for name, c in counts.items()}
    tot = {name: sum(d.values()) for name, d in per.items()}
    rates = {rate: pair for rate, pair in _RETRY_RATES.items() if pair[0] in counts}
    order = [n for n in ("reached", "answered", "repeats", "repeats_equiv", "corrected") if n in counts]
    out: dict = {rate: {k: _rate(per[num][k], per[den][k]) for k in keys} for rate, (num, den) in rates.items()}
    out.update({f"n_{name}": per[name] for name in order})
    out["overall"] = {rate: _rate(tot[num], tot[den]) for rate, (num, den) in rates.items()}
    out["overall"].update({"n_retries" if name == "reached" else f"n_{name}": tot[name] for name in order})
    return out


def _retry_counts(
    traces: Sequence[Trace], equivalent: Mapping[tuple[str, str], bool] | None
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Retry indices "2".."maxN" and, per count, an int array [trace, index]: the rows that `retry_stats` sums and
    `retry_intervals` resamples. Counts: reached, corrected, answered, repeats (string) and, with `equivalent`,
    repeats_equiv (string-equal or judged equivalent by the grader: a superset of repeats)."""
    names = ("reached", "corrected", "answered", "repeats") + (("repeats_equiv",) if equivalent is not None else ())
    keys = [str(j) for j in range(2, max(t.n for t in traces) + 1)]
    counts = {name: np.zeros((len(traces), len(keys)), dtype=np.int64) for name in names}
    for i, t in enumerate(traces):
        earlier: dict[str, str] = {}  # the dialogue's earlier answers (all wrong): normalised -> first spelling
        for j, a in enumerate(t.attempts, start=1):
            if j >= 2:
                counts["reached"][i, j - 2] = 1
                counts["corrected"][i, j - 2] = a.correct
                if a.answer:
                    counts["answered"][i, j - 2] = 1
                    repeats = _normalise(a.answer) in earlier
                    counts["repeats"][i, j - 2] = repeats
                    if equivalent is not None:
                        counts["repeats_equiv"][i, j - 2] = repeats or any(
                            _verdict(equivalent, a.answer, e, t, j) for e in earlier.values()
                        )
            if a.answer:
                earlier.setdefault(_normalise(a.answer), a.answer)
    return keys, counts


def _verdict(equivalent: Mapping[tuple[str, str], bool], answer: str, earlier: str, t: Trace, j: int) -> bool:
    try:
        return bool(equivalent[(answer, earlier)])
    except KeyError:
        raise ValueError(
            f"{t.where} (id {t.id!r}): no equivalence verdict for attempt {j}'s answer {answer!r} against the earlier "
            f"{earlier!r} (grade every pair of retry_pairs)"
        ) from None


def retry_pairs(traces: Sequence[Trace]) -> list[tuple[str, str]]:
    """The (answer, earlier answer) pairs whose equivalence `retry_stats` needs for repeat_rate_equiv: each retry's
    answer that is no string repeat against each earlier answer of its dialogue (first spelling). Sorted, without
    duplicates (a run at k = 3 repeats the k = 2 run's dialogues), so the caller grades each pair once."""
    pairs: set[tuple[str, str]] = set()
    for t in traces:
        earlier: dict[str, str] = {}  # as in `_retry_counts`
        for a in t.attempts:
            if a.answer and _normalise(a.answer) not in earlier:
                pairs.update((a.answer, e) for e in earlier.values())
                earlier[_normalise(a.answer)] = a.answer
    return sorted(pairs)


def judge_repeats(traces: Sequence[Trace], grader) -> tuple[dict[tuple[str, str], bool], int]:
    """({(answer, earlier answer): equivalent}, number timed out) for every retry pair of `traces`, judged by the
    grader (0.5 after \\frac{1}{2} is a repeat) with the earlier answer as the gold; a timeout counts as not the
    same answer. The grader is passed in, so the rest of this module stays pure."""
    pairs = retry_pairs(traces)
    grades = grader.grade_answers([a for a, _ in pairs], [e for _, e in pairs])
    return {pair: g.correct for pair, g in zip(pairs, grades)}, sum(g.timed_out for g in grades)


def retry_intervals(
    traces: Sequence[Trace],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    equivalent: Mapping[tuple[str, str], bool] | None = None,
) -> dict:
    """Percentile-bootstrap (1 - alpha) intervals of `retry_stats`' rates, resampling questions (dialogues).

    A rate is a ratio of sums over the dialogues (a dialogue adds to several retry indices and to "overall"), so
    each resample redraws whole dialogues and recomputes every ratio from the same draw. A resample in which a
    rate's denominator is 0 (no dialogue reached that index) has no value and is left out; an interval is None
    where the rate is None (nothing to resample) and [c, c] where every dialogue agrees. Deterministic for a seed.

    Returns:
        {"wrong_to_right_rate_ci95": {"2": [lo, hi]|None, ...}, "repeat_rate_ci95": {...},
         "overall": {"wrong_to_right_rate_ci95": [lo, hi]|None, "repeat_rate_ci95": ...}}, plus
        "repeat_rate_equiv_ci95" (per index and overall) with `equivalent`. The "_ci95" suffix matches
        `accuracy_ci95`; the level is 1 - alpha.
    """
    stats.check_boot(n_boot, alpha)
    keys, counts = _retry_counts(traces, equivalent)
    rates = {rate: pair for rate, pair in _RETRY_RATES.items() if pair[0] in counts}
    # Columns: per count, one per retry index and one for the overall sum; resampled together, one draw for all.
    names = list(counts)
    table = np.concatenate([np.column_stack([counts[n], counts[n].sum(axis=1)]) for n in names], axis=1)
    width = len(keys) + 1
    cols = {n: slice(i * width, (i + 1) * width) for i, n in enumerate(names)}
    observed = table.sum(axis=0)
    sums = None
    if any(observed[cols[den]].any() for _, den in rates.values()):  # else no rate exists and nothing is drawn
        sums = stats.boot_sums(table.astype(np.float64), n_boot, np.random.default_rng(seed))

    def interval(num_col: int, den_col: int) -> list[float] | None:
        if sums is None or observed[den_col] == 0:
            return None
        den = sums[:, den_col]
        ratios = sums[den > 0, num_col] / den[den > 0]
        return list(stats.interval(ratios, alpha)) if ratios.size else None

    out: dict = {f"{rate}_ci95": {} for rate in rates}
    out["overall"] = {}
    for rate, (num, den) in rates.items():
        n0, d0 = cols[num].start, cols[den].start
        out[f"{rate}_ci95"] = {k: interval(n0 + c, d0 + c) for c, k in enumerate(keys)}
        out["overall"][f"{rate}_ci95"] = interval(n0 + len(keys), d0 + len(keys))
    return out


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


def summarize(
    traces: Sequence[Trace],
    n_boot: int = 1000,
    seed: int = 0,
    equivalent: Mapping[tuple[str, str], bool] | None = None,
) -> dict:
    """Everything reported for one run (one checkpoint, one benchmark, one k) as one JSON-ready dict.

    Args:
        traces: the run's traces; they must share one N and one benchmark.
        n_boot, seed: for the 95% percentile-bootstrap CIs (accuracy and retry rates, each its own generator).
        equivalent: the grader's verdicts on `retry_pairs(traces)` (see `retry_stats`), or None.
    Returns:
        {"benchmark": str, "n": int, "k": int, "accuracy": float, "accuracy_ci95": [lo, hi],
         "formatted_rate": float (fraction of all attempts that gave a boxed answer),
         "truncated_rate": float|None (fraction of attempts cut by their budget or the context),
         "attempts_used": attempts_used(...), "retry": retry_stats(...) with retry_intervals(...)'s "*_ci95" keys
         added beside each rate, "stop_reasons": {reason: count}, "token_mismatches": int}
    Raises:
        DataError on an empty list or mixed N / benchmark (naming the trace).
    """
    _one_run(traces)
    solved = solved_vector(traces)
    lo, hi = stats.bootstrap_ci(solved, n_boot=n_boot, alpha=0.05, seed=seed)
    all_attempts = [a for t in traces for a in t.attempts]
    return {
        "benchmark": traces[0].benchmark,
        "n": len(traces),
        "k": traces[0].n,
        "accuracy": sum(solved) / len(solved),
        "accuracy_ci95": [lo, hi],
        "formatted_rate": _rate(sum(bool(a.answer) for a in all_attempts), len(all_attempts)),
        # attempts cut by their budget or the context, of those whose trace says (None: none says)
        "truncated_rate": _rate(
            sum(bool(a.truncated) for a in all_attempts), sum(a.truncated is not None for a in all_attempts)
        ),
        "attempts_used": attempts_used(traces),
        "retry": _with_intervals(
            retry_stats(traces, equivalent), retry_intervals(traces, n_boot, 0.05, seed, equivalent)
        ),
        "stop_reasons": dict(sorted(Counter(t.stop_reason for t in traces).items())),
        # dialogues whose stored ids were not the ids the model saw (0 expected)
        "token_mismatches": sum(not t.token_exact for t in traces),
    }


def _with_intervals(stats: dict, intervals: dict) -> dict:
    """retry_stats' dict with each rate's interval right after it (per index and in "overall")."""
    out: dict = {}
    for key, value in stats.items():
        out[key] = _with_intervals(value, intervals["overall"]) if key == "overall" else value
        if f"{key}_ci95" in intervals:
            out[f"{key}_ci95"] = intervals[f"{key}_ci95"]
    return out


# ----------------------------------------------------------------------------------------------- across runs


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


# ----------------------------------------------------------------------------------------------- metrics.json


def metrics_for(
    model: str,
    runs: Mapping[int, Sequence[Trace]],
    seed: int = 0,
    equivalent: Mapping[tuple[str, str], bool] | None = None,
    others: Collection[str] = (),
) -> dict:
    """metrics.json of one model x benchmark from its runs {k: traces}: the model (name, variant, seed), then
    `summarize` per k, plus the gain of each k over k = 1 on the same questions with a paired bootstrap 95%
    interval. `seed` is the bootstraps' seed; `equivalent` the grader's verdicts on the runs' `retry_pairs`
    (None: no repeat_rate_equiv); `others` the names of config eval.models (their variant is their name)."""
    variant, model_seed = parse_model(model, others)
    step = MODEL_NAME.match(model) if model_seed is not None else None
    by_k = {int(k): summarize(traces, seed=seed, equivalent=equivalent) for k, traces in sorted(runs.items())}
    out = {
        "model": model,
        "variant": variant,
        "seed": model_seed,
        **({"step": int(step["step"])} if step and step["step"] else {}),  # an actor of the curves
        "benchmark": next(iter(by_k.values()))["benchmark"],
        "by_k": {str(k): m for k, m in by_k.items()},
    }
    if 1 in runs:
        gains = {}
        for k, traces in sorted(runs.items()):
            if k == 1:
                continue
            a, b = paired(runs[1], traces)
            lo, hi = stats.gain_ci(a, b, seed=seed)
            gains[str(k)] = {"gain": by_k[k]["accuracy"] - by_k[1]["accuracy"], "gain_ci95": [lo, hi]}
        out["gain_over_k1"] = gains
    return out
