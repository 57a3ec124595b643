"""Progress of long loops: a tqdm bar on a terminal, a log line now and then everywhere else.

A rule's log file is not a terminal: tqdm's `\\r` frames pile up there (45 KB per train log) and read as noise.
`progress_bar()` takes tqdm's arguments and returns a tqdm bar when stderr is a terminal, otherwise a `LogProgress`
with the same `update`, `set_postfix`, `close` and iteration, which logs a line at each tenth of the total (at
most one a second: a batch of dialogues ends at once) and at least every minute while the count moves, and the
last count when it closes. `library_bars_off` does the same for the bars of transformers, datasets and the hub.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def progress_bar(iterable: Iterable | None = None, **options) -> tqdm | LogProgress:
    """A tqdm bar if stderr is a terminal, else a `LogProgress`; `options` are tqdm's (total, desc, unit, initial,
    disable, leave)."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm  # here: the CLI imports this module, and the report's environment has no tqdm

        return tqdm(iterable, **options)
    options.pop("leave", None)  # a log line is never erased
    return LogProgress(iterable, **options)


def library_bars_off() -> None:
    """Off a terminal, turn off the bars of transformers, datasets and huggingface_hub ("Loading weights", ...).

    They read the setting when first imported, so call this before importing them (the CLI does, at its start).
    """
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class LogProgress:
    """tqdm's interface as log lines: `desc: n/total unit (p%), elapsed, rate, postfix`."""

    every_s = 60.0  # most seconds between two lines while the count moves
    min_s = 1.0  # fewest seconds between two lines at tenths of the total

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        disable: bool = False,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit, self.disable = iterable, total, desc, unit, disable
        self.n = self.logged_n = self.start_n = initial
        self.start = self.logged_at = time.monotonic()
        self.postfix = ""

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        since = now - self.logged_at
        due = (self._tenth(self.n) > self._tenth(self.logged_n) and since >= self.min_s) or since >= self.every_s
        if due and not self.disable:
            self._log(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.disable and self.n != self.logged_n:
            self._log(time.monotonic())

    def _tenth(self, n: int) -> int:
        return 10 * n // self.total if self.total else 0

    def _log(self, now: float) -> None:
        elapsed = now - self.start
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        rate = f", {(self.n - self.start_n) / elapsed:.2f} {self.unit}/s" if elapsed > 0 else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        log.info("%s: %s %s%s, %.0f s%s%s", self.desc, count, self.unit, share, elapsed, rate, postfix)
        self.logged_n, self.logged_at = self.n, now
