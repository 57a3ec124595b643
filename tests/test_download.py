"""pipeline.download: what a configuration fetches from the hub (nothing can be downloaded here, so the plan)."""

import json
import subprocess
import sys

from pipeline import config, download
from pipeline.download import Fetch
from tests.conftest import ROOT


def test_plan_of_the_paper_preset():
    assert download.plan(config.resolve({"scale": "paper"})) == [
        Fetch("model", "Qwen/Qwen2.5-Math-1.5B"),
        Fetch("dataset", "DigitalLearningGmbH/MATH-lighteval", split="train"),
        Fetch("dataset", "DigitalLearningGmbH/MATH-lighteval", split="test"),
        Fetch("dataset", "HuggingFaceH4/MATH-500", split="test"),
        Fetch("dataset", "HuggingFaceH4/aime_2024", split="train"),
        Fetch("dataset", "math-ai/amc23", split="test"),
        Fetch("dataset", "math-ai/minervamath", split="test"),
        Fetch("dataset", "math-ai/olympiadbench", split="test"),
    ]


def test_plan_skips_what_is_local(tmp_path):
    assert download.plan(config.resolve({})) == []  # the tiny experiment builds its model and data
    (tmp_path / "math500.jsonl").write_text("")
    cfg = config.resolve(
        {
            "scale": "paper",
            "model": {"source": str(tmp_path)},
            "data": {
                "benchmarks": {
                    "math500": {"source": str(tmp_path / "math500.jsonl")},
                    "amc23": {"source": "owner/name:cfg_a,cfg_b"},
                }
            },
        }
    )
    fetches = download.plan(cfg)
    assert {f.kind for f in fetches} == {"dataset"} and "HuggingFaceH4/MATH-500" not in {f.repo_id for f in fetches}
    assert [f for f in fetches if f.repo_id == "owner/name"] == [
        Fetch("dataset", "owner/name", config="cfg_a", split="test"),
        Fetch("dataset", "owner/name", config="cfg_b", split="test"),
    ]


def test_dry_run_prints_the_plan():
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "download", "--config", '{"scale": "paper"}', "--dry-run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert json.loads(proc.stdout)[0] == {
        "kind": "model",
        "repo_id": "Qwen/Qwen2.5-Math-1.5B",
        "config": None,
        "split": None,
        "revision": None,
    }
