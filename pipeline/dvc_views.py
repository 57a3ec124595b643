"""What DVC shows: the headline numbers as small metrics files and wide tables for `dvc plots`, from the report.

`dvc metrics show` prints one column per key and one row per file, so each model gets its own flat file,
`metrics/<model>.json`: accuracy at k = 1 and 2, the k=1 -> k=2 gain and its 95% interval (fractions; from
summary.json, which stays the full record). `dvc plots` draws one line per y column, so each figure's table has
one column per model: `plots/accuracy_vs_k.csv` (summary.json), `plots/heldout_accuracy.csv` and `plots/reward.csv`
against the training step (learning_curves.csv, mean over seeds), `plots/wrong_to_right.csv` against the retry
(retries.csv, over benchmarks and seeds weighted by the questions reaching that retry). dvc.yaml names them.

`python -m pipeline dvc-views --summary S --curves C --retries R --out-dir D` (rules/report.smk).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import atomic_path, write_json

PLOTS = ("accuracy_vs_k", "heldout_accuracy", "reward", "wrong_to_right")  # the plot tables


def plot_columns(variants: list[str], others: list[str] = ()) -> dict[str, list[str]]:
    """Plot table -> its model columns (dvc.yaml's `y`): the trained variants, and the base model and eval.models
    where they have values (not in the training curves). A model without values gets an empty column."""
    models = [*variants, "base", *others]
    return {"accuracy_vs_k": models, "heldout_accuracy": variants, "reward": variants, "wrong_to_right": models}


def headline(entry: Mapping[str, Any]) -> dict[str, float]:
    """The flat metrics of one model's summary.json entry (keys absent when max_k < 2)."""
    acc = entry["accuracy_at_k"]
    out = {f"acc@{k}": acc[k] for k in ("1", "2") if k in acc}
    if "gain_k1_to_k2" in entry:
        gain = entry["gain_k1_to_k2"]
        out.update(gain=gain["gain"], gain_lo=gain["ci95"][0], gain_hi=gain["ci95"][1])
    return out


def entries(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Model -> its summary.json entry: the variants in the summary's order, the base model, then eval.models."""
    return {
        **summary["variants"],
        **({"base": summary["base"]} if "base" in summary else {}),
        **summary.get("others", {}),
    }


def metrics(summary: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Model -> headline."""
    return {m: headline(e) for m, e in entries(summary).items()}


def _wide(frame: pd.DataFrame, index: str, values: str, columns: list[str]) -> pd.DataFrame:
    """One row per `index`, `columns` as columns (mean over the rest); rows without any value dropped."""
    wide = frame.pivot_table(index=index, columns="variant", values=values, aggfunc="mean").dropna(how="all")
    return wide.reindex(columns=columns).reset_index().rename_axis(columns=None)


def plot_tables(summary: Mapping[str, Any], curves: pd.DataFrame, retries: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Name (PLOTS) -> wide table."""
    columns = plot_columns(list(summary["variants"]), list(summary.get("others", {})))
    acc = pd.DataFrame({m: {int(k): v for k, v in e["accuracy_at_k"].items()} for m, e in entries(summary).items()})
    acc = acc.reindex(columns=columns["accuracy_vs_k"]).rename_axis("k").reset_index()
    right = retries.assign(fixed=retries["wrong_to_right_rate"] * retries["reached"])
    right = right.groupby(["variant", "retry"], as_index=False)[["fixed", "reached"]].sum()
    right["wrong_to_right_rate"] = right["fixed"] / right["reached"]
    return {
        "accuracy_vs_k": acc,
        "heldout_accuracy": _wide(curves, "step", "heldout_accuracy", columns["heldout_accuracy"]),
        "reward": _wide(curves, "step", "reward", columns["reward"]),
        "wrong_to_right": _wide(right, "retry", "wrong_to_right_rate", columns["wrong_to_right"]),
    }


def write(summary: Mapping[str, Any], curves: pd.DataFrame, retries: pd.DataFrame, out_dir: str | Path) -> None:
    out = Path(out_dir)
    for model, values in metrics(summary).items():
        write_json(out / "metrics" / f"{model}.json", values)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, table in plot_tables(summary, curves, retries).items():
        with atomic_path(out / "plots" / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
