r"""Answer grading: is the model's last ``\boxed{}`` answer equal to the gold answer?

What this module owns
    * Box extraction, the project's only one (gold solutions are read with it too): `extract_answer` (content of
      the last complete ``\boxed{}``/``\fbox{}``/bare ``\boxed 5``), `extract_answers` and `answer_of` (the
      answer under ``grading.multi_box``: ``last`` box, the released code's rule, or ``all`` boxes as one list),
      `first_box_end` (where the rollout engine cuts an attempt), `is_formatted`.
    * The verdict: `is_correct` for one pair, `grade_batch` for many (returns `Grade` records), `GraderPool` for
      the worker processes that run Math-Verify under a hard per-item timeout; `configure` sets the default pool's
      workers and multi-box rule from the configuration.

What it does not know
    Prompts, rewards (+1 / -0.5 / -1 is the environment's business, `pipeline.env`), datasets, tokens.
    A gold answer is just a string (``"18"``, ``"\frac{\sqrt{3}}{3}"``, ``"$x=2$"``).

How a pair is decided (cheapest first; each step either answers or passes on)
    1. No complete box -> wrong.  Empty box, or an answer longer than `MAX_ANSWER_CHARS` -> wrong.
    2. Fast path, in-process, microseconds.  The same text -> correct.  Otherwise both sides are normalised only as
       far as Math-Verify reads the spellings alike (surrounding ``$``, ``\left``/``\right``, plain spaces beside
       operators, ``\dfrac``, ``10,\!080``, ``\text{}`` around a word, a period after a number,
       ``\$``, ``\%``, ``^\circ``, a trailing ``\text{unit}`` after a number); other spacing stays as written,
       because ``1 000``, ``3, 100`` and ``574\ 268`` are 0, the set {3, 100} and 842 to Math-Verify.  Equal
       strings -> correct.  Both plain numbers (ints, decimals, 1,234 thousands, the decimal comma 0,111, a/b,
       ``\frac{a}{b}``) -> compared exactly, or at Math-Verify's 6-decimal rounding when a decimal is involved;
       a case too close to call (or a percent mismatch) passes on.  The fast path only ever agrees with
       Math-Verify or passes on (``tests/test_grader_differential.py`` checks it on thousands of generated
       pairs), except where Math-Verify cannot parse a text at all: the same text on both sides, and a ``\%`` or a
       period after a number inside a box (``\boxed{50\%}``: graded as Math-Verify reads ``$50\%$``).
    3. Cheap size guards, on the answer and on the gold: a power tower, factorial, binomial or Gamma that would
       build a gigantic integer (``9^{9^{9^{9}}}``, ``(10^{10})!``, ``2^{10^{6}}``, ``\binom{10^9}{5}``), brackets
       nested deeper than `MAX_NESTING` (``{{{{{{{{{{{{{{1}}}}}}}}}}}}}}`` alone takes the parser ~13 s), or a
       ``\operatorname{zeros}`` matrix -> wrong without calling sympy.
    4. Cache: a bounded LRU of earlier Math-Verify verdicts per (answer, gold).
    5. Math-Verify (`math_verify_equal`) in a `GraderPool` worker process; a worker that exceeds the timeout is
       killed and replaced, the item counts as wrong (``Grade.timed_out``) and is logged.

Timeouts: Math-Verify's own timeouts use ``signal.alarm`` (1-second resolution, main thread only, and they cannot
interrupt long C-level big-integer arithmetic).  We switch them off (``parsing_timeout=None``,
``timeout_seconds=None``) and rely on one clock: the parent kills a worker whose item runs past ``timeout_s``.
That is strictly stronger, works whichever thread calls `grade_batch`, and leaves no half-torn sympy state behind
(the process is gone).  Workers also cap their address space (`GraderPool(memory_limit_mb=...)`), so a memory bomb
becomes a MemoryError (counted wrong) instead of swapping the machine.

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
    * Nothing in this module calls eval/exec/sympify/parse_expr (a test walks this file's AST to keep it so).

Try it
    >>> is_correct(r"... so the answer is $\boxed{\dfrac{1}{2}}$.", "0.5")
    True
    >>> [g.correct for g in grade_batch([r"\boxed{x+1}", "no box here"], ["1+x", "1"])]
    [True, False]

    ``pytest --doctest-modules pipeline/grading.py`` runs these examples; ``pytest tests/test_grading.py`` the tests;
    ``python bench/grader.py`` the speed/agreement benchmark against plain Math-Verify.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Callable, Sequence

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 2000  # a longer boxed answer is simply wrong (and too expensive to parse)
MAX_EXPONENT = 100_000  # larger integer exponents (after folding towers) are refused before sympy sees them
MAX_FACTORIAL = 10_000  # n! (and binomial(n, k), Gamma(n)) with a larger literal n is refused likewise
# Deeper ({[ nesting (or a longer run of |) is refused: the parser's time grows 1.5-2x with each level of bare braces.
# Measured (Math-Verify 0.9.0, the 2-core development machine under load): {{...{1}...}} parses in 0.46 s at depth 8,
# 0.86 s at 9, 1.9 s at 11, 4.1 s at 12 and about 13 s at 14, against a 5 s timeout (10 s in training).  The
# trade-off: the guard counts depth, not what is nested, so a continued fraction \frac{1}{1+\frac{1}{...}} of
# depth 9 is refused although it parses in 0.02 s (0.05 s at depth 12).
MAX_NESTING = 8
DEFAULT_TIMEOUT_S = 5.0

# --------------------------------------------------------------------------------------------------------------
# Box extraction
# --------------------------------------------------------------------------------------------------------------

# One left-to-right tokenizer; every alternative is a fixed-length or single-class match, so no backtracking
# blow-up.  `\\` is consumed as a pair (so `\\{` is a real brace) unless it starts `\\boxed` (then the box wins),
# and escaped braces `\{`, `\}` do not count.  The bare form `\boxed 5` (hendrycks MATH's `last_boxed_only_string`
# reads `\boxed 5$` as 5) is one token: it runs from the first character after the spaces to the next whitespace,
# `$` or the end of the text.
_BOX_TOKENS = re.compile(
    r"(?P<box>\\(?:boxed|fbox)\s*\{)|(?P<bare>\\(?:boxed|fbox)\s+(?P<token>[^\s${}][^\s$]*))"
    r"|(?P<esc>\\\\(?!boxed|fbox)|\\[{}])|(?P<open>\{)|(?P<close>\})"
)


def _box_spans(text: str):
    """Yield (content start, content stop, end) of complete boxes, in the order they end; linear, no recursion.

    `end` is the index just after the box; a bare box ends with its token.
    """
    starts = [i for i in (text.find("\\boxed"), text.find("\\fbox")) if i >= 0]
    if not starts:
        return
    stack: list[int] = []  # content start for a box brace, -1 for a plain brace
    for m in _BOX_TOKENS.finditer(text, min(starts)):
        kind = m.lastgroup
        if kind == "box":
            stack.append(m.end())
        elif kind == "open":
            stack.append(-1)
        elif kind == "close" and stack:
            start = stack.pop()
            if start >= 0:
                yield start, m.start(), m.end()
        elif kind == "bare":
            yield m.start("token"), m.end(), m.end()


def extract_answer(text: str) -> str | None:
    r"""Content of the last complete box -- ``\boxed{...}``, ``\fbox{...}`` (nested braces fine) or the bare
    ``\boxed 5`` -- stripped.  The one extractor of the project, for model answers and gold solutions alike.

    "Last" means the complete box that opens last; None when there is no complete box.  An empty box gives "".

    Example:
        >>> extract_answer(r"first \boxed{1}, then \boxed{\frac{1}{2}} and \boxed{3")
        '\\frac{1}{2}'
        >>> extract_answer(r"\boxed{\boxed{7}}"), extract_answer("no box"), extract_answer(r"\boxed{")
        ('7', None, None)
        >>> extract_answer(r"so $\boxed 5$."), extract_answer(r"\fbox 12")
        ('5', '12')
    """
    best: tuple[int, int] | None = None
    for start, stop, _ in _box_spans(text):
        if best is None or start > best[0]:
            best = (start, stop)
    return None if best is None else text[best[0] : best[1]].strip()


def extract_answers(text: str) -> list[str]:
    r"""Contents of every complete box that holds no other box, in order; empty ones and consecutive repeats left out.

    What ``grading.multi_box: all`` grades (joined by `answer_of`).

    Example:
        >>> extract_answers(r"\boxed{1} and \boxed{2}, \boxed{2} or \boxed{} \boxed{\boxed{3}}")
        ['1', '2', '3']
    """
    boxes = sorted((start, stop) for start, stop, _ in _box_spans(text))
    out: list[str] = []
    for i, (start, stop) in enumerate(boxes):
        if i + 1 < len(boxes) and boxes[i + 1][0] < stop:
            continue  # the next box opens inside this one (box spans nest): it holds a box
        content = text[start:stop].strip()
        if content and (not out or out[-1] != content):
            out.append(content)
    return out


MULTI_BOX_RULES = ("last", "all")


def answer_of(text: str, multi_box: str = "last") -> str | None:
    r"""The answer a response gives under a multi-box rule; None when it has no complete box.

    ``last`` (the released code's rule): the last box (`extract_answer`).  ``all``: every box, joined as a list
    ``a, b, c`` -- Math-Verify reads ``\boxed{1}, \boxed{2}`` as the set {1, 2} (it joins the boxes with a
    comma); the space after the comma keeps ``\boxed{12}, \boxed{345}`` a list rather than the number 12,345.
    With one box both rules give the same answer.

    Example:
        >>> answer_of(r"\boxed{1} and \boxed{2}"), answer_of(r"\boxed{1} and \boxed{2}", "all")
        ('2', '1, 2')
        >>> answer_of(r"\boxed{}", "all"), answer_of("no box", "all")
        ('', None)
    """
    if multi_box == "last":
        return extract_answer(text)
    if multi_box != "all":
        raise ValueError(f"multi_box must be one of {MULTI_BOX_RULES}, got {multi_box!r}")
    answers = extract_answers(text)
    if answers:
        return ", ".join(answers)
    return None if extract_answer(text) is None else ""


# A backslash construct that more streamed text may still complete: `\`, `\\`, a prefix of `\boxed` or `\fbox`,
# the word and the spaces after it, or a bare box's token (which may still grow).
_UNFINISHED = re.compile(r"\\{1,2}(?:b|bo|box|boxe|boxed\s*|f|fb|fbo|fbox\s*|(?:boxed|fbox)\s+[^\s${}][^\s$]*)?\Z")


class BoxWatch:
    r"""`first_box_end` of a text that grows piece by piece, scanning each piece once.

    The rollout asks after every sampled token whether the attempt's first box has closed; `first_box_end` on
    every prefix would rescan the whole attempt each time (quadratic in its length). This keeps the scan's state
    (the brace stack) and resumes where no token can change any more; a construct the end of the text may still
    complete (`\box`, a bare box's token, `\\` before a possible `boxed`) is rescanned with the next piece. The
    answer is `first_box_end(text so far)`, whatever the pieces.

    Example:
        >>> w = BoxWatch()
        >>> [w.feed(piece) for piece in ["so \\bo", "xed{4", "2}", ". More"]]
        [None, None, 13, 13]
    """

    def __init__(self) -> None:
        self.text = ""
        self.pos = 0  # where the next scan resumes: no token before it can change
        self.stack: list[int | None] = []  # content start for a box brace, None for a plain brace
        self.end: int | None = None

    def feed(self, piece: str) -> int | None:
        """Append `piece`; the index just after the first non-empty complete box so far, or None."""
        if self.end is not None:
            return self.end
        self.text += piece
        text, resume = self.text, None
        for m in _BOX_TOKENS.finditer(text, self.pos):
            kind, rest = m.lastgroup, text[m.end() : m.end() + 5]
            if (kind == "bare" and not rest) or (kind == "esc" and m.group() == "\\\\" and len(rest) < 5
                                                 and ("boxed".startswith(rest) or "fbox".startswith(rest))):
                resume = m.start()  # more text may change this token
                break
            self.pos = m.end()
            if kind == "box":
                self.stack.append(m.end())
            elif kind == "open":
                self.stack.append(None)
            elif kind == "close" and self.stack:
                start = self.stack.pop()
                if start is not None and text[start : m.start()].strip():
                    self.end = m.end()
                    return self.end
            elif kind == "bare":
                self.end = m.end()  # a bare token always has content
                return self.end
        if resume is None:
            unfinished = _UNFINISHED.search(text, self.pos)
            resume = unfinished.start() if unfinished else len(text)
        self.pos = resume
        return None


def first_box_end(text: str) -> int | None:
    r"""Index just after the first non-empty box to be completed, or None.

    "First" is the earliest end, so the answer never depends on where a streamed text was split: the rollout engine
    can call this after every chunk and cut the attempt at the returned index.  A brace box ends at its closing
    brace; a bare ``\boxed 5`` only once a terminator (whitespace or ``$``) follows its token -- at the end of a
    partial text the token may still grow (``\boxed 5`` -> ``\boxed 50``).  The returned index is then the
    token's end (the terminator is not part of the box).  An empty box (``\boxed{}``, e.g. the instruction
    quoted back) is no answer, so it ends nothing.

    Example:
        >>> s = r"so \boxed{42}. More text"
        >>> s[: first_box_end(s)]
        'so \\boxed{42}'
        >>> first_box_end(r"so \boxed 42"), first_box_end(r"so \boxed 42$")
        (None, 12)
    """
    return BoxWatch().feed(text)


def is_formatted(text: str) -> bool:
    r"""True when the text's answer (its last complete box) is not empty: the "-0.5, formatted but wrong" case
    of the reward. The environment applies the same rule to the answer it extracted.

    Example:
        >>> is_formatted(r"\boxed{}"), is_formatted(r"\boxed{1"), is_formatted(r"\boxed{1}")
        (False, False, True)
    """
    return bool(extract_answer(text))


# --------------------------------------------------------------------------------------------------------------
# Fast path: normalised strings and plain numbers
# --------------------------------------------------------------------------------------------------------------

_NOISE = re.compile(r"\s+|\\[,;:! ]|~|\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])|\\displaystyle")  # size_guard
# \left( -> (, but not \left (: Math-Verify cannot parse the spaced form
_DECORATION = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?=[()\[\]|.]|\\[{}|])|\\displaystyle(?![a-zA-Z])")
_SPACING = re.compile(r"(?:\s|\\[,;:! ]|~|\\q?quad(?![a-zA-Z]))+")
_SPACING_MAY_GO = frozenset("+-=<>()[]/|")  # beside these a plain space means nothing to Math-Verify
_DIGITS_COMMA = frozenset("0123456789,")
_PLAIN_DECIMAL = re.compile(r"-?(?:[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")  # 1,000.5 3 -0.5 .5
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
            unsure |= not _PLAIN_DECIMAL.fullmatch(s.removeprefix("\\$"))  # 50\% is 50; \frac{1}{2}\% is 1/200
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


def fast_verdict(answer: str, gold: str) -> bool | None:
    r"""True/False when the cheap checks are certain, None when Math-Verify must decide.

    Numbers mirror Math-Verify: exact unless a decimal is involved, then equal iff they round alike at 6 decimals
    (a difference between 0 and 1.5e-6 could go either way, so it is passed on).

    Example:
        >>> fast_verdict(r"\$1,000", "1000"), fast_verdict("0.5", r"\frac12"), fast_verdict("7", "8")
        (True, True, False)
        >>> fast_verdict(r"\sqrt{2}", "1.41421356") is None
        True
        >>> fast_verdict("3, 100", "3100"), fast_verdict("1 000", "1000"), fast_verdict("0,111", "0.111")
        (None, None, True)
    """
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


# --------------------------------------------------------------------------------------------------------------
# Size guards: refuse answers that would make sympy build gigantic integers
# --------------------------------------------------------------------------------------------------------------

_BIG = "Ω"  # stands for "a literal with more than 6 digits" while folding
_FOLD_POWER = re.compile(r"(\d+|Ω)\^(?:\{(\d+|Ω)\}|(\d))")
_FOLD_FACTORIAL = re.compile(r"(\d+|Ω)!")
_FOLD_PARENS = re.compile(r"\((\d+|Ω)\)|\{\{(\d+|Ω)\}\}|(?<!_)\{(\d+|Ω)\}(?=\^|!)")  # (n) {{n}} {n}^ {n}!
_BIG_EXPONENT = re.compile(r"\^(?:\{[^{}]*?(Ω|\d{6,})|(Ω))")
_MATRIX_BOMB = re.compile(r"\\operatorname\{(?:zeros|ones|eye|diag)\}")
_BRACKET = re.compile(r"[{(\[]|[})\]]")
_BAR_RUN = re.compile(r"\|(?:\s*\|){%d,}" % MAX_NESTING)  # |||||||||x||||||||| (absolute values)
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


# --------------------------------------------------------------------------------------------------------------
# Math-Verify (runs inside worker processes)
# --------------------------------------------------------------------------------------------------------------


_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")  # an escaped \$ is a dollar sign, not a delimiter


def _gold_as_latex(gold: str) -> str:
    """Math-Verify's LaTeX extractor needs an environment; a bare gold like "\\sqrt{5}" or "\\$18.90" is boxed."""
    g = gold.strip()
    return g if _MATH_DELIMITER.search(g) else "\\boxed{" + g + "}"


_PERCENT_OR_PERIOD_TAIL = re.compile(r"(?:\s|\\[,;: ])*(?:\\%|\\percent|\.)\s*$")


def _parse_answer(answer: str) -> tuple:
    r"""The answer as Math-Verify's LaTeX parser reads it in a box -- or, where a ``\%`` or a period after a plain
    number defeats that parser (``\boxed{20 \%}`` parses to nothing), the number: 20, as plain Math-Verify reads
    ``$20 \%$``.  The fast path grades those the same way (see `fast_verdict`)."""
    parsed = _parse_latex("\\boxed{" + answer + "}")
    if len(parsed) < 2:  # parse gives [expression, text] when it parsed something
        bare = _PERCENT_OR_PERIOD_TAIL.sub("", answer)
        if bare != answer and _PLAIN_DECIMAL.fullmatch(bare):
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
    (``simplify`` of a difference that is not zero).  This is the default worker function of `GraderPool`; it
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
    "42", "-3.5", r"\frac{3}{4}", r"2\sqrt{3}", r"\frac{\sqrt{3}}{3}", r"\sqrt[3]{7}", r"12\pi", r"-\frac{\pi}{6}",
    "x^2+3x-6", "6-5i", r"(3, \frac{\pi}{2})", "(-2,1)", r"(-\infty, 0]", r"[2,5) \cup (5,\infty)", r"\{1,2,3\}",
    "1,2,3", "x=5", r"y = \frac{1}{2}x + 3", r"1 \pm \sqrt{19}", r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}",
    r"\text{Evelyn}", r"\text{(C)}", r"30^\circ", r"25\%", r"\$18.90", r"10,\!080", r"\cos(2t) + C_{1} e^{t}",
    r"\log_{2} 5", r"\ln(x)", r"\sin^2 x", r"\binom{10}{3}", "5!", r"\lfloor\frac{n}{2}\rfloor", r"e^{-x^{2}}",
    r"a \leq 3", r"0 < x < 2", r"f(x)=2x+1", r"\frac{1}{s+1}-\frac{e^{-s}}{s}", r"x_{0} \cos (\omega t)", "2.5e-3",
)


def _warm_up() -> None:
    """Parse `WARMUP_ANSWERS` once (and so import sympy and math_verify) before the worker announces itself."""
    for text in WARMUP_ANSWERS:
        math_verify_equal(text, "1")
    _parse_latex.cache_clear()


def _limit_memory(limit_mb: int | None) -> None:
    if not limit_mb:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = limit_mb * 2**20
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # not on this platform: the timeout remains the backstop
        pass


def _worker_main(fd: int) -> None:
    """Worker loop (a fresh interpreter): read (fn, memory limit), announce readiness, then answer
    (key, answer, gold) messages with (key, verdict)."""
    conn = multiprocessing.connection.Connection(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # silence "timeout is disabled" (by design here)
    fn, memory_limit_mb = conn.recv()
    _limit_memory(memory_limit_mb)
    _warm_up()
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent went away
            return
        if msg is None:
            return
        key, answer, gold = msg
        try:
            verdict = bool(fn(answer, gold))
        except BaseException:  # MemoryError, RecursionError, anything: counts as wrong
            verdict = False
        conn.send((key, verdict))


# A worker is a fresh `python -c` interpreter rather than a multiprocessing child: "spawn" re-runs the caller's
# __main__ script in every child, so a plain script calling `is_correct` at top level would fork-bomb itself,
# and "fork" is unsafe in a process that runs torch threads.  The parent's sys.path travels in argv so that the
# worker function (pickled by reference) imports as it does in the parent.
_WORKER_BOOT = "import sys, json; sys.path[:0] = json.loads(sys.argv[2]); " \
    "from pipeline.grading import _worker_main; _worker_main(int(sys.argv[1]))"


# --------------------------------------------------------------------------------------------------------------
# The pool
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grade:
    """One graded response.

    correct: the verdict.  answer: the extracted answer, `answer_of` (None: no complete box).
    timed_out: Math-Verify ran past the timeout and was killed (correct is then False).
    via: who decided: "no_box" | "fast" | "guard" | "cache" | "math_verify" | "timeout" | "crash".
    elapsed_s: time spent on this item (for Math-Verify: dispatch to reply, queueing excluded).
    """

    correct: bool
    answer: str | None
    timed_out: bool = False
    via: str = "fast"
    elapsed_s: float = 0.0


class _Worker:
    def __init__(self, fn, memory_limit_mb):
        self.conn, child_conn = multiprocessing.Pipe(duplex=True)
        fd = child_conn.fileno()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT, str(fd), json.dumps(sys.path)], pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        child_conn.close()
        self.conn.send((fn, memory_limit_mb))
        self.started = time.monotonic()
        self.ready = False

    def stop(self, kill: bool = False) -> None:
        if not kill and self.process.poll() is None:
            try:
                self.conn.send(None)
                self.process.wait(timeout=1.0)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5.0)  # reap: no zombies
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


_LIVE_POOLS: "weakref.WeakSet[GraderPool]" = weakref.WeakSet()


class GraderPool:
    """N worker processes running `worker_fn(answer, gold) -> bool` (Math-Verify) under a hard timeout.

    `grade` extracts, runs the fast path and the guards in the calling process, and sends only the undecided,
    de-duplicated, uncached items to the workers, one item per idle worker at a time (so each item's clock starts
    when a worker takes it).  A worker past its deadline is killed and replaced; the item counts as wrong.
    Workers start lazily (fresh interpreters: safe from any thread and from processes that use CUDA or threads) and
    stop at `close()` / interpreter exit.  `grade` may be called from any thread; Math-Verify batches from
    concurrent callers take turns.

    Example:
        >>> with GraderPool(workers=1) as pool:
        ...     [(g.correct, g.via) for g in pool.grade([(r"\\boxed{2x}", "x+x"), (r"\\boxed{3}", "3")], 5.0)]
        [(True, 'math_verify'), (True, 'fast')]
    """

    def __init__(
        self,
        workers: int = 2,
        worker_fn: Callable[[str, str], bool] = math_verify_equal,
        cache_size: int = 50_000,
        memory_limit_mb: int | None = 2048,
        startup_timeout_s: float = 120.0,
    ):
        if workers < 1:
            raise ValueError(f"GraderPool: workers must be >= 1, got {workers}")
        self.n_workers = workers
        self.worker_fn = worker_fn
        self.memory_limit_mb = memory_limit_mb
        self.startup_timeout_s = startup_timeout_s
        self._workers: list[_Worker] = []
        self._pid = os.getpid()
        self._run_lock = threading.Lock()  # one Math-Verify batch at a time
        self._cache: collections.OrderedDict[tuple[str, str], bool] = collections.OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._closed = False
        _LIVE_POOLS.add(self)

    # -- public --------------------------------------------------------------------------------------------

    def grade(self, pairs: Sequence[tuple[str, str]], timeout_s: float = DEFAULT_TIMEOUT_S,
              multi_box: str = "last") -> list[Grade]:
        """Grade (response, gold) pairs; one `Grade` per pair, in order.  `multi_box`: see `answer_of`."""
        if timeout_s <= 0:
            raise ValueError(f"grade: timeout_s must be > 0, got {timeout_s}")
        if multi_box not in MULTI_BOX_RULES:
            raise ValueError(f"grade: multi_box must be one of {MULTI_BOX_RULES}, got {multi_box!r}")
        grades: list[Grade | None] = [None] * len(pairs)
        todo: dict[tuple[str, str], list[int]] = {}
        for i, (response, gold) in enumerate(pairs):
            t0 = time.perf_counter()
            answer = answer_of(response, multi_box)
            gold = str(gold)
            if answer is None:
                grades[i] = Grade(False, None, via="no_box", elapsed_s=time.perf_counter() - t0)
                continue
            verdict = False if len(answer) > MAX_ANSWER_CHARS else fast_verdict(answer, gold)
            if verdict is not None:
                grades[i] = Grade(verdict, answer, via="fast", elapsed_s=time.perf_counter() - t0)
                continue
            if reason := size_guard(answer) or ((r := size_guard(gold)) and f"gold: {r}"):
                logger.info("grader refused %r (gold %r): %s (counted wrong)", _clip(answer), _clip(gold), reason)
                grades[i] = Grade(False, answer, via="guard", elapsed_s=time.perf_counter() - t0)
                continue
            key = (answer, gold)
            cached = self._cache_get(key)
            if cached is not None:
                grades[i] = Grade(cached, answer, via="cache", elapsed_s=time.perf_counter() - t0)
                continue
            todo.setdefault(key, []).append(i)
        if todo:
            keys = list(todo)
            with self._run_lock:
                outcomes = self._run(keys, timeout_s)
            for key, (verdict, via, elapsed) in zip(keys, outcomes):
                if via == "math_verify":
                    self._cache_put(key, verdict)
                for i in todo[key]:
                    grades[i] = Grade(verdict, key[0], timed_out=via == "timeout", via=via, elapsed_s=elapsed)
        return grades  # type: ignore[return-value]

    def clear_cache(self) -> None:
        """Forget cached Math-Verify verdicts (workers keep their small parse caches until restarted)."""
        with self._cache_lock:
            self._cache.clear()

    def close(self) -> None:
        """Stop all workers (idempotent); the pool restarts them if used again."""
        with self._run_lock:
            self._stop_workers()

    def __enter__(self) -> "GraderPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- cache ---------------------------------------------------------------------------------------------

    def _cache_get(self, key: tuple[str, str]) -> bool | None:
        with self._cache_lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
            return verdict

    def _cache_put(self, key: tuple[str, str], verdict: bool) -> None:
        with self._cache_lock:
            self._cache[key] = verdict
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    # -- workers -------------------------------------------------------------------------------------------

    def _stop_workers(self) -> None:
        if self._pid == os.getpid():  # after a fork the workers belong to the parent: leave them alone
            for w in self._workers:
                w.stop()
        self._workers = []

    def _start_workers(self) -> None:
        if self._pid != os.getpid():
            self._workers, self._pid = [], os.getpid()
        while len(self._workers) < self.n_workers:
            self._workers.append(_Worker(self.worker_fn, self.memory_limit_mb))

    def _replace(self, w: _Worker, kill: bool) -> None:
        w.stop(kill=kill)
        self._workers[self._workers.index(w)] = _Worker(self.worker_fn, self.memory_limit_mb)

    def _run(self, keys: list[tuple[str, str]], timeout_s: float) -> list[tuple[bool, str, float]]:
        """Send each key to an idle worker; collect (verdict, via, elapsed) per key, killing late workers."""
        self._start_workers()
        out: list[tuple[bool, str, float] | None] = [None] * len(keys)
        queue = collections.deque(range(len(keys)))
        busy: dict[_Worker, tuple[int, float]] = {}  # worker -> (key index, dispatch time)
        startup_failures = 0
        while queue or busy:
            for w in self._workers:
                if queue and w.ready and w not in busy:
                    j = queue.popleft()
                    w.conn.send((j, *keys[j]))
                    busy[w] = (j, time.monotonic())
            now = time.monotonic()
            deadlines = [t + timeout_s for _, t in busy.values()]
            deadlines += [w.started + self.startup_timeout_s for w in self._workers if not w.ready]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else None
            ready = multiprocessing.connection.wait([w.conn for w in self._workers], timeout=wait_s)
            for w in [w for w in self._workers if w.conn in ready]:
                try:
                    key_index, verdict = w.conn.recv()
                except (EOFError, OSError):  # the worker died
                    if w in busy:
                        j, t = busy.pop(w)
                        logger.warning("grader worker died on answer=%r gold=%r (counted wrong)", *map(_clip, keys[j]))
                        out[j] = (False, "crash", time.monotonic() - t)
                    elif not w.ready:
                        startup_failures += 1
                        if startup_failures > 3 * self.n_workers:
                            raise RuntimeError("grader workers keep dying at start-up (see their stderr)")
                    self._replace(w, kill=True)
                    continue
                if key_index == "ready":
                    w.ready = True
                    continue
                j, t = busy.pop(w)
                out[j] = (verdict, "math_verify", time.monotonic() - t)
            now = time.monotonic()
            for w, (j, t) in list(busy.items()):
                if now - t >= timeout_s:
                    del busy[w]
                    logger.warning(
                        "grading timed out after %.1fs, worker killed, counted wrong: answer=%r gold=%r",
                        now - t,
                        *map(_clip, keys[j]),
                    )
                    out[j] = (False, "timeout", now - t)
                    self._replace(w, kill=True)
            for w in list(self._workers):
                if not w.ready and now - w.started > self.startup_timeout_s:
                    startup_failures += 1
                    if startup_failures > 3 * self.n_workers:
                        raise RuntimeError("grader workers do not start (import of math_verify hangs?)")
                    self._replace(w, kill=True)
        return out  # type: ignore[return-value]


def _clip(s: str, n: int = 200) -> str:
    return s if len(s) <= n else s[:n] + f"...[{len(s) - n} more chars]"


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_LIVE_POOLS):
        try:
            pool._stop_workers()
        except Exception:  # interpreter is going down; never raise from atexit
            pass


# --------------------------------------------------------------------------------------------------------------
# Module-level default pool
# --------------------------------------------------------------------------------------------------------------

_default_pool: GraderPool | None = None
_default_workers = 2
_default_multi_box = "last"
_default_lock = threading.Lock()


def configure(workers: int, multi_box: str = "last") -> None:
    """Set the default pool's worker count and the multi-box rule of `grade_batch` / `is_correct` (from
    `cfg.grading.workers` and `cfg.grading.multi_box`); restarts the pool if its worker count changes."""
    global _default_pool, _default_workers, _default_multi_box
    if multi_box not in MULTI_BOX_RULES:
        raise ValueError(f"configure: multi_box must be one of {MULTI_BOX_RULES}, got {multi_box!r}")
    with _default_lock:
        _default_workers = workers
        _default_multi_box = multi_box
        if _default_pool is not None and _default_pool.n_workers != workers:
            _default_pool.close()
            _default_pool = None


def default_pool() -> GraderPool:
    """The shared pool behind `is_correct` / `grade_batch`, created on first use (workers start lazily too)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = GraderPool(workers=_default_workers)
        return _default_pool


def shutdown() -> None:
    """Stop the default pool's workers now (they also stop at interpreter exit)."""
    global _default_pool
    with _default_lock:
        if _default_pool is not None:
            _default_pool.close()
            _default_pool = None


def clear_cache() -> None:
    """Forget the default pool's cached Math-Verify verdicts."""
    if _default_pool is not None:
        _default_pool.clear_cache()


def grade_batch(responses: Sequence[str], golds: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S,
                multi_box: str | None = None) -> list[Grade]:
    r"""Grade many responses at once through the default pool; one `Grade` per response.

    `multi_box` (see `answer_of`) defaults to the rule set by `configure` (``last`` unless configured).

    Example:
        >>> [(g.correct, g.answer) for g in grade_batch([r"\boxed{18}", r"\boxed{17}", "18"], ["18"] * 3)]
        [(True, '18'), (False, '17'), (False, None)]
    """
    if len(responses) != len(golds):
        raise ValueError(f"grade_batch: {len(responses)} responses but {len(golds)} golds")
    return default_pool().grade(list(zip(responses, golds)), timeout_s, multi_box or _default_multi_box)


def is_correct(response: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S, multi_box: str | None = None) -> bool:
    r"""Is the answer of `response` (its last complete box, or all its boxes under ``multi_box="all"``) equal to
    `gold`? No box, a timeout or an error count as wrong.

    Example:
        >>> is_correct(r"The area is \boxed{12\text{ cm}^2}.", "12"), is_correct("It is 12.", "12")
        (True, False)
        >>> [is_correct(r"\boxed{1} and \boxed{2}", r"\{1, 2\}", multi_box=rule) for rule in ("last", "all")]
        [False, True]
    """
    return grade_batch([response], [gold], timeout_s, multi_box)[0].correct
