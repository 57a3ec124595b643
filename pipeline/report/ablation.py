"""The feedback ablation's report (issue 17): does the feedback a multi-attempt policy trains and is evaluated
with change what it gains from its retries?

Input: the metrics.json of every ablation evaluation (`eval/<model>/<set>/feedback_<provider>/metrics.json`), the
provider each was evaluated with and its k=1 and k=2 traces, as the rule lists them (rules/report.smk,
Layout.ablation_metrics): `model` is the ablation's base (`base_fb`) or a run of one of its variants
(`fb_<provider>_s<seed>`, config feedback_ablation.variants). Each run is evaluated with its own provider and with
`fixed`, so the `fixed` column compares the runs under one wording. One row per (model, evaluation provider): accuracy@k
(macro over evaluation sets, mean and min-max over seeds), the k=1 -> k=2 gain with its 95% interval, and the
retry rates of the largest-k run. Every number is computed as in the main report (pipeline/report/aggregate.py:
`accuracy_table`, `gain_k1_to_k2`, `retry_intervals`). Output schema: reports/README.md (feedback_ablation.json).

Under provider `none` a dialogue runs all k attempts and is scored on its LAST answer (pipeline/feedback.py), so
its accuracy@k is the share right at the k-th answer, not within k answers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from pipeline.config import Config
from pipeline.io import DataError, atomic_path, write_json
from pipeline.report.aggregate import accuracy_table, gain_k1_to_k2, read_metrics, retry_intervals, trace_pairs
from pipeline.report.figures import BAND, save, setup
from pipeline.report.format import interval_text, pct, table

RATES = ("wrong_to_right_rate", "repeat_rate", "repeat_rate_equiv")


@dataclasses.dataclass(frozen=True)
class Evaluations:
    """The ablation's evaluations as the rule lists them: metrics.json files, the provider each was evaluated with
    (same order), and the k=1 and k=2 traces of each (two per file, same order; none without k = 2)."""

    metrics: Sequence[str | Path]
    providers: Sequence[str]
    traces: Sequence[str | Path] = ()

    def __post_init__(self):
        if len(self.metrics) != len(self.providers):
            raise DataError(f"feedback ablation: {len(self.metrics)} metrics.json, {len(self.providers)} providers")
        if not self.metrics:
            raise DataError("feedback ablation: no metrics.json given")


def own_provider(cfg: Config) -> dict[str, str]:
    """Each compared variant's training provider (its env.feedback.provider), in the configured order."""
    return {v: cfg.variant_env(v).feedback.provider for v in cfg.feedback_ablation.variants}


def trained_with(cfg: Config, variant: str) -> str | None:
    """A compared variant's training provider (fb_echo -> echo); the ablation's base -> None."""
    own = own_provider(cfg)
    if variant in own:
        return own[variant]
    if variant == ablation_base(cfg):
        return None
    raise DataError(f"model {variant!r} is neither the ablation's base nor one of feedback_ablation.variants")


def ablation_base(cfg: Config) -> str:
    """The base the compared variants train from (config checks they share one)."""
    return cfg.variant(cfg.feedback_ablation.variants[0]).base


def _spread(values: pd.Series) -> dict:
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}


def accuracy(ev: Evaluations) -> pd.DataFrame:
    """accuracy_table with the provider each evaluation used (column `evaluated_with`)."""
    frames = [accuracy_table([p]).assign(evaluated_with=q) for p, q in zip(ev.metrics, ev.providers)]
    return pd.concat(frames, ignore_index=True)


def summarize(cfg: Config, ev: Evaluations, n_boot: int = 1000) -> dict:
    """feedback_ablation.json: the conditions and one row per (model, evaluation provider)."""
    acc = accuracy(ev)
    groups: dict[tuple[str, str], list[Path]] = {}
    for path, provider in zip(map(Path, ev.metrics), ev.providers):
        groups.setdefault((read_metrics(path)["variant"], provider), []).append(path)
    pairs = trace_pairs(ev.metrics, ev.traces) if ev.traces else {}
    rows = []
    for (variant, provider), files in sorted(groups.items(), key=lambda kv: _order(cfg, *kv[0])):
        runs = acc[(acc["variant"] == variant) & (acc["evaluated_with"] == provider)]
        macro = runs.groupby(["model", "k"], as_index=False)["accuracy"].mean()  # per run: mean of eval sets
        by_k = {str(k): _spread(g["accuracy"]) for k, g in macro.groupby("k")}
        trained = trained_with(cfg, variant)
        rows.append(
            {
                "model": variant,
                "trained_with": trained,
                "evaluated_with": provider,
                "own_feedback": trained in (None, provider),
                "scored_on": "last" if provider == "none" else "any",
                "seeds": sorted({int(s) for s in runs["seed"].dropna()}),
                "accuracy": by_k,
                "gain_k1_to_k2": gain_k1_to_k2(files, pairs, n_boot) if "2" in by_k else None,
                "retry": _retry(files),
            }
        )
    base, extends = ablation_base(cfg), {cfg.variant(v).extends for v in cfg.feedback_ablation.variants}
    return {
        "providers": list(own_provider(cfg).values()),
        "variant": extends.pop() if len(extends) == 1 else None,  # what the compared variants extend
        "base_model": base,
        "base_sft_providers": list(cfg.for_base(base).model.sft.feedback_providers or [cfg.env.feedback.provider]),
        "seeds": list(cfg.seeds),
        "max_k": cfg.eval.max_k,
        "evaluation_sets": sorted(acc["benchmark"].unique()),
        "rows": rows,
    }


def _retry(files: Sequence[Path]) -> dict:
    """The largest-k run's retry rates over all retries (retry_intervals): per run the mean over evaluation
    sets, then mean and min-max over the runs (seeds); n_retries summed."""
    intervals = pd.DataFrame(retry_intervals(files))
    out: dict = {"k": int(intervals["k"].max()) if len(intervals) else None}
    out["n_retries"] = int(intervals["n_retries"].sum()) if len(intervals) else 0
    for rate in RATES:
        values = intervals.groupby("model")[rate].mean().dropna() if rate in intervals else pd.Series(dtype=float)
        out[rate] = _spread(values) if len(values) else None
    return out


def _order(cfg: Config, variant: str, provider: str) -> tuple:
    """The base first, then the runs in the configured providers' order; own feedback before fixed."""
    providers = list(own_provider(cfg).values())
    trained = trained_with(cfg, variant)
    rank = -1 if trained is None else providers.index(trained) if trained in providers else len(providers)
    where = providers.index(provider) if provider in providers else len(providers)
    return (rank, trained is not None and provider != trained, where)


# ----------------------------------------------------------------------------------------------- report


def _range(s: Mapping | None, digits: int = 1) -> str:
    """'52.0 (49.0–55.0)': mean (min–max over seeds) in percent; the mean alone for one seed."""
    if s is None:
        return "–"
    mean = pct(s["mean"], digits)
    return mean if s["min"] == s["max"] else f"{mean} ({pct(s['min'], digits)}–{pct(s['max'], digits)})"


def _who(row: Mapping) -> str:
    return f"`{row['model']}` (base)" if row["trained_with"] is None else f"`{row['model']}`"


def markdown(summary: Mapping, figures_dir: str = "figures") -> str:
    """feedback_ablation.md: the conditions, the accuracy@k table with the gain interval, the retry table."""
    ks = sorted({k for r in summary["rows"] for k in r["accuracy"]}, key=int)  # the k evaluated
    seeds = ", ".join(map(str, summary["seeds"]))
    lines = [
        "# Feedback ablation",
        "",
        f"Variant `fb_<provider>` is `{summary['variant']}` trained with feedback provider <provider> "
        f"({', '.join(summary['providers'])}), seeds {seeds}, from its own base model `{summary['base_model']}` "
        f"whose SFT transcripts drew their feedback from {', '.join(summary['base_sft_providers'])}. Each run is "
        "evaluated greedily at k = 1.."
        f"{summary['max_k']} with its own provider and with `fixed` (the same sentence for every run); the base with "
        f"each provider. Evaluation sets: {', '.join(summary['evaluation_sets'])}. Accuracy in %: mean over seeds "
        "(min–max); gain from k = 1 to 2 in points with its 95% interval (bootstrap over questions, seed-averaged).",
        "",
        "## Accuracy@k",
        "",
    ]
    rows = [
        [
            _who(r),
            f"`{r['evaluated_with']}`" + ("" if r["own_feedback"] else " (not its own)"),
            *(_range(r["accuracy"].get(k)) for k in ks),
            "–"
            if r["gain_k1_to_k2"] is None
            else f"{100 * r['gain_k1_to_k2']['gain']:+.1f}{interval_text(r['gain_k1_to_k2']['ci95'])}",
        ]
        for r in summary["rows"]
    ]
    lines += table(["model", "evaluated with", *(f"k={k}" for k in ks), "gain k=1→2"], rows)
    lines += [
        "",
        f"![accuracy@k per provider]({figures_dir}/feedback_ablation.png)",
        "",
        "## Retries",
        "",
        "In the largest-k run, over all retries (attempts 2..k after a wrong answer): how often a wrong answer was "
        "followed by a right one, and how often the retry repeated an earlier wrong answer (as a string; as an "
        "answer the grader judges the same). Mean over seeds (min–max), in %.",
        "",
    ]
    rows = [
        [
            _who(r),
            f"`{r['evaluated_with']}`",
            str(r["retry"]["n_retries"]),
            *(_range(r["retry"].get(rate)) for rate in RATES),
        ]
        for r in summary["rows"]
    ]
    lines += table(["model", "evaluated with", "retries", "wrong→right", "repeats (string)", "repeats (grader)"], rows)
    if any(r["scored_on"] == "last" for r in summary["rows"]):
        lines += [
            "",
            "Under `none` a dialogue runs all k attempts and is scored on its last answer: accuracy@k there is the "
            "share right at the k-th answer, not within k answers.",
        ]
    return "\n".join(lines) + "\n"


def figure(cfg: Config, summary: Mapping, acc: pd.DataFrame, folder: str | Path) -> list[Path]:
    """figures/feedback_ablation.{png,pdf}: accuracy@k of each run with its own provider (left) and with `fixed`
    (right), one colour per training provider, band min-max over seeds; the base `base_fb` dashed."""
    plt, sns = setup()
    macro = acc.groupby(["model", "variant", "seed", "evaluated_with", "k"], dropna=False, as_index=False)[
        "accuracy"
    ].mean()
    macro["accuracy"] *= 100
    macro["trained_with"] = [trained_with(cfg, v) for v in macro["variant"]]
    macro["model kind"] = ["base" if t is None else "trained" for t in macro["trained_with"]]
    macro["provider"] = macro["trained_with"].fillna(macro["evaluated_with"])
    own = macro[macro["trained_with"].isna() | (macro["trained_with"] == macro["evaluated_with"])]
    fixed = macro[macro["evaluated_with"] == "fixed"]
    order = list(dict.fromkeys([*summary["providers"], *macro["provider"]]))
    palette = dict(zip(order, sns.color_palette("colorblind", len(order))))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, data, title in (
        (axes[0], own, "evaluated with its own feedback"),
        (axes[1], fixed, "evaluated with fixed"),
    ):
        if len(data):
            sns.lineplot(
                data,
                x="k",
                y="accuracy",
                hue="provider",
                hue_order=[p for p in order if p in set(data["provider"])],
                style="model kind",
                style_order=["trained", "base"],
                palette=palette,
                errorbar=BAND,
                marker="o",
                ax=ax,
            )
        ax.set(title=title, xlabel="attempts allowed at evaluation (k)", ylabel="accuracy (%)")
        ax.set_xticks(sorted(macro["k"].unique()))
    fig.suptitle("Feedback ablation: colour = training feedback (base: evaluation feedback)", fontsize=9)
    fig.tight_layout()
    written = save(fig, Path(folder), "feedback_ablation")
    plt.close(fig)
    return written


def write(cfg: Config, ev: Evaluations, out_json: str | Path, out_md: str | Path, figures: str | Path) -> list[Path]:
    """The ablation's json, markdown and figure; the files written."""
    summary = summarize(cfg, ev)
    write_json(out_json, summary)
    Path(figures).mkdir(parents=True, exist_ok=True)
    written = figure(cfg, summary, accuracy(ev), figures)
    with atomic_path(out_md) as tmp:
        tmp.write_text(markdown(summary, os.path.relpath(figures, Path(out_md).parent)), encoding="utf-8")
    return [Path(out_json), Path(out_md), *written]
