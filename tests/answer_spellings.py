r"""A seeded generator of (gold, answer) pairs for differential tests of the grader's fast path.

`spelling_pairs(n, seed)` returns n `Pair(family, gold, answer)`; same seed, same pairs.  Each pair takes a value of
one family, spells the gold one way and the answer another way, of the same value (about half the time) or of a
near miss: a neighbouring number, digits regrouped (``3100`` -> ``3, 100``), a rounding just past the 6th
decimal, a list reordered or cut short, a sign flipped.

Families (one small function each):
    integer    with and without separators (``1,000``, ``1{,}000``, ``1,\!000``, ``1\,000``, ``1 000``),
               leading zeros, signs (``-``, ``+``, ``- ``), regrouped digits
    decimal    ``3.14``, ``.5``, trailing zeros, a decimal comma (``0,5``, ``0,111``), near values
    fraction   ``a/b``, ``\frac{a}{b}``, ``\dfrac``, ``\tfrac``, ``\frac34``, signs inside and out, unreduced,
               and decimal expansions cut at 3-8 digits
    percent    ``50\%``, ``50%``, ``50 \%``, ``\frac{1}{2}\%``, against the bare number and the fraction
    sequence   lists, tuples, intervals, sets: ``1, 2``, ``1,2``, ``(1, 2)``, ``[1,2)``, ``\{1,2\}``,
               ``1 \text{ and } 2``
    unit       ``5\text{ cm}``, ``5\mbox{ m}^2``, ``30^\circ``, ``\$5``, ``5\text{ dollars}``
    latex      any of the above with LaTeX spacing and decoration spliced in: ``\,`` ``\;`` ``\!`` ``~`` ``\ ``
               ``\quad``, ``\left( \right)``, ``\displaystyle``, ``$...$``, ``\text{...}``, a trailing period

Nothing here knows what the grader answers: the test compares the fast path with plain Math-Verify.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Pair:
    family: str
    gold: str
    answer: str


# ------------------------------------------------------------------------------------------ spelling helpers

SEPARATORS = (",", ",", "{,}", ",\\!", ", ", "\\,", " ", "\\ ", ",\\,", " , ", "~")


def _group(digits: str, sep: str) -> str:
    """'1234567' -> '1<sep>234<sep>567'."""
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return sep.join(groups)


def _int_spelling(rng: random.Random, v: int) -> str:
    digits = str(abs(v))
    r = rng.random()
    if r < 0.35 or len(digits) < 4:
        body = digits
    elif r < 0.85:
        body = _group(digits, rng.choice(SEPARATORS))
    else:  # a wrong grouping: 12,34 or 1,2345
        cut = rng.randrange(1, len(digits))
        body = digits[:cut] + rng.choice((",", ", ", "{,}")) + digits[cut:]
    if rng.random() < 0.08:
        body = "0" * rng.randint(1, 2) + body
    sign = "-" if v < 0 else rng.choice(("", "", "", "+"))
    if sign and rng.random() < 0.2:
        sign += " "
    return sign + body


def _decimal_text(value: Fraction, places: int) -> str:
    """value rounded half-up to `places` decimals, as text."""
    negative = value < 0
    scaled = abs(value) * 10**places
    q = int(scaled + Fraction(1, 2))
    text = str(q).rjust(places + 1, "0")
    text = text[:-places] + "." + text[-places:] if places else text
    return ("-" if negative and q else "") + text


def _decimal_spelling(rng: random.Random, value: Fraction, places: int) -> str:
    text = _decimal_text(value, places)
    r = rng.random()
    if r < 0.1 and "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    elif r < 0.2 and "." in text:
        text += "0" * rng.randint(1, 2)
    elif r < 0.3 and text.startswith("0."):
        text = text[1:]  # .5
    elif r < 0.4 and "." in text:
        text = text.replace(".", ",")  # a decimal comma
    return text


def _fraction_spelling(rng: random.Random, value: Fraction) -> str:
    k = rng.choice((1, 1, 1, 2, 3))  # unreduced now and then
    num, den = abs(value.numerator) * k, value.denominator * k
    negative = value < 0
    style = rng.randrange(6)
    if style == 0:
        body = f"{num}/{den}"
    elif style == 1:
        body = f"\\frac{{{num}}}{{{den}}}"
    elif style == 2:
        body = f"\\{rng.choice(('dfrac', 'tfrac'))}{{{num}}}{{{den}}}"
    elif style == 3 and num < 10 and den < 10:
        body = f"\\frac{num}{den}"
    elif style == 4 and negative:
        return f"\\frac{{-{num}}}{{{den}}}"
    else:
        body = f"\\frac{{{num}}}{{{den}}}"
    return ("-" if negative else "") + body


# ---------------------------------------------------------------------------------------------- families


def _integer(rng: random.Random) -> tuple[str, str]:
    magnitude = rng.choice((10, 100, 10_000, 10**6, 10**9, 10**13))
    v = rng.randrange(magnitude) * rng.choice((1, 1, 1, -1))
    gold = _int_spelling(rng, v)
    r = rng.random()
    if r < 0.5:
        w = v
    elif r < 0.6 and abs(v) >= 1000:  # the digits regrouped as a list: 3100 -> "3, 100"
        digits = str(abs(v))
        cut = rng.randrange(1, len(digits))
        return gold, digits[:cut] + rng.choice((", ", ",", " , ", ",\\ ", "\\,")) + digits[cut:]
    else:
        w = rng.choice((v + 1, v - 1, v * 10, -v, v // 10, v + 1000))
    return gold, _int_spelling(rng, w)


def _decimal(rng: random.Random) -> tuple[str, str]:
    places = rng.randint(1, 7)
    value = Fraction(rng.randrange(-(10**7), 10**8), 10**places)
    if rng.random() < 0.3:
        value = Fraction(rng.randrange(0, 1000), 1000)  # 0.xyz: where the decimal comma and 0,111 live
        places = 3
    gold = _decimal_spelling(rng, value, places)
    r = rng.random()
    if r < 0.5:
        other = value
    else:
        other = value + rng.choice(
            (
                Fraction(1, 10**7),
                Fraction(4, 10**7),
                Fraction(1, 10**6),
                Fraction(6, 10**7),
                Fraction(1, 10**5),
                Fraction(1, 1000),
                Fraction(-1, 10**6),
                Fraction(1),
            )
        )
    answer = _decimal_spelling(rng, other, rng.choice((places, places, places + 1, 7, 8)))
    return gold, answer


def _fraction(rng: random.Random) -> tuple[str, str]:
    value = Fraction(rng.randint(-40, 60), rng.randint(1, 24)) or Fraction(1, 3)
    gold = _fraction_spelling(rng, value) if rng.random() < 0.8 else _decimal_text(value, rng.randint(3, 8))
    r = rng.random()
    if r < 0.35:
        answer = _fraction_spelling(rng, value)
    elif r < 0.7:
        answer = _decimal_spelling(rng, value, rng.randint(2, 9))  # 1/3 -> 0.33 (wrong) ... 0.333333333
    else:
        answer = _fraction_spelling(rng, value + Fraction(rng.choice((1, -1)), rng.randint(2, 50)))
    return gold, answer


def _percent(rng: random.Random) -> tuple[str, str]:
    v = Fraction(rng.randint(0, 200), rng.choice((1, 1, 2, 4)))
    number = str(v.numerator) if v.denominator == 1 else _decimal_text(v, 2)
    if rng.random() < 0.15:
        number = _fraction_spelling(rng, v)  # \frac{1}{2}\% is 1/200 to Math-Verify, 50\% is 50

    def spell(n: str) -> str:
        return n + rng.choice(("\\%", "%", " \\%", "\\ \\%", "", "", "\\percent"))

    gold = spell(number)
    r = rng.random()
    if r < 0.5:
        answer = spell(number)
    elif r < 0.75:
        answer = _decimal_text(v / 100, rng.randint(2, 4))  # 50% -> 0.5
    else:
        answer = spell(str(v.numerator + 1) if v.denominator == 1 else _decimal_text(v + 1, 2))
    return gold, answer


def _sequence(rng: random.Random) -> tuple[str, str]:
    items = [rng.randint(-9, 30) for _ in range(rng.randint(2, 4))]

    def spell(xs: list[int]) -> str:
        sep = rng.choice((", ", ",", " , ", ",\\ ", ",\\,", ",\\quad "))
        body = sep.join(str(x) for x in xs)
        r = rng.random()
        if r < 0.3:
            return body
        if r < 0.55:
            return f"({body})"
        if r < 0.7:
            return f"\\{{{body}\\}}"
        if r < 0.8 and len(xs) == 2:
            return f"{rng.choice('([')}{body}{rng.choice(')]')}"
        if r < 0.9:
            return f"\\left({body}\\right)"
        return " \\text{ and } ".join(str(x) for x in xs)

    gold = spell(items)
    r = rng.random()
    if r < 0.45:
        other = items
    elif r < 0.65:
        other = items[::-1]
    elif r < 0.8:
        other = items[:-1]
    else:
        other = list(items)
        other[rng.randrange(len(other))] += 1
    return gold, spell(other)


def _unit(rng: random.Random) -> tuple[str, str]:
    v = rng.randint(0, 500)
    units = (
        "\\text{ cm}",
        "\\text{cm}",
        "\\ \\text{cm}",
        "\\mbox{ m}^2",
        "\\text{ m}^3",
        "^\\circ",
        "^{\\circ}",
        "\\text{ dollars}",
        "\\text{ degrees}",
        "\\,\\text{kg}",
        "",
    )

    def spell(n: int) -> str:
        if rng.random() < 0.15:
            return f"\\${n}"
        return f"{n}{rng.choice(units)}"

    gold = spell(v)
    answer = spell(v if rng.random() < 0.5 else rng.choice((v + 1, v * 10, v + 100)))
    return gold, answer


DECORATIONS: tuple[Callable[[str], str], ...] = (
    lambda s: f"${s}$",
    lambda s: f"\\text{{{s}}}",
    lambda s: s + ".",
    lambda s: f"\\displaystyle {s}",
    lambda s: f"\\left({s}\\right)",
    lambda s: f" {s} ",
    lambda s: s.replace("-", "- ", 1),
    lambda s: s.replace("/", " / ", 1),
    lambda s: s.replace("}{", "} {", 1),
)
SPACES = ("\\,", "\\;", "\\!", "~", "\\ ", " ", "\\quad ", "\\:")


def _latex(rng: random.Random) -> tuple[str, str]:
    """Another family's pair, with LaTeX spacing spliced in at random and an occasional decoration."""
    family = rng.choice((_integer, _decimal, _fraction, _percent, _sequence, _unit))
    gold, answer = family(rng)

    def decorate(s: str) -> str:
        if s and rng.random() < 0.6:
            i = rng.randrange(len(s) + 1)
            s = s[:i] + rng.choice(SPACES) + s[i:]
        if rng.random() < 0.4:
            s = rng.choice(DECORATIONS)(s)
        return s

    return decorate(gold), decorate(answer)


FAMILIES: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "integer": _integer,
    "decimal": _decimal,
    "fraction": _fraction,
    "percent": _percent,
    "sequence": _sequence,
    "unit": _unit,
    "latex": _latex,
}


def spelling_pairs(n: int, seed: int = 0) -> list[Pair]:
    """n pairs, families in turn (so every family gets n / 7), deterministic in `seed`."""
    rng = random.Random(seed)
    names = list(FAMILIES)
    out = []
    for i in range(n):
        name = names[i % len(names)]
        gold, answer = FAMILIES[name](rng)
        out.append(Pair(name, gold.strip() or "0", answer))
    return out
