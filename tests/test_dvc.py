"""DVC over the Snakemake workflow, for real: `dvc repro` runs the pipeline (a smoke-sized config), `dvc metrics
show` and `dvc plots show` read our outputs, and push -> wipe -> pull through a local remote restores data,
models, checkpoints, evaluations and reports byte for byte.

The repository's files are copied into a fresh git repository under tmp_path, so the checkout is untouched.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_of_repository, smoke_config

SMOKE_CONFIG = smoke_config()
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
TRACKED = ("results/tiny/data", "results/tiny/models", "results/tiny/runs", "results/tiny/eval", "reports")


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def digests(repo: Path) -> dict[str, str]:
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in TRACKED for p in sorted((repo / folder).rglob("*"))
            if p.is_file() and p.name not in ("README.md", ".gitignore")}


@pytest.mark.slow
def test_repro_metrics_plots_and_push_pull_round_trip(tmp_path):
    repo = copy_of_repository(tmp_path / "repo")
    (repo / "config.yaml").write_text(SMOKE_CONFIG)
    out = run(repo, "dvc", "repro")
    for stage in ("data", "models", "evaluation", "report"):
        assert f"Running stage '{stage}'" in out
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status")
    assert "didn't change, skipping" in run(repo, "dvc", "repro")  # nothing reruns

    metrics = json.loads(run(repo, "dvc", "metrics", "show", "--json"))
    summary = metrics[""]["data"]["reports/summary.json"]["data"]
    assert set(summary["variants"]) == {"multi_attempt", "baseline"}
    assert set(summary["variants"]["multi_attempt"]["accuracy_at_k"]) == {"1", "2"}
    run(repo, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    for plot in ("reports_accuracy_csv", "reports_learning_curves_csv", "reports_retries_csv"):
        assert f"vegaEmbed('#{plot}'" in html
    assert '"variant": "multi_attempt"' in html  # the rows of our tables are in the plots' data

    before = digests(repo)
    assert any("/runs/multi_attempt_s0/checkpoints/step_000002/" in name for name in before)  # checkpoints too
    assert any(name.endswith("model.safetensors") for name in before) and "reports/summary.json" in before
    run(repo, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    run(repo, "dvc", "push")
    for folder in TRACKED[:-1]:
        shutil.rmtree(repo / folder)
    for name in before:
        (repo / name).unlink(missing_ok=True)
    shutil.rmtree(repo / ".dvc" / "cache")
    assert digests(repo) == {}
    run(repo, "dvc", "pull")
    assert digests(repo) == before
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status")
