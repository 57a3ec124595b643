"""Faults, for real: SIGKILL of training, evaluation and figure jobs in the middle of the workflow, a second
Snakemake on the same directory, checkpoints that cannot be written (a file in the way; a file-size limit that
makes writes fail as on a full disk), and a damaged checkpoint. Nothing is lost or half-written, and the rerun
ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline import io
from tests.conftest import ROOT, smoke_config
from tests.test_train import task, train_cmd  # noqa: F401  (fixture)
from tests.test_workflow import ENV, SNAKEMAKE

SMOKE = smoke_config(steps=16, eval_every=8)  # long enough to be killed at several checkpoints


def start(workdir: Path, *args: str) -> subprocess.Popen:
    (workdir / "smoke.yaml").write_text(SMOKE)
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "smoke.yaml"), "--cores", "2", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def jobs(proc: subprocess.Popen, verb: str) -> list[psutil.Process]:
    """Running `python -m pipeline <verb>` processes started by this Snakemake."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for p in children:
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if "pipeline" in cmd and verb in cmd:
            found.append(p)
    return found


def wait_for(condition, timeout: float = 300, what: str = "") -> None:
    t0 = time.time()
    while not condition():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def checkpoints(workdir: Path) -> int:
    """Training progress: the newest checkpoint's step, summed over the runs (old checkpoints are pruned)."""
    runs = (workdir / "results" / "tiny" / "runs").glob("*/checkpoints")
    return sum(max((int(p.name.split("_")[1]) for p in run.glob("step_*")), default=0) for run in runs)


def assert_no_partial_outputs(workdir: Path) -> None:
    """Every trace file is complete (one JSON record per question); every metrics/report json parses."""
    results = workdir / "results" / "tiny"
    for path in results.glob("eval/*/*/k*.jsonl"):
        lines = path.read_text().splitlines()
        assert len(lines) == 20 and all(json.loads(line)["id"] for line in lines), path
    for path in [*results.glob("eval/*/*/metrics.json"), *(workdir / "reports").glob("*.json")]:
        json.loads(path.read_text())
    for path in (workdir / "reports" / "figures").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.read_bytes()[-8:-4] == b"IEND", path


def outcome(workdir: Path) -> dict:
    """What the run produced: summary.json without its provenance (which records when and where each model was
    made) and the trained weights' bytes."""
    models = workdir / "results" / "tiny" / "models"
    summary = json.loads((workdir / "reports" / "summary.json").read_text())
    assert set(summary.pop("provenance")) == {"base", "multi_attempt_s0", "baseline_s0"}
    assert summary.pop("run")["config_hash"]  # the report step's own provenance: when it ran
    return {
        "summary": summary,
        "weights": {p.parent.name: p.read_bytes() for p in models.glob("*_s0/model.safetensors")},
    }


@pytest.mark.slow
def test_killed_jobs_and_a_second_snakemake_lose_nothing_and_the_rerun_matches(tmp_path):
    """Reference: one uninterrupted run, during which a second `snakemake` on the same directory is refused.
    Faulty: training SIGKILLed three times at random checkpoints, then an evaluation job and the figures job
    killed mid-run; after each kill `snakemake` is simply run again. The end: identical weights and summary."""
    ref = tmp_path / "uninterrupted"
    ref.mkdir()
    first = start(ref, "all")
    wait_for(
        lambda: (ref / ".snakemake" / "locks").is_dir() and any((ref / ".snakemake" / "locks").iterdir()),
        what="the first snakemake to lock its directory",
    )
    second = start(ref, "all")
    code, out = finish(second, timeout=120)
    assert code != 0 and "Directory cannot be locked" in out
    code, out = finish(first)
    assert code == 0, out[-3000:]
    assert_no_partial_outputs(ref)

    run = tmp_path / "interrupted"
    run.mkdir()
    rng = random.Random(0)
    for kill in range(3):  # training, three times, at a random number of checkpoints further on
        proc = start(run, "all")
        target = checkpoints(run) + rng.randint(1, 4)
        wait_for(lambda: checkpoints(run) >= target or proc.poll() is not None, what="training checkpoints")
        victims = jobs(proc, "train")
        assert victims, f"kill {kill}: no training job running"
        for p in victims:
            p.send_signal(signal.SIGKILL)
        code, out = finish(proc)
        assert code != 0, out[-2000:]
        assert_no_partial_outputs(run)
    for verb in ("evaluate", "figures"):  # then an evaluation job, then the figures, mid-run
        proc = start(run, "all")
        wait_for(lambda: jobs(proc, verb) or proc.poll() is not None, what=f"a {verb} job")
        time.sleep(rng.uniform(0.5, 2.0))
        victims = jobs(proc, verb)
        for p in victims:
            p.send_signal(signal.SIGKILL)
        code, out = finish(proc)
        assert victims and code != 0, f"{verb}: nothing killed\n{out[-2000:]}"
        assert_no_partial_outputs(run)
    code, out = finish(start(run, "all"))
    assert code == 0, out[-3000:]
    assert_no_partial_outputs(run)
    assert not list(run.rglob(".*.tmp")), "temporary files of killed writers were left behind"
    assert outcome(run) == outcome(ref)


def run_train(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)


CFG = {
    "train": {
        "steps": 3,
        "rollout_batch": 4,
        "samples_per_prompt": 2,
        "train_batch": 8,
        "micro_batch": 4,
        "eval_every": 0,
        "save_every": 1,
        "keep_checkpoints": 5,
    }
}


def test_a_checkpoint_in_the_way_stops_training_with_the_previous_one_intact(task, tiny_model_dir, tmp_path):  # noqa: F811
    """The folder for checkpoint 3 cannot be created: a clear error, checkpoints 1-2 intact, nothing half
    written; once the obstacle is gone a rerun resumes from checkpoint 2 and finishes."""
    run, out = tmp_path / "run", tmp_path / "model"
    (run / "checkpoints").mkdir(parents=True)
    blocker = run / "checkpoints" / ".step_000003.tmp"
    blocker.write_text("not a folder")
    proc = run_train(train_cmd(task, tiny_model_dir, run, out, CFG))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: checkpoint" in proc.stderr and "step_000003 could not be written" in proc.stderr
    assert "step_000002, is intact" in proc.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [".step_000003.tmp", "step_000001", "step_000002"]
    assert not out.exists()
    blocker.unlink()
    proc = run_train(train_cmd(task, tiny_model_dir, run, out, CFG))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr and "step 2" in proc.stderr
    assert (out / "model.safetensors").is_file()


def test_a_full_disk_while_checkpointing_is_a_clear_error(task, tiny_model_dir, tmp_path):  # noqa: F811
    """A file-size limit makes the checkpoint's writes fail as a full disk does (EFBIG instead of ENOSPC)."""
    run, out = tmp_path / "run", tmp_path / "model"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))

    proc = run_train(train_cmd(task, tiny_model_dir, run, out, CFG), preexec_fn=small_files)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "step_000001 could not be written" in proc.stderr and "there is no earlier checkpoint" in proc.stderr
    assert list((run / "checkpoints").iterdir()) == [] and not out.exists()


def test_a_damaged_checkpoint_is_named_with_what_to_do(task, tiny_model_dir, tmp_path):  # noqa: F811
    run, out = tmp_path / "run", tmp_path / "model"
    cfg = {"train": {**CFG["train"], "steps": 2}}
    assert run_train(train_cmd(task, tiny_model_dir, run, out, cfg)).returncode == 0
    (run / "checkpoints" / "step_000002" / "actor" / "model.safetensors").unlink()
    proc = run_train(train_cmd(task, tiny_model_dir, run, tmp_path / "again", cfg))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "checkpoint" in proc.stderr and "step_000002 cannot be resumed" in proc.stderr
    assert "missing weights" in proc.stderr and "delete that folder" in proc.stderr


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "k1.jsonl"
    code = (
        f"import sys, os; sys.path.insert(0, {str(ROOT)!r}); from pipeline.io import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_text('half')\n    os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code])
    assert len(list(tmp_path.glob(".k1.jsonl.*.tmp"))) == 1 and not target.exists()
    (tmp_path / ".k1.jsonl.other.name.tmp").mkdir()  # not one of ours: left alone
    io.write_jsonl(target, [{"id": "q0"}])
    assert target.read_text() == '{"id": "q0"}\n'
    assert [p.name for p in tmp_path.glob(".*.tmp")] == [".k1.jsonl.other.name.tmp"]
