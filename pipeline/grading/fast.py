r"""What the grader decides in the calling process, in microseconds, before any worker sees a pair.

`cheap_verdict(answer, gold)`: True/False where normalised strings or plain numbers settle it, None when
Math-Verify must decide.  It only ever agrees with Math-Verify or passes on (``tests/test_grader_differential.py``
checks it on thousands of generated pairs), except where Math-Verify cannot parse a text at all: the same text on
both sides, and a ``\%`` or a period after a number inside a box (graded as Math-Verify reads ``$50\%$``).

`size_guard(text)`: why a text would make sympy build a gigantic integer or the LaTeX parser run for seconds (a
power tower, a huge factorial, binomial or Gamma, deep nesting, a matrix constructor), or None.  A refused pair
counts as wrong without calling sympy.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

MAX_ANSWER_CHARS = 2000  # a longer boxed answer is simply wrong (and too expensive to parse)
MAX_EXPONENT = 100_000  # larger integer exponents (after folding towers) are refused before sympy sees them
MAX_FACTORIAL = 10_000  # n! (and binomial(n, k), Gamma(n)) with a larger literal n is refused likewise
# Deeper ({[ nesting (or a longer run of |) is refused: the parser's time grows 1.5-2x with each level of bare braces.
# Measured (Math-Verify 0.9.0, the 2-core development machine under load): {{...{1}...}} parses in 0.46 s at depth 8,
# 0.86 s at 9, 1.9 s at 11, 4.1 s at 12 and about 13 s at 14, against a 5 s timeout (10 s in training).  The
# trade-off: the guard counts depth, not what is nested, so a continued fraction \frac{1}{1+\frac{1}{...}} of
# depth 9 is refused although it parses in 0.02 s (0.05 s at depth 12).
MAX_NESTING = 8

_NOISE = re.compile(r"\s+|\\[,;:! ]|~|\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])|\\displaystyle")  # size_guard
# \left( -> (, but not \left (: Math-Verify cannot parse the spaced form
_DECORATION = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?=[()\[\]|.]|\\[{}|])|\\displaystyle(?![a-zA-Z])")
_SPACING = re.compile(r"(?:\s|\\[,;:! ]|~|\\q?quad(?![a-zA-Z]))+")
_SPACING_MAY_GO = frozenset("+-=<>()[]/|")  # beside these a plain space means nothing to Math-Verify
_DIGITS_COMMA = frozenset("0123456789,")
PLAIN_DECIMAL = re.compile(r"-?(?:[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")  # 1,000.5 3 -0.5 .5
# a number Math-Verify still reads with a period after it: 5. -5. 070. .5. but not +5. -070. -.5.
_DECIMAL_LIKE = re.compile(r"(?:-(?=[1-9]|0\.\d))?\d[\d.,]*|\.\d+")
_DIGIT_BRACE_COMMA = re.compile(r"(?<=\d)\{,\}(?=\d)")  # 1{,}000
# \text{abc} reads as abc, but \text{0.5} is a symbol named "0.5" to Math-Verify, and \text{4} one named "4"
# (equal to 4, not to 4.0): only plain words are unwrapped.
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\{\s*([A-Za-z]+)\s*\}")
_UNIT_TAIL = re.compile(r"(?:\s|\\,)*\\(?:text|mathrm|mbox)\{\s*[A-Za-z]+\s*\}(?:\^\{?[23]\}?)?$")
_SPACE_BEFORE_DELIMITER = re.compile(r"\s(?:\$|\\\)|\\\])+$")
_SUFFIXES_DEGREE = ("^\\circ", "^{\\circ}")  # Math-Verify cannot parse 70\circ, 70° or 70\degree
_SUFFIXES_PERCENT = ("\\%", "\\percent")  # a bare % is a LaTeX comment; Math-Verify reads "50%" as 0.5
_NUMBER = re.compile(
    r"""(?P<sign>[-+]?)(?:
        (?P<thousands>[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?)  # 1,234,567.5  (as Math-Verify reads it: a number)
      | (?P<lead>0\d{0,2}),(?P<frac>\d{3})                # 0,111 = 0.111, 01,234 = 1.234: Math-Verify's decimal comma
      | (?P<decimal>\d+\.\d+|\.\d+)                       # 3.14  .5
      | (?P<integer>\d+)
      | (?P<num>\d+)/(?P<den>\d+)                         # 3/4
      | \\frac\{(?P<fnum>\d+)\}\{(?P<fden>\d+)\}          # \frac{3}{4}  (\dfrac, \tfrac are renamed first)
      | \\frac(?P<snum>\d)(?P<sden>\d)                    # \frac34
    )""",
    re.VERBOSE,
)


def _strip_math_delimiters(s: str) -> str:
    # Index arithmetic, one slice at the end: slicing in the loop was quadratic (a megabyte gold of "$" signs
    # took seconds in the calling process, where no timeout applies).
    i, j = 0, len(s)
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        while j - i >= len(left) + len(right) and s.startswith(left, i, j) and s.endswith(right, i, j):
            i, j = i + len(left), j - len(right)
            while i < j and s[i].isspace():
                i += 1
            while j > i and s[j - 1].isspace():
                j -= 1
    return s[i:j]


def _drop_spacing(s: str) -> str:
    r"""Delete spaces and LaTeX spacing where Math-Verify ignores them; elsewhere keep them as written.

    Math-Verify reads ``1 000`` as 1*000, ``574\ 268`` as 574+268, ``3, 100`` as the set {3, 100} and
    ``\,0,517`` as {0, 517}, and cannot parse ``~5``; so spacing stays where it is, and such spellings only ever
    equal themselves here (the pair then goes to Math-Verify), except: plain whitespace goes at either end and
    beside an operator or bracket (``x + 1``, ``\left( 1 \right)``) but not between a sign and a digit, and
    ``\!`` alone goes between a digit and a comma (``10,\!080``, which Math-Verify reads as 10080).
    """

    def drop(m: re.Match) -> str:
        start, end = m.span()
        before, after = s[start - 1 : start], s[end : end + 1]
        run = m.group()
        if before in "+-" and after.isdigit():
            return run  # "- 452,902" is a set to Math-Verify, "-452,902" a number
        if run.isspace() and (not before or not after or before in _SPACING_MAY_GO or after in _SPACING_MAY_GO):
            return ""
        if not run.replace("\\!", "") and "," in before + after and {before, after} <= _DIGITS_COMMA:
            return ""
        return run

    return _SPACING.sub(drop, s)


def _normalize(s: str) -> tuple[str, bool, bool]:
    r"""A canonical spelling for string comparison; whether a percent sign was dropped; whether the spelling is one
    the fast path must not judge: a bare ``%`` (Math-Verify divides by 100 there, and in a box it is a comment that
    swallows the closing brace), a ``\%`` after anything but a plain number, a trailing backslash."""
    s = s.strip()
    spaced_end = bool(_SPACE_BEFORE_DELIMITER.search(s))  # "$389\text{ cm} $": Math-Verify keeps that unit (389*cm)
    s = _strip_math_delimiters(s)
    unsure = s.endswith("\\")  # a spacing command "\ " cut in half by the strip
    if s.endswith(".") and _DECIMAL_LIKE.fullmatch(s[:-1]) and _as_number(s[:-1]):
        s = s[:-1]  # "5." -> "5"; after anything but a plain number Math-Verify may fail on the period (1/2. is 1)
    s = _drop_spacing(_DECORATION.sub("", s))
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _DIGIT_BRACE_COMMA.sub(",", s)
    unsure |= "%" in s.replace("\\%", "")
    percent = False
    for suffix in _SUFFIXES_PERCENT:
        if s.endswith(suffix):
            s, percent = s[: -len(suffix)], True
            unsure |= not PLAIN_DECIMAL.fullmatch(s.removeprefix("\\$"))  # 50\% is 50; \frac{1}{2}\% is 1/200
            break
    for suffix in _SUFFIXES_DEGREE:
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    s = s.removeprefix("\\$")
    if m := _TEXT_WRAP.fullmatch(s):
        s = m.group(1).strip()
    if (m := _UNIT_TAIL.search(s)) and m.start() > 0 and not spaced_end and _as_number(s[: m.start()]) is not None:
        s = s[: m.start()]  # "5\text{ cm}" -> "5"; only when what remains is a plain number
    return s, percent, unsure


def _as_number(s: str) -> tuple[Fraction, bool] | None:
    """(exact value, written with a decimal point?) for a plain number, else None.

    Separators as Math-Verify reads them: ``1,234`` is 1234 (but ``+1,234`` is the set {1, 234}: no sign but
    ``-``); a leading group of zeros is a decimal comma (``0,111`` = 0.111, unsigned only); anything else with a
    comma (``12,34``, ``1,2345``) is not a number.
    """
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None
    g = m.groupdict()
    try:
        if g["thousands"]:
            if g["sign"] == "+":
                return None
            text = g["thousands"].replace(",", "")
            value, is_decimal = Fraction(text), "." in text
        elif g["lead"]:
            if g["sign"]:
                return None
            value, is_decimal = int(g["lead"]) + Fraction(int(g["frac"]), 1000), True
        elif g["decimal"]:
            value, is_decimal = Fraction(g["decimal"]), True
        elif g["integer"]:
            value, is_decimal = Fraction(int(g["integer"])), False
        else:
            num = g["num"] or g["fnum"] or g["snum"]
            den = g["den"] or g["fden"] or g["sden"]
            if int(den) == 0:
                return None
            value, is_decimal = Fraction(int(num), int(den)), False
    except ValueError:  # more digits than int() accepts
        return None
    return (-value if g["sign"] == "-" else value), is_decimal


def real_value(s: str) -> Fraction | None:
    r"""The exact value of `s` when it is a plain number as `cheap_verdict` reads it (``1,000``, ``\frac{3}{4}``,
    ``\$5``, ``-0.5``), else None (a percent sign, an expression, anything Math-Verify would have to decide).
    One number parser for the package and its callers (`pipeline.feedback`'s direction hint).

        >>> real_value(r"\dfrac{3}{4}"), real_value("1,000"), real_value(r"\sqrt{2}"), real_value(r"50\%")
        (Fraction(3, 4), Fraction(1000, 1), None, None)
    """
    if len(s) > MAX_ANSWER_CHARS:
        return None
    text, percent, unsure = _normalize(s)
    number = None if percent or unsure else _as_number(text)
    return None if number is None else number[0]


def cheap_verdict(answer: str, gold: str) -> bool | None:
    r"""True/False when the cheap checks are certain, None when Math-Verify must decide.

    An answer longer than `MAX_ANSWER_CHARS` is wrong.  The same text is right.  Otherwise both sides are
    normalised only as far as Math-Verify reads the spellings alike (surrounding ``$``, ``\left``/``\right``,
    plain spaces beside operators, ``\dfrac``, ``10,\!080``, ``\text{}`` around a word, a period after a number,
    ``\$``, ``\%``, ``^\circ``, a trailing ``\text{unit}`` after a number); other spacing stays as written,
    because ``1 000``, ``3, 100`` and ``574\ 268`` are 0, the set {3, 100} and 842 to Math-Verify.  Equal
    strings are right.  Plain numbers (ints, decimals, 1,234 thousands, the decimal comma 0,111, a/b,
    ``\frac{a}{b}``) mirror Math-Verify: exact unless a decimal is involved, then equal iff they round alike at 6
    decimals (a difference between 0 and 1.5e-6 could go either way, so it is passed on, as is a percent mismatch).

    Example:
        >>> cheap_verdict(r"\$1,000", "1000"), cheap_verdict("0.5", r"\frac12"), cheap_verdict("7", "8")
        (True, True, False)
        >>> cheap_verdict(r"\sqrt{2}", "1.41421356") is None
        True
        >>> cheap_verdict("3, 100", "3100"), cheap_verdict("1 000", "1000"), cheap_verdict("0,111", "0.111")
        (None, None, True)
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return False
    a, a_pct, a_unsure = _normalize(answer)
    g, g_pct, g_unsure = _normalize(gold)
    if not a or not g:
        return False if not a else None
    if answer.strip() == gold.strip():
        return True  # the same text: right, even where Math-Verify cannot parse it (``\$18.90``)
    if a_unsure or g_unsure:
        return None
    if a == g:
        return True
    x, y = _as_number(a), _as_number(g)
    if x is None or y is None:
        return None
    (xv, x_dec), (yv, y_dec) = x, y
    if xv == yv:
        return True
    if a_pct or g_pct:
        return None  # Math-Verify may accept 50% == 0.5; let it decide
    if not (x_dec or y_dec):
        return False
    if max(abs(xv), abs(yv)) > 10**15:
        return None  # beyond float precision, Math-Verify's rounding is its own business
    return False if abs(xv - yv) > Fraction(15, 10**7) else None


# Size guards: refuse texts that would make sympy build gigantic integers (or the parser run for seconds)

_BIG = "Ω"  # stands for "a literal with more than 6 digits" while folding
_FOLD_POWER = re.compile(r"(\d+|Ω)\^(?:\{(\d+|Ω)\}|(\d))")
_FOLD_FACTORIAL = re.compile(r"(\d+|Ω)!")
_FOLD_PARENS = re.compile(r"\((\d+|Ω)\)|\{\{(\d+|Ω)\}\}|(?<!_)\{(\d+|Ω)\}(?=\^|!)")  # (n) {{n}} {n}^ {n}!
_BIG_EXPONENT = re.compile(r"\^(?:\{[^{}]*?(Ω|\d{6,})|(Ω))")
_MATRIX_BOMB = re.compile(r"\\operatorname\{(?:zeros|ones|eye|diag)\}")
_BRACKET = re.compile(r"[{(\[]|[})\]]")
_BAR_RUN = re.compile(rf"\|(?:\s*\|){{{MAX_NESTING},}}")  # |||||||||x||||||||| (absolute values)
# n of binomial(n, k) / Gamma(n), or a whole (...)! group: sympy evaluates these eagerly
_BIG_ARGUMENT = re.compile(
    r"\\(?:[dt]?binom|Gamma|operatorname\{(?:binomial|factorial|gamma)\})(?:[{(]([^{}()]*)|(Ω|\d+))"
    r"|\{([^{}()]*)\\choose"
    r"|[({]([^{}()]*)[)}]!"
)
_LITERAL = re.compile(r"Ω|\d+")


def _nesting_depth(s: str) -> int:
    depth = deepest = 0
    for m in _BRACKET.finditer(s):
        if m.group() in "{([":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def _fold_power(m: re.Match) -> str:
    base, exp = m.group(1), m.group(2) or m.group(3)
    if exp == _BIG or (exp is not None and int(exp) > MAX_EXPONENT and base not in ("0", "1")):
        raise _TooBig(f"exponent {exp[:20]}")
    if base == _BIG:
        return _BIG if int(exp) > 0 else "1"
    b, e = int(base), int(exp)
    if b <= 1 or e * math.log10(b) <= 6:
        return str(b**e)
    return _BIG


def _fold_factorial(m: re.Match) -> str:
    n = m.group(1)
    if n == _BIG or int(n) > MAX_FACTORIAL:
        raise _TooBig(f"factorial of {n[:20]}")
    return str(math.factorial(int(n))) if int(n) <= 9 else _BIG


class _TooBig(Exception):
    pass


def size_guard(answer: str) -> str | None:
    r"""Why the answer is refused before Math-Verify sees it (a short reason), or None when it may go on.

    Integer powers and factorials are folded innermost-first (``9^{9^{9}}`` -> ``9^{387420489}``); an exponent
    above `MAX_EXPONENT`, or a literal above `MAX_FACTORIAL` in a factorial, a binomial's or Gamma's argument,
    is refused.  Symbolic ones pass.  So is bracket nesting deeper than `MAX_NESTING`.

    Example:
        >>> size_guard(r"9^{9^{9^{9}}}"), size_guard("100000!"), size_guard(r"2^{10}+x^{2^n}")
        ('exponent Ω', 'factorial of 100000', None)
        >>> size_guard(r"\binom{10^{9}}{5}"), size_guard("{" * 9 + "1" + "}" * 9)
        ('argument Ω', 'brackets nested 9 deep')
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} characters"
    if _MATRIX_BOMB.search(answer):
        return "matrix constructor"
    if (depth := _nesting_depth(answer)) > MAX_NESTING or _BAR_RUN.search(answer):
        return f"brackets nested {depth} deep" if depth > MAX_NESTING else "run of | bars"
    s = _NOISE.sub("", answer)
    try:
        for _ in range(200):  # each round folds at least one operator, or stops
            folded = _FOLD_PARENS.sub(lambda m: m.group(1) or m.group(2) or m.group(3), s)
            folded = _FOLD_FACTORIAL.sub(_fold_factorial, _FOLD_POWER.sub(_fold_power, folded))
            if folded == s:
                break
            s = folded
    except _TooBig as e:
        return str(e)
    for m in _BIG_EXPONENT.finditer(s):
        exp = m.group(1) or m.group(2)
        if exp == _BIG or int(exp) > MAX_EXPONENT:
            return f"exponent {exp[:20]}"
    for m in _BIG_ARGUMENT.finditer(s):
        for n in _LITERAL.findall(next(g for g in m.groups() if g is not None)):
            if n == _BIG or int(n) > MAX_FACTORIAL:
                return f"argument {n[:20]}"
    return None
