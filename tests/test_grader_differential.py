r"""The grader's fast path against plain Math-Verify: whenever the fast path decides, it says what Math-Verify says.

The fast path (`grading.fast.cheap_verdict`) answers most pairs in microseconds without Math-Verify; a verdict of
its own that Math-Verify would not give is a reward the policy can learn to collect (the list ``3, 100`` once graded
as the number 3100).  So it may only agree or pass the pair on (None).

The reference is plain Math-Verify 0.9.0 (`math_verify.parse` / `verify`, default configurations and timeouts): the
gold wrapped in ``$...$``, the answer in ``\boxed{...}`` as the model writes it.  One documented exception: where
Math-Verify's box reader parses nothing at all because of a ``\%`` or ``\percent`` after a number, or a trailing
period (``\boxed{50\%}``, ``\boxed{5.}``), the reference reads the answer in ``$...$`` instead: there the project
grades what the answer means, as ``$50\%$`` means 50 to Math-Verify.  Any other unparseable answer stays
unparseable (wrong).  Pairs whose two texts are identical are left out: the fast path calls them
right by construction, even where Math-Verify cannot parse them (``\$18.90``).

`tests/answer_spellings.py` generates the pairs (seeded, so the run is deterministic): integers with and without
separators, decimals, fractions, percents, lists, tuples, intervals, signs, units, LaTeX spacing.  The counterexamples
found while writing the fast path are kept as table cases below.  5-10 s on 2 cores.
"""

from __future__ import annotations

import collections
import logging
import re
from functools import cache

import pytest

from pipeline.grading.fast import cheap_verdict
from tests.answer_spellings import FAMILIES, spelling_pairs

N_PAIRS = 7000  # 1,000 per family
SEED = 0


@cache
def _parse(text: str) -> tuple:
    from math_verify import parse

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return tuple(parse(text))


def _box_defeats_math_verify(answer: str) -> bool:
    """The documented exception: a percent sign or a trailing period, which Math-Verify's box reader fails on."""
    return "\\%" in answer or "\\percent" in answer or answer.rstrip().endswith(".")


def math_verify(answer: str, gold: str) -> bool:
    """Plain Math-Verify's verdict on the boxed answer (in $...$ where the documented exception applies)."""
    from math_verify import verify

    parsed = _parse("\\boxed{" + answer + "}")
    if len(parsed) < 2 and _box_defeats_math_verify(answer):  # [expression, text] when it parsed something
        parsed = _parse(wrap_gold(answer))
    return bool(verify(list(_parse(wrap_gold(gold))), list(parsed)))


def wrap_gold(gold: str) -> str:
    """$gold$, as Math-Verify's README writes a gold, unless it has math delimiters already (an escaped ``\\$`` is
    a dollar sign, not a delimiter)."""
    return gold if re.search(r"(?<!\\)\$|\\\(|\\\[|\\boxed", gold) else f"${gold}$"


def test_fast_path_agrees_with_math_verify_whenever_it_decides():
    pairs = spelling_pairs(N_PAIRS, SEED)
    decided = collections.Counter()
    verdicts = collections.Counter()
    differ = []
    for p in pairs:
        verdict = cheap_verdict(p.answer, p.gold)
        if verdict is None or p.answer.strip() == p.gold.strip():
            continue
        decided[p.family] += 1
        verdicts[verdict] += 1
        reference = math_verify(p.answer, p.gold)
        if verdict != reference:
            differ.append((p.family, p.gold, p.answer, verdict, reference))
    print(
        f"\n{len(pairs)} pairs, {sum(decided.values())} decided by the fast path and compared: {dict(decided)}; "
        f"verdicts {dict(verdicts)}"
    )
    assert differ == [], (
        f"{len(differ)} verdicts differ from Math-Verify's (family, gold, answer, ours, MV): {differ[:10]}"
    )
    # not vacuous: a good share of the pairs is decided, both ways, in most families
    assert sum(decided.values()) >= 0.3 * N_PAIRS
    assert verdicts[True] >= 0.1 * N_PAIRS and verdicts[False] >= 0.1 * N_PAIRS
    assert sum(decided[name] >= 25 for name in FAMILIES) >= len(FAMILIES) - 1, decided


def test_generator_is_deterministic():
    assert spelling_pairs(50, SEED) == spelling_pairs(50, SEED)
    assert spelling_pairs(50, SEED) != spelling_pairs(50, SEED + 1)


# Counterexamples: pairs an earlier fast path decided against Math-Verify, with what Math-Verify says.
COUNTEREXAMPLES = [
    # (answer, gold, Math-Verify's verdict, how Math-Verify reads the answer)
    ("3, 100", "3100", False, "the set {3, 100}"),
    ("12, 345", "12345", False, "the set {12, 345}"),
    ("3 ,100", "3100", False, "the set {3, 100}"),
    ("5, 927", "5,927", False, "the set {5, 927}"),
    ("1 000", "1000", False, "1*000 = 0"),
    ("1\\,000", "1000", False, "1*000 = 0"),
    ("574\\ 268", "574268", False, "574 + 268"),
    ("19\\:6", "196", False, "19 + 6"),
    ("+1,500", "1500", False, "the set {1, 500}: a plus sign breaks the thousands reading"),
    ("- 452,\\!902,\\!251", "-452902251", False, "the set {-452, 902, 251}: so does a space after the minus"),
    ("-6826035751301", "-06,826,035,751,301", False, "a leading zero group is no thousands separator"),
    ("0.807", "0,807", True, "0,807 is a decimal comma: 0.807"),
    ("01,234", "1.234", True, "a decimal comma after a zero group"),
    ("\\displaystyle 0.517", "\\,0,517", False, "with a leading \\, the gold becomes the set {0, 517}"),
    ("~+33", "33", False, "unparseable"),
    ("828.324180", "\\text{828.32418}", False, "\\text{828.32418} is a symbol named 828.32418"),
    ("\\text{0508875401}", "00508875401", False, "\\text{0508875401} is a symbol"),
    ("\\text{4}", "4.0000000", False, "\\text{4} is a symbol named 4: equal to 4, not to 4.0"),
    ("4\\!91245.", "491245", False, "unparseable"),
    (" 20\\!0\\percent ", "200\\%", False, "unparseable"),
    ("\\tfrac{104}{34}.", "\\frac{156}{51}", False, "a period after a fraction is unparseable"),
    ("\\$416.", "416\\text{ m}^3", False, "unparseable"),
    ("70\\circ", "70", False, "unparseable (only ^\\circ is a degree sign)"),
    ("70°", "70", False, "unparseable"),
    ("301\\text{ m}^3", "301\\mbox{ m}^\\quad 2", False, "the gold is 301 m^2, a product"),
    ("\\frac\\:{58}{10}", "\\frac{87}{15}", False, "unparseable"),
    ("173%", "173", False, "173% is 173/100 (a bare % is no \\%)"),
    ("0.7780000000", ". 778", False, "'. 778' is not .778"),
    ("35.\\;50.", "35.50", False, "unparseable"),
    ("+7.", "7", False, "unparseable, in a box and in $...$ (-7. and 7. are read)"),
    ("\\left (21, 7, 27\\right)", "(21, 7, 27)", False, "\\left followed by a space: 27"),
    ("10\\:1\\percent", "10\\:1", False, "the gold is 10 + 1"),
    ("75\\ ", "$75\\ $", False, "unparseable"),
    ("-070.", "-70", False, "unparseable, in a box and in $...$ (-70. and 070. are read)"),
    ("389^\\circ", "$389\\text{ cm} $", False, "the gold is 389*cm: a space after the unit keeps it a symbol"),
    ("\\frac{1}{2}\\%", "\\frac12", False, "1/200: after a fraction \\% is a percent (50\\% is 50)"),
]


@pytest.mark.parametrize("answer, gold, expected, reading", COUNTEREXAMPLES)
def test_counterexamples(answer, gold, expected, reading):
    assert math_verify(answer, gold) is expected, f"Math-Verify changed its reading: {reading}"
    assert cheap_verdict(answer, gold) in (expected, None)
