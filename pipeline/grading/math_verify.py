r"""The adapter to the Math-Verify package: its verdict on one (answer, gold) pair, run in the pool's workers.

`math_verify_equal` has no timeout of its own (the pool kills a worker that runs past its deadline), so in-process
use is for trusted inputs only.  `WARMUP_ANSWERS` / `warm_up` prime the parser when a worker starts.

Timeouts: Math-Verify's own timeouts use ``signal.alarm`` (1-second resolution, main thread only, and they cannot
interrupt long C-level big-integer arithmetic).  We switch them off (``parsing_timeout=None``,
``timeout_seconds=None``) and rely on one clock: the pool kills a worker whose item runs past the timeout.

Eval safety (checked in the installed math_verify 0.9.0 / latex2sympy2_extended 1.11.0 source):
    * We only ever use ``LatexExtractionConfig``.  ``ExprExtractionConfig`` is never used: its path
      (``math_verify.parser.extract_expr`` -> ``parse_expr``) runs sympy's ``parse_expr``, i.e. Python ``eval``.
    * The LaTeX path is: regex extraction -> ``normalize_latex`` (regex rewriting) -> ``latex2sympy`` = an ANTLR
      parser whose tree is converted by explicit sympy constructors (``Symbol``, ``Function(name)``,
      ``Rational``, ``Pow(..., evaluate=False)``, ``getattr`` only over fixed lists of trig/hyperbolic names).
      ``latex2sympy`` calls ``parse_expr`` only for ``variable_values`` strings, which math_verify never passes.
    * One indirect route exists: ``sympy.Number(text)`` (``latex2sympy2._Latex2Sympy.parse_number`` and
      ``convert_number``) sympifies a string, which reaches ``eval``.  The text there is a NUMBER token of the
      ANTLR lexer (digits, ``.`` and ``,`` only; ``,`` and ``%`` are stripped first), or a whole string matching
      ``^\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*$``, so only numeric literals get there.  ``tests/test_grading.py``
      spies on ``sympy.parsing.sympy_parser.eval_expr`` while grading injection strings and every benchmark
      answer and asserts that nothing but ``Integer (123 )`` / ``Float ('1.5' )`` is ever evaluated.
    * ``sympify`` in ``latex2sympy2_extended.sets.FiniteSet`` / ``logic.And`` only receives sympy objects.
    * Nothing in this package calls eval/exec/sympify/parse_expr (a test walks the package's AST to keep it so).

(``from math_verify import ...`` below is the installed package: absolute imports never resolve to this module.)
"""

from __future__ import annotations

import re
from functools import lru_cache

from pipeline.grading.fast import PLAIN_DECIMAL

_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")  # an escaped \$ is a dollar sign, not a delimiter


def _gold_as_latex(gold: str) -> str:
    """Math-Verify's LaTeX extractor needs an environment; a bare gold like "\\sqrt{5}" or "\\$18.90" is boxed."""
    g = gold.strip()
    return g if _MATH_DELIMITER.search(g) else "\\boxed{" + g + "}"


_PERCENT_OR_PERIOD_TAIL = re.compile(r"(?:\s|\\[,;: ])*(?:\\%|\\percent|\.)\s*$")


def _parse_answer(answer: str) -> tuple:
    r"""The answer as Math-Verify's LaTeX parser reads it in a box -- or, where a ``\%`` or a period after a plain
    number defeats that parser (``\boxed{20 \%}`` parses to nothing), the number: 20, as plain Math-Verify reads
    ``$20 \%$``.  The fast path grades those the same way (see `fast.cheap_verdict`)."""
    parsed = _parse_latex("\\boxed{" + answer + "}")
    if len(parsed) < 2:  # parse gives [expression, text] when it parsed something
        bare = _PERCENT_OR_PERIOD_TAIL.sub("", answer)
        if bare != answer and PLAIN_DECIMAL.fullmatch(bare):
            parsed = _parse_latex("\\boxed{" + bare + "}")
    return parsed


@lru_cache(maxsize=4096)
def _parse_latex(text: str) -> tuple:
    """Math-Verify parse with the LaTeX extractor only (never ExprExtractionConfig) and no signal timeout."""
    from math_verify import LatexExtractionConfig, parse

    return tuple(parse(text, extraction_config=[LatexExtractionConfig()], parsing_timeout=None))


def math_verify_equal(answer: str, gold: str) -> bool:
    r"""Math-Verify's verdict on an extracted answer against a gold answer (gold first, as `verify` wants).

    Same verdict as ``verify(gold_parsed, answer_parsed)``, which is "any (gold, answer) parse pair verifies";
    pairs that `_differ_at_a_point` are skipped, because that is where Math-Verify would spend most of its time
    (``simplify`` of a difference that is not zero).  This is the default worker function of `Grader`; it
    has no timeout of its own, so in-process use is for trusted inputs only.

    Example:
        >>> math_verify_equal(r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"), math_verify_equal("x^2", "2x")
        (True, False)
    """
    from math_verify import verify

    for g in _parse_latex(_gold_as_latex(gold)):
        for a in _parse_answer(answer):
            if not _differ_at_a_point(g, a) and verify([g], [a], timeout_seconds=None):
                return True
    return False


def _differ_at_a_point(gold, answer) -> bool:
    """True when two parsed expressions have clearly different values at one positive real point.

    Only for plain sympy expressions: no Symbol (Math-Verify compares those by name), relation, set, tuple,
    matrix, percent (``9%`` verifies against ``9``) or unevaluated calculus.  For those, every way Math-Verify can
    say "equal" (structural equality, rounding to 6 decimals when a Float is involved, ``evalf(a - b) == 0``,
    ``simplify(a - b) == 0``) implies equal values at every point, so a difference above 2e-6 (and 1e-9
    relative) rules all of them out.  Any doubt (non-number, infinity, an error) answers False: verify decides.
    The values are compared as mpmath numbers, whose exponent is unbounded: as Python floats, ``2^{1024}`` and
    ``10^{400}`` overflowed (``OverflowError`` outside any try, which failed the whole check).
    """
    import mpmath
    import sympy
    from sympy.matrices.expressions import MatrixExpr

    skip = (sympy.UnevaluatedExpr, sympy.Integral, sympy.Derivative, sympy.Sum, sympy.Product, sympy.Limit)
    if not (isinstance(gold, sympy.Expr) and isinstance(answer, sympy.Expr)):
        return False
    if any(isinstance(e, (sympy.Symbol, MatrixExpr)) or e.has(*skip) for e in (gold, answer)):
        return False
    symbols = sorted(gold.free_symbols | answer.free_symbols, key=str)
    point = {s: sympy.Float(1.2345678 + 0.3141592 * i, 30) for i, s in enumerate(symbols)}
    try:
        values = []
        for e in (gold, answer):
            v = e.evalf(30, subs={s: point[s] for s in e.free_symbols})
            if not v.is_number or v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
                return False
            values.append(mpmath.mpc(*(mpmath.mpmathify(part) for part in v.as_real_imag())))
        with mpmath.workprec(100):
            diff = abs(values[0] - values[1])
            scale = max(abs(values[0]), abs(values[1]), 1)
            return bool(diff > 2e-6 and diff > 1e-9 * scale)
    except Exception:
        return False


# Typical answer shapes, parsed once when a worker starts: the ANTLR parser builds its prediction (DFA) cache
# lazily, so the first parses of each construct are several times slower than later ones.
WARMUP_ANSWERS = (
    "42",
    "-3.5",
    r"\frac{3}{4}",
    r"2\sqrt{3}",
    r"\frac{\sqrt{3}}{3}",
    r"\sqrt[3]{7}",
    r"12\pi",
    r"-\frac{\pi}{6}",
    "x^2+3x-6",
    "6-5i",
    r"(3, \frac{\pi}{2})",
    "(-2,1)",
    r"(-\infty, 0]",
    r"[2,5) \cup (5,\infty)",
    r"\{1,2,3\}",
    "1,2,3",
    "x=5",
    r"y = \frac{1}{2}x + 3",
    r"1 \pm \sqrt{19}",
    r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}",
    r"\text{Evelyn}",
    r"\text{(C)}",
    r"30^\circ",
    r"25\%",
    r"\$18.90",
    r"10,\!080",
    r"\cos(2t) + C_{1} e^{t}",
    r"\log_{2} 5",
    r"\ln(x)",
    r"\sin^2 x",
    r"\binom{10}{3}",
    "5!",
    r"\lfloor\frac{n}{2}\rfloor",
    r"e^{-x^{2}}",
    r"a \leq 3",
    r"0 < x < 2",
    r"f(x)=2x+1",
    r"\frac{1}{s+1}-\frac{e^{-s}}{s}",
    r"x_{0} \cos (\omega t)",
    "2.5e-3",
)


def warm_up() -> None:
    """Parse `WARMUP_ANSWERS` once (and so import sympy and math_verify) before the worker announces itself."""
    for text in WARMUP_ANSWERS:
        math_verify_equal(text, "1")
    _parse_latex.cache_clear()
