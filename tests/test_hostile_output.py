r"""The grader under 10,000 generated hostile answers (`tests/hostile.py`): no code runs, nothing hangs, nothing
crashes, memory stays bounded.

One module-scoped run does the work and the tests below check what it measured:
    1. Positive control, in a subprocess (so the test process never runs a payload): every Python / exec / shell
       payload of `tests.hostile` really creates the marker file when evaluated (``eval`` with sympy's names in
       scope, ``exec``, ``sh -c``), and most do through ``sympy.sympify`` too.  The marker is deleted afterwards.
    2. `extract_answer` is timed on every response (pure Python in the calling process: must be linear).
    3. All pairs go through `Grader.grade` (the configuration's workers, as training uses it) in batches of
       `BATCH`, with ``timeout_s=TIMEOUT_S``.  2 s instead of the default 5 s (``grading.timeout_s``)
       only makes each killed worker cheaper here; the kill-and-replace mechanism is the same.  A sampler thread
       records the RSS of this process and of every worker meanwhile.
    4. Then: the marker does not exist (and nothing else appeared beside it), every pair got a boolean Grade,
       no item took longer than ``TIMEOUT_S + MARGIN_S``, the wall time is within a budget derived from what the
       items cost, the pool still grades, no zombie workers, memory under `MEMORY_BOUND`.

The printed summary (``pytest -s``) has the per-family routes and the numbers.  On the development machine (2
shared, busy CPU cores): 40-80 s wall, 12-13 items killed at the timeout (``\exp(\exp(\exp(100)))``,
``2^{99999 \cdot 99999}``, ``\Gamma(\Gamma(\Gamma(10)))``, 1990 unary minus signs), ~100 MiB for this process,
340-750 MiB peak per worker.
"""

from __future__ import annotations

import collections
import gc
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from pipeline import config
from pipeline.grading import Grade, Grader
from pipeline.grading.extract import extract_answer
from tests.hostile import best_times, exec_payloads, hostile_cases, python_payloads, shell_payloads

pytestmark = pytest.mark.slow  # the whole run takes about a minute on 2 cores

N_PAIRS = 10_000
SEED = 0
BATCH = 256  # pairs per grade_batch call, a rollout step's worth
TIMEOUT_S = 2.0
MARGIN_S = 1.0  # an item may overrun the timeout by the pool's polling and kill latency, no more
MEMORY_BOUND = 2 * 2**30  # peak RSS of a worker (its address space is capped at 2 GiB), and growth of this process
SLACK_S = 60.0  # fixed part of the wall-time budget: batch overheads, logging, a loaded CI machine
IN_PROCESS_S = 30.0  # all in-process decisions together (measured: a few seconds)
EXTRACT_S = 0.1  # extract_answer bound per call: EXTRACT_S + EXTRACT_S_PER_CHAR * len(response)
EXTRACT_S_PER_CHAR = 2e-6  # ~20x the measured worst rate (~90 ns/char on a megabyte of box openers)

CONTROL_SCRIPT = r"""
import json, subprocess, sys
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
marker = Path(spec["marker"])

def created():
    hit = marker.exists()
    marker.unlink(missing_ok=True)
    return hit

import sympy
sympy_names = {}
exec("from sympy import *", sympy_names)
out = {"python": [], "sympify": [], "exec": [], "shell": []}
for p in spec["python"]:
    try:
        eval(p, dict(sympy_names))
    except Exception:
        pass
    out["python"].append(created())
for p in spec["python"]:
    try:
        sympy.sympify(p)
    except Exception:
        pass
    out["sympify"].append(created())
for p in spec["exec"]:
    try:
        exec(p, {})
    except Exception:
        pass
    out["exec"].append(created())
for p, how in spec["shell"]:
    cmd = "echo " + p if how == "bare" else "echo '" + p + "'"
    subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    out["shell"].append(created())
Path(sys.argv[2]).write_text(json.dumps(out))
"""


def _control(marker: Path, workdir: Path) -> dict:
    spec = {
        "marker": str(marker),
        "python": python_payloads(marker),
        "exec": exec_payloads(marker),
        "shell": shell_payloads(marker),
    }
    (workdir / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-c", CONTROL_SCRIPT, str(workdir / "spec.json"), str(workdir / "out.json")],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"spec": spec, **json.loads((workdir / "out.json").read_text())}


class _MemorySampler(threading.Thread):
    """Peak RSS of this process and of each of its descendants (the grader workers), sampled every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peak_self = self.me.memory_info().rss
        self.peak_child = 0
        self.peak_children_total = 0
        self.samples = 0
        self.pids: set[int] = set()  # every descendant seen: the workers, including killed and replaced ones
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak_self = max(self.peak_self, self.me.memory_info().rss)
            total = 0
            for child in self.me.children(recursive=True):
                self.pids.add(child.pid)
                try:
                    rss = child.memory_info().rss
                except psutil.Error:  # exited meanwhile (a killed worker)
                    continue
                self.peak_child = max(self.peak_child, rss)
                total += rss
            self.peak_children_total = max(self.peak_children_total, total)
            self.samples += 1
            self._halt.wait(0.02)

    def stop(self):
        self._halt.set()
        self.join()


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone: reaped
        return False


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    marker_dir = workdir / "target"
    marker_dir.mkdir()
    marker = marker_dir / "pwned"

    # 1. positive control (subprocess), then a clean slate
    control = _control(marker, workdir)
    assert not marker.exists() and not any(marker_dir.iterdir())

    cases = hostile_cases(N_PAIRS, marker, seed=SEED)
    responses, golds = [c.response for c in cases], [c.gold for c in cases]

    # 2. extraction, timed per response
    extract_s = []
    for r in responses:
        t = time.perf_counter()
        extract_answer(r)
        extract_s.append(time.perf_counter() - t)

    # 3. a fresh grader; its start-up time calibrates the cost of replacing a killed worker
    grader = Grader(config.resolve({}).grading.workers, TIMEOUT_S, "last")
    t = time.perf_counter()
    assert grader.is_correct(r"\boxed{x+x}", "2x")
    startup_s = time.perf_counter() - t
    workers = grader.pool.n_workers
    # descendants that are not this run's workers (another test's processes) are left out of the zombie check
    others = {p.pid for p in psutil.Process().children(recursive=True)}
    others -= {w.process.pid for w in grader.pool._workers}
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    maxrss_self_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    maxrss_children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    sampler = _MemorySampler()
    sampler.start()
    grades, errors = [], []
    t0 = time.perf_counter()
    for i in range(0, N_PAIRS, BATCH):
        try:
            grades += grader.grade(responses[i : i + BATCH], golds[i : i + BATCH])
        except Exception as e:  # must never happen; recorded so the tests below can say which batch
            errors.append((i, repr(e)))
            grades += [None] * len(responses[i : i + BATCH])
    wall_s = time.perf_counter() - t0
    sampler.stop()

    # 4. afterwards: the same pool still grades, its workers are alive and no zombie is left
    usable = grader.is_correct(r"\boxed{2}", "2") and not grader.is_correct(r"\boxed{3}", "2")
    pool_pids = [w.process.pid for w in grader.pool._workers]
    live_workers = [pid for pid in pool_pids if psutil.pid_exists(pid) and not _is_zombie(pid)]
    zombies = [pid for pid in sampler.pids - others if _is_zombie(pid)]  # killed workers must have been reaped
    grader.close()  # reaps the workers, so RUSAGE_CHILDREN now covers every worker of the run
    maxrss_children_after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    maxrss_self_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    result = dict(
        marker=marker,
        marker_dir=marker_dir,
        control=control,
        cases=cases,
        grades=grades,
        errors=errors,
        grader=grader,
        extract_s=extract_s,
        startup_s=startup_s,
        workers=workers,
        wall_s=wall_s,
        usable=usable,
        live_workers=len(live_workers),
        zombies=zombies,
        processes_seen=len(sampler.pids - others),
        sampler=sampler,
        rss_before=rss_before,
        maxrss_self_before=maxrss_self_before,
        maxrss_self_after=maxrss_self_after,
        maxrss_children_before=maxrss_children_before,
        maxrss_children_after=maxrss_children_after,
    )
    result["budget_s"] = _budget(result)
    _print_summary(result)
    return result


def _worker_items(cases, grades):
    """One (via, elapsed) per distinct (answer, gold) sent to the workers (duplicates in a batch share one run)."""
    seen = {}
    for c, g in zip(cases, grades):
        if g is not None and g.via in ("math_verify", "timeout", "crash"):
            seen[(g.answer, c.gold, g.elapsed_s)] = (g.via, g.elapsed_s)
    return list(seen.values())


def _in_process_s(grades) -> float:
    """Time the calling process spent on the items it decided itself (extraction, fast path, guards, cache)."""
    return sum(g.elapsed_s for g in grades if g is not None and g.via not in ("math_verify", "timeout", "crash"))


def _budget(r) -> float:
    """Wall-time budget: in-process time + worker time shared by the workers + one start-up per killed worker."""
    in_process = _in_process_s(r["grades"])
    items = _worker_items(r["cases"], r["grades"])
    worker = sum(e for _, e in items)
    kills = sum(v != "math_verify" for v, _ in items)
    return in_process + worker / r["workers"] + kills * r["startup_s"] + SLACK_S


def _print_summary(r) -> None:
    cases, grades = r["cases"], r["grades"]
    table = collections.defaultdict(collections.Counter)
    for c, g in zip(cases, grades):
        table[c.family][g.via if g is not None else "ERROR"] += 1
        table[c.family]["correct"] += bool(g is not None and g.correct)
    routes = ["no_box", "fast", "guard", "cache", "math_verify", "timeout", "crash", "correct"]
    print(f"\nhostile grading: {len(cases)} pairs, {sum(len(c.response) + len(c.gold) for c in cases):,} chars")
    print(f"{'family':12}{'pairs':>7}" + "".join(f"{v:>12}" for v in routes))
    for family, cnt in sorted(table.items()):
        n = sum(cnt[v] for v in routes[:-1]) + cnt["ERROR"]
        print(f"{family:12}{n:>7}" + "".join(f"{cnt[v]:>12}" for v in routes))
    placements = collections.Counter(c.placement for c in cases)
    print("placements:", dict(sorted(placements.items())))
    items = _worker_items(cases, grades)
    timeouts = [c for c, g in zip(cases, grades) if g is not None and g.timed_out]
    near = sum(v == "math_verify" and e > TIMEOUT_S / 2 for v, e in items)
    print(
        f"wall {r['wall_s']:.1f}s (budget {r['budget_s']:.1f}s), workers {r['workers']}, worker start-up "
        f"{r['startup_s']:.1f}s, in-process {_in_process_s(grades):.1f}s, distinct items sent to workers {len(items)} "
        f"(finished in over {TIMEOUT_S / 2}s: "
        f"{near}), timeouts {len(timeouts)}, worker processes seen {r['processes_seen']}, "
        f"max item {max(g.elapsed_s for g in grades if g is not None):.2f}s (limit {TIMEOUT_S + MARGIN_S}s)"
    )
    for c in timeouts[:20]:
        print(f"  timed out: {c.family}/{c.placement} answer={extract_answer(c.response)!r:.70} gold={c.gold!r:.50}")
    ex = r["extract_s"]
    worst = max(range(len(ex)), key=lambda i: ex[i] / (EXTRACT_S + EXTRACT_S_PER_CHAR * len(cases[i].response)))
    print(
        f"extract_answer: total {sum(ex):.2f}s, max {max(ex) * 1e3:.1f}ms, worst vs bound "
        f"{ex[worst] * 1e3:.1f}ms on {len(cases[worst].response):,} chars ({cases[worst].family})"
    )
    s = r["sampler"]
    mib = 2**20
    print(
        f"memory: this process {r['rss_before'] / mib:.0f} MiB before, peak {s.peak_self / mib:.0f} MiB sampled "
        f"(ru_maxrss {r['maxrss_self_before'] / mib:.0f} -> {r['maxrss_self_after'] / mib:.0f} MiB); workers: peak "
        f"{s.peak_child / mib:.0f} MiB each, {s.peak_children_total / mib:.0f} MiB together "
        f"(RUSAGE_CHILDREN ru_maxrss {r['maxrss_children_before'] / mib:.0f} -> "
        f"{r['maxrss_children_after'] / mib:.0f} MiB), {s.samples} samples"
    )
    c = r["control"]
    print(
        "control (subprocess): payloads that created the marker: "
        + ", ".join(f"{k} {sum(c[k])}/{len(c[k])}" for k in ("python", "sympify", "exec", "shell"))
    )


# ------------------------------------------------------------------------------------------------- tests


def test_generator_is_seeded_and_covers_every_family(run):
    cases = run["cases"]
    assert len(cases) >= 10_000
    families = {c.family for c in cases}
    assert families == {
        "injection",
        "tower",
        "factorial",
        "nesting",
        "megabyte",
        "control",
        "unclosed",
        "many_boxes",
        "mixed",
    }
    placements = {c.placement for c in cases}
    assert {"boxed", "outside", "before_box", "after_box", "gold", "both", "both_same", "nested_box"} <= placements
    assert sum(len(c.response) >= 2**20 or len(c.gold) >= 2**20 for c in cases) >= 3  # megabyte strings
    assert any("\ud800" in c.response or "\ud800" in c.gold for c in cases)  # lone surrogates
    assert any("\x00" in c.response for c in cases)
    small = hostile_cases(300, run["marker"], seed=SEED)
    assert small == hostile_cases(300, run["marker"], seed=SEED)  # deterministic
    assert small != hostile_cases(300, run["marker"], seed=SEED + 1)


def test_payloads_are_live(run):
    """The positive control: the payloads are not duds; evaluated the way a careless grader would, they write the
    marker (in a subprocess, not in this process)."""
    c = run["control"]
    assert all(c["python"]), [p for p, ok in zip(c["spec"]["python"], c["python"]) if not ok]
    assert all(c["exec"]), [p for p, ok in zip(c["spec"]["exec"], c["exec"]) if not ok]
    shell_ok = [
        ok or ("python3" in p and shutil.which("python3") is None) for (p, _), ok in zip(c["spec"]["shell"], c["shell"])
    ]
    assert all(shell_ok), [p for (p, _), ok in zip(c["spec"]["shell"], shell_ok) if not ok]
    assert c["sympify"][0], "sympy.sympify of __import__('os').system(...) should run it"
    assert sum(c["sympify"]) >= len(c["sympify"]) // 2


def test_no_code_executed(run):
    assert not run["marker"].exists()
    assert list(run["marker_dir"].iterdir()) == []
    # and the payloads did reach the parser: injection strings and hostile golds went through Math-Verify
    via = collections.Counter((c.family, g.via) for c, g in zip(run["cases"], run["grades"]) if g is not None)
    assert via[("injection", "math_verify")] + via[("injection", "cache")] >= 200
    gold_side = sum(
        c.placement == "gold" and g is not None and g.via in ("math_verify", "cache")
        for c, g in zip(run["cases"], run["grades"])
    )
    assert gold_side >= 100


def test_every_pair_graded_without_exception(run):
    assert run["errors"] == []
    grades = run["grades"]
    assert len(grades) == len(run["cases"])
    assert all(isinstance(g, Grade) and isinstance(g.correct, bool) for g in grades)
    assert all(g.answer is None for g in grades if g.via == "no_box")
    # a refused, killed or crashed item is never counted right
    assert not any(g.correct for g in grades if g.via in ("no_box", "guard", "timeout", "crash"))
    assert all(g.timed_out == (g.via == "timeout") for g in grades)


def test_no_item_runs_past_the_timeout(run):
    grades = run["grades"]
    late = [
        (c.family, c.placement, g.via, g.elapsed_s)
        for c, g in zip(run["cases"], grades)
        if g is None or g.elapsed_s > TIMEOUT_S + MARGIN_S
    ]
    assert late == []
    # a guard regression would show up as many more kills (each costs a worker restart)
    assert sum(g.timed_out for g in grades if g is not None) <= len(grades) // 100


def test_total_time_within_budget(run):
    assert run["wall_s"] <= run["budget_s"], (run["wall_s"], run["budget_s"])
    assert _in_process_s(run["grades"]) <= IN_PROCESS_S  # no timeout protects the calling process


def test_extraction_is_linear(run):
    slow = [
        (c.family, len(c.response), s)
        for c, s in zip(run["cases"], run["extract_s"])
        if s > EXTRACT_S + EXTRACT_S_PER_CHAR * len(c.response)
    ]
    assert slow == []
    # and the scaling itself: 4x the input, well under 16x the time (quadratic would be 16x)
    for make in (lambda n: "\\boxed{" * n, lambda n: "\\boxed{1}" * n, lambda n: "{" * n + "\\boxed{5}" + "}" * n):
        times = best_times(extract_answer, make, (25_000, 100_000))
        assert times[1] < 8 * times[0] + 0.02, times


def test_memory_bounded(run):
    s = run["sampler"]
    assert s.samples > 10
    assert s.peak_child <= MEMORY_BOUND
    assert s.peak_self - run["rss_before"] <= MEMORY_BOUND
    assert run["maxrss_self_after"] <= max(run["maxrss_self_before"], run["rss_before"] + MEMORY_BOUND)
    assert run["maxrss_children_after"] <= max(run["maxrss_children_before"], MEMORY_BOUND)


def test_pool_usable_afterwards(run):
    assert run["usable"]
    assert run["live_workers"] == run["workers"]  # killed workers were replaced, none leaked
    assert run["zombies"] == []
    with run["grader"] as grader:
        assert grader.is_correct(r"\boxed{2}", "2")  # and with fresh workers after close() as well
