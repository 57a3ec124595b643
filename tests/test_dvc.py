"""DVC over the Snakemake workflow, for real: `dvc metrics show` fits in 120 columns and `dvc plots show` draws one
line per model (on a hand-made report), `dvc params diff` and `dvc exp show` see every key of the resolved
configuration (params.yaml), and (slow) `dvc repro` runs the pipeline (a smoke-sized config) and push -> wipe ->
pull through a local remote restores data, models, checkpoints, evaluations and reports byte for byte.

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

from pipeline import dvc_views
from tests.conftest import copy_of_repository, smoke_config
from tests.test_dvc_views import CURVES, RETRIES, SUMMARY

SMOKE_CONFIG = smoke_config()
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
TRACKED = ("results/tiny/data", "results/tiny/models", "results/tiny/runs", "results/tiny/eval", "reports")


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def digests(repo: Path) -> dict[str, str]:
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in TRACKED
        for p in sorted((repo / folder).rglob("*"))
        if p.is_file() and p.name not in ("README.md", ".gitignore")
    }


def series(plot: dict) -> dict[str, list[tuple[float, float]]]:
    """Model -> (x, y) points of one figure of `dvc plots show --json` (DVC names each y column a `field`)."""
    spec = plot[0]["content"]
    x = spec["encoding"]["x"]["field"]
    points: dict[str, list[tuple[float, float]]] = {}
    for row in spec["data"]["values"]:
        points.setdefault(row["field"], []).append((float(row[x]), float(row["dvc_inferred_y_value"])))
    return points


def test_metrics_fit_the_terminal_and_plots_draw_one_line_per_model(tmp_path):
    repo = copy_of_repository(tmp_path / "repo")
    dvc_views.write(SUMMARY, CURVES, RETRIES, repo / "reports")
    shown = run(repo, "dvc", "metrics", "show")
    lines = shown.splitlines()
    assert max(map(len, lines)) <= 120, shown
    assert lines[0].split() == ["Path", "acc@1", "acc@2", "gain", "gain_hi", "gain_lo"], shown
    assert sorted(line.split()[0] for line in lines[1:]) == [
        f"reports/metrics/{m}.json" for m in ("base", "baseline", "multi_attempt")
    ]

    plots = json.loads(run(repo, "dvc", "plots", "show", "--json"))["data"]
    assert len(plots) == 4
    tables = dvc_views.plot_tables(SUMMARY, CURVES, RETRIES)
    for title, plot in plots.items():
        name = {
            "Accuracy": "accuracy_vs_k",
            "Held-out": "heldout_accuracy",
            "Training": "reward",
            "Wrong": "wrong_to_right",
        }[title.split()[0]]
        table = tables[name]
        x = table.columns[0]
        assert series(plot) == {
            m: list(zip(table[x].astype(float), table[m].astype(float))) for m in table.columns[1:]
        }, title
    assert set(series(plots[next(iter(plots))])) == {"multi_attempt", "baseline", "base"}


def test_params_diff_and_exp_show_see_every_key(tmp_path):
    """params.yaml (written by the Snakefile) holds the resolved configuration: a key set in config.yaml shows up
    in `dvc params diff`, and `dvc exp show` has a column for every key, not only `scale`."""
    repo = copy_of_repository(tmp_path / "repo")
    snakemake_n = [sys.executable, "-m", "snakemake", "-n", "-q"]
    run(repo, *snakemake_n)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    run(repo, *git, "add", "-A")
    run(repo, *git, "commit", "-qm", "default")
    (repo / "config.yaml").write_text("scale: tiny\ntrain:\n  steps: 7\n")
    run(repo, *snakemake_n)
    diff = json.loads(run(repo, "dvc", "params", "diff", "--json"))
    assert diff == {"params.yaml": {"train.steps": {"old": 200, "new": 7, "diff": -193}}}
    shown = run(repo, "dvc", "exp", "show", "--csv", "--no-pager")
    header = shown.splitlines()[0].split(",")
    assert {"train.steps", "train.actor_lr", "env.reward.correct", "eval.max_k", "experiment"} <= set(header)


@pytest.mark.slow
def test_repro_metrics_plots_and_push_pull_round_trip(tmp_path):
    repo = copy_of_repository(tmp_path / "repo")
    (repo / "config.yaml").write_text(SMOKE_CONFIG)
    out = run(repo, "dvc", "repro")
    for stage in ("data", "models", "evaluation", "report"):
        assert f"Running stage '{stage}'" in out
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status")
    assert "didn't change, skipping" in run(repo, "dvc", "repro")  # nothing reruns

    metrics = json.loads(run(repo, "dvc", "metrics", "show", "--json"))[""]["data"]
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    for model in ("multi_attempt", "baseline", "base"):
        values = metrics[f"reports/metrics/{model}.json"]["data"]
        entry = summary["base"] if model == "base" else summary["variants"][model]
        assert values == dvc_views.headline(entry) and set(values) == {"acc@1", "acc@2", "gain", "gain_lo", "gain_hi"}
    run(repo, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert html.count("vegaEmbed(") == 4 and '"field": "multi_attempt"' in html  # one line per model

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
