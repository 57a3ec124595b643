r"""Where the answer is in a text: its boxes (``\boxed{...}``, ``\fbox{...}``, the bare ``\boxed 5``).

The project's only box extractor: model answers and gold solutions (`pipeline.data`) are read with it alike.
`extract_answer` (the last complete box), `extract_answers` and `answer_of` (the answer under a ``multi_box``
rule), `first_box_end` and `BoxWatch` (where the rollout cuts an attempt, on a whole text or on a stream),
`is_formatted`.  Pure string work, linear in the text's length, no recursion.
"""

from __future__ import annotations

import re

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


def answer_of(text: str, multi_box: str) -> str | None:
    r"""The answer a response gives under a multi-box rule; None when it has no complete box.

    ``last`` (the released code's rule): the last box (`extract_answer`).  ``all``: every box, joined as a list
    ``a, b, c`` -- Math-Verify reads ``\boxed{1}, \boxed{2}`` as the set {1, 2} (it joins the boxes with a
    comma); the space after the comma keeps ``\boxed{12}, \boxed{345}`` a list rather than the number 12,345.
    With one box both rules give the same answer.

    Example:
        >>> answer_of(r"\boxed{1} and \boxed{2}", "last"), answer_of(r"\boxed{1} and \boxed{2}", "all")
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


# The released baseline's answer when a response has no box (Qwen2.5-Math's `extract_answer`, spec §2): the text
# after the last "he answer is" or "final answer is", else the last number. Both scans are linear.
_LAST_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|-?\.\d+")
_PHRASES = ("he answer is", "final answer is")


def released_answer(text: str, multi_box: str) -> str | None:
    r"""The answer under the released baseline's reward rule (`env.reward.rule: released_baseline`): the box
    answer (`answer_of`) if there is a complete box; else what follows the last "he answer is" (then "final
    answer is"), with newlines and the spaces after them removed and a leading ":" / trailing "." or "/" cut;
    else the last number (commas dropped); None when there is none of these.

    Example:
        >>> released_answer(r"so \boxed{3}. The answer is 4", "last"), released_answer("The answer is: 12.", "last")
        ('3', '12')
        >>> released_answer("2 apples and 3,500 pears", "last"), released_answer("no digits", "last")
        ('3500', None)
    """
    boxed = answer_of(text, multi_box)
    if boxed is not None:
        return boxed
    for phrase in _PHRASES:
        at = text.rfind(phrase)
        if at >= 0:
            answer = re.sub(r"\n\s*", "", text[at + len(phrase) :].strip())
            answer = answer.removeprefix(":").removesuffix(".").removesuffix("/").strip()
            return answer or None
    numbers = _LAST_NUMBER.findall(text.replace(",", ""))
    return numbers[-1] if numbers else None


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
            if (kind == "bare" and not rest) or (
                kind == "esc"
                and m.group() == "\\\\"
                and len(rest) < 5
                and ("boxed".startswith(rest) or "fbox".startswith(rest))
            ):
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
