r"""The grader: box extraction, verdicts on real benchmark answers, timeouts, crashes and injection attempts.

Verdict tests go through the real worker processes and the real Math-Verify; nothing is mocked.  The pool
tests use their own small `Grader` with a worker function defined here (workers import it by reference).
"""

from __future__ import annotations

import ast
import doctest
import inspect
import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from pipeline import config, grading
from pipeline.grading import Grader, extract, fast
from pipeline.grading.extract import extract_answer, first_box_end, is_formatted
from pipeline.grading.math_verify import _differ_at_a_point, math_verify_equal, warm_up
from tests.hostile import best_times, hostile_cases

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = config.resolve({}).grading
GRADER = Grader.from_config(SETTINGS)  # the configuration's defaults: the last box, as the released code grades
ALL_BOXES = Grader(SETTINGS.workers, SETTINGS.timeout_s, "all")

# ---------------------------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{1} then \boxed{2}", "2"),  # the last box
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # nested braces
        (r"\boxed{ 7 }", "7"),  # stripped
        (r"\fbox{5}", "5"),
        (r"\boxed {3}", "3"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces do not count
        (r"\boxed{a \\ b}", r"a \\ b"),  # a LaTeX line break is not an escaped brace
        (r"\boxed{}", ""),
        (r"\boxed{3", None),  # unclosed
        (r"\boxed{1} and \boxed{2", "1"),  # the unclosed last one is skipped
        ("the answer is 3", None),
        (r"\boxed{\boxed{7}}", "7"),
        ("", None),
        # the bare form of hendrycks MATH: one token, up to whitespace, `$` or the end of the text
        (r"so $\boxed 5$.", "5"),
        (r"\boxed 5", "5"),
        (r"\fbox 12 apples", "12"),
        (r"\boxed  \frac12$", r"\frac12"),
        (r"\boxed{1} then \boxed 2", "2"),
        (r"\boxed 1 then \boxed{2}", "2"),
        (r"\boxed $5$", None),  # a token cannot start with `$`
        (r"\boxed", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_first_box_end_and_is_formatted():
    text = r"try \boxed{1} and \boxed{2}"
    assert first_box_end(text) == text.index("}") + 1
    assert first_box_end(r"\boxed{\frac{1}{2}} more") == len(r"\boxed{\frac{1}{2}}")
    assert first_box_end(r"\boxed{1") is None
    assert first_box_end(r"put it in \boxed{} \boxed{ } then \boxed{3}") == len(
        r"put it in \boxed{} \boxed{ } then \boxed{3}"
    )
    assert not is_formatted(r"\boxed{}") and not is_formatted(r"\boxed{ }")
    assert is_formatted(r"\boxed{x}") and not is_formatted(r"\boxed{x") and not is_formatted("x")


@pytest.mark.parametrize(
    "text, end_of_first",
    [
        (r"so \boxed{\frac{1}{2}} and then \boxed{3}", r"so \boxed{\frac{1}{2}}"),
        (r"so \boxed 42 and then \boxed{3}", r"so \boxed 42"),
        (r"so $\boxed 42$ and then", r"so $\boxed 42"),
        (r"\boxed{} \boxed 7", None),  # the bare box at the very end has no terminator yet
        (r"\boxed{} \boxed 7 ", r"\boxed{} \boxed 7"),
    ],
)
def test_first_box_end_does_not_depend_on_where_a_stream_was_cut(text, end_of_first):
    """Called after every streamed chunk: on every prefix it answers None or the full text's answer, and once a
    prefix has an answer every longer one has the same.  A bare box ends only when a terminator follows it."""
    end = first_box_end(text)
    assert end == (None if end_of_first is None else len(end_of_first))
    answers = [first_box_end(text[:cut]) for cut in range(len(text) + 1)]
    assert set(answers) <= {None, end}
    if end is not None:
        first = answers.index(end)
        assert answers[first:] == [end] * (len(text) + 1 - first)
        bare = not text[:end].endswith("}")
        assert first == (end + 1 if bare else end)  # a bare token counts once something follows it


def test_bare_box_is_formatted_and_graded():
    assert is_formatted(r"so \boxed 5") and extract_answer(r"$\boxed 5$") == "5"
    assert GRADER.is_correct(r"so $\boxed 5$.", "5") and not GRADER.is_correct(r"so $\boxed 6$.", "5")


def test_extraction_is_linear_on_adversarial_input():
    """A megabyte of unbalanced braces and box openers is handled (linear scan, no recursion)."""
    nasty = "\\boxed{" * 100_000 + "{" * 300_000 + "}" * 50_000
    assert extract_answer(nasty) is None or isinstance(extract_answer(nasty), str)
    assert extract_answer(nasty + r" \boxed{9}") == "9"
    assert GRADER.grade([nasty], ["9"])[0].correct is False


@pytest.mark.parametrize(
    "response, answer",
    [
        (r"so \boxed{3}. The answer is 4", "3"),  # a box wins
        ("Thus the answer is: 12.", "12"),
        ("the final answer is\n  7/", "7"),
        ("He said the answer is 5 and then the answer is 6.", "6"),  # the last phrase
        ("2 apples and 3,500 pears", "3500"),  # the last number, commas dropped
        ("x = -0.25", "-0.25"),
        ("no digits here", None),
        (r"\boxed{", None),  # an unclosed box is no box, and no number either
    ],
)
def test_released_baseline_fallback_extraction(response, answer):
    """The released baseline's extractor (spec §2): box, else "he answer is" / "final answer is", else the last
    number."""
    assert extract.released_answer(response, "last") == answer
    graded = GRADER.grade([response], [answer or "1"], fallback=True)[0]
    assert graded.answer == answer and graded.correct is (answer is not None)
    assert GRADER.grade([response], [answer or "1"])[0].correct is (answer is not None and "boxed{3}" in response)


def test_released_fallback_on_hostile_answers_runs_no_code_and_never_hangs(tmp_path):
    """The fallback extraction and grading of hostile responses: no payload runs, each extraction is fast, the
    grader answers every pair."""
    marker = tmp_path / "pwned"
    cases = hostile_cases(600, marker, seed=7)
    slowest = 0.0
    for c in cases:
        t = time.perf_counter()
        extract.released_answer(c.response, "last")
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 2.0, f"released_answer took {slowest:.2f} s on one response"
    with Grader(SETTINGS.workers, 2.0, "last") as grader:
        t = time.perf_counter()
        grades = grader.grade([c.response for c in cases], [c.gold for c in cases], fallback=True)
        wall = time.perf_counter() - t
    assert len(grades) == len(cases) and all(isinstance(g.correct, bool) for g in grades)
    assert not marker.exists() and list(tmp_path.iterdir()) == []
    assert wall < 600, f"{len(cases)} hostile pairs took {wall:.0f} s"


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "\\boxed " * n,  # bare openers
        lambda n: "\\boxed" + " " * n + "$",  # one opener, a long run of spaces, no token
        lambda n: "\\boxed " + "x" * n,  # one huge token
        lambda n: "\\boxed{" + "{" * n + "\\boxed 1 " * n,  # bare boxes inside many open braces
    ],
)
def test_bare_box_extraction_is_linear(make):
    """4x the input, well under 16x the time (quadratic would be 16x), for both extractors."""
    times = best_times(lambda text: (extract_answer(text), first_box_end(text)), make, (20_000, 80_000))
    assert times[1] < 8 * times[0] + 0.02, times


@pytest.mark.parametrize(
    "text, boxes",
    [
        (r"\boxed{1} and \boxed{2} and \boxed{3}", ["1", "2", "3"]),
        (r"\boxed{2}, so \boxed{2}", ["2"]),  # consecutive repeats once (as Math-Verify)
        (r"\boxed{1}, \boxed{2}, \boxed{1}", ["1", "2", "1"]),
        (r"\boxed{\boxed{7}} and \boxed 8", ["7", "8"]),  # a box holding a box is not an answer of its own
        (r"\boxed{} \boxed{ } \boxed{3", []),
        ("no box", []),
    ],
)
def test_extract_answers(text, boxes):
    assert extract.extract_answers(text) == boxes


@pytest.mark.parametrize(
    "response, gold, last, all_",
    [
        (r"\boxed{1} and \boxed{2} and \boxed{3}", r"\{1,2,3\}", False, True),  # common in MATH
        (r"\boxed{(1, 2)}, \boxed{(2, 1)}", "(1,2),(2,1)", False, True),
        (r"\boxed{12}, \boxed{345}", "12345", False, False),  # joined as a list, never the number 12,345
        (r"\boxed{3}. Checking: \boxed{3}", "3", True, True),
        (r"first \boxed{5}, then \boxed{6}", "6", True, False),  # all: an earlier box is part of the answer
        (r"\boxed{7}", "7", True, True),  # one box: the same under both rules
    ],
)
def test_multi_box_rules(response, gold, last, all_):
    """grading.multi_box: `last` grades the last box (the released code), `all` every box as one list."""
    assert GRADER.is_correct(response, gold) is last  # the default is last
    assert ALL_BOXES.is_correct(response, gold) is all_


def test_the_environment_grades_with_its_graders_rule():
    """The environment grades with the grader it is given (every verb builds it from cfg.grading)."""
    from pipeline.env import MultiAttemptEnv

    cfg = config.resolve({})
    response, gold = r"\boxed{1} and \boxed{2}", r"\{1, 2\}"
    rewards = {}
    for rule, grader in (("all", ALL_BOXES), ("last", GRADER)):
        env = MultiAttemptEnv(cfg.env, cfg.attempt_range("multi_attempt"), grader)
        d = env.reset("q", "roots?", gold, n_allowed=1)
        env.step([d], [response], [5], [False])
        rewards[rule] = (d.reward, d.attempts[0].answer)
    assert rewards == {"all": (1.0, "1, 2"), "last": (-0.5, "2")}
    with pytest.raises(ValueError, match="multi_box"):
        Grader(2, 5.0, "first")


def test_every_pipeline_verb_builds_its_grader_from_the_configuration():
    """The verbs that grade build their `Grader` from cfg.grading (its workers, timeout and multi-box rule): in
    pipeline/verbs/, and build-base's in sft.build_base."""
    sources = [*sorted((ROOT / "pipeline" / "verbs").glob("*.py")), ROOT / "pipeline" / "sft.py"]
    calls = [
        node
        for path in sources
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "Grader.from_config"
    ]
    # build_base, evaluate, train, eval_metrics (repeats judged by the grader), parallel_eval, flip_probe
    assert len(calls) == 6
    assert all(ast.unparse(call.args[0]) == "cfg.grading" for call in calls)


# ------------------------------------------------------------------------------------------------ verdicts

EQUIVALENT = [
    (r"\boxed{\dfrac{1}{2}}", "0.5"),
    (r"\boxed{\frac{\sqrt{3}}{3}}", r"\frac{1}{\sqrt{3}}"),
    (r"\boxed{x+1}", "1+x"),
    (r"\boxed{(1,2)}", "(1, 2)"),
    (r"\boxed{[2,5)\cup(5,\infty)}", r"[2,5) \cup (5,\infty)"),
    (r"\boxed{\{3,1,2\}}", r"\{1,2,3\}"),
    (r"\boxed{x=2}", "2"),
    (r"\boxed{50\%}", "50"),
    (r"\boxed{30^\circ}", "30"),
    (r"\boxed{1,000}", "1000"),
    (r"\boxed{10,\!080}", "10080"),
    (r"\boxed{\$18.90}", "18.90"),
    (r"\boxed{18+0.9}", r"\$18.90"),  # a gold with an escaped dollar sign reaches Math-Verify boxed
    (r"\boxed{20 \%}", "20"),  # Math-Verify parses nothing in a box with \% after a number: the number is graded
    (r"\boxed{\text{(C)}}", "C"),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}"),
    (r"\boxed{\pi/2}", r"\frac{\pi}{2}"),
    (r"\boxed{-5i+6}", "6-5i"),
    (r"\boxed{0.7500}", r"\frac34"),
    (r"The area is \boxed{12\text{ cm}^2}.", "12"),
    (r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
]

NOT_EQUIVALENT = [
    (r"\boxed{x^2}", "2x"),
    (r"\boxed{3}", "4"),
    (r"\boxed{(1,2)}", "(2,1)"),
    (r"\boxed{0.333}", r"\frac13"),
    (r"\boxed{y}", "x"),
    (r"\boxed{-2}", "2"),
    (r"\boxed{\sqrt{2}}", "2"),
    ("18", "18"),  # no box: wrong whatever it says
    (r"\boxed{18", "18"),  # unclosed box
    (r"\boxed{}", "0"),
]


@pytest.mark.parametrize("response, gold", EQUIVALENT)
def test_equivalent_forms_are_correct(response, gold):
    assert GRADER.is_correct(response, gold)


@pytest.mark.parametrize("response, gold", NOT_EQUIVALENT)
def test_different_answers_are_wrong(response, gold):
    assert not GRADER.is_correct(response, gold)


def test_grade_reports_answer_and_route():
    grades = GRADER.grade([r"\boxed{18}", r"\boxed{x+x}", "18"], ["18", "2x", "18"])
    assert [(g.correct, g.answer, g.via) for g in grades] == [
        (True, "18", "fast"),
        (True, "x+x", "math_verify"),
        (False, None, "no_box"),
    ]
    with pytest.raises(ValueError, match="2 responses but 1 golds"):
        GRADER.grade(["a", "b"], ["a"])


def test_public_signatures_are_stable():
    assert list(inspect.signature(extract_answer).parameters) == ["text"]
    assert list(inspect.signature(Grader.is_correct).parameters) == ["self", "response", "gold"]
    assert list(inspect.signature(Grader.grade).parameters) == ["self", "responses", "golds", "fallback"]
    assert list(inspect.signature(Grader).parameters)[:3] == ["workers", "timeout_s", "multi_box"]


def test_grading_works_from_a_worker_thread():
    """Math-Verify's own signal.alarm timeouts only work in the main thread; ours must work anywhere."""
    out = []
    t = threading.Thread(target=lambda: out.append(GRADER.is_correct(r"\boxed{\frac{2}{4}+x}", "x+1/2")))
    t.start()
    t.join(timeout=120)
    assert out == [True]


def test_doctests_hold():
    for module in (grading, extract, fast, grading.math_verify, grading.pool):
        assert doctest.testmod(module).failed == 0, module.__name__


# -------------------------------------------------------------------------------- real benchmark answers


def _gold_answers(benchmarks_dir: Path) -> dict[str, list[tuple[str, str | None]]]:
    """(gold, reference solution or None) per benchmark; golds read with the project's own loader."""
    from pipeline import data

    out = {}
    for name in data.BENCHMARKS:
        path = benchmarks_dir / name / "test.jsonl"
        if path.is_file():
            records = data.load_benchmark(name, path, "test")
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            out[name] = [
                (r["answer"], row.get("solution") if name in ("math500", "minerva_math") else None)
                for r, row in zip(records, rows, strict=True)
            ]
    return out


def test_real_benchmark_answers(benchmarks_dir):
    """Per benchmark, a seeded sample: the gold in a box is right, another record's answer is wrong, and the
    reference solution (MATH500, Minerva) grades right against its own gold."""
    rng = random.Random(0)
    responses, golds, expected, where = [], [], [], []
    for name, answers in _gold_answers(benchmarks_dir).items():
        distinct = sorted({a for a, _ in answers})
        for gold, solution in rng.sample(answers, min(40, len(answers))):
            other = rng.choice([a for a in distinct if a != gold])
            cases = [(f"So the answer is \\boxed{{{gold}}}.", True), (f"So the answer is \\boxed{{{other}}}.", False)]
            if solution and extract_answer(solution) is not None:
                cases.append((solution, True))
            for response, verdict in cases:
                responses.append(response), golds.append(gold), expected.append(verdict), where.append(name)
    grades = GRADER.grade(responses, golds)
    wrong = [(w, g.answer, gold, e) for w, g, gold, e in zip(where, grades, golds, expected) if g.correct != e]
    assert not wrong, f"{len(wrong)} of {len(grades)} verdicts differ from the expected: {wrong[:5]}"
    assert not any(g.timed_out for g in grades)
    assert {g.via for g in grades} >= {"fast", "math_verify"}  # both routes exercised


# ------------------------------------------------------------------------------------------ hostile input

INJECTIONS = [
    "__import__('os').system('touch {marker}')",
    "eval(\"open('{marker}', 'w')\")",
    "exec(\"open('{marker}', 'w').close()\")",
    "().__class__.__base__.__subclasses__()",
    "Lambda(x, __import__('os').system('touch {marker}'))",
    "\\text{__import__('os').system('touch {marker}')}",
    "\\operatorname{__import__}('os').system('touch {marker}')",
    "open('{marker}', 'w')",
    "1; import os; os.system('touch {marker}')",
]


def test_injection_attempts_do_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    texts = [i.replace("{marker}", str(marker)) for i in INJECTIONS]
    grades = GRADER.grade([f"\\boxed{{{t}}}" for t in texts], ["1"] * len(texts))
    assert not marker.exists()
    assert not any(g.correct for g in grades)
    # and as the gold side, in case a dataset is hostile
    grades = GRADER.grade([r"\boxed{1}"] * len(texts), texts)
    assert not marker.exists() and not any(g.correct for g in grades)


def test_only_numeric_literals_ever_reach_sympy_eval(monkeypatch, tmp_path, benchmarks_dir):
    """Math-Verify's LaTeX path reaches sympy's `eval_expr` only through `sympy.Number(text)` on a NUMBER token.

    Spy on that function in-process while parsing injection strings and real answers: every code string it
    receives must be a numeric literal wrapped as Integer/Float.
    """
    import re

    import sympy.parsing.sympy_parser as sympy_parser

    warm_up()  # imports (sympy.physics.units sympifies its own constant names once) happen before the spy
    seen: list[str] = []
    real_eval_expr = sympy_parser.eval_expr

    def spy(code, local_dict, global_dict):
        seen.append(code)
        return real_eval_expr(code, local_dict, global_dict)

    monkeypatch.setattr(sympy_parser, "eval_expr", spy)
    marker = tmp_path / "pwned"
    answers = [i.replace("{marker}", str(marker)) for i in INJECTIONS]
    rng = random.Random(1)
    for pairs in _gold_answers(benchmarks_dir).values():
        answers += [gold for gold, _ in rng.sample(pairs, min(30, len(pairs)))]
    answers += ["1,234", "3.25", r"10,\!080", "-1,000.5"]
    for answer in answers:
        math_verify_equal(answer, "1")
    literal = re.compile(r"^-?(Integer|Float) \('?[0-9.]+'? \)$")
    assert not marker.exists()
    assert all(literal.match(code) for code in seen), [c for c in seen if not literal.match(c)][:5]


def test_no_eval_in_project_code():
    """No module of the package calls eval/exec/sympify/parse_expr (model output must never reach them)."""
    banned_names = {"eval", "exec", "sympify", "parse_expr", "S"}  # builtins or `from sympy import ...`
    banned_attrs = {"sympify", "parse_expr"}  # sympy.sympify(...); `model.eval()` (torch) is fine
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                bad = (isinstance(f, ast.Name) and f.id in banned_names) or (
                    isinstance(f, ast.Attribute) and f.attr in banned_attrs
                )
                assert not bad, f"{path.relative_to(ROOT)}:{node.lineno} calls {ast.unparse(f)}"


@pytest.mark.parametrize(
    "bomb",
    [
        r"9^{9^{9^{9}}}",
        r"(10^{10})!",
        r"2^{10^{7}}",
        r"10^{10^{10}} + 1",
        # found by tests/test_hostile_output.py: before the guards covered them, these ran into the worker timeout
        r"{10}^{{10}^{10}}",
        r"{10^{7}}!",
        r"(10^{7}+1)!",
        r"\binom{10^9}{5*10^8}",
        r"{10^{9} \choose 5 \cdot 10^{8}}",
        r"\Gamma(10^{8})",
        r"\binom{1000000}{500000}",
        "{" * 14 + "1" + "}" * 14,  # ~13 s in the LaTeX parser: exponential in the nesting depth
        "(" * 32 + "1" + ")" * 32,
        r"\{" * 16 + "1" + r"\}" * 16,
        "|" * 40 + "1" + "|" * 40,
    ],
)
def test_huge_numbers_are_refused_before_sympy(bomb):
    grade = GRADER.grade([f"\\boxed{{{bomb}}}"], ["1"])[0]
    assert (grade.correct, grade.via) == (False, "guard")


def test_hostile_gold_is_refused_too():
    """A bomb in the gold (a poisoned data set) is refused like one in the answer, unless spelled identically."""
    tower, deep = r"9^{9^{9^{9}}}", "{" * 14 + "x" + "}" * 14
    grades = GRADER.grade([r"\boxed{5}", r"\boxed{x}", f"\\boxed{{{tower}}}"], [tower, deep, tower])
    assert [(g.correct, g.via) for g in grades] == [(False, "guard"), (False, "guard"), (True, "fast")]


@pytest.mark.parametrize(
    "answer",
    [
        r"\frac{1}{1+\frac{1}{1+\frac{1}{2}}}",
        r"\binom{10}{3}",
        r"\Gamma(5)",
        r"x_{10}^{10}",
        "|x|+|y|",
        r"(n+1)!",
        r"\left(\frac{t^{2}}{2}-t+C\right) e^{-t}",
        r"2^{2^{4}}",
        r"\sqrt{2+\sqrt{2+\sqrt{2}}}",
        r"\binom{10000}{2}",
    ],
)
def test_guards_pass_ordinary_answers(answer):
    assert fast.size_guard(answer) is None


def test_nesting_bound_is_the_documented_trade_off():
    """MAX_NESTING refuses a 9-deep continued fraction though Math-Verify would parse it fast (see its comment)."""

    def continued_fraction(depth):
        return "2" if depth == 0 else r"\frac{1}{1+" + continued_fraction(depth - 1) + "}"

    assert fast.size_guard(continued_fraction(fast.MAX_NESTING)) is None
    assert fast.size_guard(continued_fraction(fast.MAX_NESTING + 1)) == "brackets nested 9 deep"


def test_guards_pass_every_benchmark_gold(benchmarks_dir):
    golds = [gold for answers in _gold_answers(benchmarks_dir).values() for gold, _ in answers]
    assert [(g, fast.size_guard(g)) for g in golds if fast.size_guard(g)] == []


def test_megabyte_gold_is_linear_in_the_calling_process():
    """Stripping $...$ from a gold used to slice in a loop (quadratic: seconds for a megabyte of "$", spent in the
    calling process where no timeout applies). 4x the gold, well under 16x the time: a ratio within one process,
    which a loaded machine does not break as it broke a 2-second bound."""
    assert fast.cheap_verdict("5", "$" * 2_000_000) is None  # an empty gold: Math-Verify (here the guard) decides
    assert fast.cheap_verdict("5", "$ " * 1_000_000 + "5" + " $" * 1_000_000) is True
    for make in (lambda n: "$" * n, lambda n: "$ " * n + "5" + " $" * n):
        times = best_times(lambda gold: fast.cheap_verdict("5", gold), make, (250_000, 1_000_000))
        assert times[1] < 8 * times[0] + 0.02, times
    grade = GRADER.grade([r"\boxed{5}"], ["$" * 1_000_000])[0]
    assert (grade.correct, grade.via) == (False, "guard")


def test_overlong_answer_is_wrong():
    assert not GRADER.is_correct("\\boxed{" + "1+" * 5000 + "1}", "5001")


# ------------------------------------------------------------------------- found by review (issue 21)


@pytest.mark.parametrize(
    "response, gold, expected",
    [
        (r"\boxed{2^{1024}}", "2^{2^{10}}", True),
        (r"\boxed{100^{200}}", "10^{400}", True),
        (r"\boxed{2^{1025}}", "2^{2^{10}}", False),
        (r"\boxed{-2^{1024}}", "2^{2^{10}}", False),
    ],
)
def test_values_beyond_float_range_are_graded_not_crashed(response, gold, expected):
    """Both sides past float range made `_differ_at_a_point` raise OverflowError outside its try: the worker
    counted the right answer wrong.  Now the pre-check stands aside and Math-Verify decides."""
    grade = GRADER.grade([response], [gold])[0]
    assert (grade.correct, grade.via) == (expected, "math_verify")


def test_differ_at_a_point_never_raises_past_float_range():
    from math_verify import parse

    big, other = parse("$2^{1024}$")[0], parse("$2^{2^{10}}$")[0]
    assert _differ_at_a_point(big, other) is False  # equal values: nothing to rule out
    assert _differ_at_a_point(parse("$10^{400}$")[0], parse("$2^{1024}$")[0]) is True
    assert _differ_at_a_point(parse("$10^{400}$")[0], parse("$10^{400} + 1$")[0]) is False  # 1e-400 relative


@pytest.mark.parametrize(
    "answer, gold, math_verify",
    [
        ("3, 100", "3100", False),  # Math-Verify: the set {3, 100}
        ("12, 345", "12345", False),
        ("12 , 345", "12345", False),
        ("3,\\ 100", "3100", False),
        ("1 000", "1000", False),  # Math-Verify: 1*000 = 0
        ("1\\,000", "1000", False),
        ("+1,500", "1500", False),  # Math-Verify: the set {1, 500}
        ("0,111", "0.111", True),  # a decimal comma, as Math-Verify reads it
        ("01,234", "1.234", True),
        ("0,111", "111", False),
        ("3,100", "3100", True),
        ("10,\\!080", "10080", True),
        ("3, 100", "3, 100", True),
    ],
)
def test_fast_path_reads_commas_and_spaces_as_math_verify_does(answer, gold, math_verify):
    """The fast path deleted whitespace before applying its thousands rule, so the list `3, 100` was the number
    3100 (a wrong answer rewarded) and `0,111` was 111.  It may only agree with Math-Verify or pass the pair on."""
    assert fast.cheap_verdict(answer, gold) in (math_verify, None)
    assert GRADER.is_correct(f"\\boxed{{{answer}}}", gold) is math_verify


# ------------------------------------------------------------------------------------ timeouts and crashes


def _sleepy(answer: str, gold: str) -> bool:
    """Worker function for the pool tests: "nap S" sleeps S seconds, "die" kills the worker, "pid" is right when
    the gold is the worker's pid, anything else is right when the gold is "yes".  (Answer and gold always differ
    as strings, so the in-process fast path passes every pair on to the workers.)"""
    if answer.startswith("nap "):
        time.sleep(float(answer[4:]))
    if answer == "die":
        os._exit(3)
    if answer == "pid":
        return gold == str(os.getpid())
    return gold == "yes"


def test_hung_worker_is_killed_and_replaced():
    with Grader(workers=1, timeout_s=1.0, multi_box="last", worker_fn=_sleepy) as grader:
        t0 = time.monotonic()
        grades = grader.grade([r"\boxed{nap 60}", r"\boxed{ok}", r"\boxed{nap 60}"], ["yes", "yes", "no"])
        elapsed = time.monotonic() - t0
        assert [(g.correct, g.timed_out, g.via) for g in grades] == [
            (False, True, "timeout"),
            (True, False, "math_verify"),
            (False, True, "timeout"),
        ]
        assert elapsed < 30  # two kills, not two minute-long sleeps
        assert all(g.elapsed_s >= 1.0 for g in (grades[0], grades[2]))
        # the pool is healthy afterwards, with a fresh process
        assert grader.is_correct(r"\boxed{fine}", "yes")


def test_timeout_kills_the_process():
    with Grader(workers=1, timeout_s=1.0, multi_box="last", worker_fn=_sleepy) as grader:
        grader.grade([r"\boxed{warm}"], ["yes"])
        old_pid = grader.pool._workers[0].process.pid
        grader.grade([r"\boxed{nap 60}"], ["yes"])
        new_pid = grader.pool._workers[0].process.pid
        assert new_pid != old_pid
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)  # reaped, not a zombie
        assert grader.is_correct(r"\boxed{pid}", str(new_pid))


def test_crashing_worker_counts_as_wrong_and_is_replaced():
    with Grader(workers=2, timeout_s=30.0, multi_box="last", worker_fn=_sleepy) as grader:
        grades = grader.grade([r"\boxed{die}", r"\boxed{ok}"], ["yes", "yes"])
        assert [(g.correct, g.via) for g in grades] == [(False, "crash"), (True, "math_verify")]
        assert grader.is_correct(r"\boxed{again}", "yes")


def test_submit_decides_in_the_process_at_once_and_waits_for_math_verify_in_the_background():
    """`Grader.submit` (the rollout's): pairs decided without Math-Verify come back as a finished future; pairs
    that need it do not keep the caller waiting, and their future holds what `grade` returns."""
    with Grader(workers=1, timeout_s=30.0, multi_box="last", worker_fn=_sleepy) as grader:
        grader.grade([r"\boxed{warm}"], ["yes"])  # the worker is up
        fast = grader.submit([r"\boxed{3}", "no box"], ["3", "3"])
        assert fast.done() and [(g.correct, g.via) for g in fast.result()] == [(True, "fast"), (False, "no_box")]
        slow = grader.submit([r"\boxed{nap 1}", r"\boxed{3}"], ["yes", "3"])
        assert not slow.done()  # the worker naps for a second; the caller goes on
        assert [(g.correct, g.via) for g in slow.result(timeout=30)] == [(True, "math_verify"), (True, "fast")]
    assert grader._thread is None  # closed with the grader


def test_verdicts_are_cached():
    with Grader(workers=1, timeout_s=30.0, multi_box="last", worker_fn=_sleepy) as grader:
        first = grader.grade([r"\boxed{same}"], ["yes"])[0]
        second = grader.grade([r"\boxed{same}"], ["yes"])[0]
        assert (first.via, second.via) == ("math_verify", "cache") and first.correct and second.correct


def test_top_level_script_without_main_guard_can_grade(tmp_path):
    """Workers are fresh interpreters, so a plain script grading at top level does not re-run."""
    import subprocess
    import sys

    script = tmp_path / "check.py"
    script.write_text(
        "import json\n"
        "from pipeline.grading import Grader\n"
        "grader = Grader(workers=1, timeout_s=30.0, multi_box='last')\n"
        "print(json.dumps([grader.is_correct(r'\\boxed{2x}', 'x+x'), grader.is_correct(r'\\boxed{3}', '4')]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False]


BOX_PIECES = [
    "\\",
    "\\\\",
    "\\\\bo",
    "\\boxed",
    "\\fbox",
    "{",
    "}",
    " ",
    "  ",
    "$",
    "1",
    "42",
    "x",
    "bo",
    "xed",
    "\\{",
    "\\}",
    "ab",
    "\n",
    "\\frac",
    ".",
]


def _first_box_end_of_prefix(text: str) -> int | None:
    """The streaming rule restated on the whole text: the first non-empty box to end, a bare box only once a
    terminator follows its token (a bare box's content stop is its end; a brace box's end is its stop + 1)."""
    for start, stop, end in extract._box_spans(text):
        if not (stop == end == len(text)) and text[start:stop].strip():
            return end
    return None


@pytest.mark.parametrize(
    "pieces",
    [
        ["so \\\\", "boxed{1}"],  # `\\boxed`: the pair is not an escape once `boxed` follows
        ["\\\\bo", "xed{2} "],
        ["\\box", "ed", " ", "{3}"],
        ["\\boxed 4", "5", "$"],  # a bare box's token grows until a terminator comes
        ["\\", "{", "\\boxed{}", " \\fbox{6}"],  # an escaped brace, an empty box (no answer), then a box
    ],
)
def test_box_watch_on_constructs_split_across_pieces(pieces):
    watch, text = extract.BoxWatch(), ""
    for piece in pieces:
        text += piece
        assert watch.feed(piece) == _first_box_end_of_prefix(text), text
    assert watch.end is not None


def test_box_watch_fed_piece_by_piece_equals_first_box_end_on_every_prefix():
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(BOX_PIECES) for _ in range(rng.randrange(1, 14)))
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randrange(0, 6)))) + [len(text)]
        watch, done = extract.BoxWatch(), 0
        for cut in cuts:
            assert watch.feed(text[done:cut]) == _first_box_end_of_prefix(text[:cut]), (text, text[:cut])
            done = cut
        assert first_box_end(text) == _first_box_end_of_prefix(text), text


def test_box_watch_scans_each_character_a_bounded_number_of_times():
    """Fed one character at a time, the scan resumes where it stopped: the work is linear in the text's length,
    counted as the characters between each scan's start and the end of the text."""
    text = ("Let $x = \\frac{1}{2}$ and $\\{a, b\\}$ hold. " * 200) + "\\boxed{7}"
    watch, scanned = extract.BoxWatch(), 0
    for c in text:
        scanned += len(watch.text) + 1 - watch.pos
        end = watch.feed(c)
    assert end == len(text)
    assert scanned < 3 * len(text)  # rescanning from the start at every character would be ~len(text)**2 / 2
