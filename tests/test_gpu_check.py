"""bench/gpu_check.py on the software of the lent GPU machine (docs/gpu-validation.md): a fresh virtual environment
with torch, transformers and accelerate alone, as the machine's image has them, plus the wheels bench/gpu_wheels.py
prepares, installed with the command it prints and no package index. `bench/gpu_check.py --smoke` must pass there.

The image has torch 2.11; here the only CPU build at hand is 2.13.0, the version this repository pins."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

IMAGE = ("torch==2.13.0", "transformers==5.17.0", "accelerate==1.15.0")  # pyproject.toml's pins


def device_env(folder: Path) -> dict[str, str]:
    """Variables of a command run as on the device: the venv's python3, pip and ninja (DeepSpeed's JIT builds
    call it) first on PATH; no pip configuration or cache (this machine's points pip at local wheel folders);
    DeepSpeed's compiled ops kept beside the venv, built by it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    return env | {
        "PATH": f"{folder / 'venv' / 'bin'}{os.pathsep}{env['PATH']}",
        "VIRTUAL_ENV": str(folder / "venv"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "TORCH_EXTENSIONS_DIR": str(folder / "torch_extensions"),
    }


@pytest.fixture(scope="session")
def device_folder(request, tmp_path_factory) -> Path:
    """venv/ (IMAGE from the package index, then the carried wheels from wheels/ alone) and torch_extensions/,
    built once per Python, IMAGE and bench/gpu_wheels.py (its pins and install command) into pytest's cache
    (`--cache-clear` rebuilds it; with `-p no:cacheprovider` into a temporary folder). A build cut short lacks
    `ready` and is done again; the caches of earlier keys are removed."""
    script = (ROOT / "bench" / "gpu_wheels.py").read_bytes()
    key = "gpu-check-venv-" + hashlib.sha256(repr((sys.version, IMAGE)).encode() + script).hexdigest()[:12]
    folder = request.config.cache.mkdir(key) if hasattr(request.config, "cache") else tmp_path_factory.mktemp(key)
    if (folder / "ready").is_file():
        return folder
    for old in folder.parent.glob("gpu-check-venv-*"):
        shutil.rmtree(old)  # this key's unfinished build too
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", *IMAGE], check=True)
    wheels = subprocess.run(
        [sys.executable, "bench/gpu_wheels.py", "--out", folder / "wheels"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    install = wheels.stdout.splitlines()[-1]
    assert "pip install --no-index" in install, wheels.stdout
    subprocess.run(install, shell=True, cwd=ROOT, env=device_env(folder), check=True)
    (folder / "ready").touch()
    return folder


@pytest.mark.slow
def test_gpu_check_passes_on_the_image_packages_and_the_carried_wheels(device_folder):
    python = device_folder / "venv" / "bin" / "python"
    probe = (
        "import importlib.util as u; print([n for n in ('math_verify', 'tensorboard', 'datasets') if u.find_spec(n)])"
    )
    found = subprocess.run([python, "-c", probe], env=device_env(device_folder), capture_output=True, text=True)
    assert found.stdout.strip() == "[]", "the environment holds more of the project's packages than the image"

    proc = subprocess.run(
        [python, "bench/gpu_check.py", "--smoke"],
        cwd=ROOT,
        env=device_env(device_folder),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["smoke"] is True and report["device"] == "CPU (smoke)"
    checks = report["checks"]
    assert {name: r["status"] for name, r in checks.items()} == {
        "zero3_vs_zero0": "ok",
        "zero3_offload_vs_zero3": "ok",
        "trainer_resume": "ok",
        "train_memory": "skipped",
        "rollout_speed": "ok",
    }, checks
    assert "CUDA" in checks["train_memory"]["reason"]  # skipped only for want of a GPU
    equivalence, offload, resume, speed = (
        checks[name] for name in ("zero3_vs_zero0", "zero3_offload_vs_zero3", "trainer_resume", "rollout_speed")
    )
    assert {
        "update_rel_diff_zero3_vs_zero0",
        "update_rel_diff_zero0_vs_fp32",
        "update_rel_diff_zero3_vs_fp32",
        "step_size_zero0",
        "step_size_zero3",
        "grad_norm_fp32",
        "grad_norm_zero0",
        "grad_norm_zero3",
    } <= set(equivalence)
    assert equivalence["grad_norm_fp32"] > 0 and equivalence["update_rel_diff_zero0_vs_fp32"] > 0
    # the offloaded update was CPU Adam's, and it equals torch AdamW's on the same gradients to float rounding
    assert (offload["optimizer_zero3"], offload["optimizer_offload"]) == ("AdamW", "DeepSpeedCPUAdam")
    assert offload["grad_norm_offload"] == offload["grad_norm_zero3"] > 0
    assert offload["update_rel_diff_offload_vs_zero3"] <= 1e-3
    # two real steps moved the weights, and the resumed Trainer holds exactly the saved ones
    assert resume["resumed_step"] == 2 and resume["actor_update_rel"] > 0 and resume["response_tokens"] > 0
    assert resume["tensors"] > 0 and resume["tensors_differing"] == 0
    assert speed["policy_tokens"] == 8 * 16 and speed["tokens_per_s"] > 0  # every attempt ran to its budget
    assert 0 <= speed["cached_vs_recomputed_max_abs"] < 1
