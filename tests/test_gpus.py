"""pipeline/gpus.py (`python -m pipeline with-gpus N -- command`): jobs that run side by side on a machine with
several GPUs get devices of their own. No GPU is needed: the devices are what CUDA_VISIBLE_DEVICES lists, and the
jobs print what they were given."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from pipeline import gpus
from pipeline.io import DataError
from tests.conftest import ROOT


def test_claims_are_distinct_and_wait_until_devices_are_free(tmp_path):
    first, held = gpus.claim(2, ["0", "1", "2"], tmp_path)
    second, held_too = gpus.claim(1, ["0", "1", "2"], tmp_path)
    assert first == ["0", "1"] and second == ["2"]
    got = []
    waiter = threading.Thread(target=lambda: got.append(gpus.claim(2, ["0", "1", "2"], tmp_path, poll_s=0.05)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not got  # 2 wanted, 0 free: it waits, holding none
    for fd in held:
        os.close(fd)
    waiter.join(10)
    assert got[0][0] == ["0", "1"]
    for fd in held_too + got[0][1]:
        os.close(fd)


def test_a_job_wanting_more_gpus_than_the_machine_has_is_refused(tmp_path):
    with pytest.raises(DataError, match="a job needs 3 GPUs and this machine has 2"):
        gpus.claim(3, ["0", "1"], tmp_path)


def test_the_command_sees_its_devices_and_its_exit_code_comes_back(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    out = tmp_path / "seen"
    code = gpus.run_with(2, ["sh", "-c", f"echo $CUDA_VISIBLE_DEVICES > {out}; exit 3"], ["4", "6", "7"], tmp_path)
    assert code == 3 and out.read_text().strip() == "4,6"


def test_on_a_machine_without_gpus_the_command_runs_as_it_is(tmp_path, monkeypatch):
    """train.gpus: 2 on CPU is two CPU processes (the rehearsal): nothing to hand out, nothing refused."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # no nvidia-smi
    out = tmp_path / "seen"
    assert gpus.run_with(2, ["sh", "-c", f"echo ${{CUDA_VISIBLE_DEVICES-unset}} > {out}"], None, tmp_path) == 0
    assert out.read_text().strip() == "unset" and not list(tmp_path.glob("*.lock"))


def test_inside_slurm_the_command_runs_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # SLURM's binding
    out = tmp_path / "seen"
    assert gpus.run_with(1, ["sh", "-c", f"echo $CUDA_VISIBLE_DEVICES > {out}"], None, tmp_path) == 0
    assert out.read_text().strip() == "2,3" and not list(tmp_path.glob("*.lock"))


JOBS = """
rule all:
    input: expand("job{{i}}.json", i=range(6))

rule job:
    output: "job{{i}}.json"
    resources: gpu=1
    shell:
        "{python} -m pipeline with-gpus 1 -- {python} -c "
        "'import json, os, sys, time; t = time.time(); time.sleep(1.0); "
        "json.dump([os.environ[\\"CUDA_VISIBLE_DEVICES\\"], t, time.time()], open(sys.argv[1], \\"w\\"))' {{output}}"
"""


def test_snakemake_jobs_on_two_gpus_never_share_one(tmp_path):
    """Six one-GPU jobs, --resources gpu=2 and four cores: two run at a time, each on a device of its own, as the
    rules with GPUs run on a workstation (`--resources gpu=N`, docs/paper-scale.md)."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(JOBS.format(python=sys.executable)))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1", "PYTHONPATH": str(ROOT)}
    env.pop("SLURM_JOB_ID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "4", "--resources", "gpu=2", "--directory", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(6)]
    assert {device for device, _, _ in runs} == {"0", "1"}
    overlapping = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :] if a[1] < b[2] and b[1] < a[2]]
    assert overlapping, "no two jobs ran at once"
    assert all(a[0] != b[0] for a, b in overlapping), runs


def test_the_paper_preset_runs_gpu_jobs_through_with_gpus_and_the_cpu_experiment_does_not(tmp_path):
    """The dry run's commands: 8 GPUs for training's torchrun, 1 for each evaluation job; none at the tiny scale."""
    base = [sys.executable, "-m", "snakemake", "-n", "-p", "--directory", str(tmp_path)]
    base += ["--snakefile", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config.yaml")]
    paper = subprocess.run([*base, "--config", "scale=paper"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert paper.returncode == 0, paper.stderr[-3000:]
    commands = [line for line in paper.stdout.splitlines() if "-m pipeline " in line]
    train = [c for c in commands if " train --config" in c]
    evaluate = [c for c in commands if " evaluate --config" in c]
    assert len(train) == 2 and all(
        "python -m pipeline with-gpus 8 -- torchrun --standalone --nproc_per_node 8 -m pipeline train" in c
        for c in train
    ), train
    assert len(evaluate) == 15 and all("with-gpus 1 -- python -m pipeline evaluate" in c for c in evaluate)
    tiny = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert tiny.returncode == 0 and " train --config" in tiny.stdout and "with-gpus" not in tiny.stdout
