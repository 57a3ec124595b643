"""Trackers beside TensorBoard (config `trackers`, pipeline/runlog.py): off by default, and wandb in its offline
mode writes a local run folder under the run folder holding what was logged. wandb is an optional extra
(`pip install -e '.[tracking]'`): its test is skipped, saying so, where it is not installed. trackio is wired
the same way through accelerate but not installed here; only its missing-package error is checked.

nice -n 10 python -m pytest -n 0 -q tests/test_trackers.py
"""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from pipeline import config, data, runlog
from pipeline.io import PipelineError

HAS_WANDB = importlib.util.find_spec("wandb") is not None
HAS_TRACKIO = importlib.util.find_spec("trackio") is not None


def test_no_tracker_by_default_and_an_unknown_one_is_refused_by_key():
    assert config.resolve({}).trackers == [] == config.resolve({"scale": "paper"}).trackers
    assert runlog.open_trackers([], None, "tiny", "multi_attempt_s0", {}) == []
    with pytest.raises(config.ConfigError, match=r"trackers.0: 'mlflow' is not one of \['wandb', 'trackio'\]"):
        config.resolve({"trackers": ["mlflow"]})


def test_trackers_are_not_part_of_a_runs_identity():
    from pipeline import checkpoint

    def fp(user):
        return checkpoint.fingerprint(config.resolve(user), "multi_attempt", 0, "base", 1)

    assert fp({"trackers": ["wandb"]}) == fp({})  # a checkpoint resumes whichever trackers log it


def history_items(data: bytes, key: str) -> list:
    """The values logged under `key` in a wandb run file (.wandb): each history item is a protobuf message with
    the key as field 2 and its JSON value as field 16 (wandb/proto/wandb_internal.proto, HistoryItem)."""
    tag, values, at = b"\x12" + bytes([len(key)]) + key.encode() + b"\x82\x01", [], 0
    while (at := data.find(tag, at)) >= 0:
        start = at + len(tag) + 1
        values.append(json.loads(data[start : start + data[at + len(tag)]]))
        at = start
    return values


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install -e '.[tracking]')")
def test_wandb_offline_writes_a_local_run_under_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = config.resolve({}).to_dict()
    trackers = runlog.open_trackers(["wandb"], tmp_path, "tiny", "multi_attempt_s0", cfg)
    for step, reward in ((1, 0.25), (2, 0.5)):
        runlog.track(trackers, {"step": step, "train/reward": reward, "train/note": "text is not a scalar"})
    for tracker in trackers:
        tracker.finish()
    import wandb

    wandb.teardown()  # the run file is written by wandb's service process: wait for it, as a process exit does
    (run,) = tmp_path.glob("wandb/offline-run-*-tiny-multi_attempt_s0")  # named by its id: resumed, not duplicated
    data = (run / "run-tiny-multi_attempt_s0.wandb").read_bytes()
    # wandb's run file holds each logged item twice here (two records per log call); the order is the steps'
    assert list(dict.fromkeys(history_items(data, "train/reward"))) == [0.25, 0.5]
    assert history_items(data, "train/note") == []
    assert b"train.steps" in data and b"env.prompt_template" in data  # the flattened configuration


@pytest.mark.skipif(HAS_TRACKIO, reason="trackio is installed: its missing-package error cannot be shown")
def test_a_tracker_that_is_not_installed_is_a_one_line_error(tmp_path):
    with pytest.raises(
        PipelineError, match=r"trackers \['trackio'\]: trackio not installed; pip install -e '\.\[tracking\]'"
    ):
        runlog.open_trackers(["trackio"], tmp_path, "tiny", "multi_attempt_s0", {})


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install -e '.[tracking]')")
def test_a_training_run_logs_its_records_to_wandb_beside_tensorboard(tiny_model_dir, tmp_path):
    from tests.test_train import SMALL, run, train_cmd

    train, heldout = data.synthetic_splits(0, 200, 16, 3)
    data.write_records(tmp_path / "train.jsonl", train)
    data.write_records(tmp_path / "heldout.jsonl", heldout)
    cfg = {**SMALL, "train": {**SMALL["train"], "algorithm": "grpo", "steps": 2}, "trackers": ["wandb"]}
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    run(train_cmd(tmp_path, tiny_model_dir, tmp_path / "run", tmp_path / "model", cfg), env=env)
    log = [json.loads(line) for line in (tmp_path / "model" / "train_log.jsonl").read_text().splitlines()]
    (run_file,) = (tmp_path / "run").glob("wandb/offline-run-*-tiny-multi_attempt_s0/run-*.wandb")
    items = run_file.read_bytes()
    speeds = list(dict.fromkeys(history_items(items, "perf/tokens_per_s")))  # a different number at every step
    assert speeds == [r["perf/tokens_per_s"] for r in log if "perf/tokens_per_s" in r] and len(speeds) == 2
    assert set(history_items(items, "train/reward")) == {r["train/reward"] for r in log if "train/reward" in r}
    assert set(history_items(items, "heldout/mean")) == {r["heldout/mean"] for r in log if "heldout/mean" in r}
    assert (tmp_path / "run" / "tensorboard").is_dir()
