"""provenance.json: what made a model or a checkpoint, so a result found later can be traced and redone.

Holds the resolved configuration the step ran with, the code (git commit of the pipeline's checkout and whether
it had uncommitted changes), the versions of the libraries that shape the numbers, the command line, the host
and the UTC time the record was taken (each step takes it when it starts). The Snakemake rules pass every step
the workflow's whole resolved configuration, so this is the configuration of the run, keys the step does not use
included, and the commit each hub model and dataset it names was downloaded at (`hub`, from the download's
manifest: `model.revision` and the data revisions say what was asked for, this what it resolved to). Steps that
compute (the base model's SFT, training) also record what they computed with (`pipeline.numerics.state()`): the
CPU, the pinned kernels, the threads, and whether the numbers are portable.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline import download, numerics
from pipeline.config import Config
from pipeline.io import write_json

FILE = "provenance.json"
PACKAGES = ("torch", "transformers", "deepspeed", "vllm")


def record(cfg: Config, computes: bool = False) -> dict[str, Any]:
    """The provenance of a step run now under `cfg` (JSON-ready). `computes`: the step computes with torch, so
    what it computes with (`numerics.state()`: CPU, pinned kernels, threads, portable or why not) is recorded."""
    out = {
        "config": cfg.to_dict(),
        "code": _git(Path(__file__).resolve().parent),
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}},
        "command": list(sys.argv),
        "host": socket.gethostname(),
        "cpu": numerics.cpu(),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hub": download.fetched(cfg),  # the hub downloads' commits (the download's manifest); None: no manifest
    }
    if computes:
        out["numerics"] = numerics.state()
    return out


def write(folder: str | Path, prov: dict[str, Any]) -> None:
    """`folder`/provenance.json, atomically."""
    write_json(Path(folder) / FILE, prov)


def config_hash(config: Mapping[str, Any]) -> str:
    """16 hex digits of a resolved configuration (`Config.to_dict()`): the workflow keeps it as
    `results/<experiment>/configs/<this>.json` (rules/common.smk), so the hash names the file as well."""
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _version(package: str) -> str | None:
    """The installed version, read from package metadata (importing vllm alone takes seconds); None if absent."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(folder: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding `folder`; commit None and a reason when there is none."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=30)
        if commit.returncode:
            return {"commit": None, "dirty": None, "reason": commit.stderr.strip() or "not a git checkout"}
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"commit": None, "dirty": None, "reason": f"git could not be run ({type(e).__name__}: {e})"}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if not status.returncode else None}
