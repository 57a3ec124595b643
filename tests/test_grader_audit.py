r"""The grader audit: the second grader (`pipeline.grading.second`) and the audit over traces (`pipeline.audit`).

1. `second_equal` on hand-made pairs, right and wrong, for each form its docstring lists.
2. Agreement with the primary grader (`pipeline.grading.Grader`, Math-Verify) on the shared benchmarks' gold
   answers (each gold against spellings of itself and against another question's gold) and on the generated
   spelling pairs of `tests/answer_spellings.py`; the rates are printed (``pytest -s``) and held above floors
   measured on this code.  The graders are meant to differ somewhere: percent signs, tuples against sets, decimal
   tolerance (1e-4 relative here, 6 decimals in Math-Verify), spaced digits.
3. The hostile answers of `tests/hostile.py`: no code runs (the marker file never appears), no exception, and
   the whole batch in bounded time.
4. The audit on hand-made traces: disagreements in both directions, the rows written, the summary's accuracies,
   and bad input named by file:line; the `grader-audit` verb end to end.
"""

from __future__ import annotations

import collections
import json
import random
import subprocess
import sys
import time

import pytest

from pipeline import audit, metrics
from pipeline.__main__ import main
from pipeline.grading import Grader
from pipeline.grading.extract import answer_of
from pipeline.grading.second import second_equal
from pipeline.io import DataError
from tests.answer_spellings import spelling_pairs
from tests.conftest import ROOT
from tests.hostile import hostile_answers

# ------------------------------------------------------------------------------------------ hand-made pairs

RIGHT = [
    ("42", "42"),
    ("0042", "42"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("-7", "-7"),
    ("+5", "5"),
    ("0.5", "0.50"),
    (".5", "0.5"),
    ("5.0", "5"),
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac{3}{4}", "3/4"),
    (r"\frac34", r"\tfrac{3}{4}"),
    (r"\frac{2}{4}", r"\frac{1}{2}"),
    (r"-\frac{1}{2}", r"\frac{-1}{2}"),
    ("0.3333", r"\frac{1}{3}"),  # within 1e-4 relative, Qwen2.5-Math's tolerance
    ("1.24e-8", r"1.24 \times 10^{-8}"),
    ("4.46e19", r"4.46\times10^{19}"),
    ("$5$", "5"),
    (r"\(5\)", "5"),
    (r"\$5", "5"),
    (r"5\text{ cm}", "5"),
    (r"12\mbox{ m}^2", "12"),
    (r"30^\circ", "30"),
    (r"30^{\circ}", "30"),
    (r"50\%", "50"),
    (r"50\%", "0.5"),
    ("7.", "7"),
    (r"\left( 1, 2 \right)", "(1,2)"),
    ("[1, 2)", r"\left[1,2\right)"),
    (r"(-\infty, 3]", r"(-\infty,3]"),
    (r"\{3, 1, 2\}", r"\{1,2,3\}"),
    ("2, 1", "1,2"),
    (r"1 \text{ and } 2", "1, 2"),
    ("(1, 2), (3, 4)", "(3,4),(1,2)"),  # a list of tuples: any order of the tuples
    ("x = 3", "3"),
    ("3", "y=3"),
    (r"f(x) = x^{2}", "x^2"),
    (r"x \in [0, 1]", "[0,1]"),
    ("x=1, y=2", "1, 2"),
    (r"\sqrt2", r"\sqrt{2}"),
    (r"2\sqrt{3}", r"2 \sqrt{3}"),
    (r"\frac{\sqrt{3}}{3}", r"\dfrac{\sqrt{3}}{3}"),
    (r"\pi r^{2}", r"\pi r^2"),
    ("2π", r"2\pi"),
    (r"\text{(C)}", "C"),
    ("(C)", r"\textbf{C}"),
    (r"\text{Yes}", "yes"),
    ("(5)", "5"),
    (r"\displaystyle \frac{1}{2}", "1/2"),
    ("1\\,000", "1000"),
]

WRONG = [
    ("41", "42"),
    ("", "0"),
    (None, "0"),
    ("   ", "0"),
    ("4200", "42"),
    ("0.33", r"\frac{1}{3}"),  # 1% off
    (r"\frac{1}{2}", r"\frac{1}{3}"),
    ("100001", "100000"),  # two exact values must be equal: no tolerance
    ("1.24e-8", "1.24e-9"),
    ("1e99999", "1"),  # too large a power of ten: not read as a number
    ("0.5", "50"),  # without a percent sign, 0.5 is not 50
    (r"50\%", r"0.5\%"),  # with one on each side neither is divided
    ("3, 100", "3100"),  # a comma and a space: a list, not a number
    ("(2, 1)", "(1, 2)"),  # tuples keep their order
    ("[1, 2)", "(1, 2)"),  # intervals keep their brackets
    (r"\{1, 2\}", "(1, 2)"),  # a set is no tuple
    ("2, 1", "(1, 2)"),  # a bare list against a tuple: in order
    ("1, 2", "1, 2, 3"),
    ("1, 1, 2", "1, 2, 2"),  # multisets
    (r"\sqrt{2}", r"\sqrt{3}"),
    (r"x\frac{-1}{2}", r"x-\frac{1}{2}"),  # a product, not a difference
    (r"\sqrt{2}", "1.41421356"),  # no algebra: a root is a string
    ("2x", "x+x"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    ("C", "D"),
    ("x = 3", "x = 4"),
    ("5" * 2001, "5" * 2001),  # longer than MAX_ANSWER_CHARS
    ("5", "5" * 2001),
]


@pytest.mark.parametrize("answer, gold", RIGHT)
def test_second_grader_accepts(answer, gold):
    assert second_equal(answer, gold)
    assert second_equal(gold, answer)  # symmetric on these


@pytest.mark.parametrize("answer, gold", WRONG)
def test_second_grader_rejects(answer, gold):
    assert not second_equal(answer, gold)


def test_second_grader_imports_neither_math_verify_nor_sympy():
    """Independent of the primary grader: importing it (and grading) loads neither package."""
    code = (
        "import sys; from pipeline.grading.second import second_equal; second_equal('1/2', '0.5');"
        "print(sorted(m for m in ('sympy', 'math_verify', 'latex2sympy2_extended') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------- agreement with the primary

# Floors: measured on this code (see the printout), less a margin for a Math-Verify upgrade, not wished for.
BENCHMARK_FLOOR = 0.97  # measured 0.999 (1,150 pairs: Minerva's "E_{1}, E_{2}" is the one)
# measured 0.851 (350 pairs; 0.846 on 700); they differ on percents, decimals within 1e-4, spaced digits, tuple/set
SPELLING_FLOOR = 0.80
GOLDS_PER_BENCHMARK = 40
N_SPELLINGS = 350  # 50 per family


def _spellings_of(gold: str) -> list[str]:
    """The gold as a model might box it: as written, in $...$, with \\dfrac, with spaces after commas."""
    return [gold, f"${gold}$", gold.replace("\\frac", "\\dfrac"), gold.replace(",", ", ")]


@pytest.fixture(scope="module")
def primary():
    """The headline grader, its workers started once for the agreement tests."""
    with Grader(workers=2, timeout_s=5.0, multi_box="last") as grader:
        yield grader


def _agreement(primary: Grader, pairs: list[tuple[str, str, str]]) -> tuple[dict[str, tuple[int, int]], list]:
    """Per group (agreeing, total), and the disagreements, of the primary grader and the second one."""
    grades = primary.grade([f"\\boxed{{{a}}}" for _, a, _ in pairs], [g for *_, g in pairs])
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    differ = []
    for (group, answer, gold), grade in zip(pairs, grades):
        second = second_equal(answer, gold)
        counts[group][0] += second == grade.correct
        counts[group][1] += 1
        if second != grade.correct:
            differ.append((group, answer, gold, grade.correct, second))
    return {g: (a, n) for g, (a, n) in counts.items()}, differ


def _report(title: str, counts: dict[str, tuple[int, int]], differ: list[tuple]) -> float:
    agree, total = sum(a for a, _ in counts.values()), sum(n for _, n in counts.values())
    print(f"\n{title}: {agree}/{total} = {agree / total:.3f} agree")
    for group, (a, n) in sorted(counts.items()):
        print(f"  {group:28s} {a}/{n}")
    for d in differ[:15]:
        print("  differ:", d)
    return agree / total


def test_agreement_on_the_shared_benchmarks_gold_answers(benchmarks_dir, primary):
    """Each sampled gold against its spellings (the primary accepts them) and against another question's gold."""
    from pipeline import data

    rng = random.Random(0)
    pairs = []
    for name in data.BENCHMARKS:
        path = benchmarks_dir / name / "test.jsonl"
        if not path.is_file():
            continue
        golds = [r["answer"] for r in data.load_benchmark(name, path, "test")]
        distinct = sorted(set(golds))
        for gold in rng.sample(golds, min(GOLDS_PER_BENCHMARK, len(golds))):
            pairs += [(f"{name} spelling", s, gold) for s in _spellings_of(gold)]
            pairs.append((f"{name} other gold", rng.choice([g for g in distinct if g != gold]), gold))
    counts, differ = _agreement(primary, pairs)
    assert _report("benchmark golds", counts, differ) >= BENCHMARK_FLOOR
    for name, (agree, total) in counts.items():
        if name.endswith("other gold"):
            assert agree == total, name  # both graders reject another question's answer


def test_agreement_on_generated_spellings(primary):
    pairs = [(p.family, p.answer, p.gold) for p in spelling_pairs(N_SPELLINGS, seed=0)]
    counts, differ = _agreement(primary, pairs)
    assert _report("answer_spellings pairs", counts, differ) >= SPELLING_FLOOR


# ---------------------------------------------------------------------------------------------- hostile

N_HOSTILE = 2000
HOSTILE_BATCH_S = 60.0  # the whole batch, loosely (measured: 0.3 s)
HOSTILE_CALL_S = 2.0  # one call, loosely (2,000-character cap; measured: 8 ms the slowest)


def test_hostile_answers_run_no_code_and_finish(tmp_path):
    """Hostile responses (injections, towers, megabyte strings, deep nesting): the extracted answer and the raw
    text both go through `second_equal`; nothing raises, the marker never appears, the batch ends quickly."""
    marker = tmp_path / "pwned"
    pairs = hostile_answers(N_HOSTILE, marker, seed=0)
    answers = [answer_of(response, "last") for response, _ in pairs]  # the project's extractor, as the audit reads
    elapsed = slowest = 0.0
    verdicts = collections.Counter()
    for answer, (response, gold) in zip(answers, pairs):
        for text in (answer, response):
            t = time.perf_counter()
            verdicts[second_equal(text, gold)] += 1
            took = time.perf_counter() - t
            elapsed, slowest = elapsed + took, max(slowest, took)
    print(f"\n{len(pairs)} hostile pairs: {elapsed:.2f} s, slowest {slowest * 1000:.1f} ms, verdicts {dict(verdicts)}")
    assert not marker.exists() and list(tmp_path.iterdir()) == []
    assert elapsed < HOSTILE_BATCH_S and slowest < HOSTILE_CALL_S
    assert sum(verdicts.values()) == 2 * len(pairs)


# ------------------------------------------------------------------------------------------------ audit


def _record(qid: str, gold: str) -> dict:
    return {"id": qid, "question": f"question {qid}", "answer": gold, "source": "test", "meta": {}}


def _trace(qid: str, k: int, attempts: list[tuple[str | None, bool]], benchmark: str = "toy") -> dict:
    solved = len(attempts) if attempts[-1][1] else None
    return {
        "id": qid,
        "benchmark": benchmark,
        "N": k,
        "attempts": [{"text": f"\\boxed{{{a}}}", "answer": a, "correct": c} for a, c in attempts],
        "solved_at": solved,
        "stop_reason": "correct" if solved else "attempts_exhausted",
    }


RECORDS = [_record("a", "1/2"), _record("b", "7"), _record("c", r"\{1,2\}"), _record("d", "3")]
K1 = [
    _trace("a", 1, [("0.5", True)]),  # both accept
    _trace("b", 1, [("7.0001", False)]),  # only the second accepts (a decimal within 1e-4)
    _trace("c", 1, [("(1,2)", True)]),  # only the primary accepts (a tuple for a set)
    _trace("d", 1, [("4", False)]),  # both reject
]
K2 = [
    _trace("a", 2, [("0.5", True)]),
    _trace("b", 2, [("8", False), ("7", True)]),
    _trace("c", 2, [("(1,2)", True)]),  # ended early by the primary: unsolved under the second
    _trace("d", 2, [(None, False), ("3", True)]),
]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_audit_counts_disagreements_in_both_directions():
    rows, summary = audit.audit("base", RECORDS, [metrics.traces_from(K1), metrics.traces_from(K2)])
    assert summary["headline_grader"] == "math_verify" and summary["eval_set"] == "toy"
    k1, k2 = summary["by_k"]["1"], summary["by_k"]["2"]
    assert k1 == {
        "n_questions": 4,
        "accuracy_primary": 0.5,
        "accuracy_second": 0.5,  # a and b
        "n_attempts": 4,
        "n_disagreements": 2,
        "primary_only": 1,
        "second_only": 1,
    }
    assert (k2["accuracy_primary"], k2["accuracy_second"]) == (1.0, 0.75)  # all four / a, b, d
    assert (k2["n_attempts"], k2["n_disagreements"], k2["primary_only"], k2["second_only"]) == (6, 1, 1, 0)
    assert summary["total"] == {"n_attempts": 10, "n_disagreements": 3, "primary_only": 2, "second_only": 1}
    assert [(r["k"], r["id"], r["attempt"], r["primary_correct"], r["second_correct"]) for r in rows] == [
        (1, "b", 1, False, True),
        (1, "c", 1, True, False),
        (2, "c", 1, True, False),
    ]
    assert rows[0] == {
        "model": "base",
        "eval_set": "toy",
        "k": 1,
        "id": "b",
        "attempt": 1,
        "question": "question b",
        "answer": "7.0001",
        "gold": "7",
        "primary_correct": False,
        "second_correct": True,
    }


def test_audit_rejects_inconsistent_runs():
    with pytest.raises(DataError, match="k=1"):
        audit.audit("base", RECORDS, [metrics.traces_from(K1), metrics.traces_from(K1)])
    with pytest.raises(DataError, match="no question with this id"):
        audit.audit("base", RECORDS[1:], [metrics.traces_from(K1)])
    other = [_trace("a", 2, [("0.5", True)], benchmark="other")]
    with pytest.raises(DataError, match="'other'"):
        audit.audit("base", RECORDS, [metrics.traces_from(K1), metrics.traces_from(other)])


def test_grader_audit_verb_writes_rows_and_summary(tmp_path):
    data = _write(tmp_path / "toy.jsonl", RECORDS)
    k1, k2 = _write(tmp_path / "k1.jsonl", K1), _write(tmp_path / "k2.jsonl", K2)
    out_jsonl, out_json = tmp_path / "out" / "grader_audit.jsonl", tmp_path / "out" / "grader_audit.json"
    argv = ["grader-audit", "--data", str(data), "--traces", str(k1), str(k2), "--model", "base"]
    assert main([*argv, "--out-jsonl", str(out_jsonl), "--out-json", str(out_json)]) == 0
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert [(r["k"], r["id"]) for r in lines] == [(1, "b"), (1, "c"), (2, "c")]
    summary = json.loads(out_json.read_text())
    assert summary["by_k"]["2"]["accuracy_second"] == 0.75 and summary["total"]["n_disagreements"] == 3


def test_grader_audit_verb_names_the_bad_trace_line(tmp_path, capsys):
    data = _write(tmp_path / "toy.jsonl", RECORDS)
    bad = [*K1[:2], {**K1[2], "solved_at": None}]  # contradicts its own attempts
    traces = _write(tmp_path / "k1.jsonl", bad)
    out = tmp_path / "out"
    argv = ["grader-audit", "--data", str(data), "--traces", str(traces), "--model", "base"]
    assert main([*argv, "--out-jsonl", str(out / "a.jsonl"), "--out-json", str(out / "a.json")]) == 2
    assert f"{traces}:3" in capsys.readouterr().err
    assert not out.exists()
