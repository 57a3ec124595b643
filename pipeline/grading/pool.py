"""Worker processes that run `worker_fn(answer, gold) -> bool` (Math-Verify) under a hard per-item timeout.

Why hand-written: a worker is a fresh `python -c` interpreter rather than a multiprocessing child.  "spawn" and
"forkserver" re-run the caller's __main__ script in every child, so a plain script calling `Grader.is_correct` at
top level would fork-bomb itself, and "fork" is unsafe in a process that runs torch threads.  The parent's
sys.path travels in argv so that the worker function (pickled by reference) imports as it does in the parent.

Each item's clock starts when a worker takes it; a worker past its deadline is killed (so no half-torn sympy state
is left behind) and replaced, and the item counts as wrong.  Workers cap their address space (`MEMORY_LIMIT_MB`),
so a memory bomb becomes a MemoryError (counted wrong) instead of swapping the machine.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from pipeline.grading.math_verify import warm_up

logger = logging.getLogger(__name__)

MEMORY_LIMIT_MB = 2048  # address space of a worker
STARTUP_TIMEOUT_S = 120.0  # a worker not ready by then (imports and warm-up) is replaced

_WORKER_BOOT = (
    "import sys, json; sys.path[:0] = json.loads(sys.argv[2]); "
    "from pipeline.grading.pool import _worker_main; _worker_main(int(sys.argv[1]))"
)


def _limit_memory(limit_mb: int) -> None:
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
    """Worker loop (a fresh interpreter): read the function, announce readiness, then answer
    (key, answer, gold) messages with (key, verdict)."""
    conn = multiprocessing.connection.Connection(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # silence "timeout is disabled" (by design here)
    fn = conn.recv()
    _limit_memory(MEMORY_LIMIT_MB)
    warm_up()
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


class _Worker:
    def __init__(self, fn):
        self.conn, child_conn = multiprocessing.Pipe(duplex=True)
        fd = child_conn.fileno()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT, str(fd), json.dumps(sys.path)],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
        )
        child_conn.close()
        self.conn.send(fn)
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


_LIVE_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


class WorkerPool:
    """`workers` processes running `worker_fn`; `run` sends each (answer, gold) to an idle worker, one item per
    worker at a time, and kills and replaces a worker whose item runs past `timeout_s`.

    Workers start on the first `run` (fresh interpreters: safe from any thread and from processes that use CUDA or
    threads) and stop at `close()` / interpreter exit; a closed pool starts them again when used.  `run` may be
    called from any thread; concurrent calls take turns.
    """

    def __init__(self, workers: int, timeout_s: float, worker_fn: Callable[[str, str], bool]):
        if workers < 1:
            raise ValueError(f"grader: workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"grader: timeout_s must be > 0, got {timeout_s}")
        self.n_workers, self.timeout_s, self.worker_fn = workers, timeout_s, worker_fn
        self._workers: list[_Worker] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()  # one batch at a time
        _LIVE_POOLS.add(self)

    def run(self, keys: Sequence[tuple[str, str]]) -> list[tuple[bool, str, float]]:
        """(verdict, via, elapsed) per (answer, gold): via is "math_verify", "timeout" or "crash" (then False)."""
        with self._lock:
            return self._run(keys)

    def close(self) -> None:
        """Stop all workers (idempotent)."""
        with self._lock:
            self._stop_workers()

    def _stop_workers(self) -> None:
        if self._pid == os.getpid():  # after a fork the workers belong to the parent: leave them alone
            for w in self._workers:
                w.stop()
        self._workers = []

    def _start_workers(self) -> None:
        if self._pid != os.getpid():
            self._workers, self._pid = [], os.getpid()
        while len(self._workers) < self.n_workers:
            self._workers.append(_Worker(self.worker_fn))

    def _replace(self, w: _Worker, kill: bool) -> None:
        w.stop(kill=kill)
        self._workers[self._workers.index(w)] = _Worker(self.worker_fn)

    def _run(self, keys: Sequence[tuple[str, str]]) -> list[tuple[bool, str, float]]:
        """Send each key to an idle worker; collect (verdict, via, elapsed) per key, killing late workers."""
        timeout_s = self.timeout_s
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
            deadlines += [w.started + STARTUP_TIMEOUT_S for w in self._workers if not w.ready]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else None
            ready = multiprocessing.connection.wait([w.conn for w in self._workers], timeout=wait_s)
            for w in [w for w in self._workers if w.conn in ready]:
                try:
                    key_index, verdict = w.conn.recv()
                except (EOFError, OSError):  # the worker died
                    if w in busy:
                        j, t = busy.pop(w)
                        logger.warning("grader worker died on answer=%r gold=%r (counted wrong)", *map(clip, keys[j]))
                        out[j] = (False, "crash", time.monotonic() - t)
                    elif not w.ready:
                        startup_failures += 1
                        if startup_failures > 3 * self.n_workers:
                            raise RuntimeError("grader workers keep dying at start-up (see their stderr)") from None
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
                        *map(clip, keys[j]),
                    )
                    out[j] = (False, "timeout", now - t)
                    self._replace(w, kill=True)
            for w in list(self._workers):
                if not w.ready and now - w.started > STARTUP_TIMEOUT_S:
                    startup_failures += 1
                    if startup_failures > 3 * self.n_workers:
                        raise RuntimeError("grader workers do not start (import of math_verify hangs?)")
                    self._replace(w, kill=True)
        return out  # type: ignore[return-value]


def clip(s: str, n: int = 200) -> str:
    """A text for a log line: its first `n` characters and how many more there are."""
    return s if len(s) <= n else s[:n] + f"...[{len(s) - n} more chars]"


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_LIVE_POOLS):
        try:
            pool._stop_workers()
        except Exception:  # interpreter is going down; never raise from atexit
            pass
