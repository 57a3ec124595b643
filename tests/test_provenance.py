"""provenance.json: the base model's (build-base through the CLI), and the code fields in and out of a git checkout.
(A trained model's and a checkpoint's are checked in tests/test_train.py, summary.json's in tests/test_report.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import torch

from pipeline import config, data, numerics, sft
from tests import tensorboard_events
from tests.conftest import ROOT

SFT = {
    "model": {
        "sft": {
            "max_steps": 2,
            "batch_size": 4,
            "warmup_steps": 1,
            "eval_every": 2,
            "eval_questions": 4,
            "target_accuracy": 0.0,
            "retry_accuracy_target": 0.0,
        }
    }
}


def test_build_base_writes_provenance_with_the_resolved_config(tmp_path):
    train, heldout = data.synthetic_splits(0, 100, 8, 3)
    data.write_records(tmp_path / "train.jsonl", train)
    data.write_records(tmp_path / "heldout.jsonl", heldout)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "build-base",
            "--config",
            json.dumps(SFT),
            "--train",
            str(tmp_path / "train.jsonl"),
            "--heldout",
            str(tmp_path / "heldout.jsonl"),
            "--out",
            str(tmp_path / "base"),
            "--run-dir",
            str(tmp_path / "run"),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    prov = json.loads((tmp_path / "base" / "provenance.json").read_text())
    assert prov["config"] == config.resolve(SFT).to_dict()
    assert prov["versions"]["torch"] == torch.__version__ and prov["command"][1] == "build-base"
    # what it computed with (pipeline.numerics): the CPU, SFT's fixed threads whatever --threads asked, portable
    assert prov["cpu"] == numerics.cpu() and prov["numerics"]["torch_threads"] == sft.CPU_THREADS
    assert prov["numerics"]["portable"] == (numerics.is_x86_64() and bool(numerics.cpu()["avx2"]))
    # the SFT curves in TensorBoard, beside the RL runs', with the configuration as hyper-parameters
    found = tensorboard_events.tags(tmp_path / "run" / "tensorboard")
    assert {"sft/loss", "sft/accuracy", "sft/retry_accuracy"} <= set(found["scalars"]), found
    assert "model.sft.lr" in found["hparams"] and "config" in found["text"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # the tests run from a git checkout: its commit
        assert prov["code"]["commit"] == head.stdout.strip() and isinstance(prov["code"]["dirty"], bool)


def _code(package_root) -> dict:
    """provenance.record(...)["code"] as seen by a copy of the pipeline package under `package_root`."""
    script = (
        "import json; from pipeline import config, provenance; "
        "print(json.dumps(provenance.record(config.resolve({}))['code']))"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=package_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_commit_and_dirty_flag_of_the_checkout_or_null_with_a_reason(tmp_path):
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    code = _code(tmp_path)
    assert code["commit"] is None and code["dirty"] is None and "not a git repository" in code["reason"]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "pipeline")
    git("commit", "-q", "-m", "copy")
    assert _code(tmp_path) == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    with open(tmp_path / "pipeline" / "io.py", "a") as f:
        f.write("# an uncommitted change\n")
    assert _code(tmp_path) == {"commit": git("rev-parse", "HEAD"), "dirty": True}
