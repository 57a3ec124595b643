"""Hugging Face hub ids: the one rule that tells a hub id from a local path that does not exist.

Models (`models.load`) and data sets (`data.load_benchmark`, `data.load_math_train`) take a local path or a hub
id, and `download.plan` lists what a configuration fetches from the hub. A source that exists on disk is a path;
one that does not is fetched from the hub only if it is spelled as a hub repository id, `owner/name`, and is not
a data file's name. Anything else is reported as a missing path rather than sent to the hub as a download that
cannot succeed. `model_revision` says at which revision (config `model.revision`) a model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub.utils import HFValidationError, validate_repo_id

if TYPE_CHECKING:
    from pipeline.config import Config

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")  # `results/train.jsonl` is a missing file, not a repo


def is_hub_id(source: str) -> bool:
    """`owner/name` as the hub accepts it (huggingface_hub's own syntax check), not ending in a data file suffix."""
    if source.count("/") != 1 or source.lower().endswith(LOCAL_SUFFIXES):
        return False
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return True


def model_revision(cfg: Config, source: str | Path) -> str | None:
    """The hub revision to load the model at `source` with: `model.revision` for the configured base model
    (`model.source`, trained from and evaluated as `base`), None (the default branch) for anything else: a
    folder the workflow made, or an `eval.models` entry."""
    return cfg.model.revision or None if str(source) == cfg.model.source else None
