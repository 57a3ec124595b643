"""How the reports print numbers and names, shared by report.md, the figures' legends and the feedback ablation's
report (pipeline/report/ablation.py): the same number reads the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.layout import BASE

LABELS = {"multi_attempt": "multi-attempt RL", "baseline": "single-attempt RL (baseline)", BASE: "base model"}


def label(model: str) -> str:
    """A variant's (or the base model's) name in tables and legends."""
    return LABELS.get(model, model.replace("_", " "))


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as percent; "–" for a missing number (None or NaN)."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def interval_text(ci: Sequence[float] | None) -> str:
    """' [lo, hi]' in percent after a number; nothing when there is no interval."""
    return f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else ""


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]
