"""Atomic file output, JSON and jsonl in and out, and torch files loaded without running code.

Every file the pipeline produces goes through `atomic_path`: work is written to a temporary sibling and renamed
into place only when complete, so an interrupted rule leaves either the old file or nothing — never half a file.
All JSON and jsonl goes through `write_json`/`write_jsonl` and `read_json`/`read_jsonl`; reading reports the file
and line of the first malformed record instead of a bare JSONDecodeError.
Checkpoints may come from elsewhere (a shared DVC remote): `load_tensors` unpickles only tensors and plain data.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data; the message names the file and line."""


class PipelineError(RuntimeError):
    """A failure the user can act on, explained in its message (the CLI prints it without a traceback)."""


class OutputError(PipelineError):
    """An output could not be written (disk full, unwritable folder); what was there before is intact."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories (the temporary path does not exist yet: create what you need there).
    A temporary left by a writer of the same path that was killed (SIGKILL skips the clean-up) is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a killed writer of this path
        if re.fullmatch(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.tmp", stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically, one JSON object per line; return how many were written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Add records at the end of a jsonl file, in one write (a log that grows step by step; not atomic: a writer
    killed mid-write can leave a partial last line, so a log that must be whole is rewritten with `write_jsonl`)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write one JSON document atomically (indented, for people and `dvc metrics`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    """One JSON document; raise DataError naming the file (and the line) when it is missing, malformed or not UTF-8."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e.reason})") from None


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for each non-blank line; raise DataError naming file:line on bad JSON."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8", errors="strict") as f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno + 1}: not valid UTF-8 ({e.reason})") from None
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def load_tensors(path: str | os.PathLike, allowed: Sequence[type] = (), mmap: bool = False) -> Any:
    """torch.load of tensors and plain data only, plus the classes in `allowed`.

    A pickle can call any function while it loads; a torch file that asks for anything else (os.system, say) is
    refused with DataError before that call happens. `mmap` maps tensors instead of reading them (for a check).
    """
    import torch

    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        asked = re.search(r"GLOBAL (\S+)", str(e))
        what = f"asks for {asked[1]}" if asked else "holds objects other than tensors and plain data"
        raise DataError(
            f"{path}: refused to load: it {what}, which could run code (only tensors and plain data are loaded)"
        ) from None
