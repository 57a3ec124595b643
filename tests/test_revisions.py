"""Hub revisions (config model.revision, data.math.revision, data.benchmarks.<name>.revision): the download plan
asks for them, models load at them offline from a hub cache laid out as a download leaves it, checkpoints of a
pinned base say which revision they started from, and provenance.json records the commit each download got.

nice -n 10 python -m pytest -n 0 -q tests/test_revisions.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import torch

from pipeline import checkpoint, config, download, hub, models, provenance
from pipeline.download import Fetch
from tests.conftest import ROOT

QWEN = "Qwen/Qwen2.5-Math-1.5B"
PINNED = {
    "model": {"revision": "a" * 40},
    "data": {"math": {"revision": "v1.0"}, "benchmarks": {"math500": {"source": "HuggingFaceH4/MATH-500"}}},
}


def test_the_plan_asks_for_each_configured_revision_and_none_by_default():
    fetches = download.plan(config.resolve({"scale": "paper", **PINNED}))
    got = {(f.repo_id, f.split): f.revision for f in fetches}
    assert got[QWEN, None] == "a" * 40
    assert got["DigitalLearningGmbH/MATH-lighteval", "train"] == got["DigitalLearningGmbH/MATH-lighteval", "test"]
    assert got["DigitalLearningGmbH/MATH-lighteval", "test"] == "v1.0"
    assert got["HuggingFaceH4/MATH-500", "test"] is None  # "" = the default branch
    assert {f.revision for f in download.plan(config.resolve({"scale": "paper"}))} == {None}


def test_the_dry_run_prints_the_revision():
    override = json.dumps({"scale": "paper", "model": {"revision": "main"}})
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "download", "--config", override, "--dry-run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert json.loads(proc.stdout)[0] == {
        "kind": "model",
        "repo_id": QWEN,
        "config": None,
        "split": None,
        "revision": "main",
    }


def test_a_revision_with_a_space_is_refused_by_key():
    try:
        config.resolve({"data": {"benchmarks": {"amc23": {"source": "math-ai/amc23", "revision": "my branch"}}}})
    except config.ConfigError as e:
        assert "data.benchmarks.amc23.revision: 'my branch' does not match" in str(e)
    else:
        raise AssertionError("a revision with a space was accepted")


def test_only_the_configured_base_model_loads_at_model_revision():
    cfg = config.resolve({"scale": "paper", **PINNED})
    assert hub.model_revision(cfg, QWEN) == "a" * 40
    assert hub.model_revision(cfg, "Qwen/Qwen2.5-Math-1.5B-Instruct") is None  # e.g. an eval.models entry
    assert hub.model_revision(cfg, "results/paper/models/baseline_s42") is None
    assert hub.model_revision(config.resolve({"scale": "paper"}), QWEN) is None


def test_a_pinned_base_enters_the_checkpoint_fingerprint_and_an_unpinned_one_leaves_it_as_it_was():
    def fp(user):
        return checkpoint.fingerprint(config.resolve({"scale": "paper", **user}), "multi_attempt", 42, QWEN, 8)

    assert "base_revision" not in fp({})  # fingerprints written before revisions existed still match
    assert fp({"model": {"revision": "v2"}})["base_revision"] == "v2"


def hub_cache_with_two_commits(hf_home, tiny_model_dir):
    """owner/tiny in a hub cache as snapshot_download leaves it: commit `old` (the tiny model), commit `new` (its
    weights + 1), refs/main -> new and refs/v1 -> old."""
    repo = hf_home / "hub" / "models--owner--tiny"
    old, new = "1" * 40, "2" * 40
    shutil.copytree(tiny_model_dir, repo / "snapshots" / old)
    model, tokenizer = models.load(tiny_model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    models.save(model, tokenizer, repo / "snapshots" / new)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(new)
    (repo / "refs" / "v1").write_text(old)
    return old, new


LOAD = """
import sys, torch
from pipeline import config, hub, models
cfg = config.resolve({"model": {"source": "owner/tiny", "revision": sys.argv[1]}})
model, _ = models.load("owner/tiny", revision=hub.model_revision(cfg, "owner/tiny"))
critic = models.Critic.from_pretrained("owner/tiny", revision=hub.model_revision(cfg, "owner/tiny"))
print(float(model.model.embed_tokens.weight.sum()), float(critic.backbone.embed_tokens.weight.sum()))
"""


def test_models_load_offline_at_the_configured_revision(tiny_model_dir, tmp_path):
    hub_cache_with_two_commits(tmp_path / "hf", tiny_model_dir)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}

    def embedding_sums(revision: str) -> list[float]:
        proc = subprocess.run(
            [sys.executable, "-c", LOAD, revision], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [float(x) for x in proc.stdout.split()]

    first = float(models.load(tiny_model_dir)[0].model.embed_tokens.weight.detach().sum())
    n = models.load(tiny_model_dir)[0].model.embed_tokens.weight.numel()
    assert embedding_sums("1" * 40) == [first, first] == embedding_sums("v1")  # a commit, or a tag / branch
    newest = embedding_sums("")  # "" = the default branch: main
    assert newest[0] == newest[1] and abs(newest[0] - (first + n)) < 1e-2 * n
    proc = subprocess.run([sys.executable, "-c", LOAD, "3" * 40], capture_output=True, text=True, env=env)
    assert "ModelLoadError: model owner/tiny: could not be loaded" in proc.stderr  # a commit not downloaded


def test_provenance_records_the_commits_the_download_manifest_holds(tmp_path, monkeypatch):
    cfg = config.resolve({"scale": "paper", **PINNED})
    fetched = [{**f.__dict__, "commit": f"{i:040x}"} for i, f in enumerate(download.plan(cfg))]
    other = {**Fetch("model", "owner/other").__dict__, "commit": "f" * 40}  # another experiment's download
    path = download.manifest_path(tmp_path, cfg.experiment)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([*fetched, other]))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    prov = provenance.record(cfg)
    assert prov["hub"] == fetched
    assert prov["hub"][0] == {**Fetch("model", QWEN, revision="a" * 40).__dict__, "commit": "0" * 40}
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    assert provenance.record(cfg)["hub"] is None  # no manifest: nothing was downloaded by the workflow
