"""Model cards (pipeline/card.py): the hub's metadata header parses back with huggingface_hub's own reader, holds
base model, datasets, license and the k-attempt results as model-index, and a card written before evaluation is
refreshed into the card written after it.

nice -n 10 python -m pytest -n 0 -q tests/test_card.py
"""

from __future__ import annotations

import tomllib

import pytest
from huggingface_hub import ModelCard

from pipeline import card, config
from pipeline.io import DataError, write_json
from tests.conftest import ROOT

CODE = {"commit": "0123abcd", "dirty": False}


def prov(scale: str, **overrides) -> dict:
    cfg = config.resolve({"scale": scale, **overrides}).to_dict()
    return {"config": cfg, "code": CODE, "time_utc": "2026-12-06T00:00:00+00:00", "host": "node1"}


def metrics(accuracies: dict[int, float]) -> dict:
    """A metrics.json as eval-metrics writes it, cut to what a card reads."""
    return {"model": "m", "by_k": {str(k): {"k": k, "accuracy": a} for k, a in accuracies.items()}}


PAPER_EVALS = {"math500": metrics({1: 0.5, 2: 0.625}), "aime24": metrics({1: 0.1, 2: 0.2})}


def written(tmp_path, c: ModelCard) -> ModelCard:
    card.write(tmp_path, c)
    return ModelCard.load(tmp_path / "README.md")


def test_license_is_the_repository_license():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert card.LICENSE == pyproject["project"]["license"]["text"].lower()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_a_paper_card_before_evaluation_has_the_hub_metadata_and_no_model_index(tmp_path):
    c = written(tmp_path, card.render(prov("paper"), "multi_attempt_s42", "train", "`Qwen/Qwen2.5-Math-1.5B`", {}))
    d = c.data
    assert d.model_name == "multi_attempt_s42"
    assert d.base_model == "Qwen/Qwen2.5-Math-1.5B"  # the backticks of the body are not part of the id
    assert d.datasets == ["DigitalLearningGmbH/MATH-lighteval"]
    assert (d.license, d.library_name, d.pipeline_tag) == ("mit", "transformers", "text-generation")
    assert "ppo" in d.tags and "multi-attempt-rl" in d.tags
    assert d.eval_results is None and "model-index" not in d.to_dict()
    assert c.text.lstrip().startswith("# multi_attempt_s42\n")
    assert "Not evaluated when this card was written; the evaluations at k = 1..7" in c.text


def test_the_base_models_downloaded_commit_is_in_the_text(tmp_path):
    p = {
        **prov("paper", model={"revision": "v2"}),
        "hub": [{"kind": "model", "repo_id": "Qwen/Qwen2.5-Math-1.5B", "commit": "c" * 40}],
    }
    c = written(tmp_path, card.render(p, "baseline_s42", "train", "`Qwen/Qwen2.5-Math-1.5B`", {}))
    assert f"| base model | `Qwen/Qwen2.5-Math-1.5B` at revision `v2` (commit `{'c' * 40}`) |" in c.text


def test_a_tiny_card_names_no_hub_base_or_dataset_but_says_what_they_were(tmp_path):
    c = written(tmp_path, card.render(prov("tiny"), "base", "build-base", "none: built from scratch", {"acc": 0.5}))
    assert c.data.base_model is None and c.data.datasets is None  # a local folder is no hub id
    assert "| base model | none: built from scratch |" in c.text
    assert "synthetic 3-digit addition: 20000 questions, 500 held out (seed 1234)" in c.text
    assert "- acc: 0.500" in c.text and "grpo" in c.data.tags
    digest = card.config_hash(prov("tiny")["config"])
    assert f"`{digest}`: `results/tiny/configs/{digest}.json`" in c.text and "git commit `0123abcd`" in c.text


def test_evaluations_become_model_index_results_one_per_set_and_k(tmp_path):
    p = prov("paper", data={"benchmarks": {"math500": {"source": "HuggingFaceH4/MATH-500", "revision": "abc123"}}})
    c = written(tmp_path, card.render(p, "multi_attempt_s42", "train", "Qwen/Qwen2.5-Math-1.5B", {}, PAPER_EVALS))
    got = {(r.dataset_name, r.metric_name): r for r in c.data.eval_results}
    assert {key: r.metric_value for key, r in got.items()} == {
        ("aime24", "accuracy@k=1"): 0.1,
        ("aime24", "accuracy@k=2"): 0.2,
        ("math500", "accuracy@k=1"): 0.5,
        ("math500", "accuracy@k=2"): 0.625,
    }
    math500 = got["math500", "accuracy@k=2"]
    assert (math500.dataset_type, math500.dataset_split, math500.dataset_revision) == (
        "HuggingFaceH4/MATH-500",
        "test",
        "abc123",
    )
    assert got["aime24", "accuracy@k=1"].dataset_revision is None  # "": the default branch, not named
    assert got["aime24", "accuracy@k=1"].dataset_type == "HuggingFaceH4/aime_2024"
    assert {r.metric_type for r in c.data.eval_results} == {"accuracy"}
    assert "model-index" in (tmp_path / "README.md").read_text()
    assert "| aime24 | 0.100 | 0.200 |" in c.text and "| math500 | 0.500 | 0.625 |" in c.text


def test_refreshing_the_card_written_at_training_gives_the_card_with_evaluations(tmp_path):
    p = prov("paper")
    before = written(tmp_path / "a", card.render(p, "baseline_s42", "train", "`Qwen/Qwen2.5-Math-1.5B`", {"h": 1.0}))
    after = card.render(p, "baseline_s42", "train", "`Qwen/Qwen2.5-Math-1.5B`", {"h": 1.0}, PAPER_EVALS)
    assert str(card.refresh(before, p["config"], PAPER_EVALS)) == str(after)
    assert str(card.refresh(before, p["config"], {})) == str(before)


def test_refresh_refuses_a_card_this_pipeline_did_not_write():
    with pytest.raises(DataError, match="Evaluations"):
        card.refresh(ModelCard("---\nmodel_name: x\n---\n# x\n"), prov("tiny")["config"], {})


def test_read_evaluations_takes_the_models_own_sets_and_refuses_other_json(tmp_path):
    write_json(tmp_path / "m" / "synthetic" / "metrics.json", metrics({1: 0.25}))
    write_json(tmp_path / "m" / "synthetic" / "feedback_echo" / "metrics.json", metrics({1: 0.9}))  # an ablation
    write_json(tmp_path / "other" / "synthetic" / "metrics.json", metrics({1: 0.9}))
    assert card.read_evaluations(tmp_path, "m") == {"synthetic": metrics({1: 0.25})}
    assert card.read_evaluations(tmp_path, "none") == {}
    write_json(tmp_path / "m" / "bad" / "metrics.json", {"accuracy": 1})
    with pytest.raises(DataError, match="bad/metrics.json: not a metrics.json"):
        card.read_evaluations(tmp_path, "m")


def test_the_training_card_says_how_the_actor_was_made_and_keeps_the_heldout_numbers(tmp_path):
    summary = {"variant": "multi_attempt", "seed": 42, "steps": 1280, "final": {"heldout/math500": 0.5, "ppo/kl": 1}}
    c = written(tmp_path, card.trained(prov("paper"), "multi_attempt_s42", "`Qwen/Qwen2.5-Math-1.5B`", summary, 640))
    made_by = "| made by | `python -m pipeline train`: PPO, variant `multi_attempt`, seed 42, 1280 steps, the actor of "
    assert made_by + "step 640 (best validation accuracy) |" in c.text
    assert "- heldout/math500: 0.500" in c.text and "ppo/kl" not in c.text
    assert "best validation" not in card.trained(prov("tiny"), "m", "b", summary).text  # the final actor
