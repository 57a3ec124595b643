"""The comparison's report: tables, summary.json, figures and report.md from evaluation metrics and training logs.

Three steps, one verb and one rule each (rules/report.smk), so a figure can be redrawn without re-reading traces:
  aggregate  eval/<model>/<benchmark>/metrics.json (+ the k1/k2 traces beside it) and models/<run>/train_log.jsonl
             -> summary.json and three tidy tables: accuracy.csv, retries.csv, learning_curves.csv;
  figures    the tables -> figures/{accuracy_vs_k, per_benchmark, learning_curves, retries}.{png,pdf} (seaborn);
  markdown   summary.json + tables -> report.md.

A model is `base` or `<variant>_s<seed>` (the workflow's names). Accuracy is a fraction; the report prints
percent. Across benchmarks we take the plain mean (the paper's "average"); across seeds the mean, with the
min-max range as the band. The k=1 -> k=2 gain interval resamples questions (stratified by benchmark) of the
per-question gain averaged over seeds: it says how sure we are given these seeds, not across new seeds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from pipeline import metrics, provenance
from pipeline.config import VARIANTS
from pipeline.io import DataError, atomic_path, read_jsonl

BASE = "base"
MODEL_NAME = re.compile(rf"^(?P<variant>{'|'.join(VARIANTS)})_s(?P<seed>\d+)$")
ORDER = [*VARIANTS, BASE]  # legend and table order
LABELS = {"multi_attempt": "multi-attempt RL", "baseline": "single-attempt RL (baseline)", BASE: "base model"}
FIGURES = ("accuracy_vs_k", "per_benchmark", "learning_curves", "retries")

# The paper's numbers (percent), from ../shared/docs/paper-spec.md §8.2 (Fig. 1, 5-benchmark average) and §8.3
# (Fig. 5, per benchmark, "Multi / Base"), read off the figures to about +-0.2. tests/test_report.py checks them
# against the spec's tables.
PAPER_AVERAGE = {
    "multi_attempt": [45.58, 52.50, 51.75, 53.82, 51.59, 51.97, 52.38],
    "baseline": [42.36, 43.19, 44.25, 44.00, 43.78, 44.58, 42.87],
}
PAPER_PER_BENCHMARK = {  # benchmark -> variant -> accuracy at k = 1..7
    "aime24": {"multi_attempt": [26.7, 26.7, 26.7, 26.7, 20.0, 23.3, 20.0],
               "baseline": [13.3, 13.3, 16.7, 13.3, 16.7, 20.0, 13.3]},
    "math500": {"multi_attempt": [73.4, 80.0, 81.0, 82.2, 83.0, 82.0, 83.4],
                "baseline": [76.2, 76.4, 76.2, 76.4, 76.4, 75.8, 75.8]},
    "amc23": {"multi_attempt": [60.0, 72.5, 65.0, 72.5, 67.5, 67.5, 72.5],
              "baseline": [55.0, 52.5, 55.0, 57.5, 55.0, 57.5, 55.0]},
    "minerva_math": {"multi_attempt": [34.2, 43.0, 41.9, 41.9, 43.4, 44.5, 42.6],
                     "baseline": [31.6, 35.3, 34.6, 33.8, 33.5, 32.0, 33.8]},
    "olympiadbench": {"multi_attempt": [33.6, 40.3, 44.1, 45.8, 44.0, 42.5, 43.4],
                      "baseline": [35.7, 38.4, 38.8, 39.0, 37.2, 37.5, 36.4]},
}


def parse_model(name: str) -> tuple[str, int | None]:
    """'multi_attempt_s1' -> ('multi_attempt', 1); 'base' -> ('base', None)."""
    if name == BASE:
        return BASE, None
    m = MODEL_NAME.match(name)
    if not m:
        raise DataError(f"model name {name!r} is neither {BASE!r} nor <variant>_s<seed> (variants: {VARIANTS})")
    return m["variant"], int(m["seed"])


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None


# ----------------------------------------------------------------------------------------------- aggregate


def accuracy_table(metrics_files: Sequence[str | Path]) -> pd.DataFrame:
    """One row per model x benchmark x k from eval/<model>/<benchmark>/metrics.json files."""
    rows = []
    for path in map(Path, metrics_files):
        model, benchmark = path.parent.parent.name, path.parent.name
        variant, seed = parse_model(model)
        for k, m in _read_json(path).get("by_k", {}).items():
            rows.append({"model": model, "variant": variant, "seed": seed, "benchmark": benchmark, "k": int(k),
                         "accuracy": m["accuracy"], "ci_low": m["accuracy_ci95"][0], "ci_high": m["accuracy_ci95"][1],
                         "n": m["n"]})
    if not rows:
        raise DataError("no evaluation metrics to aggregate (every metrics.json was empty or none was given)")
    return pd.DataFrame(rows).sort_values(["variant", "seed", "benchmark", "k"], na_position="first",
                                          ignore_index=True)


def retries_table(metrics_files: Sequence[str | Path]) -> pd.DataFrame:
    """What happens at each retry (attempt j >= 2) in the largest-k run: wrong->right and repeated-answer rates."""
    rows = []
    for path in map(Path, metrics_files):
        model, benchmark = path.parent.parent.name, path.parent.name
        variant, seed = parse_model(model)
        by_k = _read_json(path).get("by_k", {})
        if not by_k:
            continue
        k = max(by_k, key=int)
        retry = by_k[k]["retry"]
        for j in retry["wrong_to_right_rate"]:
            rows.append({"model": model, "variant": variant, "seed": seed, "benchmark": benchmark, "k": int(k),
                         "retry": int(j), "reached": retry["n_reached"][j],
                         "wrong_to_right_rate": retry["wrong_to_right_rate"][j], "repeat_rate": retry["repeat_rate"][j]})
    return pd.DataFrame(rows, columns=["model", "variant", "seed", "benchmark", "k", "retry", "reached",
                                       "wrong_to_right_rate", "repeat_rate"])


def learning_curves_table(train_logs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per training step of every run (models/<variant>_s<seed>/train_log.jsonl): reward, held-out accuracy."""
    rows = []
    for path in map(Path, train_logs):
        variant, seed = parse_model(path.parent.name)
        for _, rec in read_jsonl(path):
            rows.append({"variant": variant, "seed": seed, "step": rec["step"], "reward": rec.get("train/reward"),
                         "train_accuracy": rec.get("train/accuracy"), "heldout_accuracy": rec.get("heldout/mean")})
    cols = ["variant", "seed", "step", "reward", "train_accuracy", "heldout_accuracy"]
    # one row per step, whether a step's held-out evaluation was logged with its training record or separately
    return pd.DataFrame(rows, columns=cols).groupby(["variant", "seed", "step"], as_index=False).first()


def _traces_solved(metrics_file: Path, k: int) -> list[dict]:
    return [record for _, record in read_jsonl(metrics_file.parent / f"k{k}.jsonl")]


def gain_k1_to_k2(metrics_files: Sequence[Path], n_boot: int = 1000) -> dict:
    """Gain in macro accuracy from k=1 to k=2 of a group of runs (the seeds of one variant), with its 95% interval.

    Per benchmark, the per-question gain (0/1 at k=2 minus 0/1 at k=1, paired by id) is averaged over the runs;
    the point estimate is the macro mean and the interval a stratified bootstrap over questions (metrics.macro_ci).
    """
    per_benchmark: dict[str, list[list[int]]] = {}
    for path in metrics_files:
        a, b = metrics.paired(_traces_solved(path, 1), _traces_solved(path, 2))
        per_benchmark.setdefault(path.parent.name, []).append([y - x for x, y in zip(a, b)])
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


def summarize(acc: pd.DataFrame, retries: pd.DataFrame, curves: pd.DataFrame, metrics_files: Sequence[str | Path],
              scale: str) -> dict:
    """summary.json (schema in reports/README.md): accuracy@k per variant (mean over seeds of the macro average),
    its per-seed and per-benchmark values, the k=1 -> k=2 gain with its interval, retry rates, training results."""
    files = [Path(p) for p in metrics_files]
    macro = _macro_per_seed(acc)
    out: dict = {"scale": scale, "benchmarks": sorted(acc["benchmark"].unique()),
                 "k": sorted(int(k) for k in acc["k"].unique()), "variants": {}}
    for variant in ORDER:
        rows = macro[macro["variant"] == variant]
        if rows.empty:
            continue
        per_k = rows.groupby("k")["accuracy"]
        entry = {
            "accuracy_at_k": {str(k): float(v) for k, v in per_k.mean().items()},
            "accuracy_at_k_range": {str(k): [float(lo), float(hi)] for (k, lo), hi in
                                    zip(per_k.min().items(), per_k.max().values)},
            "per_benchmark": {b: _by_k(g) for b, g in acc[acc["variant"] == variant].groupby("benchmark")},
        }
        mine = [p for p in files if parse_model(p.parent.parent.name)[0] == variant]
        if 2 in set(rows["k"]) and 1 in set(rows["k"]):
            entry["gain_k1_to_k2"] = gain_k1_to_k2(mine)
        r = retries[retries["variant"] == variant]
        if not r.empty:
            entry["retry_max_k"] = {
                "wrong_to_right_rate": _weighted(r, "wrong_to_right_rate"), "repeat_rate": _weighted(r, "repeat_rate")}
        if variant == BASE:
            out["base"] = entry
            continue
        seeds = {}
        for seed, g in rows.groupby("seed"):
            s = {"accuracy_at_k": _by_k(g),
                 "per_benchmark": {b: _by_k(x) for b, x in
                                   acc[(acc["variant"] == variant) & (acc["seed"] == seed)].groupby("benchmark")}}
            if "gain_k1_to_k2" in entry:
                s["gain_k1_to_k2"] = gain_k1_to_k2([p for p in mine if parse_model(p.parent.parent.name)[1] == seed])
            c = curves[(curves["variant"] == variant) & (curves["seed"] == seed)]
            if not c.empty:
                s["training"] = _training(c)
            seeds[str(int(seed))] = s
        entry["seeds"] = seeds
        out["variants"][variant] = entry
    if scale == "paper":
        out["paper"] = {"accuracy_at_k": {v: {str(k + 1): x / 100 for k, x in enumerate(vals)}
                                          for v, vals in PAPER_AVERAGE.items()},
                        "source": "arXiv 2503.04808 Fig. 1 (5-benchmark average), read off the figure"}
    return out


def provenance_of(model_folders: Sequence[str | Path]) -> dict:
    """summary.json's provenance: each model folder's provenance.json by model name (None for a folder written
    before models recorded theirs)."""
    out = {}
    for folder in map(Path, model_folders):
        path = folder / provenance.FILE
        out[folder.name] = _read_json(path) if path.is_file() else None
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
    return {"steps": int(c["step"].max()),
            "final_reward": float(tail["reward"].mean()) if not tail.empty else None,
            "heldout_accuracy_start": float(evals["heldout_accuracy"].iloc[0]) if not evals.empty else None,
            "heldout_accuracy_end": float(evals["heldout_accuracy"].iloc[-1]) if not evals.empty else None}


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


def figures(acc: pd.DataFrame, retries: pd.DataFrame, curves: pd.DataFrame, folder: str | Path, scale: str,
            smooth: int = 10) -> list[Path]:
    """Draw the four figures (PNG and PDF each). Bands: min-max over seeds. Paper preset: the paper's numbers
    as dashed lines. `smooth`: rolling-mean window (steps) of the training reward."""
    plt, sns = _setup()
    folder = Path(folder)
    palette = _palette(sns)
    pct = acc.assign(accuracy=acc["accuracy"] * 100)
    band = ("pi", 100)  # min-max over seeds
    written = []

    # Fig. 1: macro accuracy vs allowed attempts
    macro = _macro_per_seed(pct)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    sns.lineplot(macro, x="k", y="accuracy", hue="variant", hue_order=_present(macro), palette=palette,
                 marker="o", errorbar=band, ax=ax)
    if scale == "paper":
        for v, vals in PAPER_AVERAGE.items():
            ax.plot(range(1, len(vals) + 1), vals, ls="--", color=palette[v], alpha=0.7, label=f"paper: {LABELS[v]}")
    _legend(ax)
    ax.set(xlabel="attempts allowed at evaluation (k)", ylabel="accuracy (%)", xticks=sorted(macro["k"].unique()),
           title="Accuracy vs attempts" + (" (mean of benchmarks)" if acc["benchmark"].nunique() > 1 else ""))
    written += _save(fig, folder, "accuracy_vs_k")
    plt.close(fig)

    # Fig. 5: one panel per benchmark
    benches = sorted(pct["benchmark"].unique())
    grid = sns.relplot(pct, x="k", y="accuracy", hue="variant", hue_order=_present(pct), palette=palette,
                       col="benchmark", col_order=benches, col_wrap=min(len(benches), 3), kind="line", marker="o",
                       errorbar=band, height=3, aspect=1.1, facet_kws={"sharey": False})
    if scale == "paper":
        for bench, ax in grid.axes_dict.items():
            for v, vals in PAPER_PER_BENCHMARK.get(bench, {}).items():
                ax.plot(range(1, len(vals) + 1), vals, ls="--", color=palette[v], alpha=0.7)
    grid.set_axis_labels("attempts allowed (k)", "accuracy (%)")
    grid.set_titles("{col_name}")
    grid.set(xticks=sorted(pct["k"].unique()))
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0), ncol=len(_present(pct)), frameon=False)
    _relabel(grid.legend)
    written += _save(grid.figure, folder, "per_benchmark")
    plt.close(grid.figure)

    # Fig. 4: learning curves
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    if not curves.empty:
        c = curves.sort_values(["variant", "seed", "step"]).copy()
        c["reward"] = c.groupby(["variant", "seed"])["reward"].transform(
            lambda s: s.rolling(smooth, min_periods=1).mean())
        sns.lineplot(c.dropna(subset=["reward"]), x="step", y="reward", hue="variant", hue_order=_present(c),
                     palette=palette, errorbar=band, ax=axes[0])
        evals = c.dropna(subset=["heldout_accuracy"]).assign(heldout_accuracy=lambda d: d["heldout_accuracy"] * 100)
        sns.lineplot(evals, x="step", y="heldout_accuracy", hue="variant", hue_order=_present(c), palette=palette,
                     marker="o", errorbar=band, ax=axes[1])
        _legend(axes[0])
        axes[1].get_legend().remove()
    axes[0].set(xlabel="RL step", ylabel=f"training reward ({smooth}-step mean)", title="Training reward")
    axes[1].set(xlabel="RL step", ylabel="held-out accuracy, 1 attempt (%)", title="Held-out accuracy")
    written += _save(fig, folder, "learning_curves")
    plt.close(fig)

    # What happens at each retry
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    if not retries.empty:
        r = retries.assign(wrong_to_right_rate=retries["wrong_to_right_rate"] * 100,
                           repeat_rate=retries["repeat_rate"] * 100)
        for ax, column, title in ((axes[0], "wrong_to_right_rate", "Wrong answer fixed at this attempt"),
                                  (axes[1], "repeat_rate", "Repeats an earlier wrong answer")):
            sns.barplot(r, x="retry", y=column, hue="variant", hue_order=_present(r), palette=palette,
                        errorbar=band, ax=ax)
            ax.set(xlabel="attempt", ylabel="% of dialogues reaching it", title=title)
        _legend(axes[0])
        axes[1].get_legend().remove()
    written += _save(fig, folder, "retries")
    plt.close(fig)
    return written


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
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


MULTI_BOX_NOTES = {
    "last": "the last box of each attempt is its answer, as in the released code",
    "all": "all boxes of an attempt together are its answer, read as a list (as Math-Verify joins them)",
}


def grading_note(grading: Mapping) -> str:
    """One sentence on the grading rule the evaluations used (summary.json's "grading")."""
    rule = grading.get("multi_box", "last")
    return f"Grading: `grading.multi_box: {rule}` — {MULTI_BOX_NOTES.get(rule, 'see pipeline/grading.py')}."


def markdown(summary: Mapping, acc: pd.DataFrame, curves: pd.DataFrame, figures_dir: str = "figures") -> str:
    """report.md: headline, gain k=1 -> 2, accuracy per variant / seed / benchmark, retries, training, figures."""
    ks = [str(k) for k in summary["k"]]
    variants = summary["variants"]
    entries = {**variants, **({BASE: summary["base"]} if "base" in summary else {})}
    lines = [f"# Multi-attempt vs single-attempt RL — {summary['scale']} experiment", "",
             "Generated by the workflow (`snakemake --cores all`) from the evaluation metrics and training logs; "
             "numbers are percent. Accuracy@k: share of questions solved within k attempts (greedy, one run per k), "
             f"averaged over the benchmarks ({', '.join(summary['benchmarks'])}) and over seeds.", ""]
    if "grading" in summary:
        lines += [grading_note(summary["grading"]), ""]

    gains = {v: e["gain_k1_to_k2"] for v, e in entries.items() if "gain_k1_to_k2" in e}
    if "multi_attempt" in gains and "baseline" in gains:
        m, b = gains["multi_attempt"]["gain"], gains["baseline"]["gain"]
        verdict = "more" if m > b else "less" if m < b else "as much"
        lines += [f"**Headline:** from 1 to 2 attempts the multi-attempt model gains {_pct(m)} points, the baseline "
                  f"{_pct(b)}: multi-attempt training gains {verdict} from a second attempt "
                  f"({_pct(m - b)} points difference).", ""]

    lines += ["## Accuracy vs allowed attempts", ""]
    rows = []
    for v, e in entries.items():
        rng = e.get("accuracy_at_k_range", {})
        rows.append([LABELS[v], *(_pct(e["accuracy_at_k"].get(k)) + (
            f" ({_pct(rng[k][0])}–{_pct(rng[k][1])})" if k in rng and len(e.get("seeds", {})) > 1 else "")
            for k in ks)])
    if "paper" in summary:
        for v, by_k in summary["paper"]["accuracy_at_k"].items():
            rows.append([f"paper: {LABELS[v]}", *(_pct(by_k.get(k)) for k in ks)])
    lines += _table(["model", *(f"k={k}" for k in ks)], rows)
    lines += ["", "Brackets: range over seeds.", "", f"![Accuracy vs attempts]({figures_dir}/accuracy_vs_k.png)", ""]

    if gains:
        lines += ["## Gain from a second attempt (k=1 → k=2)", ""]
        rows = [[LABELS[v], _pct(g["gain"]), f"[{_pct(g['ci95'][0])}, {_pct(g['ci95'][1])}]",
                 ", ".join(f"s{s}: {_pct(x['gain_k1_to_k2']['gain'])}" for s, x in entries[v].get("seeds", {}).items()
                           if "gain_k1_to_k2" in x) or "–"] for v, g in gains.items()]
        lines += _table(["model", "gain", "95% interval", "per seed"], rows)
        lines += ["", "Interval: paired bootstrap over questions (stratified by benchmark) of the per-question gain "
                  "averaged over seeds.", ""]

    lines += ["## Accuracy per seed and benchmark", ""]
    rows = []
    for (model, bench), g in acc.groupby(["model", "benchmark"]):
        by_k = _by_k(g)
        rows.append([model, bench, *(_pct(by_k.get(k)) for k in ks)])
    if summary["scale"] == "paper":
        for bench in summary["benchmarks"]:
            for v, vals in PAPER_PER_BENCHMARK.get(bench, {}).items():
                rows.append([f"paper: {v}", bench, *(f"{vals[int(k) - 1]:.1f}" if int(k) <= len(vals) else "–"
                                                     for k in ks)])
    lines += _table(["model", "benchmark", *(f"k={k}" for k in ks)], rows)
    lines += ["", f"![Per benchmark]({figures_dir}/per_benchmark.png)", ""]

    retry_rows = [[LABELS[v], _pct(e["retry_max_k"]["wrong_to_right_rate"]), _pct(e["retry_max_k"]["repeat_rate"])]
                  for v, e in entries.items() if "retry_max_k" in e]
    if retry_rows:
        lines += [f"## What happens after a wrong answer (k={ks[-1]} runs, all retries)", ""]
        lines += _table(["model", "wrong → right", "repeats an earlier wrong answer"], retry_rows)
        lines += ["", f"![Retries]({figures_dir}/retries.png)", ""]

    train_rows = []
    for v, e in variants.items():
        for s, x in e.get("seeds", {}).items():
            t = x.get("training")
            if t:
                train_rows.append([LABELS[v], s, str(t["steps"]), f"{t['final_reward']:.3f}",
                                   _pct(t["heldout_accuracy_start"]), _pct(t["heldout_accuracy_end"])])
    if train_rows:
        lines += ["## Training", ""]
        lines += _table(["variant", "seed", "steps", "final reward (last 10% of steps)",
                         "held-out acc. at start", "at end"], train_rows)
        lines += ["", f"![Learning curves]({figures_dir}/learning_curves.png)", ""]
    return "\n".join(lines) + "\n"
