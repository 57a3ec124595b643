r"""A second grader, independent of Math-Verify and sympy: the grader audit's check on the headline grader.

`second_equal(answer, gold)` reads both sides into one of three forms -- a number, a sequence of forms, or a
canonical string -- and compares the forms.  It never parses an expression: model text is never evaluated (no
eval/exec/sympify/parse_expr), every step is a regex substitution or one left-to-right scan of a text of at most
`fast.MAX_ANSWER_CHARS` characters, and sequences nested deeper than `fast.MAX_NESTING` are compared as strings.

What it accepts (both sides are read the same way):
    numbers      integers, decimals, ``1,234``, ``a/b``, ``\frac{a}{b}`` (``\dfrac``, ``\tfrac``, ``\frac34``),
                 as `fast._as_number` reads them, and ``1.2e-8``, ``1.2 \times 10^{-8}``.  Two exact values must
                 be equal; with a decimal on either side they may differ by a relative 1e-4 (the tolerance of the
                 paper's grader, Qwen2.5-Math's ``math_equal``).  A percent sign on one side also accepts the
                 value / 100 (``50\%`` = ``0.5``).
    wrappers     ``$..$``, ``\(..\)``, spacing (``\,``, ``~``, spaces), ``\left( \right)``, ``\displaystyle``,
                 ``\text{..}``, ``^\circ``, a unit ``\text{ cm}`` after a number, ``\$``, a period at the end.
    equations    ``x = 3``, ``f(x) = ...``, ``x \in [1, 2)``: the right-hand side (a name on the left).
    sequences    intervals and tuples ``(1, 2)``, ``[1, 2)``: same brackets, elements in order; sets
                 ``\{1, 2\}`` and bare lists ``1, 2`` (also ``1 \text{ and } 2``): elements in any order;
                 ``(5)`` is 5.  A comma followed by spacing separates a list (``3, 100``), one without it may be
                 a thousands separator (``3,100``).
    the rest     equal canonical strings: no spacing, ``\sqrt2`` -> ``\sqrt{2}``, ``\frac12`` -> ``\frac{1}{2}``,
                 ``x^{2}`` -> ``x^2``, ``\frac{-a}{b}`` -> ``-\frac{a}{b}``, ``π`` -> ``\pi``; a single word
                 case-blind (``Yes`` = ``yes``).

What it does not do: algebra.  ``2x`` and ``x+x``, ``\frac{\sqrt{3}}{3}`` and ``\frac{1}{\sqrt{3}}`` differ here;
the audit lists such pairs as disagreements (grader_audit.jsonl) for a person to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from pipeline.grading.fast import (
    _DIGIT_BRACE_COMMA,
    _NOISE,
    _SUFFIXES_DEGREE,
    _UNIT_TAIL,
    MAX_ANSWER_CHARS,
    MAX_NESTING,
    _as_number,
    _strip_math_delimiters,
)

RELATIVE_TOLERANCE = Fraction(1, 10**4)  # Qwen2.5-Math math_equal's isclose(rel_tol=1e-4), for decimals
MAX_ITEMS = 200  # a longer sequence is compared as a string (the unordered match is quadratic in its length)
MAX_TEN_POWER = 400  # 1e-8 and 4.46e19 are answers; 1e99999 is refused (a number with that many digits)

_LIST_COMMA = re.compile(r",(?:\s|\\[,;: ]|~|\\q?quad(?![a-zA-Z]))")  # "3, 100": a list ("10,\!080" is a number)
_AND = re.compile(r"\\(?:text|mbox|textrm)\{\s*(?:and|or)\s*\}")  # "1 \text{ and } 2" -> "1, 2"
_COMMAND_SPACE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")  # "\pi r": keep the command apart from "r"
_QUAD = re.compile(r"\\q?quad(?![a-zA-Z])")
_NEGATIVE_FRACTION = re.compile(r"(?<![\w})\]])\\frac\{-")  # not after a factor: x\frac{-1}{2} stays
_EQUATION = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?(?:\([A-Za-z,]*\))?(?:=|\\in(?![a-zA-Z]))")  # x=  f(x)=  x_1=  x\in
_TEXT = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|operatorname)\{([^{}]*)\}")
_PERCENT = ("\\%", "%", "\\percent")
_SCIENTIFIC = re.compile(
    r"(?P<mantissa>[-+]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:[eE](?P<e>[-+]?\d{1,6})|(?:\\times|\\cdot)10\^(?:\{(?P<braced>[-+]?\d{1,6})\}|(?P<digit>\d)))"
)
_SQRT_ONE = re.compile(r"\\sqrt([0-9A-Za-z])")  # \sqrt2 -> \sqrt{2}
_FRAC_ONE = re.compile(r"\\frac([0-9A-Za-z])([0-9A-Za-z])")  # \frac12 -> \frac{1}{2}
_SCRIPT_ONE = re.compile(r"([\^_])\{([0-9A-Za-z])\}")  # x^{2} -> x^2
_BRACKET = re.compile(r"\\[{}]|[()\[\]{}]|,")
_OPENERS = ("(", "[", "\\{")


@dataclass(frozen=True)
class Number:
    value: Fraction
    decimal: bool  # written with a decimal point (or in scientific notation): compared with a tolerance
    percent: bool


@dataclass(frozen=True)
class Collection:
    brackets: str  # "()", "[)", ... for an interval or tuple; "{}" for a set; "" for a bare list
    items: tuple


@dataclass(frozen=True)
class Text:
    text: str


def second_equal(answer: str | None, gold: str) -> bool:
    r"""Is `answer` the gold answer, by the rules of the module docstring?  No answer, an empty one and one longer
    than `MAX_ANSWER_CHARS` (on either side) are wrong.

    Example:
        >>> second_equal(r"\dfrac{1}{2}", "0.5"), second_equal("x = 3", "3"), second_equal("[1, 2)", "(1, 2)")
        (True, True, False)
        >>> second_equal(r"\{2, 1\}", "1, 2"), second_equal(r"50\%", "0.5"), second_equal(r"\sqrt2", r"\sqrt{2}")
        (True, True, True)
    """
    if not answer or not answer.strip() or len(answer) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return False
    return _same(read(answer), read(gold))


def read(text: str, depth: int = 0) -> Number | Collection | Text:
    """The form of one answer (or of one element of a sequence, at `depth`)."""
    list_comma = bool(_LIST_COMMA.search(text)) or bool(_AND.search(text))
    s, percent = _clean(text)
    if not list_comma and (number := _number(s)) is not None:
        return Number(*number, percent)
    if depth < MAX_NESTING and (collection := _sequence(s, depth)) is not None:
        return collection
    return Text(_canonical(s))


def _clean(text: str) -> tuple[str, bool]:
    """The answer without its wrappers, spacing, units and left-hand side; whether a percent sign was dropped."""
    s = _strip_math_delimiters(_AND.sub(", ", text).strip())
    s = _NOISE.sub("", _QUAD.sub("", _COMMAND_SPACE.sub(r"\1{}", s)))
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _NEGATIVE_FRACTION.sub("-\\\\frac{", _DIGIT_BRACE_COMMA.sub(",", s))
    if (m := _EQUATION.match(s)) and m.end() < len(s) and "=" not in s[m.end() :]:
        s = s[m.end() :]
    s = s.removeprefix("\\$")
    if s.endswith(".") and len(s) > 1:
        s = s[:-1]
    percent = False
    for suffix in _PERCENT:
        if s.endswith(suffix) and len(s) > len(suffix):
            s, percent = s[: -len(suffix)], True
            break
    for suffix in (*_SUFFIXES_DEGREE, "\\circ", "°"):
        if s.endswith(suffix) and len(s) > len(suffix):
            s = s[: -len(suffix)]
            break
    if (m := _UNIT_TAIL.search(s)) and m.start() > 0 and _number(s[: m.start()]) is not None:
        s = s[: m.start()]  # "5\text{cm}" -> "5"
    s = _TEXT.sub(r"\1", s)
    return s, percent


def _number(s: str) -> tuple[Fraction, bool] | None:
    """(value, written as a decimal?) of a plain number, else None."""
    if m := _SCIENTIFIC.fullmatch(s):
        power = int(m["e"] or m["braced"] or m["digit"])
        if abs(power) > MAX_TEN_POWER:
            return None
        return Fraction(m["mantissa"]) * Fraction(10) ** power, True
    return _as_number(s)


def _sequence(s: str, depth: int) -> Collection | None:
    """An interval, tuple, set or bare list of at least two items (``(x)`` is x), else None."""
    brackets, inner = "", s
    for opener in _OPENERS:
        if s.startswith(opener) and (end := _closing(s, len(opener))) is not None and end[1] == len(s):
            inner = s[len(opener) : end[0]]
            brackets = "{}" if opener == "\\{" else opener + s[end[0] :]
            break
    items = _split(inner)
    if items is None or len(items) > MAX_ITEMS:
        return None
    if len(items) == 1:
        if brackets == "()":
            return read(inner, depth + 1)  # (5) is 5, (C) is C
        if brackets != "{}":
            return None
    return Collection(brackets, tuple(read(item, depth + 1) for item in items))


def _closing(s: str, start: int) -> tuple[int, int] | None:
    """(start, end) of the bracket that closes the one just before `start` (any kind: intervals mix them)."""
    depth = 1
    for m in _BRACKET.finditer(s, start):
        t = m.group()
        if t == ",":
            continue
        depth += 1 if t in ("(", "[", "{", "\\{") else -1
        if depth == 0:
            return m.start(), m.end()
    return None


def _split(s: str) -> list[str] | None:
    """`s` cut at its top-level commas; None when its brackets do not balance."""
    items, depth, start = [], 0, 0
    for m in _BRACKET.finditer(s):
        t = m.group()
        if t == ",":
            if depth == 0:
                items.append(s[start : m.start()])
                start = m.end()
        else:
            depth += 1 if t in ("(", "[", "{", "\\{") else -1
            if depth < 0:
                return None
    return items + [s[start:]] if depth == 0 else None


def _canonical(s: str) -> str:
    s = s.replace("π", "\\pi")
    s = _SCRIPT_ONE.sub(r"\1\2", _FRAC_ONE.sub(r"\\frac{\1}{\2}", _SQRT_ONE.sub(r"\\sqrt{\1}", s)))
    return "".join(s.split())


def _same(a: Number | Collection | Text, b: Number | Collection | Text) -> bool:
    if isinstance(a, Number) and isinstance(b, Number):
        return _same_number(a, b)
    if isinstance(a, Collection) and isinstance(b, Collection):
        return _same_sequence(a, b)
    if isinstance(a, Text) and isinstance(b, Text):
        return a.text == b.text or (a.text.isalpha() and a.text.casefold() == b.text.casefold())
    return False


def _same_number(a: Number, b: Number) -> bool:
    """Equal values (within the tolerance if a decimal is involved); ``50\\%`` is 50 or 0.5 against a bare number."""
    ys = (b.value, b.value / 100) if b.percent and not a.percent else (b.value,)
    xs = (a.value, a.value / 100) if a.percent and not b.percent else (a.value,)
    tolerant = a.decimal or b.decimal
    return any(x == y or (tolerant and abs(x - y) <= RELATIVE_TOLERANCE * max(abs(x), abs(y))) for x in xs for y in ys)


def _same_sequence(a: Collection, b: Collection) -> bool:
    if len(a.items) != len(b.items):
        return False
    ordered = {a.brackets, b.brackets} - {"", "{}"}  # the brackets of intervals and tuples among the two
    if ordered:
        if "{}" in (a.brackets, b.brackets) or len(ordered) > 1:
            return False  # a set is no tuple; [1, 2) is not (1, 2)
        return all(_same(x, y) for x, y in zip(a.items, b.items))
    unmatched = list(b.items)  # sets and lists: any order
    for x in a.items:
        match = next((i for i, y in enumerate(unmatched) if _same(x, y)), None)
        if match is None:
            return False
        unmatched.pop(match)
    return True
