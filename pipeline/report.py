"""The comparison's report: tables, summary.json, figures and report.md from evaluation metrics and training logs.

Three steps, one verb and one rule each (rules/report.smk), so a figure can be redrawn without re-reading traces:
  aggregate  eval/<model>/<benchmark>/metrics.json (+ the k1/k2 traces beside it) and models/<run>/train_log.jsonl
             -> summary.json and three tidy tables: accuracy.csv, retries.csv, learning_curves.csv;
  figures    the tables -> figures/<name>.{png,pdf} (seaborn), one per function registered with @figure(name);
  markdown   summary.json + tables -> report.md.
At paper scale the figures and report.md add the paper's own numbers (paper_numbers.yaml).

A model is `base` or `<variant>_s<seed>` (the workflow's names, recorded in each metrics.json). Accuracy is a
fraction; the report prints percent. Across benchmarks we take the plain mean (the paper's "average"); across seeds
the mean, with the min-max range as the band. The k=1 -> k=2 gain interval resamples questions (stratified by
benchmark) of the per-question gain averaged over seeds: it says how sure we are given these seeds, not across new
seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import metrics, provenance
from pipeline.config import VARIANTS
from pipeline.io import DataError, atomic_path, read_json, read_jsonl
from pipeline.metrics import BASE, parse_model

ORDER = [*VARIANTS, BASE]  # legend and table order
LABELS = {"multi_attempt": "multi-attempt RL", "baseline": "single-attempt RL (baseline)", BASE: "base model"}
BAND = ("pi", 100)  # figures' bands: min-max over seeds
IDENTITY = ("model", "variant", "seed", "benchmark")  # what each metrics.json says it scores


def _paper_numbers() -> tuple[dict, str, dict]:
    """paper_numbers.yaml beside this file: the paper's Fig. 1 average, its source, and Fig. 5 per benchmark."""
    import yaml

    numbers = yaml.safe_load((Path(__file__).with_name("paper_numbers.yaml")).read_text(encoding="utf-8"))
    average = dict(numbers["average"])
    return average, average.pop("source"), numbers["per_benchmark"]


PAPER_AVERAGE, PAPER_SOURCE, PAPER_PER_BENCHMARK = _paper_numbers()  # variant -> accuracy (%) at k = 1..7


# ----------------------------------------------------------------------------------------------- aggregate


def read_metrics(path: str | Path) -> dict:
    """One metrics.json (`metrics.metrics_for`); DataError when it predates the model, variant and seed in it."""
    m = read_json(path)
    missing = [key for key in IDENTITY if key not in m]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)} (written by an older eval-metrics: run it again)")
    return m


def accuracy_table(metrics_files: Sequence[str | Path]) -> pd.DataFrame:
    """One row per model x benchmark x k from eval/<model>/<benchmark>/metrics.json files."""
    rows = []
    for path in metrics_files:
        m = read_metrics(path)
        for k, run in m.get("by_k", {}).items():
            rows.append(
                {
                    **{key: m[key] for key in IDENTITY},
                    "k": int(k),
                    "accuracy": run["accuracy"],
                    "ci_low": run["accuracy_ci95"][0],
                    "ci_high": run["accuracy_ci95"][1],
                    "n": run["n"],
                }
            )
    if not rows:
        raise DataError("no evaluation metrics to aggregate (every metrics.json was empty or none was given)")
    return pd.DataFrame(rows).sort_values(["variant", "seed", "benchmark", "k"], na_position="first", ignore_index=True)


def retries_table(metrics_files: Sequence[str | Path]) -> pd.DataFrame:
    """What happens at each retry (attempt j >= 2) in the largest-k run: wrong->right and repeated-answer rates."""
    rows = []
    for path in metrics_files:
        m = read_metrics(path)
        by_k = m.get("by_k", {})
        if not by_k:
            continue
        k = max(by_k, key=int)
        retry = by_k[k]["retry"]
        for j in retry["wrong_to_right_rate"]:
            rows.append(
                {
                    **{key: m[key] for key in IDENTITY},
                    "k": int(k),
                    "retry": int(j),
                    "reached": retry["n_reached"][j],
                    "wrong_to_right_rate": retry["wrong_to_right_rate"][j],
                    "repeat_rate": retry["repeat_rate"][j],
                }
            )
    return pd.DataFrame(rows, columns=[*IDENTITY, "k", "retry", "reached", "wrong_to_right_rate", "repeat_rate"])


def _curve_point(rec: Mapping) -> dict:
    """The learning-curve columns of one train_log.jsonl record: the one place that knows the log's keys."""
    return {
        "step": rec["step"],
        "reward": rec.get("train/reward"),
        "train_accuracy": rec.get("train/accuracy"),
        "heldout_accuracy": rec.get("heldout/mean"),
    }


def learning_curves_table(train_logs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per training step of every run (models/<variant>_s<seed>/train_log.jsonl): reward, held-out accuracy."""
    rows = []
    for path in map(Path, train_logs):
        variant, seed = parse_model(path.parent.name)
        rows += [{"variant": variant, "seed": seed, **_curve_point(rec)} for _, rec in read_jsonl(path)]
    cols = ["variant", "seed", "step", "reward", "train_accuracy", "heldout_accuracy"]
    # one row per step, whether a step's held-out evaluation was logged with its training record or separately
    return pd.DataFrame(rows, columns=cols).groupby(["variant", "seed", "step"], as_index=False).first()


def gain_k1_to_k2(metrics_files: Sequence[Path], n_boot: int = 1000) -> dict:
    """Gain in macro accuracy from k=1 to k=2 of a group of runs (the seeds of one variant), with its 95% interval.

    Per benchmark, the per-question gain (0/1 at k=2 minus 0/1 at k=1, paired by id) is averaged over the runs;
    the point estimate is the macro mean and the interval a stratified bootstrap over questions (metrics.macro_ci).
    """
    per_benchmark: dict[str, list[list[int]]] = {}
    for path in map(Path, metrics_files):
        a, b = (metrics.read_traces(path.parent / f"k{k}.jsonl") for k in (1, 2))  # the runs beside metrics.json
        per_benchmark.setdefault(read_metrics(path)["benchmark"], []).append(
            [y - x for x, y in zip(*metrics.paired(a, b))]
        )
    averaged = {}
    for bench, runs in per_benchmark.items():
        if len({len(r) for r in runs}) != 1:
            raise DataError(f"benchmark {bench!r}: runs evaluated on different question sets")
        averaged[bench] = [sum(col) / len(col) for col in zip(*runs)]
    point = metrics.macro_average({b: sum(v) / len(v) for b, v in averaged.items()})
    lo, hi = metrics.macro_ci(averaged, n_boot=n_boot)
    return {"gain": point, "ci95": [lo, hi]}


def _by_k(frame: pd.DataFrame) -> dict[str, float]:
    return {str(k): float(v) for k, v in frame.groupby("k")["accuracy"].mean().items()}


def _macro_per_seed(acc: pd.DataFrame) -> pd.DataFrame:
    """Macro accuracy (mean over benchmarks) per model x k; keeps variant and seed."""
    return acc.groupby(["model", "variant", "seed", "k"], dropna=False, as_index=False)["accuracy"].mean()


def summarize(
    acc: pd.DataFrame, retries: pd.DataFrame, curves: pd.DataFrame, metrics_files: Sequence[str | Path], scale: str
) -> dict:
    """summary.json (schema in reports/README.md): accuracy@k per variant (mean over seeds of the macro average),
    its per-seed and per-benchmark values, the k=1 -> k=2 gain with its interval, retry rates, training results."""
    evaluations = {Path(p): read_metrics(p) for p in metrics_files}
    macro = _macro_per_seed(acc)
    out: dict = {
        "scale": scale,
        "benchmarks": sorted(acc["benchmark"].unique()),
        "k": sorted(int(k) for k in acc["k"].unique()),
        "variants": {},
    }
    for variant in ORDER:
        rows = macro[macro["variant"] == variant]
        if rows.empty:
            continue
        per_k = rows.groupby("k")["accuracy"]
        entry = {
            "accuracy_at_k": {str(k): float(v) for k, v in per_k.mean().items()},
            "accuracy_at_k_range": {
                str(k): [float(lo), float(hi)] for (k, lo), hi in zip(per_k.min().items(), per_k.max().values)
            },
            "per_benchmark": {b: _by_k(g) for b, g in acc[acc["variant"] == variant].groupby("benchmark")},
        }
        mine = [p for p, m in evaluations.items() if m["variant"] == variant]
        if 2 in set(rows["k"]) and 1 in set(rows["k"]):
            entry["gain_k1_to_k2"] = gain_k1_to_k2(mine)
        r = retries[retries["variant"] == variant]
        if not r.empty:
            entry["retry_max_k"] = {
                "wrong_to_right_rate": _weighted(r, "wrong_to_right_rate"),
                "repeat_rate": _weighted(r, "repeat_rate"),
            }
        if variant == BASE:
            out["base"] = entry
            continue
        seeds = {}
        for seed, g in rows.groupby("seed"):
            s = {
                "accuracy_at_k": _by_k(g),
                "per_benchmark": {
                    b: _by_k(x)
                    for b, x in acc[(acc["variant"] == variant) & (acc["seed"] == seed)].groupby("benchmark")
                },
            }
            if "gain_k1_to_k2" in entry:
                s["gain_k1_to_k2"] = gain_k1_to_k2([p for p in mine if evaluations[p]["seed"] == seed])
            c = curves[(curves["variant"] == variant) & (curves["seed"] == seed)]
            if not c.empty:
                s["training"] = _training(c)
            seeds[str(int(seed))] = s
        entry["seeds"] = seeds
        out["variants"][variant] = entry
    if scale == "paper":
        out["paper"] = {
            "accuracy_at_k": {
                v: {str(k + 1): x / 100 for k, x in enumerate(vals)} for v, vals in PAPER_AVERAGE.items()
            },
            "source": PAPER_SOURCE,
        }
    return out


def provenance_of(model_folders: Sequence[str | Path]) -> dict:
    """summary.json's provenance: each model folder's provenance.json by model name (None for a folder written
    before models recorded theirs)."""
    out = {}
    for folder in map(Path, model_folders):
        path = folder / provenance.FILE
        out[folder.name] = read_json(path) if path.is_file() else None
    return out


def _weighted(r: pd.DataFrame, column: str) -> float | None:
    """Rate over all retries of a variant (weighted by how many dialogues reached each retry)."""
    r = r.dropna(subset=[column])
    total = r["reached"].sum()
    return float((r[column] * r["reached"]).sum() / total) if total else None


def _training(c: pd.DataFrame) -> dict:
    evals = c.dropna(subset=["heldout_accuracy"])
    rewards = c.dropna(subset=["reward"])
    tail = rewards.tail(max(1, len(rewards) // 10))
    return {
        "steps": int(c["step"].max()),
        "final_reward": float(tail["reward"].mean()) if not tail.empty else None,
        "heldout_accuracy_start": float(evals["heldout_accuracy"].iloc[0]) if not evals.empty else None,
        "heldout_accuracy_end": float(evals["heldout_accuracy"].iloc[-1]) if not evals.empty else None,
    }


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_csv(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


# ----------------------------------------------------------------------------------------------- figures


def _setup():
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its per-plot INFO notes

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _palette(sns) -> dict:
    colors = sns.color_palette("colorblind")
    return {"multi_attempt": colors[0], "baseline": colors[1], BASE: colors[7]}


def _save(fig, folder: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        path = folder / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def _present(frame: pd.DataFrame) -> list[str]:
    return [v for v in ORDER if v in set(frame["variant"])]


@dataclasses.dataclass(frozen=True)
class Drawing:
    """What every figure is drawn from: the aggregated tables, the preset's scale (paper: the paper's numbers as
    dashed lines), the rolling-mean window (steps) of the training reward, and the plotting modules and palette."""

    acc: pd.DataFrame
    retries: pd.DataFrame
    curves: pd.DataFrame
    scale: str
    smooth: int
    plt: Any
    sns: Any
    palette: dict

    def lines(self, data: pd.DataFrame, x: str, y: str, ax, variants: pd.DataFrame | None = None, **style) -> None:
        """One line per variant (in the variants' order of `variants`, default `data`) in its colour, with the
        min-max band over seeds."""
        order = _present(data if variants is None else variants)
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
    acc: pd.DataFrame, retries: pd.DataFrame, curves: pd.DataFrame, folder: str | Path, scale: str, smooth: int = 10
) -> list[Path]:
    """Draw every registered figure (PNG and PDF each); return the files written."""
    plt, sns = _setup()
    drawing = Drawing(acc, retries, curves, scale, smooth, plt, sns, _palette(sns))
    written = []
    for name, draw in FIGURES.items():
        fig = draw(drawing)
        written += _save(fig, Path(folder), name)
        plt.close(fig)
    return written


def _percent(acc: pd.DataFrame) -> pd.DataFrame:
    return acc.assign(accuracy=acc["accuracy"] * 100)


@figure("accuracy_vs_k")
def _accuracy_vs_k(d: Drawing):
    """Fig. 1: macro accuracy vs allowed attempts. Bands (here and below): min-max over seeds."""
    macro = _macro_per_seed(_percent(d.acc))
    fig, ax = d.plt.subplots(figsize=(5, 3.6))
    d.lines(macro, "k", "accuracy", ax, marker="o")
    if d.scale == "paper":
        for v, vals in PAPER_AVERAGE.items():
            ax.plot(range(1, len(vals) + 1), vals, ls="--", color=d.palette[v], alpha=0.7, label=f"paper: {LABELS[v]}")
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
        hue_order=_present(pct),
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
    d.sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0), ncol=len(_present(pct)), frameon=False)
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
                r, x="retry", y=column, hue="variant", hue_order=_present(r), palette=d.palette, errorbar=BAND, ax=ax
            )
            ax.set(xlabel="attempt", ylabel="% of dialogues reaching it", title=title)
        _legend(axes[0])
        axes[1].get_legend().remove()
    return fig


def _legend(ax) -> None:
    if ax.get_legend() is not None:
        _relabel(ax.get_legend())


def _relabel(legend) -> None:
    if legend is None:
        return
    legend.set_title(None)
    for text in legend.get_texts():
        text.set_text(LABELS.get(text.get_text(), text.get_text()))


# ----------------------------------------------------------------------------------------------- report.md


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


MULTI_BOX_NOTES = {
    "last": "the last box of each attempt is its answer, as in the released code",
    "all": "all boxes of an attempt together are its answer, read as a list (as Math-Verify joins them)",
}


def grading_note(grading: Mapping) -> str:
    """One sentence on the grading rule the evaluations used (summary.json's "grading")."""
    rule = grading.get("multi_box", "last")
    return f"Grading: `grading.multi_box: {rule}` — {MULTI_BOX_NOTES.get(rule, 'see pipeline/grading/')}."


def markdown(summary: Mapping, acc: pd.DataFrame, curves: pd.DataFrame, figures_dir: str = "figures") -> str:
    """report.md: headline, gain k=1 -> 2, accuracy per variant / seed / benchmark, retries, training, figures."""
    ks = [str(k) for k in summary["k"]]
    variants = summary["variants"]
    entries = {**variants, **({BASE: summary["base"]} if "base" in summary else {})}
    lines = [
        f"# Multi-attempt vs single-attempt RL — {summary['scale']} experiment",
        "",
        "Generated by the workflow (`snakemake --cores all`) from the evaluation metrics and training logs; "
        "numbers are percent. Accuracy@k: share of questions solved within k attempts (greedy, one run per k), "
        f"averaged over the benchmarks ({', '.join(summary['benchmarks'])}) and over seeds.",
        "",
    ]
    if "grading" in summary:
        lines += [grading_note(summary["grading"]), ""]

    gains = {v: e["gain_k1_to_k2"] for v, e in entries.items() if "gain_k1_to_k2" in e}
    if "multi_attempt" in gains and "baseline" in gains:
        m, b = gains["multi_attempt"]["gain"], gains["baseline"]["gain"]
        verdict = "more" if m > b else "less" if m < b else "as much"
        lines += [
            f"**Headline:** from 1 to 2 attempts the multi-attempt model gains {_pct(m)} points, the baseline "
            f"{_pct(b)}: multi-attempt training gains {verdict} from a second attempt "
            f"({_pct(m - b)} points difference).",
            "",
        ]

    lines += ["## Accuracy vs allowed attempts", ""]
    rows = []
    for v, e in entries.items():
        rng = e.get("accuracy_at_k_range", {})
        rows.append(
            [
                LABELS[v],
                *(
                    _pct(e["accuracy_at_k"].get(k))
                    + (f" ({_pct(rng[k][0])}–{_pct(rng[k][1])})" if k in rng and len(e.get("seeds", {})) > 1 else "")
                    for k in ks
                ),
            ]
        )
    if "paper" in summary:
        for v, by_k in summary["paper"]["accuracy_at_k"].items():
            rows.append([f"paper: {LABELS[v]}", *(_pct(by_k.get(k)) for k in ks)])
    lines += _table(["model", *(f"k={k}" for k in ks)], rows)
    lines += ["", "Brackets: range over seeds.", "", f"![Accuracy vs attempts]({figures_dir}/accuracy_vs_k.png)", ""]

    if gains:
        lines += ["## Gain from a second attempt (k=1 → k=2)", ""]
        rows = [
            [
                LABELS[v],
                _pct(g["gain"]),
                f"[{_pct(g['ci95'][0])}, {_pct(g['ci95'][1])}]",
                ", ".join(
                    f"s{s}: {_pct(x['gain_k1_to_k2']['gain'])}"
                    for s, x in entries[v].get("seeds", {}).items()
                    if "gain_k1_to_k2" in x
                )
                or "–",
            ]
            for v, g in gains.items()
        ]
        lines += _table(["model", "gain", "95% interval", "per seed"], rows)
        lines += [
            "",
            "Interval: paired bootstrap over questions (stratified by benchmark) of the per-question gain "
            "averaged over seeds.",
            "",
        ]

    lines += ["## Accuracy per seed and benchmark", ""]
    rows = []
    for (model, bench), g in acc.groupby(["model", "benchmark"]):
        by_k = _by_k(g)
        rows.append([model, bench, *(_pct(by_k.get(k)) for k in ks)])
    if summary["scale"] == "paper":
        for bench in summary["benchmarks"]:
            for v, vals in PAPER_PER_BENCHMARK.get(bench, {}).items():
                rows.append(
                    [f"paper: {v}", bench, *(f"{vals[int(k) - 1]:.1f}" if int(k) <= len(vals) else "–" for k in ks)]
                )
    lines += _table(["model", "benchmark", *(f"k={k}" for k in ks)], rows)
    lines += ["", f"![Per benchmark]({figures_dir}/per_benchmark.png)", ""]

    retry_rows = [
        [LABELS[v], _pct(e["retry_max_k"]["wrong_to_right_rate"]), _pct(e["retry_max_k"]["repeat_rate"])]
        for v, e in entries.items()
        if "retry_max_k" in e
    ]
    if retry_rows:
        lines += [f"## What happens after a wrong answer (k={ks[-1]} runs, all retries)", ""]
        lines += _table(["model", "wrong → right", "repeats an earlier wrong answer"], retry_rows)
        lines += ["", f"![Retries]({figures_dir}/retries.png)", ""]

    train_rows = []
    for v, e in variants.items():
        for s, x in e.get("seeds", {}).items():
            t = x.get("training")
            if t:
                train_rows.append(
                    [
                        LABELS[v],
                        s,
                        str(t["steps"]),
                        f"{t['final_reward']:.3f}",
                        _pct(t["heldout_accuracy_start"]),
                        _pct(t["heldout_accuracy_end"]),
                    ]
                )
    if train_rows:
        lines += ["## Training", ""]
        lines += _table(
            ["variant", "seed", "steps", "final reward (last 10% of steps)", "held-out acc. at start", "at end"],
            train_rows,
        )
        lines += ["", f"![Learning curves]({figures_dir}/learning_curves.png)", ""]
    return "\n".join(lines) + "\n"
