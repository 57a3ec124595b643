"""`python -m pipeline push` (pipeline/push.py): which files of a model folder go up, the card that goes with
them (refreshed with the model's evaluations), and an upload through the real huggingface_hub client to a
stand-in for the hub's HTTP API on localhost (tests/hub_standin.py), which keeps what each commit sent. The
stand-in answers every file as a regular (non-LFS) upload; the real hub's LFS/Xet path is not exercised here.

nice -n 10 python -m pytest -n 0 -q tests/test_push.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

from pipeline import card, config, provenance, push
from pipeline.io import DataError, PipelineError, write_json
from tests.conftest import ROOT
from tests.hub_standin import Hub

SHARED = [  # what a trained model folder holds that is shared, as train() writes it (tiny_model_dir + the rest)
    "best.json",
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "provenance.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "train_log.jsonl",
    "train_summary.json",
]


@pytest.fixture
def model_folder(tiny_model_dir, tmp_path):
    """A trained model's folder as train() leaves it, plus things that must not go up."""
    folder = tmp_path / "results" / "tiny" / "models" / "multi_attempt_s0"
    shutil.copytree(tiny_model_dir, folder)
    prov = provenance.record(config.resolve({}))
    provenance.write(folder, prov)
    card.write(folder, card.render(prov, folder.name, "train", "`results/tiny/models/base`", {"heldout/mean": 0.5}))
    (folder / "train_log.jsonl").write_text('{"step": 1}\n')
    write_json(folder / "train_summary.json", {"steps": 1})
    write_json(folder / "best.json", {"step": 1})
    shutil.copytree(tiny_model_dir, folder / "steps" / "step_000010")  # a curve actor: stays home
    (folder / ".nfs0001").write_text("")  # a dotfile, a temporary file and a stray note: stay home
    (folder / "model.safetensors.tmp").write_text("")
    (folder / "notes.txt").write_text("mine")
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == sorted(
        n for n in SHARED if n not in ("best.json", "provenance.json", "train_log.jsonl", "train_summary.json")
    )
    return folder


def evaluations(root):
    """metrics.json of the model on the synthetic set, where the workflow puts it (relative to `root`)."""
    metrics = {"model": "multi_attempt_s0", "by_k": {"1": {"accuracy": 0.25}, "2": {"accuracy": 0.5}}}
    write_json(root / "results" / "tiny" / "eval" / "multi_attempt_s0" / "synthetic" / "metrics.json", metrics)


def test_only_save_pretrained_files_provenance_and_logs_go_up(model_folder):
    assert push.files(model_folder) == SHARED  # README.md goes up refreshed, from memory
    with pytest.raises(DataError, match="not a model folder"):
        push.files(model_folder / "steps")


def test_the_card_pushed_holds_the_evaluations_found_under_the_experiments_eval_folder(
    model_folder, tmp_path, monkeypatch
):
    before, eval_dir = push.refreshed_card(model_folder, tmp_path / "elsewhere")
    assert before.data.eval_results is None and str(eval_dir) == str(tmp_path / "elsewhere")
    evaluations(tmp_path)
    monkeypatch.chdir(tmp_path)  # the workflow's directory: results/tiny/eval, from the provenance's experiment
    after, eval_dir = push.refreshed_card(model_folder)
    assert str(eval_dir) == "results/tiny/eval"
    results = {(r.dataset_name, r.metric_name): r.metric_value for r in after.data.eval_results}
    assert results == {("synthetic", "accuracy@k=1"): 0.25, ("synthetic", "accuracy@k=2"): 0.5}
    assert "| synthetic | 0.250 | 0.500 |" in after.text and "- heldout/mean: 0.500" in after.text
    assert (model_folder / "README.md").read_text() == str(before)  # the folder's own card is not rewritten


def run_push(args, cwd, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "push", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), "HF_HOME": str(cwd / "hf"), **env},
    )


def test_the_dry_run_lists_the_files_and_the_cards_header_and_sends_nothing(model_folder, tmp_path):
    evaluations(tmp_path)
    with Hub() as hub:
        proc = run_push([str(model_folder), "--repo-id", "me/m", "--dry-run"], tmp_path, HF_ENDPOINT=hub.url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = [line.split()[-1] for line in proc.stdout.splitlines()[: len(SHARED)]]
    assert listed == SHARED and "README.md (the card, with 2 results from results/tiny/eval)" in proc.stdout
    assert "model-index:" in proc.stdout and "license: mit" in proc.stdout
    assert hub.requests == []


def test_a_push_commits_exactly_those_files_and_the_refreshed_card(model_folder, tmp_path):
    evaluations(tmp_path)
    args = [str(model_folder), "--repo-id", "me/multi-attempt", "--private", "--revision", "tiny-run"]
    with Hub() as hub:
        proc = run_push(args, tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN="hf_test")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"-> {hub.url}/me/multi-attempt/commit/" in proc.stderr
    repo = hub.repos["me/multi-attempt"]
    assert repo["private"] and hub.token == "hf_test"
    assert repo["branches"]["main"] == {}  # committed to the branch asked for, created from main
    tree = repo["branches"]["tiny-run"]
    assert sorted(tree) == sorted([*SHARED, "README.md"])
    assert all(tree[name] == (model_folder / name).read_bytes() for name in SHARED)
    pushed = ModelCard(tree["README.md"].decode())
    assert pushed.data.base_model is None and pushed.data.license == "mit"
    assert [r.metric_value for r in pushed.data.eval_results] == [0.25, 0.5]


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "push: no Hugging Face token; run `hf auth login` or set HF_TOKEN"),
        ({"HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": "1"}, "push: HF_HUB_OFFLINE is set"),
        ({"HF_TOKEN": "hf_test", "HF_ENDPOINT": "http://127.0.0.1:9"}, "push: cannot reach the hub at"),
    ],
)
def test_without_a_token_offline_or_unreachable_it_fails_in_one_line(model_folder, tmp_path, env, message):
    proc = run_push([str(model_folder), "--repo-id", "me/m"], tmp_path, **env)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1].startswith(f"error: {message}"), proc.stderr[-3000:]


def test_a_bad_repo_id_and_a_folder_without_a_card_are_refused(model_folder):
    model, c = model_folder, push.refreshed_card(model_folder)[0]
    with pytest.raises(PipelineError, match="'not a repo id' is not a hub repository id"):
        push.upload(model, "not a repo id", c, token="hf_test")
    (model / "README.md").unlink()
    with pytest.raises(DataError, match="no README.md"):
        push.refreshed_card(model)


def test_pushing_needs_no_configuration_file(model_folder, tmp_path):
    proc = run_push([str(model_folder), "--repo-id", "me/m", "--dry-run"], tmp_path)
    assert proc.returncode == 0 and json.dumps("config.json")[1:-1] in proc.stdout, proc.stderr[-2000:]
