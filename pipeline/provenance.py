"""provenance.json: what made a model or a checkpoint, so a result found later can be traced and redone.

Holds the resolved configuration the step ran with, the code (git commit of the pipeline's checkout and whether
it had uncommitted changes), the versions of the libraries that shape the numbers, the command line, the host
and the UTC time the record was taken (each step takes it when it starts). The Snakemake rules pass every step
the workflow's whole resolved configuration, so this is the configuration of the run, keys the step does not use
included.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.io import write_json

FILE = "provenance.json"
PACKAGES = ("torch", "transformers", "deepspeed", "vllm")


def record(cfg: Config) -> dict[str, Any]:
    """The provenance of a step run now under `cfg` (JSON-ready)."""
    return {
        "config": cfg.to_dict(),
        "code": _git(Path(__file__).resolve().parent),
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}},
        "command": list(sys.argv),
        "host": socket.gethostname(),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write(folder: str | Path, prov: dict[str, Any]) -> None:
    """`folder`/provenance.json, atomically."""
    write_json(Path(folder) / FILE, prov)


def _version(package: str) -> str | None:
    """The installed version, read from package metadata (importing vllm alone takes seconds); None if absent."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(folder: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding `folder`; commit None and a reason when there is none."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=30)
        if commit.returncode:
            return {"commit": None, "dirty": None, "reason": commit.stderr.strip() or "not a git checkout"}
        status = subprocess.run(["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"commit": None, "dirty": None, "reason": f"git could not be run ({type(e).__name__}: {e})"}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if not status.returncode else None}
