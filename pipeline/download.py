"""Hub downloads for clusters whose compute nodes have no internet: fetch once (login node), then run offline.

`plan(cfg)` lists what the configuration loads from the Hugging Face hub: the base model when `model.source` is a
hub id, the MATH training set and each benchmark whose source is a hub dataset. `fetch` downloads them into one
folder, `HF_HOME` (the workflow's `resources/hf`), and the compute jobs read them from there with
`HF_HUB_OFFLINE=1` (the Snakefile sets both for every job; rules/download.smk runs this module).

A model is a `huggingface_hub.snapshot_download` of its repository. A dataset is fetched by loading each split
it is used with through `datasets.load_dataset`, because that is what `datasets` reads in offline mode: its own
built copy under `HF_HOME/datasets` (`CachedDatasetModuleFactory`), not a raw hub snapshot.

Run by hand: `python -m pipeline.download --config config.yaml --hf-home resources/hf [--dry-run]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.config import Config, ConfigError, load

HF_HOME = "resources/hf"  # relative to the workflow's working directory


@dataclass(frozen=True)
class Fetch:
    """One hub download: a model repository, or one split of one configuration of a dataset repository."""

    kind: str  # "model" | "dataset"
    repo_id: str  # fetched at its default branch's newest commit, which the manifest records
    config: str | None = None  # dataset configuration ("owner/name:config" in data sources)
    split: str | None = None


@dataclass(frozen=True)
class Source:
    """Something a configuration loads by name: a model or a dataset split, from a local path or the hub."""

    key: str  # where the configuration names it: model.source, eval.models.<name>, data.benchmarks.<name>.source...
    kind: str  # "model" | "dataset"
    source: str
    split: str | None = None


def sources(cfg: Config) -> list[Source]:
    """Every model and dataset split `cfg` loads by name (`build` included), in a stable order."""
    found = [Source("model.source", "model", cfg.model.source)]
    found += [Source(f"eval.models.{name}", "model", source) for name, source in cfg.eval.models.items()]
    if cfg.data.train_set == "math":
        found += [Source("data.math.source", "dataset", cfg.data.math.source, split) for split in cfg.data.math.splits]
        found += [
            Source(f"data.benchmarks.{name}.source", "dataset", b.source, b.split)
            for name, b in cfg.data.benchmarks.items()
        ]
    return found


def hub_repo(source: str) -> tuple[str, list[str | None]] | None:
    """(repo id, configurations) of a hub source `owner/name[:config,...]`; None for a local path or `build`.

    A source naming an existing path is local, as the loaders read it; otherwise `hub.is_hub_id`, the loaders' own
    rule, decides.
    """
    from pipeline import hub  # imports huggingface_hub: only when a plan is made

    if source == "build" or Path(source).exists():
        return None
    repo, _, configs = source.partition(":")
    if not hub.is_hub_id(repo):
        return None
    return repo, [c for c in configs.split(",") if c] or [None]


def plan(cfg: Config) -> list[Fetch]:
    """Everything `cfg` loads from the hub, in a stable order, without duplicates."""
    fetches: list[Fetch] = []
    for s in sources(cfg):
        hub = hub_repo(s.source)
        if hub and s.kind == "model":
            fetches.append(Fetch("model", hub[0]))
        elif hub:
            repo, configs = hub
            fetches += [Fetch("dataset", repo, config=c, split=s.split) for c in configs]
    return list(dict.fromkeys(fetches))


def fetch(fetches: list[Fetch]) -> list[dict]:
    """Download `fetches` into HF_HOME; returns them, each with the commit it was fetched at."""
    import datasets
    from huggingface_hub import HfApi, snapshot_download

    done = []
    for f in fetches:
        if f.kind == "model":
            commit = Path(snapshot_download(f.repo_id)).name  # the snapshot folder is named by its commit
        else:
            commit = HfApi().dataset_info(f.repo_id).sha
            datasets.load_dataset(f.repo_id, f.config, split=f.split, revision=commit)
        done.append({**asdict(f), "commit": commit})
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.download", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config file (YAML/JSON) or inline JSON; default: the defaults")
    parser.add_argument("--hf-home", default=HF_HOME, help=f"download folder, used as HF_HOME (default {HF_HOME})")
    parser.add_argument("--manifest", help="write what was fetched here (JSON)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan as JSON and download nothing")
    args = parser.parse_args(argv)
    # Before huggingface_hub is imported (it reads both once): the jobs' offline mode is not for this step.
    os.environ["HF_HOME"] = os.path.abspath(args.hf_home)
    os.environ["HF_HUB_OFFLINE"] = "0"
    try:
        fetches = plan(load(args.config))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps([asdict(f) for f in fetches], indent=2))
        return 0
    done = fetch(fetches)
    if args.manifest:
        Path(args.manifest).write_text(json.dumps(done, indent=2) + "\n")
    print(f"{len(done)} downloads in {args.hf_home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
