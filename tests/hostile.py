r"""A seeded generator of hostile (response, gold) pairs for the grader (`pipeline.grading`).

`hostile_answers(n, marker, seed)` returns n (response, gold) pairs; `hostile_cases` returns the same pairs as
`Case` records that also name the family and where the payload sits (the placement).  Same seed, same pairs.

Families (one small function each; every family mixes placements):
    injection     Python eval/exec, sympy-sympify, LaTeX-ish and shell-ish payloads that try to create `marker`
    tower         power towers and huge exponents (``9^{9^{9^{9}}}``, ``10^{10^{100}}``, in ``\frac``, ...)
    factorial     huge factorials, binomials, Gamma, sums and products (``100000!``, ``(10!)!``, ``\binom{10^9}{..}``)
    nesting       deeply nested braces / parentheses / brackets / boxes (short ones that reach the parser and
                  ones tens of thousands of levels deep)
    megabyte      ~1 MB strings (only the first few of the family; later ones are 16-128 KB) and megabyte golds
    control       control characters, lone surrogates, invalid UTF-8 decoded with surrogateescape, look-alikes
    unclosed      unclosed / malformed boxes
    many_boxes    thousands of boxes, boxes inside boxes, hostile earlier boxes
    mixed         two or three payloads of the other families spliced together

Placements: the payload inside ``\boxed{}`` (or ``\fbox{}``, ``$\boxed{}$``, nested boxes), outside any box,
next to an innocent box (before or after it), as the gold (with an innocent answer), or on both sides.  Golds are
mostly simple ("5", "\frac{1}{2}", ...) and sometimes hostile.

The injection payloads are real: `python_payloads` are Python expressions (evaluated with ``eval`` in a namespace
holding sympy's names, as ``sympify`` does), `exec_payloads` statements, `shell_payloads` strings that create the
marker when pasted into a shell command line.  ``tests/test_hostile_output.py`` proves it in a subprocess.
"""

from __future__ import annotations

import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SIMPLE_GOLDS = ("5", "\\frac{1}{2}", "0", "-3", "x+1", "\\sqrt{2}", "(1,2)", "12", "\\pi", "2", "0.5", "7")
MEGABYTE = 1 << 20
N_MEGABYTE_STRINGS = 6  # ~1 MB strings per generated list (a few, not hundreds of MB in total)
DEEP = 50_000  # "tens of thousands" of nesting levels


@dataclass(frozen=True)
class Case:
    family: str
    placement: str
    response: str
    gold: str


# ---------------------------------------------------------------------------------------------- injection


def python_payloads(marker: Path | str) -> list[str]:
    """Python expressions, each of which creates `marker` when evaluated by ``eval`` (sympy's names in scope)."""
    m = str(marker)
    q = repr(m)
    touch = repr("touch " + shlex.quote(m))
    code = f"open({q}, 'w').close()"
    return [
        f"__import__('os').system({touch})",
        f"open({q}, 'w')",
        f"open({q}, 'w').close()",
        f"(lambda: open({q}, 'w').close())()",
        f"(lambda f=open({q}, 'w'): f)()",
        f"getattr(__import__('builtins'), 'exec')({code!r})",
        f"eval(compile({code!r}, '<s>', 'exec'))",
        f"exec({code!r})",
        f"eval({code!r})",
        f"__import__('subprocess').call(['touch', {q}])",
        f"__import__('pathlib').Path({q}).touch()",
        "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
        f".__init__.__globals__['system']({touch})",
        f"getattr(__import__('o' + 's'), 'sys' + 'tem')({touch})",
        f"exec(bytes.fromhex({code.encode().hex()!r}).decode())",
        f"exec(''.join(map(chr, {[ord(c) for c in code]})))",
        f"(__builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__)['open']({q}, 'w')",
        f"(f := open({q}, 'w'))",
        f"f\"{{open({q}, 'w')}}\"",
        f"type('', (), {{'__del__': lambda s: open({q}, 'w')}})()",
        f"print(open({q}, 'w'))",
        f"[open({q}, 'w') for _ in 'x']",
        f"__import__('shutil').copyfile('/dev/null', {q})",
        f"\uff4f\uff50\uff45\uff4e({q}, 'w')",  # fullwidth "open": Python NFKC-normalises identifiers
        f"__import__('os').system({touch}) + Symbol('x')",
        f"Lambda(Symbol('x'), 1)(__import__('os').system({touch}))",
        f"Integer(__import__('os').system({touch}))",
        f"sympify({code!r})",
        f"Function('f')(open({q}, 'w').close())",
        f"1 + 2*x if open({q}, 'w') else 0",
        f"globals().get('__builtins__') and __import__('io').open({q}, 'w')",
    ]


def exec_payloads(marker: Path | str) -> list[str]:
    """Python statements, each of which creates `marker` when run by ``exec``."""
    m = str(marker)
    q = repr(m)
    touch = repr("touch " + shlex.quote(m))
    return [
        f"import os; os.system({touch})",
        f"1; import os; os.system({touch})",
        f"x = open({q}, 'w')",
        f"with open({q}, 'w'): pass",
        f"import pathlib\npathlib.Path({q}).touch()",
        f"from os import system as s; s({touch})",
        f"def f():\n    open({q}, 'w').close()\nf()",
        f"exec(\"open({q}, 'w')\")",
    ]


def shell_payloads(marker: Path | str) -> list[tuple[str, str]]:
    """(payload, how it is pasted): "bare" after ``echo `` or "quoted" inside ``echo '...'``; both create marker."""
    s = shlex.quote(str(marker))
    return [
        (f"$(touch {s})", "bare"),
        (f"`touch {s}`", "bare"),
        (f"; touch {s}", "bare"),
        (f"&& touch {s}", "bare"),
        (f"| touch {s}", "bare"),
        (f"\ntouch {s}", "bare"),
        (f"> {s}", "bare"),
        (f"$(python3 -c \"open('{marker}', 'w')\")", "bare"),
        (f"'; touch {s}; echo '", "quoted"),
        (f"'$(touch {s})'", "quoted"),
    ]


def latex_payloads(marker: Path | str) -> list[str]:
    """LaTeX-flavoured attempts: shell escape, file writes, and Python smuggled through operator names / text."""
    m = str(marker)
    q = repr(m)
    touch = "touch " + shlex.quote(m)
    return [
        f"\\immediate\\write18{{{touch}}}",
        f"\\write18{{{touch}}}",
        f"\\input{{|{touch}}}",
        f"\\directlua{{os.execute('{touch}')}}",
        f"\\newwrite\\f\\immediate\\openout\\f={m}\\immediate\\closeout\\f",
        f"\\operatorname{{__import__}}('os').system('{touch}')",
        f"\\operatorname{{eval}}\\left(\\text{{open({q}, 'w')}}\\right)",
        f"\\mathrm{{exec}}(\\text{{open({q}, 'w')}})",
        f"\\text{{__import__('os').system('{touch}')}}",
        f"\\verb|__import__('os').system('{touch}')|",
        f"\\operatorname{{open}}({q}, \\text{{w}})",
        f"\\lambda: \\operatorname{{__import__}}(\\text{{os}}).system(\\text{{{touch}}})",
        f"\\href{{run:{touch}}}{{5}}",
        f"\\begin{{python}}open({q}, 'w')\\end{{python}}",
        f"\\operatorname{{getattr}}(\\operatorname{{__builtins__}}, \\text{{exec}})(\\text{{open({q},'w')}})",
        f"\\frac{{__import__('os').system('{touch}')}}{{2}}",
        f"x^{{open({q}, 'w')}}",
        f"\\sqrt{{exec(\"open({q}, 'w')\")}}",
    ]


def _injection_payload(rng: random.Random, marker: Path) -> str:
    kind = rng.random()
    if kind < 0.45:
        return rng.choice(python_payloads(marker))
    if kind < 0.6:
        return rng.choice(exec_payloads(marker))
    if kind < 0.75:
        return rng.choice(shell_payloads(marker))[0]
    return rng.choice(latex_payloads(marker))


# ------------------------------------------------------------------------------------------------- numbers

TOWERS = [
    r"9^{9^{9^{9}}}",
    r"10^{10^{100}}",
    r"10^{10^{10}}+1",
    r"2^{2^{2^{2^{2}}}}",
    r"2^{2^{2^{2^{2^{2}}}}}",
    r"{10}^{{10}^{10}}",
    r"10^{{10}^{{10}^{10}}}",
    r"10^{(10^{10})}",
    r"\left(10^{10}\right)^{10^{10}}",
    r"\frac{1}{10^{10^{10}}}",
    r"\frac{10^{10^{100}}}{3}",
    r"\frac{2^{100000}}{3^{100000}}",
    r"\frac{x^{10^{9}}}{y}",
    r"x^{10^{10}}",
    r"e^{e^{e^{e^{10}}}}",
    r"\exp(\exp(\exp(100)))",
    r"10^{9999999}",
    r"2^{99999 \cdot 99999}",
    r"10**10**10",
    r"pow(10, 10**10)",
    r"10\uparrow\uparrow 10",
    r"10^{-10^{10}}",
    r"0^{10^{100}}",
    r"1^{10^{100}}",
    r"(-1)^{10^{100}}",
    r"\sqrt[10^{10}]{2}",
    r"2^{1/10^{10}}",
    r"1e100000",
    r"9.9e99999999",
    r"10^{10^{10.5}}",
    r"\sum_{n=1}^{10^{10}} n",
    r"\frac{d^{1000}}{dx^{1000}} x^{2000}",
    r"10^{10}^{10}",
    r"{{10}}^{{{10}}^{{{10}}}}",
    r"\left(\left(10\right)^{\left(10\right)}\right)^{10^{10}}",
    r"2^{2^{64}}",
    r"\frac{9^{9^{9}}}{9^{9^{9}}}",
    r"10^{100} \cdot 10^{10^{10}}",
    r"\dfrac{1}{2^{10^{100}}}+\frac{1}{2}",
    "9" * 1999,
    r"10^{" + "9" * 400 + "}",
    r"\tfrac{10^{10^{10}}}{10^{10^{10}}}",
]


def _tower(rng: random.Random) -> str:
    depth = rng.randint(2, 8)
    base = lambda: str(rng.choice([2, 3, 7, 9, 10, 99, rng.randint(2, 10**6)]))  # noqa: E731
    s = base()
    for _ in range(depth - 1):
        b = base()
        style = rng.random()
        if style < 0.5:
            s = f"{b}^{{{s}}}"
        elif style < 0.7:
            s = f"{b}^{{({s})}}"
        elif style < 0.85:
            s = f"\\left({b}\\right)^{{{s}}}"
        else:
            s = f"{b}^{{ {s} }}"
    wrap = rng.random()
    if wrap < 0.2:
        return f"\\frac{{{s}}}{{{rng.randint(2, 99)}}}"
    if wrap < 0.35:
        return f"\\frac{{1}}{{{s}}}"
    if wrap < 0.5:
        return s + " + " + rng.choice(["x", "1", "\\pi", "y^{2}"])
    if wrap < 0.6:
        return f"x^{{{s}}}"
    return s


def tower(rng: random.Random, k: int) -> str:
    return TOWERS[k] if k < len(TOWERS) else (_tower(rng) if rng.random() < 0.7 else rng.choice(TOWERS))


FACTORIALS = [
    "100000!",
    "(10!)!",
    "((3!)!)!",
    "(((3!)!)!)!",
    "3!!!!",
    "5!!!!!!!!!!!!!!!",
    "99999!!",
    "10^{6}!",
    "{100000}!",
    "(100000+0)!",
    "(10^{7})!",
    "{10^{7}}!",
    "(10^{7}+1)!",
    r"\left(10^{10}\right)!",
    r"\binom{10^9}{5*10^8}",
    r"\binom{10^{9}}{5\cdot 10^{8}}",
    r"\binom{100000}{50000}",
    r"\binom{10^{100}}{10^{50}}",
    r"\dbinom{10^{9}}{10^{8}}",
    r"{10^{9} \choose 5 \cdot 10^{8}}",
    r"C(10^9, 5*10^8)",
    r"\Gamma(10^{8})",
    r"\Gamma(\Gamma(\Gamma(10)))",
    r"\operatorname{factorial}(10^{9})",
    r"\frac{(10^{6})!}{(10^{6}-1)!}",
    r"\frac{100000!}{99999!}",
    r"\prod_{k=1}^{10^{7}} k",
    r"\sum_{n=1}^{10^{6}} n!",
    r"n!",
    r"(2^{20})!",
    r"\operatorname{binomial}(10^{9}, 10^{8})",
    r"\tbinom{1000000}{500000}",
    r"9!^{9!}",
    r"(9!)^{(9!)!}",
]


def factorial(rng: random.Random, k: int) -> str:
    if k < len(FACTORIALS):
        return FACTORIALS[k]
    n = rng.choice([rng.randint(10_001, 10**7), 10 ** rng.randint(5, 12), rng.randint(10, 500)])
    return rng.choice(
        [
            f"{n}!",
            f"({n})!",
            f"{{{n}}}!",
            f"\\binom{{{n}}}{{{n // 2}}}",
            f"{{{n} \\choose {n // 3}}}",
            f"\\Gamma({n})",
            f"{n}!!",
            f"\\frac{{{n}!}}{{{max(n - 1, 0)}!}}",
            f"({rng.randint(4, 9)}!)!",
            f"\\binom{{10^{{{rng.randint(5, 12)}}}}}{{{rng.randint(2, 10**6)}}}",
            rng.choice(FACTORIALS),
        ]
    )


# ---------------------------------------------------------------------------------------------- nesting


def _nest(kind: str, d: int, inner: str = "1") -> str:
    left, right = {
        "brace": ("{", "}"),
        "paren": ("(", ")"),
        "bracket": ("[", "]"),
        "escbrace": ("\\{", "\\}"),
        "leftright": ("\\left(", "\\right)"),
        "mixed": ("{([", "])}"),
        "frac": ("\\frac{1}{1+", "}"),
        "sqrt": ("\\sqrt{", "}"),
        "power": ("x^{", "}"),
        "box": ("\\boxed{", "}"),
        "abs": ("|", "|"),
    }[kind]
    return left * d + inner + right * d


NEST_KINDS = ("brace", "paren", "bracket", "escbrace", "leftright", "mixed", "frac", "sqrt", "power", "box", "abs")


def nesting(rng: random.Random, k: int) -> tuple[str, str | None]:
    """(payload, full response or None): deep ones are whole responses, short ones payloads to place."""
    canon = [
        ("\\boxed{" + _nest("brace", DEEP) + "}", "deep braces in a box"),
        ("\\boxed{" + _nest("paren", DEEP) + "}", "deep parens in a box"),
        (_nest("box", DEEP, "7"), "deep boxes"),
        (_nest("brace", DEEP, "\\boxed{5}"), "box deep in braces"),
        ("\\boxed{5}" + "{" * DEEP, "open braces after a box"),
        ("(" * DEEP + "\\boxed{5}" + ")" * DEEP, "box deep in parens"),
        ("\\boxed{" + "\\left(" * (DEEP // 5) + "1", "unclosed deep left("),
        ("-" * 1990 + "1", None),
        ("+" * 1990 + "1", None),
        ("1+" * 995 + "1", None),
    ]
    if k < len(canon):
        text, whole = canon[k]
        return (text, text) if whole else (text, None)
    kind = rng.choice(NEST_KINDS)
    if rng.random() < 0.08:  # a few tens of thousands deep (whole responses, the extractor's problem)
        d = rng.randint(10_000, DEEP)
        text = _nest(kind, d, rng.choice(["1", "\\boxed{5}", "x"]))
        return text, (text if kind == "box" or rng.random() < 0.5 else "\\boxed{" + text + "}")
    d = int(2 ** rng.uniform(2, 11))  # 4 .. 2048 levels: the shallow ones reach the parser, the rest the guard
    return _nest(kind, d, rng.choice(["1", "x", "2^{10}"])), None


# --------------------------------------------------------------------------------------------- megabyte


def megabyte(rng: random.Random, k: int) -> tuple[str, str]:
    """A (response, gold) pair with one ~1 MB string for k < N_MEGABYTE_STRINGS, else 16-128 KB."""
    size = MEGABYTE if k < N_MEGABYTE_STRINGS else rng.randint(16_000, 128_000)
    shapes = [
        lambda: ("a" * size + "\\boxed{5}", "5"),
        lambda: ("\\boxed{" + "9" * size + "}", "9"),
        lambda: ("\\boxed{1}" * (size // 9), "1"),
        lambda: ("\\boxed{5}", "$" * size),  # a megabyte gold of dollar signs
        lambda: ("\\boxed{" * (size // 7), "5"),
        lambda: ("\\\\" * (size // 2) + "\\boxed{\\\\}", "5"),
        lambda: ("\\boxed{5}", "1" * size),
        lambda: ("".join(rng.choices("\\{}^_()[]$ 0123456789abx+-*/!", k=size)) + "\\boxed{5}", "5"),
        lambda: ("\\boxed{5}", "\\frac{1}{2}" + " " * size),
        lambda: ("{" * size + "\\boxed{2}" + "}" * size, "2"),
        lambda: ("\\boxed{\\frac{1}{2}} " + "$ " * (size // 2), "$ " * (size // 4) + "\\frac12" + " $" * (size // 4)),
    ]
    return shapes[k % len(shapes)]() if k < len(shapes) else rng.choice(shapes)()


# --------------------------------------------------------------------------------------- control / unicode

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
WEIRD = [
    "\ud800",
    "\udfff",
    "\udc80",
    "\ufffe",
    "\uffff",
    "\ufeff",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2066",
    "\u0301",
    "\U0010ffff",
    "\U0001f600",
    "\uff15",
    "\u0665",
    "\u00a0",
    "\u2028",
    "\u2029",
    "\x00",
    "\u00ad",
    "\U000e0001",
]


def _garbage(rng: random.Random, n: int) -> str:
    pool = CONTROL + WEIRD + list("\\{}$5")
    return "".join(rng.choice(pool) for _ in range(n))


def control(rng: random.Random, k: int, payload: Callable[[], str]) -> tuple[str, str | None]:
    """(payload, full response or None)."""
    canon = [
        ("\x08oxed{5}", "\x08oxed{5}"),  # "\boxed{5}" written in a non-raw Python string
        ("\\boxed{\x0crac{1}{2}}", None),  # "\frac" likewise
        ("\\boxed{5\x00}", "\\boxed{5\x00}"),
        ("\x00\\boxed{5}\x00", "\x00\\boxed{5}\x00"),
        ("\\boxed{\ud800}", "\\boxed{\ud800}"),
        ("\\b\u043exed{5}", "\\b\u043exed{5}"),  # Cyrillic o
        ("\uff3cboxed\uff5b5\uff5d", "\uff3cboxed\uff5b5\uff5d"),  # fullwidth backslash and braces
        ("\\boxed{\uff15}", "\\boxed{\uff15}"),  # fullwidth 5
        ("\\boxed{\u0665}", "\\boxed{\u0665}"),  # Arabic-Indic 5
        ("\\boxed{5\u0301" + "\u0301" * 1000 + "}", None),  # zalgo
        ("\\boxed{\u202e5-\u202c}", None),
        (bytes(range(256)).decode("utf-8", "surrogateescape"), None),
        (b"\\boxed{\xff\xfe5\xc3(}".decode("utf-8", "surrogateescape"), None),
        ("\r\n\\boxed{\r5\r}\r\n", None),
        ("5" + "\x7f" * 500, None),
    ]
    if k < len(canon):
        return canon[k]
    r = rng.random()
    if r < 0.3:
        return _garbage(rng, rng.randint(1, 60)), None
    if r < 0.5:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
        return raw.decode("utf-8", "surrogateescape"), None
    if r < 0.7:  # a control character spliced into an innocent answer
        s = rng.choice(["\\frac{1}{2}", "5", "x+1", "\\sqrt{2}"])
        i = rng.randrange(len(s) + 1)
        return s[:i] + rng.choice(CONTROL + WEIRD) + s[i:], None
    if r < 0.85:
        return rng.choice(WEIRD) * rng.randint(1, 3000), None
    return payload() + _garbage(rng, 5), None


# ---------------------------------------------------------------------------------------------- boxes

UNCLOSED = [
    "\\boxed{",
    "\\boxed{5",
    "\\boxed{5}\\boxed{6",
    "\\boxed",
    "\\boxed 5",
    "\\boxed{\\}",
    "\\boxed{{{5}",
    "\\fbox{",
    "\\boxed{5\\}",
    "\\boxed{\\\\}",
    "$\\boxed{$",
    "}}}}}\\boxed{5}}}}}",
    "\\boxed{\\boxed{\\boxed{5}",
    "\\boxed{5}}" + "}" * 1000,
    "\\boxed" + "{" * 1000 + "5",
    "\\boxed{" * 1000 + "5",
    "\\\\boxed{5}",
    "\\boxed}{5",
    "boxed{5}",
    "\\box{5}",
    "\\boxed{{}",
    "\\boxed{5" + "\\}" * 1000,
    "\\fbox{\\boxed{5}",
]


def unclosed(rng: random.Random, k: int, payload: Callable[[], str]) -> str:
    if k < len(UNCLOSED):
        return UNCLOSED[k]
    opener = rng.choice(["\\boxed{", "\\fbox{", "\\boxed {", "\\boxed{{", "$\\boxed{"])
    tail = rng.choice(["", "{" * rng.randint(1, 5000), "\\}", " and then", "\\boxed{"])
    return rng.choice(["", "So ", "\\boxed{1} "]) + opener + payload() + tail


def many_boxes(rng: random.Random, k: int, payload: Callable[[], str]) -> str:
    count = rng.choice([2, 10, 100, 1000, rng.randint(1, 10_000)])
    r = rng.random()
    if k == 0:
        return "\\boxed{1}" * 10_000 + "\\boxed{" + payload() + "}"
    if r < 0.3:  # hostile earlier boxes, innocent last one
        return "".join(f"\\boxed{{{payload()}}} " for _ in range(min(count, 20))) + "\\boxed{5}"
    if r < 0.5:  # innocent earlier boxes, hostile last one
        return "\\boxed{5} " * count + f"\\boxed{{{payload()}}}"
    if r < 0.7:  # boxes inside boxes
        return "\\boxed{1 " * min(count, 2000) + f"\\fbox{{{payload()}}}" + "}" * min(count, 2000)
    if r < 0.85:
        return "".join(rng.choice(["\\boxed{", "\\fbox{", "}", "{", "5", "\\}"]) for _ in range(count * 3))
    return f"\\boxed{{\\boxed{{{payload()}}}}}" * min(count, 200)


# ------------------------------------------------------------------------------------------ placement


def _place(rng: random.Random, payload: str, gold_fn: Callable[[], str]) -> tuple[str, str, str]:
    """(placement, response, gold) for a payload: in or out of a box, next to a box, as the gold, both sides."""
    r = rng.random()
    prefix = rng.choice(["", "So the answer is ", "Therefore, $", "Let me think.\n\n"])
    if r < 0.40:
        return "boxed", f"{prefix}\\boxed{{{payload}}}{rng.choice(['', '.', '$.', ' done'])}", gold_fn()
    if r < 0.45:
        return "fbox", f"{prefix}\\fbox{{{payload}}}", gold_fn()
    if r < 0.50:
        return "nested_box", f"\\boxed{{\\boxed{{{payload}}}}}", gold_fn()
    if r < 0.60:
        return "outside", f"{prefix}{payload}", gold_fn()
    if r < 0.67:
        return "before_box", f"{payload} so \\boxed{{5}}", gold_fn()
    if r < 0.74:
        return "after_box", f"\\boxed{{5}} {payload}", gold_fn()
    if r < 0.88:
        return "gold", rng.choice(["\\boxed{5}", "\\boxed{x+1}", "\\boxed{\\frac{1}{2}}"]), payload
    if r < 0.94:
        return "both_same", f"\\boxed{{{payload}}}", payload
    return "both", f"\\boxed{{{payload}}}", gold_fn()


def hostile_cases(n: int, marker: Path, seed: int = 0) -> list[Case]:
    """n hostile cases, families interleaved (round-robin with a seeded shuffle), deterministic for a seed."""
    rng = random.Random(seed)
    marker = Path(marker)
    small_payloads: list[Callable[[], str]] = [
        lambda: _injection_payload(rng, marker),
        lambda: tower(rng, 10**9),
        lambda: factorial(rng, 10**9),
        lambda: nesting(rng, 10**9)[0][:3000],
        lambda: control(rng, 10**9, lambda: _injection_payload(rng, marker))[0],
    ]

    def payload() -> str:
        return rng.choice(small_payloads)()

    def gold() -> str:
        return rng.choice(SIMPLE_GOLDS) if rng.random() < 0.8 else payload()[:5000]

    def place(family: str, p: str) -> Case:
        placement, response, g = _place(rng, p, gold)
        return Case(family, placement, response, g)

    def f_injection(k: int) -> Case:
        return place("injection", _injection_payload(rng, marker))

    def f_tower(k: int) -> Case:
        return place("tower", tower(rng, k))

    def f_factorial(k: int) -> Case:
        return place("factorial", factorial(rng, k))

    def f_nesting(k: int) -> Case:
        p, whole = nesting(rng, k)
        return Case("nesting", "whole", whole, gold()) if whole is not None else place("nesting", p)

    def f_megabyte(k: int) -> Case:
        response, g = megabyte(rng, k)
        return Case("megabyte", "whole", response, g)

    def f_control(k: int) -> Case:
        p, whole = control(rng, k, payload)
        return Case("control", "whole", whole, gold()) if whole is not None else place("control", p)

    def f_unclosed(k: int) -> Case:
        return Case("unclosed", "whole", unclosed(rng, k, payload), gold())

    def f_many_boxes(k: int) -> Case:
        return Case("many_boxes", "whole", many_boxes(rng, k, payload), gold())

    def f_mixed(k: int) -> Case:
        parts = [payload() for _ in range(rng.randint(2, 3))]
        return place("mixed", rng.choice(["", " ", "+", "\\cdot ", "}{", "^{"]).join(parts))

    # weights: the megabyte family is rare (its strings are big), the cheap payload families common
    families = [
        (f_injection, 20),
        (f_tower, 12),
        (f_factorial, 12),
        (f_nesting, 10),
        (f_megabyte, 0.4),
        (f_control, 12),
        (f_unclosed, 8),
        (f_many_boxes, 5),
        (f_mixed, 10),
    ]
    total = sum(w for _, w in families)
    counts = [max(1, int(n * w / total)) for _, w in families]
    counts[0] += n - sum(counts)  # rounding remainder to injection
    order = [i for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(order)
    seen = [0] * len(families)
    cases = []
    for i in order:
        cases.append(families[i][0](seen[i]))
        seen[i] += 1
    return cases


def hostile_answers(n: int, marker: Path, seed: int = 0) -> list[tuple[str, str]]:
    """n hostile (response, gold) pairs; see `hostile_cases` for the family and placement of each."""
    return [(c.response, c.gold) for c in hostile_cases(n, marker, seed)]


def best_times(fn: Callable[[str], object], make: Callable[[int], str], sizes: tuple[int, ...]) -> list[float]:
    """Best of 3 wall times of `fn(make(n))` for each n: the linear-time tests compare them (4x the input well
    under 16x the time; quadratic would be 16x)."""
    times = []
    for n in sizes:
        text = make(n)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            fn(text)
            best = min(best, time.perf_counter() - t)
        times.append(best)
    return times
