"""The departures from the paper's released code: `departures.yaml` beside this file, the one list.

Owns reading that file into `Departure` records. It knows nothing of runs or configurations: which departures a
given run shows, beside its configuration's differences from the paper preset, is the report's business.
pipeline/train.py's docstring and docs/design.md cite the ids, the report prints the `report` lines
(pipeline/report/departures.py); tests/test_departures.py checks that they agree with the file.

Try it: `python -c 'from pipeline import departures; print(*(d.id for d in departures.load()))'`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PATH = Path(__file__).with_name("departures.yaml")


@dataclass(frozen=True)
class Departure:
    """One departure: what the released code does, what we do, why, where in the code or configuration."""

    id: str
    title: str
    released: str
    ours: str
    why: str
    where: tuple[str, ...]
    scope: str  # "always", or the config key that decides it
    report: str | dict[str, str] | None = None  # the report's line; a scoped entry's: {value of its key: line}


def load(path: Path = PATH) -> list[Departure]:
    """The departures in the file's order. Raises ValueError on a duplicate id or a missing or unknown field."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    fields = set(Departure.__dataclass_fields__)
    out, seen = [], set()
    for i, entry in enumerate(entries):
        unknown, missing = entry.keys() - fields, (fields - {"report"}) - entry.keys()
        if unknown or missing:
            raise ValueError(f"{path}: entry {i + 1}: unknown fields {sorted(unknown)}, missing {sorted(missing)}")
        if entry["id"] in seen:
            raise ValueError(f"{path}: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
        out.append(Departure(**{**entry, "where": tuple(entry["where"])}))
    return out
