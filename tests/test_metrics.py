"""Metrics over eval traces: accuracy, retry stats, bootstrap CIs, macro average. `pytest tests/test_metrics.py -q`"""

import copy
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline import metrics as M
from pipeline import stats as S
from pipeline.io import DataError
from tests.conftest import ROOT


def att(answer, correct=False, text="..."):
    return {"text": text, "answer": answer, "correct": correct}


def rec(qid, attempts, n, bench="math500", stop=None):
    solved_at = len(attempts) if attempts[-1]["correct"] else None
    if stop is None:
        stop = "correct" if solved_at else "attempts_exhausted"
    return {"id": qid, "benchmark": bench, "N": n, "attempts": attempts, "solved_at": solved_at, "stop_reason": stop}


# k = 2, four questions.
K2 = [
    rec("q1", [att("5", True)], 2),  # solved at 1
    rec("q2", [att("3"), att("4", True)], 2),  # solved at 2 after a different wrong answer
    rec("q3", [att(" 7"), att("7 ")], 2),  # failed twice, repeating the same wrong answer (modulo whitespace)
    rec("q4", [att(None), att(None)], 2),  # failed twice, never boxed an answer
]

# k = 3, five questions: repeat of a non-adjacent attempt, null then answer, token budget, whitespace inside.
K3 = [
    rec("r1", [att("a"), att("b"), att("a")], 3),  # j=3 repeats attempt 1
    rec("r2", [att(None), att("c"), att("d", True)], 3),  # solved at 3
    rec("r3", [att("e + 1"), att("e+1")], 3, stop="token_budget"),  # j=2 repeats; budget ran out before j=3
    rec("r4", [att("f"), att("g", True)], 3),  # solved at 2
    rec("r5", [att("h", True)], 3),  # solved at 1
]
T2, T3 = M.traces_from(K2), M.traces_from(K3)  # checked once, as read_traces does for a file


# ----------------------------------------------------------------------------------------------- one run, k=2


def test_k2_accuracy_and_attempts_used():
    assert M.accuracy(T2) == 0.5  # q1, q2 solved of 4
    # success: q1 used 1, q2 used 2 -> 1.5; failure: q3, q4 used 2 each -> 2.0
    assert M.attempts_used(T2) == {"success": 1.5, "failure": 2.0}
    assert M.solved_vector(T2) == [1, 1, 0, 0]


def test_k2_retry_stats():
    r = M.retry_stats(T2)
    # Reaching attempt 2: q2, q3, q4 (3). Right at 2: q2 -> 1/3.
    # Answered at 2: q2 ("4"), q3 ("7 "); q4 gave none -> 2. Repeats: q3 ("7 " == " 7" stripped) -> 1/2.
    assert r == {
        "wrong_to_right_rate": {"2": 1 / 3},
        "repeat_rate": {"2": 0.5},
        "n_reached": {"2": 3},
        "n_answered": {"2": 2},
        "n_repeats": {"2": 1},
        "n_corrected": {"2": 1},
        "overall": {
            "wrong_to_right_rate": 1 / 3,
            "repeat_rate": 0.5,
            "n_retries": 3,
            "n_answered": 2,
            "n_repeats": 1,
            "n_corrected": 1,
        },
    }


def test_truncated_rate_counts_the_attempts_whose_trace_says():
    """An attempt cut by its budget or the context says so in its trace; the rate is over the attempts that say
    (older traces lack the flag: None)."""
    assert M.summarize(T2, n_boot=10)["truncated_rate"] is None
    records = _bad(lambda t: None)
    for j, a in enumerate(a for r in records for a in r["attempts"]):
        a["truncated"] = j % 3 == 0  # 7 attempts: 0, 3, 6 cut
    assert M.summarize(M.traces_from(records), n_boot=10)["truncated_rate"] == 3 / 7


def test_k2_summarize():
    s = M.summarize(T2, n_boot=500, seed=1)
    assert s["benchmark"] == "math500"
    assert s["n"] == 4 and s["k"] == 2
    assert s["accuracy"] == 0.5
    # attempts: 1 + 2 + 2 + 2 = 7; with an answer: 1 + 2 + 2 + 0 = 5
    assert s["formatted_rate"] == 5 / 7
    assert s["attempts_used"] == {"success": 1.5, "failure": 2.0}
    # retry_stats' keys and values, each rate followed by its interval (same seed and n_boot as the accuracy's)
    stats, intervals = M.retry_stats(T2), M.retry_intervals(T2, n_boot=500, seed=1)
    assert {k: v for k, v in s["retry"].items() if k != "overall"} == {
        **{k: v for k, v in stats.items() if k != "overall"},
        **{k: v for k, v in intervals.items() if k != "overall"},
    }
    assert s["retry"]["overall"] == {**stats["overall"], **intervals["overall"]}
    assert list(s["retry"])[:2] == ["wrong_to_right_rate", "wrong_to_right_rate_ci95"]
    assert s["stop_reasons"] == {"attempts_exhausted": 2, "correct": 2}
    lo, hi = s["accuracy_ci95"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    assert [lo, hi] == list(S.bootstrap_ci([1, 1, 0, 0], n_boot=500, seed=1))
    assert json.loads(json.dumps(s)) == s  # JSON-ready, string keys throughout


# ----------------------------------------------------------------------------------------------- one run, k=3


def test_k3_metrics():
    assert M.accuracy(T3) == 0.6  # r2, r4, r5 of 5
    # success: r2 3, r4 2, r5 1 -> 2.0; failure: r1 3, r3 2 (token budget) -> 2.5
    assert M.attempts_used(T3) == {"success": 2.0, "failure": 2.5}
    r = M.retry_stats(T3)
    # j=2: reached r1..r4 (4); right r4 (1/4); answered b, c, "e+1", g (4); repeat r3 "e+1" == "e + 1" (1/4)
    # j=3: reached r1, r2 (2); right r2 (1/2); answered a, d (2); repeat r1 "a" == attempt 1 (1/2)
    assert r["n_reached"] == {"2": 4, "3": 2}
    assert r["n_corrected"] == {"2": 1, "3": 1}
    assert r["n_answered"] == {"2": 4, "3": 2}
    assert r["n_repeats"] == {"2": 1, "3": 1}
    assert r["wrong_to_right_rate"] == {"2": 0.25, "3": 0.5}
    assert r["repeat_rate"] == {"2": 0.25, "3": 0.5}
    # overall: 6 retries, 2 corrected (1/3); 6 answered, 2 repeats (1/3)
    assert r["overall"] == {
        "wrong_to_right_rate": 1 / 3,
        "repeat_rate": 1 / 3,
        "n_retries": 6,
        "n_answered": 6,
        "n_repeats": 2,
        "n_corrected": 2,
    }
    s = M.summarize(T3)
    assert s["k"] == 3 and s["n"] == 5
    assert s["formatted_rate"] == 10 / 11  # 11 attempts, only r2's first has no answer
    assert s["stop_reasons"] == {"attempts_exhausted": 1, "correct": 3, "token_budget": 1}


def test_retry_stats_no_retries_and_unreached_index():
    k1 = [rec("a", [att("1", True)], 1), rec("b", [att("2")], 1)]
    r = M.retry_stats(M.traces_from(k1))
    assert r["wrong_to_right_rate"] == {} and r["repeat_rate"] == {}
    assert r["overall"]["wrong_to_right_rate"] is None and r["overall"]["repeat_rate"] is None
    assert r["overall"]["n_retries"] == 0
    # k=3 but nobody got past attempt 1: index 3 present with None rates; all-null retries -> repeat_rate None
    k3 = [rec("a", [att("1", True)], 3), rec("b", [att("2"), att(None, True)], 3)]
    r = M.retry_stats(M.traces_from(k3))
    assert r["n_reached"] == {"2": 1, "3": 0}
    assert r["wrong_to_right_rate"] == {"2": 1.0, "3": None}
    assert r["repeat_rate"] == {"2": None, "3": None}
    assert M.attempts_used(M.traces_from([rec("a", [att("1", True)], 1)])) == {"success": 1.0, "failure": None}
    assert M.attempts_used(M.traces_from([rec("a", [att("1")], 1)])) == {"success": None, "failure": 1.0}


def test_null_earlier_answer_is_not_a_repeat_target():
    r = M.retry_stats(M.traces_from([rec("a", [att(None), att("x"), att("x")], 3)]))
    assert r["n_repeats"] == {"2": 0, "3": 1}  # "x" at 2 is new (None is not an answer); at 3 it repeats


# Repeats judged by the grader: 0.5 then \frac{1}{2} is one answer, not one string; 2x after x+x needs Math-Verify.
EQUIV = [
    rec("e1", [att("0.5"), att(r"\frac{1}{2}")], 3, stop="token_budget"),  # j=2: equivalent repeat, not a string one
    rec("e2", [att("x+x"), att("3"), att("2x")], 3),  # j=2 new; j=3 repeats attempt 1 (Math-Verify decides)
    rec("e3", [att("7"), att("7 "), att("8", True)], 3),  # j=2: string repeat (and so an equivalent one); j=3 right
    rec("e4", [att("0.5"), att("0.25", True)], 3),  # j=2: a different number, right
]


def _grader_verdicts(traces):
    from pipeline.grading import Grader

    pairs = M.retry_pairs(traces)
    with Grader(workers=1, timeout_s=30.0, multi_box="last") as grader:
        grades = grader.grade_answers([a for a, _ in pairs], [e for _, e in pairs])
    return {pair: g.correct for pair, g in zip(pairs, grades)}


def test_repeats_judged_by_the_graders_equivalence():
    traces = M.traces_from(EQUIV)
    # Only pairs that differ as strings are graded, each once ("7 " after "7" is a string repeat already).
    assert M.retry_pairs(traces) == sorted(
        [(r"\frac{1}{2}", "0.5"), ("3", "x+x"), ("2x", "x+x"), ("2x", "3"), ("8", "7"), ("0.25", "0.5")]
    )
    verdicts = _grader_verdicts(traces)  # the real grader: cheap checks, then Math-Verify in a worker
    assert {pair for pair, same in verdicts.items() if same} == {(r"\frac{1}{2}", "0.5"), ("2x", "x+x")}
    r = M.retry_stats(traces, verdicts)
    # j=2: answered e1..e4 (4); string repeats e3 (1); equivalent repeats e1, e3 (2). j=3: e2, e3; equivalent e2.
    assert r["n_repeats"] == {"2": 1, "3": 0} and r["n_repeats_equiv"] == {"2": 2, "3": 1}
    assert r["repeat_rate"] == {"2": 0.25, "3": 0.0} and r["repeat_rate_equiv"] == {"2": 0.5, "3": 0.5}
    assert r["overall"]["repeat_rate"] == 1 / 6 and r["overall"]["repeat_rate_equiv"] == 3 / 6
    assert r["overall"]["n_repeats_equiv"] == 3
    # Today's keys keep their meaning and values (string equality); without verdicts there is no equiv column.
    plain = M.retry_stats(traces)
    assert {k: v for k, v in r.items() if "equiv" not in k and k != "overall"} == {
        k: v for k, v in plain.items() if k != "overall"
    }
    assert {k: v for k, v in r["overall"].items() if "equiv" not in k} == plain["overall"]
    assert not any("equiv" in k for k in (*plain, *plain["overall"]))


def test_a_missing_equivalence_verdict_names_the_record():
    traces = M.traces_from(EQUIV, "k3.jsonl")
    verdicts = dict.fromkeys(M.retry_pairs(traces), False)
    del verdicts[("2x", "x+x")]
    with pytest.raises(ValueError, match=r"k3.jsonl: record 1 \(id 'e2'\): no equivalence verdict for attempt 3"):
        M.retry_stats(traces, verdicts)


def test_the_eval_metrics_verb_grades_the_repeats(tmp_path):
    """As the rule calls it: the verb builds the grader from --config and writes both repeat columns."""
    runs = {2: [rec(r["id"], r["attempts"][:2], 2) for r in EQUIV], 3: EQUIV}  # every dialogue reaches attempt 2
    paths = []
    for k, records in runs.items():
        paths.append(tmp_path / f"k{k}.jsonl")
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "metrics.json"
    argv = ["eval-metrics", "--config", "{}", *map(str, paths), "--model", "base", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "pipeline", *argv], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    retry = json.loads(out.read_text())["by_k"]["3"]["retry"]
    assert retry["repeat_rate"] == {"2": 0.25, "3": 0.0} and retry["repeat_rate_equiv"] == {"2": 0.5, "3": 0.5}
    lo, hi = retry["overall"]["repeat_rate_equiv_ci95"]
    assert lo <= 0.5 <= hi
    assert "6 answer pairs judged for repeats (2 equivalent, 0 timed out)" in proc.stderr


def test_retry_intervals_contain_the_rates_and_are_deterministic():
    rng = np.random.default_rng(5)
    records = []
    for i in range(60):  # k = 3 dialogues: right at 1, 2 or 3 or never; a retry sometimes repeats attempt 1
        solved = int(rng.integers(1, 5))
        answers = [str(rng.integers(0, 3)) for _ in range(3)]
        attempts = [att(answers[j], correct=j + 1 == solved) for j in range(min(solved, 3))]
        records.append(rec(f"q{i}", attempts, 3))
    traces = M.traces_from(records)
    verdicts = dict.fromkeys(M.retry_pairs(traces), False)
    stats, ci = M.retry_stats(traces, verdicts), M.retry_intervals(traces, n_boot=400, seed=3, equivalent=verdicts)
    for rate in ("wrong_to_right_rate", "repeat_rate", "repeat_rate_equiv"):
        for j in ("2", "3"):
            lo, hi = ci[f"{rate}_ci95"][j]
            assert 0.0 <= lo <= stats[rate][j] <= hi <= 1.0 and lo < hi
        lo, hi = ci["overall"][f"{rate}_ci95"]
        assert lo <= stats["overall"][rate] <= hi
    assert ci == M.retry_intervals(traces, n_boot=400, seed=3, equivalent=verdicts)
    assert ci != M.retry_intervals(traces, n_boot=400, seed=4, equivalent=verdicts)
    # The overall rate pools the indices, so its interval is narrower than the sparser index 3's.
    (lo3, hi3), (lo, hi) = ci["wrong_to_right_rate_ci95"]["3"], ci["overall"]["wrong_to_right_rate_ci95"]
    assert hi - lo < hi3 - lo3


def test_retry_intervals_without_retries_or_variation():
    k1 = M.traces_from([rec("a", [att("1", True)], 1), rec("b", [att("2")], 1)])
    assert M.retry_intervals(k1) == {
        "wrong_to_right_rate_ci95": {},
        "repeat_rate_ci95": {},
        "overall": {"wrong_to_right_rate_ci95": None, "repeat_rate_ci95": None},
    }
    # Nobody reached attempt 3, nobody answered at 2: None; everyone reaching 2 was right there: [1, 1].
    k3 = M.traces_from([rec("a", [att("1", True)], 3), rec("b", [att("2"), att(None, True)], 3)])
    ci = M.retry_intervals(k3, n_boot=200)
    assert ci["wrong_to_right_rate_ci95"] == {"2": [1.0, 1.0], "3": None}
    assert ci["repeat_rate_ci95"] == {"2": None, "3": None} and ci["overall"]["repeat_rate_ci95"] is None
    s = M.summarize(k1, n_boot=50)
    assert s["retry"]["overall"]["wrong_to_right_rate_ci95"] is None
    assert json.loads(json.dumps(s)) == s
    with pytest.raises(ValueError, match="n_boot"):
        M.retry_intervals(k3, n_boot=0)


# ----------------------------------------------------------------------------------------------- validation


def _bad(mutate, traces=K2):
    t = copy.deepcopy(traces)
    mutate(t)
    return t


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda t: t[2].pop("solved_at"), r"record 2 \(id 'q3'\): missing key 'solved_at'"),
        (lambda t: t.__setitem__(1, "oops"), r"record 1: expected a dict"),
        (lambda t: t[1].update(N=0), r"record 1 .*N must be an int >= 1"),
        (lambda t: t[1].update(N=1), r"record 1 .*attempts has 2 entries, expected 1..N=1"),
        (lambda t: t[3].update(attempts=[]), r"record 3 .*attempts has 0 entries"),
        (lambda t: t[2]["attempts"][0].update(correct=1), r"record 2 .*attempt 1 correct must be a bool"),
        (lambda t: t[2]["attempts"][0].update(answer=7), r"record 2 .*attempt 1 answer must be a str or null"),
        (lambda t: t[2]["attempts"][1].update(truncated="yes"), r"record 2 .*attempt 2 truncated must be a bool"),
        (lambda t: t[2]["attempts"][1].pop("text"), r"record 2 .*attempt 2 is missing key 'text'"),
        (lambda t: t[1]["attempts"][0].update(correct=True), r"record 1 .*attempt 1 is correct but .* attempt 2"),
        (lambda t: t[1].update(solved_at=1), r"record 1 .*solved_at=1 disagrees"),
        (lambda t: t[2].update(solved_at=2), r"record 2 .*solved_at=2 disagrees"),
        (lambda t: t[0].update(stop_reason="done"), r"record 0 .*stop_reason 'done' is not one of"),
        (lambda t: t[2].update(stop_reason="correct"), r"record 2 .*disagrees with solved_at=None"),
        (lambda t: t[0].update(stop_reason="token_budget"), r"record 0 .*disagrees with solved_at=1"),
        (lambda t: t[3].update(id="q1"), r"record 3 .*duplicate id .*first at record 0"),
        (lambda t: t[1].update(N=3), r"record 1 .*N=3 differs from record 0's N=2"),
        (lambda t: t[3].update(benchmark="aime24"), r"record 3 .*benchmark 'aime24' differs"),
    ],
)
def test_summarize_rejects_malformed(mutate, match):
    with pytest.raises(ValueError, match=match):
        M.summarize(M.traces_from(_bad(mutate)), n_boot=10)


def test_validation_edges():
    with pytest.raises(ValueError, match="empty"):
        M.summarize(M.traces_from([]))
    with pytest.raises(ValueError, match="empty"):
        M.accuracy(M.traces_from([]))
    with pytest.raises(ValueError, match="list of records"):
        M.accuracy(M.traces_from(K2[0]))
    short = _bad(lambda t: t[2].update(attempts=t[2]["attempts"][:1]))  # exhausted after 1 of N=2
    with pytest.raises(ValueError, match=r"record 2 .*'attempts_exhausted' but only 1 of N=2"):
        M.accuracy(M.traces_from(short))
    # Mixed N / benchmark is fine outside summarize (e.g. pooled retry stats), same id in two benchmarks too.
    mixed = K2 + [rec("q1", [att("1")], 3, bench="aime24", stop="token_budget")]
    assert M.accuracy(M.traces_from(mixed)) == 0.4
    assert M.retry_stats(M.traces_from(mixed))["n_reached"] == {"2": 3, "3": 0}


# ----------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_mean_and_is_deterministic():
    rng = np.random.default_rng(123)
    v = (rng.random(200) < 0.3).astype(int)
    lo, hi = S.bootstrap_ci(v, n_boot=1000, seed=7)
    assert lo < v.mean() < hi
    assert (lo, hi) == S.bootstrap_ci(list(v), n_boot=1000, seed=7)
    assert (lo, hi) != S.bootstrap_ci(v, n_boot=1000, seed=8)
    lo90, hi90 = S.bootstrap_ci(v, n_boot=1000, alpha=0.10, seed=7)
    assert lo <= lo90 < hi90 <= hi  # narrower at a lower level


def test_bootstrap_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = (rng.random(50) < 0.5).astype(float)
    big = (rng.random(5000) < 0.5).astype(float)
    w_small = np.subtract(*S.bootstrap_ci(small)[::-1])
    w_big = np.subtract(*S.bootstrap_ci(big)[::-1])
    # widths scale like 1/sqrt(n): ~0.28 vs ~0.028
    assert w_big < w_small / 5


def test_bootstrap_constant_and_errors():
    assert S.bootstrap_ci([0.3] * 17) == (0.3, 0.3)
    assert S.bootstrap_ci([1, 1, 1, 1]) == (1.0, 1.0)
    assert S.bootstrap_ci([0]) == (0.0, 0.0)
    for bad, kw in [([], {}), ([1, np.nan], {}), ([[1, 0]], {}), ([1], {"n_boot": 0}), ([1], {"alpha": 1.0})]:
        with pytest.raises(ValueError):
            S.bootstrap_ci(bad, **kw)


def test_bootstrap_fast_1000x5000():
    """1000 resamples of 5000 values cost a few times drawing their 5M indices (vectorised; a loop over resamples
    is over 100x): a ratio within one process, which a loaded machine does not break as it can a bound in seconds."""
    v = (np.random.default_rng(1).random(5000) < 0.45).astype(int)
    t0 = time.perf_counter()
    lo, hi = S.bootstrap_ci(v, n_boot=1000, seed=0)
    took = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.random.default_rng(0).integers(0, v.size, size=(1000, v.size))
    draw = time.perf_counter() - t0
    assert took < 20 * draw + 0.05, (took, draw)
    assert lo < v.mean() < hi and hi - lo < 0.04  # 2 * 1.96 * sqrt(.45 * .55 / 5000) ~ 0.028


# ----------------------------------------------------------------------------------------------- across runs


def test_macro_average():
    assert S.macro_average({"a": 0.5, "b": 1.0}) == 0.75
    # The paper's Fig. 1 k=1 average of its 5 rounded per-benchmark numbers (spec §5.4, §8.3): 45.58
    fig5_k1 = {"aime24": 26.7, "math500": 73.4, "amc23": 60.0, "minerva": 34.2, "olympiadbench": 33.6}
    assert S.macro_average(fig5_k1) == pytest.approx(45.58)
    with pytest.raises(ValueError):
        S.macro_average({})


def test_macro_ci_is_stratified():
    # Each benchmark is constant, so resampling within benchmarks never moves the macro average: (0.5, 0.5).
    # (Pooled resampling across benchmarks would spread it around 0.5.)
    assert S.macro_ci({"a": [1] * 30, "b": [0] * 500}, n_boot=200) == (0.5, 0.5)
    vals = {"a": [1, 0, 1, 1, 0, 1], "b": [0, 0, 1, 0] * 25}
    macro = S.macro_average({k: float(np.mean(v)) for k, v in vals.items()})  # (4/6 + 1/4) / 2 = 11/24
    lo, hi = S.macro_ci(vals, n_boot=1000, seed=3)
    assert lo < macro < hi
    assert (lo, hi) == S.macro_ci(dict(reversed(list(vals.items()))), n_boot=1000, seed=3)  # dict order ignored
    with pytest.raises(ValueError):
        S.macro_ci({})
    with pytest.raises(ValueError, match="benchmark 'b'"):
        S.macro_ci({"a": [1], "b": []})


def test_paired_and_gain_ci():
    k1 = M.traces_from([rec(r["id"], r["attempts"][:1], 1) for r in K2])  # q1 solved at k=1 only
    k2_shuffled = [T2[3], T2[1], T2[0], T2[2]]
    a, b = M.paired(k1, k2_shuffled)
    assert (a, b) == ([1, 0, 0, 0], [1, 1, 0, 0])  # sorted ids q1..q4
    lo, hi = S.gain_ci(a, b, n_boot=1000, seed=0)
    assert 0.0 <= lo <= 0.25 <= hi <= 1.0  # gain 0.5 - 0.25; never negative: no question lost
    assert S.gain_ci(b, b) == (0.0, 0.0)
    assert S.gain_ci(*M.paired(T2, k2_shuffled)) == (0.0, 0.0)
    assert S.gain_ci([0, 0, 0], [1, 1, 1]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        S.gain_ci([0, 1], [1])


def test_paired_errors():
    with pytest.raises(ValueError, match=r"1 only in traces_a \(e.g. \['q4'\]\), 0 only in traces_b"):
        M.paired(T2, T2[:3])
    with pytest.raises(ValueError, match="same benchmark"):
        M.paired(T2, M.traces_from([dict(r, benchmark="aime24") for r in K2]))
    with pytest.raises(ValueError, match=r"traces_b: record 0 .*missing key"):
        M.paired(T2, M.traces_from([{k: v for k, v in r.items() if k != "N"} for r in K2], "traces_b"))


def test_a_dialogue_ended_by_the_context_may_have_no_attempt_and_an_empty_box_is_no_answer():
    traces = [
        {"id": "a", "benchmark": "b", "N": 2, "attempts": [], "solved_at": None, "stop_reason": "context"},
        {
            "id": "b",
            "benchmark": "b",
            "N": 2,
            "attempts": [{"text": "\\boxed{}", "answer": "", "correct": False}],
            "solved_at": None,
            "stop_reason": "context",
        },
    ]
    out = M.summarize(M.traces_from(traces))
    assert out["accuracy"] == 0.0 and out["formatted_rate"] == 0.0 and out["stop_reasons"] == {"context": 2}
    no_attempt_otherwise = [{**traces[0], "stop_reason": "attempts_exhausted"}]
    with pytest.raises(ValueError, match="attempts has 0 entries, expected 1..N=2"):
        M.traces_from(no_attempt_otherwise)


# ----------------------------------------------------------------------------------------------- read once


def test_a_bad_trace_file_is_named_by_file_line_and_field(tmp_path):
    path = tmp_path / "k2.jsonl"
    at = re.escape(str(path))
    good = M.traces_from(K2)
    lines = [json.dumps(r) for r in K2]
    path.write_text("\n".join(lines) + "\n")
    assert M.read_traces(path) == good
    assert M.read_traces(path)[2].where == f"{path}:3"
    lines[2] = json.dumps(_bad(lambda t: t[2]["attempts"][1].update(correct="yes"))[2])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"^{at}:3 \(id 'q3'\): attempt 2 correct must be a bool, got 'yes'$"):
        M.read_traces(path)
    path.write_text(lines[0] + "\n" + lines[0] + "\n")
    with pytest.raises(DataError, match=rf"{at}:2 \(id 'q1'\): duplicate id .*first at {at}:1"):
        M.read_traces(path)
    path.write_text("\n")
    with pytest.raises(DataError, match=rf"{at} is empty"):
        M.read_traces(path)


# ----------------------------------------------------------------------------------------------- metrics.json


def _trace(qid: str, k: int, correct: list[bool]) -> dict:
    attempts = [{"text": f"\\boxed{{{i}}}", "answer": str(i), "correct": c} for i, c in enumerate(correct)]
    solved = len(correct) if correct[-1] else None
    reason = "correct" if solved else "attempts_exhausted"
    return {
        "id": qid,
        "benchmark": "synthetic",
        "N": k,
        "attempts": attempts,
        "solved_at": solved,
        "stop_reason": reason,
    }


def test_metrics_for_hand_made_runs():
    runs = {
        1: [_trace("a", 1, [True]), _trace("b", 1, [False]), _trace("c", 1, [False]), _trace("d", 1, [False])],
        2: [
            _trace("a", 2, [True]),
            _trace("b", 2, [False, True]),
            _trace("c", 2, [False, False]),
            _trace("d", 2, [False, False]),
        ],
    }
    out = M.metrics_for("multi_attempt_s3", {k: M.traces_from(traces) for k, traces in runs.items()})
    assert (out["model"], out["variant"], out["seed"]) == ("multi_attempt_s3", "multi_attempt", 3)
    assert out["benchmark"] == "synthetic"
    assert out["by_k"]["1"]["accuracy"] == 0.25 and out["by_k"]["2"]["accuracy"] == 0.5
    assert out["by_k"]["2"]["retry"]["overall"]["wrong_to_right_rate"] == 1 / 3
    assert out["gain_over_k1"]["2"]["gain"] == 0.25
    lo, hi = out["gain_over_k1"]["2"]["gain_ci95"]
    assert 0.0 <= lo <= 0.25 <= hi <= 1.0  # per-question gains (0, 1, 0, 0): resampled means lie in [0, 1]
    assert M.metrics_for("base", {1: M.traces_from(runs[1])})["seed"] is None


def test_model_names():
    assert M.parse_model("baseline_s12") == ("baseline", 12) and M.parse_model("base") == ("base", None)
    with pytest.raises(DataError, match="model name 'qwen_final'"):
        M.parse_model("qwen_final")
