"""The figures step: the aggregated tables -> figures/<name>.{png,pdf} (seaborn), one per function registered with
@figure(name), so a figure can be redrawn without re-reading traces. At paper scale the figures add the paper's own
numbers as dashed lines."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import atomic_path
from pipeline.layout import BASE
from pipeline.report.aggregate import macro_per_seed
from pipeline.report.departures import PAPER_AVERAGE, PAPER_PER_BENCHMARK
from pipeline.report.format import label

BAND = ("pi", 100)  # figures' bands: min-max over seeds


def setup():
    """matplotlib without a display and seaborn's theme, imported only when drawing (the other steps skip them);
    returns (pyplot, seaborn)."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its per-plot INFO notes

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _palette(sns, order: Sequence[str]) -> dict:
    """A colour per model: the variants in order (multi_attempt and baseline first), the base model grey."""
    colors = sns.color_palette("colorblind")
    variants = [v for v in order if v != BASE]
    return {**{v: colors[i % 7] for i, v in enumerate(variants)}, BASE: colors[7]}


def save(fig, folder: Path, name: str) -> list[Path]:
    """Write `fig` as <folder>/<name>.png and .pdf (atomically); return both paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = folder / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def _present(frame: pd.DataFrame, order: Sequence[str]) -> list[str]:
    return [v for v in order if v in set(frame["variant"])]


@dataclasses.dataclass(frozen=True)
class Drawing:
    """What every figure is drawn from: the aggregated tables, the preset's scale (paper: the paper's numbers as
    dashed lines), the models' order (the configured variants, then the base model), the rolling-mean window
    (steps) of the training reward, and the plotting modules and palette."""

    acc: pd.DataFrame
    retries: pd.DataFrame
    curves: pd.DataFrame
    controls: pd.DataFrame
    k_curves: pd.DataFrame
    scale: str
    order: list[str]
    smooth: int
    plt: Any
    sns: Any
    palette: dict

    def lines(self, data: pd.DataFrame, x: str, y: str, ax, variants: pd.DataFrame | None = None, **style) -> None:
        """One line per variant (in the variants' order of `variants`, default `data`) in its colour, with the
        min-max band over seeds."""
        order = _present(data if variants is None else variants, self.order)
        self.sns.lineplot(
            data, x=x, y=y, hue="variant", hue_order=order, palette=self.palette, errorbar=BAND, ax=ax, **style
        )


FIGURES: dict[str, Callable[[Drawing], Any]] = {}  # name -> drawing function, in drawing order; rules list files


def figure(name: str):
    """Register the decorated function as figure `name` (figures/<name>.png and .pdf): it draws one matplotlib
    Figure from a Drawing and returns it."""

    def register(draw: Callable[[Drawing], Any]) -> Callable[[Drawing], Any]:
        FIGURES[name] = draw
        return draw

    return register


def figures(
    acc: pd.DataFrame,
    retries: pd.DataFrame,
    curves: pd.DataFrame,
    controls: pd.DataFrame,
    k_curves: pd.DataFrame,
    folder: str | Path,
    scale: str,
    variants: Sequence[str],
    smooth: int = 10,
) -> list[Path]:
    """Draw every registered figure (PNG and PDF each) of the `variants` (in legend order) and the base model;
    return the files written."""
    plt, sns = setup()
    order = [*variants, BASE]
    drawing = Drawing(acc, retries, curves, controls, k_curves, scale, order, smooth, plt, sns, _palette(sns, order))
    written = []
    for name, draw in FIGURES.items():
        fig = draw(drawing)
        written += save(fig, Path(folder), name)
        plt.close(fig)
    return written


def _percent(acc: pd.DataFrame) -> pd.DataFrame:
    return acc.assign(accuracy=acc["accuracy"] * 100)


@figure("accuracy_vs_k")
def _accuracy_vs_k(d: Drawing):
    """Fig. 1: macro accuracy vs allowed attempts. Bands (here and below): min-max over seeds."""
    macro = macro_per_seed(_percent(d.acc))
    fig, ax = d.plt.subplots(figsize=(5, 3.6))
    d.lines(macro, "k", "accuracy", ax, marker="o")
    if d.scale == "paper":
        for v, vals in PAPER_AVERAGE.items():
            ax.plot(range(1, len(vals) + 1), vals, ls="--", color=d.palette[v], alpha=0.7, label=f"paper: {label(v)}")
    _legend(ax)
    ax.set(
        xlabel="attempts allowed at evaluation (k)",
        ylabel="accuracy (%)",
        xticks=sorted(macro["k"].unique()),
        title="Accuracy vs attempts" + (" (mean of benchmarks)" if d.acc["benchmark"].nunique() > 1 else ""),
    )
    return fig


@figure("per_benchmark")
def _per_benchmark(d: Drawing):
    """Fig. 5: one panel per benchmark."""
    pct = _percent(d.acc)
    benches = sorted(pct["benchmark"].unique())
    grid = d.sns.relplot(
        pct,
        x="k",
        y="accuracy",
        hue="variant",
        hue_order=_present(pct, d.order),
        palette=d.palette,
        col="benchmark",
        col_order=benches,
        col_wrap=min(len(benches), 3),
        kind="line",
        marker="o",
        errorbar=BAND,
        height=3,
        aspect=1.1,
        facet_kws={"sharey": False},
    )
    if d.scale == "paper":
        for bench, ax in grid.axes_dict.items():
            for v, vals in PAPER_PER_BENCHMARK.get(bench, {}).items():
                ax.plot(range(1, len(vals) + 1), vals, ls="--", color=d.palette[v], alpha=0.7)
    grid.set_axis_labels("attempts allowed (k)", "accuracy (%)")
    grid.set_titles("{col_name}")
    grid.set(xticks=sorted(pct["k"].unique()))
    d.sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0), ncol=len(_present(pct, d.order)), frameon=False)
    _relabel(grid.legend)
    return grid.figure


@figure("learning_curves")
def _learning_curves(d: Drawing):
    """Fig. 4: training reward (rolling mean) and held-out accuracy per RL step."""
    fig, axes = d.plt.subplots(1, 2, figsize=(9, 3.4))
    if not d.curves.empty:
        c = d.curves.sort_values(["variant", "seed", "step"]).copy()
        c["reward"] = c.groupby(["variant", "seed"])["reward"].transform(
            lambda s: s.rolling(d.smooth, min_periods=1).mean()
        )
        d.lines(c.dropna(subset=["reward"]), "step", "reward", axes[0], variants=c)
        evals = c.dropna(subset=["heldout_accuracy"]).assign(heldout_accuracy=lambda e: e["heldout_accuracy"] * 100)
        d.lines(evals, "step", "heldout_accuracy", axes[1], variants=c, marker="o")
        _legend(axes[0])
        axes[1].get_legend().remove()
    axes[0].set(xlabel="RL step", ylabel=f"training reward ({d.smooth}-step mean)", title="Training reward")
    axes[1].set(xlabel="RL step", ylabel="held-out accuracy, 1 attempt (%)", title="Held-out accuracy")
    return fig


@figure("retries")
def _retries(d: Drawing):
    """What happens at each retry: wrong answers fixed, earlier wrong answers repeated."""
    fig, axes = d.plt.subplots(1, 2, figsize=(9, 3.4))
    if not d.retries.empty:
        r = d.retries.assign(
            wrong_to_right_rate=d.retries["wrong_to_right_rate"] * 100, repeat_rate=d.retries["repeat_rate"] * 100
        )
        for ax, column, title in (
            (axes[0], "wrong_to_right_rate", "Wrong answer fixed at this attempt"),
            (axes[1], "repeat_rate", "Repeats an earlier wrong answer"),
        ):
            d.sns.barplot(
                r,
                x="retry",
                y=column,
                hue="variant",
                hue_order=_present(r, d.order),
                palette=d.palette,
                errorbar=BAND,
                ax=ax,
            )
            ax.set(xlabel="attempt", ylabel="% of dialogues reaching it", title=title)
        _legend(axes[0])
        axes[1].get_legend().remove()
    return fig


@figure("sequential_vs_parallel")
def _sequential_vs_parallel(d: Drawing):
    """Learning from failure or sampling more? Accuracy of the k-attempt dialogue with feedback (solid) against
    k independent samples (pass@k dashed, majority@k dotted), by k and by policy tokens spent."""
    fig, axes = d.plt.subplots(1, 2, figsize=(10, 3.8))
    if not d.controls.empty:
        c = d.controls.groupby(["variant", "seed", "mode", "k"], dropna=False, as_index=False)[["accuracy", "tokens"]]
        c = c.mean().assign(accuracy=lambda x: x["accuracy"] * 100)
        styles = {"sequential": "-", "pass": "--", "majority": ":"}
        for v in _present(c, d.order):
            for mode, ls in styles.items():
                m = (
                    c[(c["variant"] == v) & (c["mode"] == mode)]
                    .groupby("k", as_index=False)[["accuracy", "tokens"]]
                    .mean()
                )
                name = f"{label(v)}, {'dialogue' if mode == 'sequential' else mode + '@k'}"
                axes[0].plot(m["k"], m["accuracy"], ls=ls, marker="o", ms=3, color=d.palette[v], label=name)
                axes[1].plot(m["tokens"], m["accuracy"], ls=ls, marker="o", ms=3, color=d.palette[v])
        axes[0].legend(fontsize=6, frameon=False)
    axes[0].set(xlabel="attempts / samples (k)", ylabel="accuracy (%)", title="Sequential with feedback vs parallel")
    axes[1].set(xlabel="policy tokens per question", ylabel="accuracy (%)", title="Accuracy vs tokens spent")
    return fig


@figure("k_attempt_curves")
def _k_attempt_curves(d: Drawing):
    """Accuracy with 1 and with 2 attempts over training (eval.curve_steps): when does the retry skill appear, and
    does single-attempt accuracy pay for it? Bands: min-max over seeds."""
    fig, axes = d.plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    if d.k_curves.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no eval.curve_steps in this run", ha="center", va="center", transform=ax.transAxes)
    else:
        macro = d.k_curves.groupby(["variant", "seed", "step", "k"], as_index=False)["accuracy"].mean()
        macro = macro.assign(accuracy=macro["accuracy"] * 100)
        for ax, k in zip(axes, (1, 2)):
            d.lines(macro[macro["k"] == k], "step", "accuracy", ax, marker="o")
            ax.set(title=f"{k} attempt{'s' if k > 1 else ''} allowed")
        _legend(axes[0])
        if axes[1].get_legend() is not None:
            axes[1].get_legend().remove()
    for ax in axes:
        ax.set(xlabel="RL step", ylabel="accuracy (%)")
    return fig


def _legend(ax) -> None:
    if ax.get_legend() is not None:
        _relabel(ax.get_legend())


def _relabel(legend) -> None:
    if legend is None:
        return
    legend.set_title(None)
    for text in legend.get_texts():
        text.set_text(label(text.get_text()))
