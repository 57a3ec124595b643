r"""Answer grading: is the model's boxed answer equal to the gold answer?

The package, in the order a pair goes through it:
    extract.py      where the answer is: the boxes of a text (also how gold solutions are read, and where the
                    rollout cuts an attempt)
    fast.py         what the calling process decides in microseconds: `cheap_verdict`, and the size guards
    math_verify.py  the adapter to the Math-Verify package (its eval-safety notes), run in the workers
    pool.py         the worker processes and their hard per-item timeout
    __init__.py     `Grader`, which runs the steps below, and `Grade`, one verdict
    second.py       `second_equal`, a second grader sharing no parser with Math-Verify (the grader audit's)

What it does not know
    Prompts, rewards (+1 / -0.5 / -1 is the environment's business, `pipeline.env`), datasets, tokens.
    A gold answer is just a string (``"18"``, ``"\frac{\sqrt{3}}{3}"``, ``"$x=2$"``).

How a pair is decided (cheapest first; each step either answers or passes on)
    1. No complete box -> wrong (the answer under ``grading.multi_box``: the last box, or all boxes as a list;
       with ``fallback``, the released baseline's rule, a response without a box answers with its last number).
    2. `fast.cheap_verdict`: an empty or overlong answer is wrong; the same text, equal normalised spellings or
       equal plain numbers are right, numbers that differ wrong.
    3. `fast.size_guard`, on the answer and on the gold: a power tower, huge factorial, deep nesting... -> wrong.
    4. Cache: a bounded LRU of earlier Math-Verify verdicts per (answer, gold).
    5. Math-Verify (`math_verify.math_verify_equal`) in a worker process; a worker that exceeds the timeout is
       killed and replaced, the item counts as wrong (``Grade.timed_out``) and is logged.

Try it
    >>> with Grader(workers=1, timeout_s=5.0, multi_box="last") as grader:
    ...     grader.is_correct(r"... so the answer is $\boxed{\dfrac{1}{2}}$.", "0.5")
    True

    ``pytest --doctest-modules pipeline/grading`` runs the examples; ``pytest tests/test_grading.py`` the tests;
    ``python bench/grader.py`` the speed/agreement benchmark against plain Math-Verify.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.grading.extract import MULTI_BOX_RULES, answer_of, released_answer
from pipeline.grading.fast import cheap_verdict, size_guard
from pipeline.grading.math_verify import math_verify_equal
from pipeline.grading.pool import WorkerPool, clip

if TYPE_CHECKING:
    from pipeline.config import GradingConfig

logger = logging.getLogger(__name__)

CACHE_SIZE = 50_000  # Math-Verify verdicts remembered per grader


@dataclass(frozen=True)
class Grade:
    """One graded response.

    correct: the verdict.  answer: the extracted answer, `extract.answer_of` (None: no complete box).
    timed_out: Math-Verify ran past the timeout and was killed (correct is then False).
    via: who decided: "no_box" | "fast" | "guard" | "cache" | "math_verify" | "timeout" | "crash".
    elapsed_s: time spent on this item (for Math-Verify: dispatch to reply, queueing excluded).
    """

    correct: bool
    answer: str | None
    timed_out: bool = False
    via: str = "fast"
    elapsed_s: float = 0.0


class Grader:
    r"""Grades responses against gold answers: steps 1-4 in the calling process, Math-Verify in `workers` worker
    processes, each item under a hard `timeout_s`; `multi_box` is the rule of `extract.answer_of`.

    Built once per process from the configuration (`from_config`) and passed to whoever grades; it owns its
    workers, which start on first use and stop at `close()` (or the end of a ``with`` block, or interpreter
    exit).  `grade` may be called from any thread.  `worker_fn` replaces Math-Verify (the tests' stand-ins).

    Example:
        >>> with Grader(workers=1, timeout_s=5.0, multi_box="last") as grader:
        ...     grades = grader.grade([r"\boxed{2x}", r"\boxed{3}", "3"], ["x+x", "3", "3"])
        >>> [(g.correct, g.answer, g.via) for g in grades]
        [(True, '2x', 'math_verify'), (True, '3', 'fast'), (False, None, 'no_box')]
    """

    def __init__(
        self, workers: int, timeout_s: float, multi_box: str, worker_fn: Callable[[str, str], bool] = math_verify_equal
    ):
        if multi_box not in MULTI_BOX_RULES:
            raise ValueError(f"grader: multi_box must be one of {MULTI_BOX_RULES}, got {multi_box!r}")
        self.multi_box = multi_box
        self.pool = WorkerPool(workers, timeout_s, worker_fn)
        self._cache: collections.OrderedDict[tuple[str, str], bool] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._thread: ThreadPoolExecutor | None = None  # sends `submit`'s Math-Verify pairs to the pool

    @classmethod
    def from_config(cls, cfg: GradingConfig, ranks: int = 1) -> Grader:
        """The grader of ``cfg.grading``; `ranks` processes of one node share its workers (at least one each)."""
        return cls(max(1, cfg.workers // ranks), cfg.timeout_s, cfg.multi_box)

    def grade(self, responses: Sequence[str], golds: Sequence[str], fallback: bool = False) -> list[Grade]:
        """One `Grade` per response, in order. `fallback`: a response without a box is graded on the released
        baseline's fallback answer (`extract.released_answer`: "... the answer is X", else its last number)."""
        return self.submit(responses, golds, fallback).result()

    def submit(self, responses: Sequence[str], golds: Sequence[str], fallback: bool = False) -> Future[list[Grade]]:
        """`grade` without waiting for Math-Verify: steps 1-4 run now, in the caller; the pairs left go to the
        workers from a background thread. The future is already done when no pair needed Math-Verify (most of a
        rollout's), so a caller that polls it (`rollout`) goes on at once."""
        extract = released_answer if fallback else answer_of
        return self._grade(responses, golds, lambda response: extract(response, self.multi_box))

    def grade_answers(self, answers: Sequence[str | None], golds: Sequence[str]) -> list[Grade]:
        r"""One `Grade` per answer already extracted (None: no box), in order: steps 2-5 without step 1.

        For comparing two answers, one taken as the gold (is a retry's ``0.5`` the earlier ``\frac{1}{2}``?).

        Example:
            >>> with Grader(workers=1, timeout_s=5.0, multi_box="last") as grader:
            ...     [g.correct for g in grader.grade_answers(["0.5", "2x", None], [r"\frac{1}{2}", "x+x", "1"])]
            [True, True, False]
        """
        return self._grade(answers, golds, lambda answer: answer).result()

    def _grade(
        self, responses: Sequence[str | None], golds: Sequence[str], answer_in: Callable[[str | None], str | None]
    ) -> Future[list[Grade]]:
        if len(responses) != len(golds):
            raise ValueError(f"grade: {len(responses)} responses but {len(golds)} golds")
        grades: list[Grade | None] = [None] * len(responses)
        todo: dict[tuple[str, str], list[int]] = {}  # what Math-Verify decides, de-duplicated
        for i, (response, gold) in enumerate(zip(responses, golds)):
            t0 = time.perf_counter()
            answer = answer_in(response)
            gold = str(gold)
            if answer is None:
                grades[i] = Grade(False, None, via="no_box", elapsed_s=time.perf_counter() - t0)
                continue
            verdict = cheap_verdict(answer, gold)
            if verdict is not None:
                grades[i] = Grade(verdict, answer, via="fast", elapsed_s=time.perf_counter() - t0)
                continue
            if reason := size_guard(answer) or ((r := size_guard(gold)) and f"gold: {r}"):
                logger.info("grader refused %r (gold %r): %s (counted wrong)", clip(answer), clip(gold), reason)
                grades[i] = Grade(False, answer, via="guard", elapsed_s=time.perf_counter() - t0)
                continue
            key = (answer, gold)
            cached = self._cache_get(key)
            if cached is not None:
                grades[i] = Grade(cached, answer, via="cache", elapsed_s=time.perf_counter() - t0)
                continue
            todo.setdefault(key, []).append(i)
        if not todo:
            done: Future[list[Grade]] = Future()
            done.set_result(grades)  # type: ignore[arg-type]
            return done

        def math_verify() -> list[Grade]:
            keys = list(todo)
            for key, (verdict, via, elapsed) in zip(keys, self.pool.run(keys)):
                if via == "math_verify":
                    self._cache_put(key, verdict)
                for i in todo[key]:
                    grades[i] = Grade(verdict, key[0], timed_out=via == "timeout", via=via, elapsed_s=elapsed)
            return grades  # type: ignore[return-value]

        with self._cache_lock:
            if self._thread is None:  # one thread: the pool serves one batch at a time anyway
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="grader")
            return self._thread.submit(math_verify)

    def is_correct(self, response: str, gold: str) -> bool:
        r"""Is the answer of `response` equal to `gold`? No box, a timeout or an error count as wrong.

        Example:
            >>> with Grader(workers=1, timeout_s=5.0, multi_box="last") as grader:
            ...     grader.is_correct(r"The area is \boxed{12\text{ cm}^2}.", "12"), grader.is_correct("12", "12")
            (True, False)
        """
        return self.grade([response], [gold])[0].correct

    def clear_cache(self) -> None:
        """Forget cached Math-Verify verdicts (workers keep their small parse caches until restarted)."""
        with self._cache_lock:
            self._cache.clear()

    def close(self) -> None:
        """Stop the workers (idempotent); they start again if the grader is used again."""
        with self._cache_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=True)
        self.pool.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
