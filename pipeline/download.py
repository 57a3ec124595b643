"""Hub downloads for clusters whose compute nodes have no internet: fetch once (login node), then run offline.

`plan(cfg)` lists what the configuration loads from the Hugging Face hub: the base model when `model.source` is a
hub id, the MATH training set and each benchmark whose source is a hub dataset. `fetch` downloads them into one
folder, `HF_HOME` (the workflow's `resources/hf`), and the compute jobs read them from there with
`HF_HUB_OFFLINE=1` (the Snakefile sets both for every job; rules/download.smk runs this module).

A model is a `huggingface_hub.snapshot_download` of its repository. A dataset is fetched by loading each split
it is used with through `datasets.load_dataset`, because that is what `datasets` reads in offline mode: its own
built copy under `HF_HOME/datasets` (`CachedDatasetModuleFactory`), not a raw hub snapshot.

Revisions: each download is at the revision the configuration names (`model.revision`, `data.math.revision`,
`data.benchmarks.<name>.revision`; "" = the default branch as it is now), and the manifest
(`HF_HOME/manifests/<experiment>.json`) records the commit each resolved to; `provenance.record` copies it into
every model's provenance.json. Offline, models load at that revision (transformers resolves a branch or tag
through the hub cache's refs); `datasets` reads its latest built copy whatever the revision, so a dataset
revision is pinned by what was downloaded.

Run by hand: `python -m pipeline download --config config.yaml --hf-home resources/hf [--dry-run]`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.config import Config
from pipeline.io import write_json

HF_HOME = "resources/hf"  # relative to the workflow's working directory


@dataclass(frozen=True)
class Fetch:
    """One hub download: a model repository, or one split of one configuration of a dataset repository."""

    kind: str  # "model" | "dataset"
    repo_id: str
    config: str | None = None  # dataset configuration ("owner/name:config" in data sources)
    split: str | None = None
    revision: str | None = None  # as configured; None = the default branch. The manifest records the commit.


@dataclass(frozen=True)
class Source:
    """Something a configuration loads by name: a model or a dataset split, from a local path or the hub."""

    key: str  # where the configuration names it: model.source, eval.models.<name>, data.benchmarks.<name>.source...
    kind: str  # "model" | "dataset"
    source: str
    split: str | None = None
    revision: str = ""  # "" = the default branch


def sources(cfg: Config) -> list[Source]:
    """Every model and dataset split `cfg` loads by name (`build` included), in a stable order."""
    m = cfg.data.math
    found = [Source("model.source", "model", cfg.model.source, revision=cfg.model.revision)]
    found += [Source(f"eval.models.{name}", "model", source) for name, source in cfg.eval.models.items()]
    if cfg.data.train_set == "math":
        found += [Source("data.math.source", "dataset", m.source, split, m.revision) for split in m.splits]
        found += [
            Source(f"data.benchmarks.{name}.source", "dataset", b.source, b.split, b.revision)
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
        revision = s.revision or None
        if hub and s.kind == "model":
            fetches.append(Fetch("model", hub[0], revision=revision))
        elif hub:
            repo, configs = hub
            fetches += [Fetch("dataset", repo, config=c, split=s.split, revision=revision) for c in configs]
    return list(dict.fromkeys(fetches))


def fetch(fetches: list[Fetch]) -> list[dict]:
    """Download `fetches` into HF_HOME, each at its revision; returns them, each with the commit it resolved to."""
    import datasets
    from huggingface_hub import HfApi, snapshot_download

    done = []
    for f in fetches:
        if f.kind == "model":  # the snapshot folder is named by its commit; refs/<revision> points at it
            commit = Path(snapshot_download(f.repo_id, revision=f.revision)).name
        else:
            commit = HfApi().dataset_info(f.repo_id, revision=f.revision).sha
            datasets.load_dataset(f.repo_id, f.config, split=f.split, revision=commit)
        done.append({**asdict(f), "commit": commit})
    return done


def manifest_path(hf_home: str | Path, experiment: str) -> Path:
    """Where the workflow's download rule writes what it fetched (rules/common.smk's HUB_MANIFEST)."""
    return Path(hf_home) / "manifests" / f"{experiment}.json"


def fetched(cfg: Config) -> list[dict] | None:
    """The manifest's records of what `cfg` loads from the hub (each with its commit), read from
    $HF_HOME/manifests/<experiment>.json as the jobs see it; None where there is no manifest (nothing from the
    hub, or a step run by hand)."""
    hf_home = os.environ.get("HF_HOME")
    path = manifest_path(hf_home, cfg.experiment) if hf_home else None
    if path is None or not path.is_file():
        return None
    # by the sources' names, not plan(): that needs huggingface_hub, which the report's environment has not
    repos = {s.source.partition(":")[0] for s in sources(cfg)}
    return [r for r in json.loads(path.read_text()) if r.get("repo_id") in repos]


def run(cfg: Config, hf_home: str | Path, manifest: str | Path | None, dry_run: bool) -> None:
    """The `download` verb: fetch what `cfg` loads from the hub into `hf_home` (used as HF_HOME) and write the
    manifest; with `dry_run`, print the plan as JSON and fetch nothing."""
    # Before huggingface_hub is imported (it reads both once): the jobs' offline mode is not for this step.
    os.environ["HF_HOME"] = os.path.abspath(hf_home)
    os.environ["HF_HUB_OFFLINE"] = "0"
    fetches = plan(cfg)
    if dry_run:
        print(json.dumps([asdict(f) for f in fetches], indent=2))
        return
    done = fetch(fetches)
    if manifest:
        write_json(Path(manifest), done)
    print(f"{len(done)} downloads in {hf_home}")
