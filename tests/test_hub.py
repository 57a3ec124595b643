"""One rule for hub ids (pipeline.hub), used by models and data alike."""

import pytest

from pipeline import data, hub, models
from pipeline.io import DataError


@pytest.mark.parametrize("source", ["Qwen/Qwen2.5-Math-1.5B", "openai/gsm8k", "DigitalLearningGmbH/MATH-lighteval"])
def test_hub_ids(source):
    assert hub.is_hub_id(source)


@pytest.mark.parametrize(
    "source",
    [
        "gpt2",
        "a/b/c",
        "./x",
        "~/x",
        "/x/y",
        "my org/model",
        "owner/a--b",
        "x/y.git",
        "owner/name:main",
        "results/train.jsonl",
        "owner/Questions.JSON",
    ],
)
def test_not_hub_ids(source):
    assert not hub.is_hub_id(source)


@pytest.mark.parametrize("source", ["owner/questions.jsonl", "my org/model"])
def test_models_and_data_agree(source):
    """Spellings the two modules' old rules disagreed on (models took both for hub ids, data neither): now both
    report a missing path without asking the hub."""
    with pytest.raises(models.ModelLoadError, match="no such folder, and not a hub id"):
        models.load(source)
    with pytest.raises(DataError, match="no such file or directory"):
        data.load_benchmark("math500", source, "test")
