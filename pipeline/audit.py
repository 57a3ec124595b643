"""The grader audit (issue 18 item 3): every evaluated attempt re-graded by a second grader, disagreements listed.

The headline numbers are Math-Verify's (`pipeline.grading.Grader`, the trace's ``correct`` flags).  The audit
re-grades each attempt's extracted answer against the evaluation set's gold with `grading.second.second_equal`,
which shares no parser with Math-Verify, and reports (`audit`):
  * one row per attempt on which the two graders disagree (written to grader_audit.jsonl), and
  * per k: accuracy under each grader, the attempts graded, and the disagreements in each direction.

Accuracy under the second grader: a question counts as solved when the second grader accepts some attempt of its
dialogue.  The dialogues were run with Math-Verify's feedback, so a dialogue that Math-Verify ended early, on an
attempt the second grader rejects, counts as unsolved under the second grader: its later attempts never happened.
(So the second accuracy is not what a run graded by the second grader would score; it is the headline's
dialogues re-scored.)

Inputs: the prepared evaluation set (`pipeline.data` records: id, question, answer = the gold) and the model's
traces for k = 1..K (`pipeline.metrics` trace format, read and checked by `metrics.read_traces`).  Pure functions
plus one writer (`write_audit`); errors name file:line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.grading.second import second_equal
from pipeline.io import DataError, write_json, write_jsonl
from pipeline.metrics import Trace

HEADLINE_GRADER = "math_verify"  # the trace's `correct` flags: pipeline.grading.Grader
SECOND_GRADER = "second_equal"  # pipeline.grading.second


def disagreements(
    model: str, golds: Mapping[str, Mapping[str, str]], k: int, traces: Sequence[Trace]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The disagreement rows of one run (one k) and its counts.

    `golds` maps a question id to its data record (question, answer).  Returns (rows, counts): a row per attempt
    the graders judge differently, in trace order; counts = {"n_questions", "accuracy_primary",
    "accuracy_second", "n_attempts", "n_disagreements", "primary_only", "second_only"} (primary_only: attempts
    only Math-Verify accepts; second_only: attempts only the second grader accepts).
    """
    rows: list[dict[str, Any]] = []
    solved_primary = solved_second = n_attempts = primary_only = second_only = 0
    for t in traces:
        if t.n != k:
            raise t.error(f"N={t.n} but this run is k={k} (one traces file per k)")
        record = golds.get(t.id)
        if record is None:
            raise t.error("no question with this id in the evaluation set")
        gold = record["answer"]
        solved_primary += t.solved_at is not None
        solved = False
        for j, attempt in enumerate(t.attempts, start=1):
            second = second_equal(attempt.answer, gold)
            solved |= second
            n_attempts += 1
            if second == attempt.correct:
                continue
            primary_only += attempt.correct
            second_only += second
            rows.append(
                {
                    "model": model,
                    "eval_set": t.benchmark,
                    "k": k,
                    "id": t.id,
                    "attempt": j,
                    "question": record["question"],
                    "answer": attempt.answer,
                    "gold": gold,
                    "primary_correct": attempt.correct,
                    "second_correct": second,
                }
            )
        solved_second += solved
    n = len(traces)
    counts = {
        "n_questions": n,
        "accuracy_primary": solved_primary / n,
        "accuracy_second": solved_second / n,
        "n_attempts": n_attempts,
        "n_disagreements": len(rows),
        "primary_only": primary_only,
        "second_only": second_only,
    }
    return rows, counts


def audit(
    model: str, records: Sequence[Mapping[str, Any]], runs: Sequence[Sequence[Trace]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All disagreement rows and the summary of one model x evaluation set over its runs (one per k).

    `records`: the evaluation set (`data.read_records`); `runs`: each run's traces (`metrics.read_traces`), one
    k each.  DataError when two runs have the same k, or mix evaluation sets.

    Summary: {"model", "eval_set", "headline_grader": "math_verify", "second_grader": "second_equal",
    "by_k": {"1": counts, ...} (see `disagreements`), "total": {"n_attempts", "n_disagreements",
    "primary_only", "second_only"}}.
    """
    if not runs:
        raise DataError("grader audit: no traces given")
    golds = {r["id"]: r for r in records}
    eval_set = runs[0][0].benchmark
    rows: list[dict[str, Any]] = []
    by_k: dict[int, dict[str, Any]] = {}
    for traces in runs:
        first = traces[0]
        if first.n in by_k:
            raise first.error(f"a second run with k={first.n}")
        for t in traces:
            if t.benchmark != eval_set:
                raise t.error(f"evaluation set {t.benchmark!r}, but the audit is of {eval_set!r}")
        run_rows, by_k[first.n] = disagreements(model, golds, first.n, traces)
        rows += run_rows
    keys = ("n_attempts", "n_disagreements", "primary_only", "second_only")
    summary = {
        "model": model,
        "eval_set": eval_set,
        "headline_grader": HEADLINE_GRADER,
        "second_grader": SECOND_GRADER,
        "by_k": {str(k): by_k[k] for k in sorted(by_k)},
        "total": {key: sum(c[key] for c in by_k.values()) for key in keys},
    }
    return rows, summary


def write_audit(out_jsonl: str | Path, out_json: str | Path, rows: Sequence[dict], summary: dict) -> None:
    """grader_audit.jsonl (the disagreement rows; empty when the graders agree) and the summary json, atomically."""
    write_jsonl(out_jsonl, rows)
    write_json(out_json, summary)
