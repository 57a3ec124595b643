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
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import config, metrics, provenance, stats
from pipeline.config import Config
from pipeline.io import DataError, atomic_path, read_json, read_jsonl
from pipeline.layout import BASE, parse_model

LABELS = {"multi_attempt": "multi-attempt RL", "baseline": "single-attempt RL (baseline)", BASE: "base model"}
PAIR = ("multi_attempt", "baseline")  # the paper's comparison: the headline is the difference of their gains


def label(model: str) -> str:
    """A variant's (or the base model's) name in tables and legends."""
    return LABELS.get(model, model.replace("_", " "))


BAND = ("pi", 100)  # figures' bands: min-max over seeds
IDENTITY = ("model", "variant", "seed", "benchmark")  # what each metrics.json says it scores


def _paper_numbers() -> dict:
    """paper_numbers.yaml beside this file: the paper's Fig. 1 average, Fig. 5 per benchmark, Table 1, Fig. 4, and
    this implementation's departures from the released code."""
    import yaml

    return yaml.safe_load((Path(__file__).with_name("paper_numbers.yaml")).read_text(encoding="utf-8"))


PAPER = _paper_numbers()
PAPER_AVERAGE = {v: x for v, x in PAPER["average"].items() if v != "source"}  # variant -> accuracy (%) at k = 1..7
PAPER_SOURCE, PAPER_PER_BENCHMARK = PAPER["average"]["source"], PAPER["per_benchmark"]


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
                    "repeat_rate_equiv": retry.get("repeat_rate_equiv", {}).get(j),
                }
            )
    columns = [*IDENTITY, "k", "retry", "reached", "wrong_to_right_rate", "repeat_rate", "repeat_rate_equiv"]
    return pd.DataFrame(rows, columns=columns)


RETRY_RATES = ("wrong_to_right_rate", "repeat_rate", "repeat_rate_equiv")


def retry_intervals(metrics_files: Sequence[str | Path]) -> list[dict]:
    """summary.json's retry_intervals: per model x benchmark, the largest-k run's rates over all retries with their
    95% bootstrap intervals over questions (metrics.retry_intervals): wrong -> right, repeats of an earlier wrong
    answer as the same string, and as an answer the grader judges the same."""
    rows = []
    for path in metrics_files:
        m = read_metrics(path)
        if not m.get("by_k"):
            continue
        k = max(m["by_k"], key=int)
        overall = m["by_k"][k]["retry"]["overall"]
        row = {**{key: m[key] for key in IDENTITY}, "k": int(k), "n_retries": overall["n_retries"]}
        for rate in RETRY_RATES:
            if rate in overall:
                row[rate], row[f"{rate}_ci95"] = overall[rate], overall.get(f"{rate}_ci95")
        rows.append(row)
    return sorted(rows, key=lambda r: (r["model"], r["benchmark"]))


def k_attempt_curves(curve_files: Sequence[str | Path], acc: pd.DataFrame, final_step: int) -> pd.DataFrame:
    """Accuracy at k attempts over training (eval.curve_steps): one row per variant x seed x step x benchmark x k,
    from the curves' actors (their metrics.json name the step), the base model at step 0 and the final models at
    `final_step`. Empty when no step was asked for."""
    columns = ["variant", "seed", "step", "benchmark", "k", "accuracy"]
    if not curve_files:
        return pd.DataFrame(columns=columns)
    rows = []
    for path in curve_files:
        m = read_metrics(path)
        rows += [
            {
                "variant": m["variant"],
                "seed": m["seed"],
                "step": m["step"],
                "benchmark": m["benchmark"],
                "k": int(k),
                "accuracy": run["accuracy"],
            }
            for k, run in m["by_k"].items()
        ]
    trained = acc[acc["seed"].notna() & acc["variant"].isin({r["variant"] for r in rows})]
    rows += [
        {**r, "step": final_step} for r in trained[["variant", "seed", "benchmark", "k", "accuracy"]].to_dict("records")
    ]
    base = acc[acc["variant"] == BASE]
    for variant, seed in {(r["variant"], r["seed"]) for r in rows}:
        rows += [
            {**r, "variant": variant, "seed": seed, "step": 0}
            for r in base[["benchmark", "k", "accuracy"]].to_dict("records")
        ]
    frame = pd.DataFrame(rows, columns=columns).astype({"seed": int, "step": int})
    return frame.sort_values(["variant", "seed", "step", "benchmark", "k"], ignore_index=True)


def curves_summary(curves: pd.DataFrame) -> dict:
    """summary.json's k_attempt_curves: per variant, step -> k -> macro accuracy (mean over seeds)."""
    macro = curves.groupby(["variant", "seed", "step", "k"], as_index=False)["accuracy"].mean()
    means = macro.groupby(["variant", "step", "k"])["accuracy"].mean()
    out: dict = {}
    for (variant, step, k), x in means.items():
        out.setdefault(variant, {}).setdefault(str(step), {})[str(k)] = float(x)
    return out


def controls_table(parallel_files: Sequence[str | Path], others: Sequence[str] = ()) -> pd.DataFrame:
    """Sequential vs parallel at equal budget (pipeline.probes' parallel.json files): one row per model x benchmark
    x k x mode, mode = sequential (the k-attempt dialogue with feedback) | pass (pass@k of k independent samples) |
    majority (majority@k), with its accuracy and the mean policy tokens per question."""
    rows = []
    for path in parallel_files:
        p = read_json(path)
        variant, seed = parse_model(p["model"], others)
        who = {"model": p["model"], "variant": variant, "seed": seed, "benchmark": p["benchmark"]}
        for k, x in p["sequential"].items():
            rows.append(
                {**who, "k": int(k), "mode": "sequential", "accuracy": x["accuracy"], "tokens": x["mean_tokens"]}
            )
        for k, x in p["by_k"].items():
            for mode in ("pass", "majority"):
                rows.append(
                    {**who, "k": int(k), "mode": mode, "accuracy": x[f"{mode}_at_k"], "tokens": x["mean_tokens"]}
                )
    columns = [*IDENTITY, "k", "mode", "accuracy", "tokens"]
    return pd.DataFrame(rows, columns=columns).sort_values(
        ["variant", "seed", "benchmark", "mode", "k"], ignore_index=True
    )


def controls_summary(controls: pd.DataFrame) -> dict:
    """summary.json's controls: per model name (variant, base, eval.models) and mode, macro accuracy and mean tokens
    at each k (mean over benchmarks, then over seeds)."""
    if controls.empty:
        return {}
    macro = controls.groupby(["variant", "seed", "mode", "k"], dropna=False, as_index=False)[
        ["accuracy", "tokens"]
    ].mean()
    means = macro.groupby(["variant", "mode", "k"])[["accuracy", "tokens"]].mean()
    out: dict = {}
    for (variant, mode, k), x in means.iterrows():
        entry = out.setdefault(variant, {}).setdefault(mode, {})
        entry[str(k)] = {"accuracy": float(x["accuracy"]), "tokens": float(x["tokens"])}
    return out


def flip_probe(flip_files: Sequence[str | Path], others: Sequence[str] = ()) -> dict:
    """summary.json's flip_probe: per model x benchmark, right first answers told they are wrong: how often the
    second answer is wrong (flip rate, 95% interval) or repeats the first; per variant the pooled rate."""
    rows = []
    for path in flip_files:
        f = read_json(path)
        variant, seed = parse_model(f["model"], others)
        rows.append(
            {
                "model": f["model"],
                "variant": variant,
                "seed": seed,
                "benchmark": f["benchmark"],
                **{key: f[key] for key in ("n_probed", "n_flipped", "flip_rate", "flip_rate_ci95", "repeat_rate")},
            }
        )
    pooled: dict[str, list[int]] = {}
    for r in rows:
        n = pooled.setdefault(r["variant"], [0, 0])
        n[0], n[1] = n[0] + r["n_flipped"], n[1] + r["n_probed"]
    return {
        "models": sorted(rows, key=lambda r: (r["model"], r["benchmark"])),
        "variants": {v: {"n_probed": n, "flip_rate": f / n if n else None} for v, (f, n) in pooled.items()},
    }


def grader_audit(audit_files: Sequence[str | Path]) -> dict:
    """summary.json's grader_audit: per model, macro accuracy at each k under Math-Verify (the headline grader) and
    under the second grader (pipeline.audit), and the attempts they disagree on; per variant the mean over seeds."""
    per_model: dict[str, dict] = {}
    for path in audit_files:
        a = read_json(path)
        entry = per_model.setdefault(
            a["model"], {"by_set": {}, "n_attempts": 0, "n_disagreements": 0, "primary_only": 0, "second_only": 0}
        )
        entry["by_set"][a["eval_set"]] = a["by_k"]
        for key in ("n_attempts", "n_disagreements", "primary_only", "second_only"):
            entry[key] += a["total"][key]
    models = {}
    for model, e in sorted(per_model.items()):
        ks = sorted({k for by_k in e["by_set"].values() for k in by_k}, key=int)
        models[model] = {
            **{
                g: {k: stats.macro_average({s: b[k][f"accuracy_{g}"] for s, b in e["by_set"].items()}) for k in ks}
                for g in ("primary", "second")
            },
            **{key: e[key] for key in ("n_attempts", "n_disagreements", "primary_only", "second_only")},
        }
    variants: dict[str, dict] = {}
    for model, m in models.items():
        variant = parse_model(model)[0]
        for g in ("primary", "second"):
            for k, x in m[g].items():
                variants.setdefault(variant, {}).setdefault(g, {}).setdefault(k, []).append(x)
    return {
        "headline_grader": "math_verify",
        "second_grader": "second_equal",
        "models": models,
        "variants": {
            v: {g: {k: sum(xs) / len(xs) for k, xs in by_k.items()} for g, by_k in e.items()}
            for v, e in variants.items()
        },
    }


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


def _question_gains(metrics_files: Sequence[Path]) -> dict[str, list[float]]:
    """Benchmark -> per-question gain from k=1 to k=2 (0/1 at k=2 minus 0/1 at k=1, paired by id, in sorted-id
    order), averaged over the runs (the seeds of one variant)."""
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
    return averaged


def gain_k1_to_k2(metrics_files: Sequence[Path], n_boot: int = 1000) -> dict:
    """Gain in macro accuracy from k=1 to k=2 of a group of runs (the seeds of one variant), with its 95% interval.

    Per benchmark, the per-question gain is averaged over the runs; the point estimate is the macro mean and the
    interval a stratified bootstrap over questions (stats.macro_ci).
    """
    averaged = _question_gains(metrics_files)
    point = stats.macro_average({b: sum(v) / len(v) for b, v in averaged.items()})
    lo, hi = stats.macro_ci(averaged, n_boot=n_boot)
    return {"gain": point, "ci95": [lo, hi]}


def gain_difference(files_a: Sequence[Path], files_b: Sequence[Path], n_boot: int = 1000) -> dict:
    """How much more variant A gains from a second attempt than variant B: the difference of their k=1 -> k=2
    gains, with a 95% interval from a bootstrap over questions (stratified by benchmark) of the per-question
    difference of seed-averaged gains -- paired: both variants answer the same questions."""
    a, b = _question_gains(files_a), _question_gains(files_b)
    if a.keys() != b.keys() or any(len(a[x]) != len(b[x]) for x in a):
        raise DataError("gain difference: the two variants were evaluated on different questions")
    diff = {x: [u - v for u, v in zip(a[x], b[x])] for x in a}
    point = stats.macro_average({x: sum(v) / len(v) for x, v in diff.items()})
    lo, hi = stats.macro_ci(diff, n_boot=n_boot)
    return {"difference": point, "ci95": [lo, hi]}


def _by_k(frame: pd.DataFrame) -> dict[str, float]:
    return {str(k): float(v) for k, v in frame.groupby("k")["accuracy"].mean().items()}


def _macro_per_seed(acc: pd.DataFrame) -> pd.DataFrame:
    """Macro accuracy (mean over benchmarks) per model x k; keeps variant and seed."""
    return acc.groupby(["model", "variant", "seed", "k"], dropna=False, as_index=False)["accuracy"].mean()


def summarize(
    acc: pd.DataFrame, retries: pd.DataFrame, curves: pd.DataFrame, metrics_files: Sequence[str | Path], cfg: Config
) -> dict:
    """summary.json (schema in reports/README.md): accuracy@k per variant (mean over seeds of the macro average),
    its per-seed and per-benchmark values, the k=1 -> k=2 gain with its interval, retry rates, training results;
    the difference of the paired variants' gains, the departures from the paper and, at paper scale, ours minus
    the paper's numbers."""
    evaluations = {Path(p): read_metrics(p) for p in metrics_files}
    macro = _macro_per_seed(acc)
    out: dict = {
        "scale": cfg.scale,
        "benchmarks": sorted(acc["benchmark"].unique()),
        "k": sorted(int(k) for k in acc["k"].unique()),
        "variants": {},
    }
    for variant in [*cfg.trained_variants, BASE, *cfg.eval.models]:
        rows = macro[macro["variant"] == variant]
        if rows.empty:
            continue
        per_k = rows.groupby("k")["accuracy"]
        entry = {
            **(_declared(cfg, variant) if variant in cfg.variants else {}),
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
            entry["retry_max_k"] = {rate: _weighted(r, rate) for rate in RETRY_RATES}
        if variant == BASE:
            out["base"] = entry
            continue
        if variant in cfg.eval.models:  # evaluated beside the others, not trained here
            out.setdefault("others", {})[variant] = {"source": cfg.eval.models[variant], **entry}
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
    pair = [v for v in PAIR if "gain_k1_to_k2" in out["variants"].get(v, {})]
    if len(pair) == 2:
        out["gain_difference"] = _gain_difference(evaluations, out["variants"])
    out["departures"] = departures(cfg, acc)
    if cfg.scale == "paper":
        out["paper"] = {
            "accuracy_at_k": {
                v: {str(k + 1): x / 100 for k, x in enumerate(vals)} for v, vals in PAPER_AVERAGE.items()
            },
            "source": PAPER_SOURCE,
            "ours_minus_paper": ours_minus_paper(acc),
            "fig4": PAPER["fig4"],
        }
    return out


def _declared(cfg: Config, variant: str) -> dict:
    """What a variant is (summary.json): its description, attempt range and the env keys it overrides."""
    v = cfg.variant(variant)
    return {
        "description": v.description,
        "attempts": [v.min_attempts, v.max_attempts],
        "env_overrides": sorted(v.env),
        "heldout_prompt": "own" if not v.heldout_prompt_template else "heldout_prompt_template",
    }


def _gain_difference(evaluations: Mapping[Path, Mapping], variants: Mapping[str, Mapping]) -> dict:
    """The headline: multi-attempt's k=1 -> 2 gain minus the baseline's, with its interval paired over questions
    (seed-averaged), the per-seed differences (seeds paired by number) and the ratio of the two gains."""
    a, b = PAIR
    files = {v: [p for p, m in evaluations.items() if m["variant"] == v] for v in PAIR}
    out = {"variants": list(PAIR), **gain_difference(files[a], files[b])}
    seeds_a, seeds_b = variants[a].get("seeds", {}), variants[b].get("seeds", {})
    out["per_seed"] = {
        s: seeds_a[s]["gain_k1_to_k2"]["gain"] - seeds_b[s]["gain_k1_to_k2"]["gain"]
        for s in sorted(seeds_a.keys() & seeds_b.keys(), key=int)
        if "gain_k1_to_k2" in seeds_a[s] and "gain_k1_to_k2" in seeds_b[s]
    }
    gain_b = variants[b]["gain_k1_to_k2"]["gain"]
    out["ratio"] = variants[a]["gain_k1_to_k2"]["gain"] / gain_b if gain_b > 0 else None
    return out


def _show(value: Any, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# Keys that do not change the numbers (names, engine memory, workers, batching), or that get their own line.
NOT_DEPARTURES = (
    "scale",
    "experiment",
    "protect_models",
    "rollout.vllm.",
    "grading.workers",
    "eval.batch_size",
    "variants",
    "data.benchmarks",
)


def departures(cfg: Config, acc: pd.DataFrame | None = None) -> list[str]:
    """What separates this run from the paper's, as short lines: per section of the configuration, the keys
    whose resolved value differs from the paper preset's (ours, then the paper's in brackets); per variant, what
    its training differs in from the paper's variant of that name; the evaluation sets and their sizes; then
    this implementation's fixed departures from the released code (paper_numbers.yaml)."""
    paper_cfg = config.resolve({"scale": "paper"})
    ours, paper = config.leaves(cfg.to_dict()), config.leaves(paper_cfg.to_dict())
    by_section: dict[str, list[str]] = {}
    for key in sorted(ours.keys() | paper.keys()):
        if key.startswith(NOT_DEPARTURES) or ours.get(key) == paper.get(key):
            continue
        change = f"{key} {_show(ours.get(key, '–'))} (paper {_show(paper.get(key, '–'))})"
        by_section.setdefault(key.split(".")[0], []).append(change)
    lines = []
    for section, changes in by_section.items():
        shown = changes if len(changes) <= 6 else [*changes[:6], f"and {len(changes) - 6} more"]
        lines.append(f"`{section}`: " + "; ".join(shown))
    lines += _variant_departures(cfg, paper_cfg)
    if acc is not None and not acc.empty:  # other sets, or the paper's from other sources or cut short
        sizes = acc.groupby("benchmark")["n"].max()
        names = sorted(PAPER_PER_BENCHMARK)
        paper_sets, ours_sets = paper_cfg.data.benchmarks, cfg.data.benchmarks
        changed = {b for b in sizes.index if b in ours_sets and ours_sets[b] != paper_sets.get(b)}
        if sorted(sizes.index) != names or changed:
            lines.append(
                "evaluation sets: "
                + ", ".join(
                    f"{b} ({n} questions"
                    + (f", from {_show(ours_sets[b].source)} ({ours_sets[b].split})" if b in changed else "")
                    + ")"
                    for b, n in sizes.items()
                )
                + f" (the paper's: {', '.join(names)}, whole, from the hub)"
            )
    return [*lines, PAPER["checkpoint_departure"][cfg.eval.checkpoint], *PAPER["implementation_departures"]]


def _variant_departures(cfg: Config, paper: Config) -> list[str]:
    """One line per trained variant that is not the paper's variant of its name: attempts, and the training
    environment keys where either side sets its own (the rest follows `env`, compared above)."""
    lines = []
    for v in cfg.trained_variants:
        if v not in paper.trained_variants:
            lines.append(f"variant `{v}` is not one of the paper's runs ({', '.join(paper.trained_variants)})")
            continue
        ours, theirs = cfg.variant(v), paper.variant(v)
        diffs = []
        if (ours.min_attempts, ours.max_attempts) != (theirs.min_attempts, theirs.max_attempts):
            diffs.append(
                f"N {ours.min_attempts}-{ours.max_attempts} (paper {theirs.min_attempts}-{theirs.max_attempts})"
            )
        env_ours = config.leaves(dataclasses.asdict(cfg.variant_env(v)))
        env_theirs = config.leaves(dataclasses.asdict(paper.variant_env(v)))
        own = {k for k in config.leaves(ours.env) | config.leaves(theirs.env)}
        diffs += [
            f"env.{k} {_show(env_ours[k])} (paper {_show(env_theirs[k])})"
            for k in sorted(own)
            if env_ours.get(k) != env_theirs.get(k)
        ]
        if bool(ours.heldout_prompt_template) != bool(theirs.heldout_prompt_template) or (
            ours.heldout_prompt_template != theirs.heldout_prompt_template and ours.heldout_prompt_template
        ):
            diffs.append("held-out prompt " + ("its own" if ours.heldout_prompt_template else "its training prompt"))
        if diffs:
            lines.append(f"variant `{v}` trains differently from the paper's: " + "; ".join(diffs))
    lines += [f"the paper's `{v}` is not trained here" for v in paper.trained_variants if v not in cfg.trained_variants]
    return lines


def ours_minus_paper(acc: pd.DataFrame, tolerance: float = 2.0) -> dict:
    """Ours minus the paper's accuracy at k = 1..7 (percentage points) per benchmark and for the average of
    the multi-attempt and baseline variants, in the paper's convention: each benchmark's accuracy rounded to 0.1,
    the average the plain mean of the rounded numbers (spec §5.4); `within` = |difference| <= tolerance."""
    out: dict = {}
    means = acc.groupby(["variant", "benchmark", "k"])["accuracy"].mean()
    for v in PAIR:
        rounded = {}  # benchmark -> k -> ours, rounded to 0.1 as the paper rounds
        for (variant, bench, k), x in means.items():
            if variant == v and bench in PAPER_PER_BENCHMARK:
                rounded.setdefault(bench, {})[int(k)] = round(100 * x, 1)
        if not rounded:
            continue
        rows = {b: _differences(r, PAPER_PER_BENCHMARK[b][v], tolerance) for b, r in sorted(rounded.items())}
        if len(rounded) == len(PAPER_PER_BENCHMARK):  # the average of all five, as the paper's
            ks = set.intersection(*(set(r) for r in rounded.values()))
            average = {k: sum(r[k] for r in rounded.values()) / len(rounded) for k in ks}
            rows["average"] = _differences(average, PAPER_AVERAGE[v], tolerance)
        rows["table1_k1"] = {  # Table 1 (single attempt; probably the training-time evaluation, spec §8.4)
            b: {"ours": r[1], "paper": PAPER["table1"][v][b], "difference": round(r[1] - PAPER["table1"][v][b], 1)}
            for b, r in sorted(rounded.items())
            if 1 in r and b in PAPER["table1"][v]
        }
        out[v] = rows
    return out


def _differences(ours: Mapping[int, float], paper: Sequence[float], tolerance: float) -> dict:
    return {
        str(k): {
            "ours": round(ours[k], 2),
            "paper": paper[k - 1],
            "difference": round(ours[k] - paper[k - 1], 2),
            "within": abs(ours[k] - paper[k - 1]) <= tolerance,
        }
        for k in sorted(ours)
        if k <= len(paper)
    }


def provenance_of(model_folders: Sequence[str | Path]) -> dict:
    """summary.json's provenance: each model folder's provenance.json by model name (None for a folder written
    before models recorded theirs)."""
    out = {}
    for folder in map(Path, model_folders):
        path = folder / provenance.FILE
        out[folder.name] = read_json(path) if path.is_file() else None
    return out


def run_provenance(cfg: Config, models: Mapping[str, Mapping | None]) -> dict:
    """The report's provenance block: the commit, resolved-configuration hash and library versions of this report's
    step, and the commits the models were trained and built at (from their provenance.json)."""
    now = provenance.record(cfg)
    commits = sorted({str((m or {}).get("code", {}).get("commit")) for m in models.values()})
    return {
        "commit": now["code"]["commit"],
        "dirty": now["code"]["dirty"],
        "config_hash": provenance.config_hash(cfg.to_dict()),
        "versions": now["versions"],
        "model_commits": commits,
        "numerics": models_numerics(models),
        "time_utc": now["time_utc"],
    }


def _numerics_lines(n: Mapping | None) -> list[str]:
    """The provenance block's line on what the models were computed with (pipeline.numerics)."""
    if not n or not n["cpus"]:
        return []
    cpus = ", ".join(n["cpus"])
    if n["portable"]:
        return [
            f"- models computed on {cpus} with the pinned CPU kernels (ATen AVX2, MKL COMPATIBLE, one thread): "
            "the same numbers on any x86-64 CPU with AVX2"
        ]
    why = "; ".join(f"{m}: {', '.join(r)}" for m, r in n["not_portable"].items())
    unrecorded = f"; no record for {', '.join(n['unrecorded'])}" if n["unrecorded"] else ""
    return [f"- models computed on {cpus}; **numbers not portable to other CPUs**: {why or '–'}{unrecorded}"]


def models_numerics(models: Mapping[str, Mapping | None]) -> dict:
    """What the models were computed with (their provenance's `numerics`, pipeline.numerics): the CPUs, and
    whether every model's numbers are those of any x86-64 CPU with AVX2 (None where a model recorded nothing)."""
    states = {name: (m or {}).get("numerics") for name, m in models.items()}
    known = {name: s for name, s in states.items() if s}
    return {
        "portable": all(s["portable"] for s in known.values()) if known and len(known) == len(states) else None,
        "cpus": sorted({s["cpu"]["model"] for s in known.values()}),
        "not_portable": {name: s["not_portable_because"] for name, s in known.items() if not s["portable"]},
        "unrecorded": sorted(name for name, s in states.items() if not s),
    }


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


def _palette(sns, order: Sequence[str]) -> dict:
    """A colour per model: the variants in order (multi_attempt and baseline first), the base model grey."""
    colors = sns.color_palette("colorblind")
    variants = [v for v in order if v != BASE]
    return {**{v: colors[i % 7] for i, v in enumerate(variants)}, BASE: colors[7]}


def _save(fig, folder: Path, name: str) -> list[Path]:
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
    plt, sns = _setup()
    order = [*variants, BASE]
    drawing = Drawing(acc, retries, curves, controls, k_curves, scale, order, smooth, plt, sns, _palette(sns, order))
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
    """report.md: headline, variants, accuracy per variant / seed / benchmark, gains, the paper's numbers (paper
    scale), retries, training, figures, departures from the paper, provenance."""
    ks = [str(k) for k in summary["k"]]
    variants = summary["variants"]
    entries = {**variants, **({BASE: summary["base"]} if "base" in summary else {}), **summary.get("others", {})}
    lines = [
        f"# Multi-attempt vs single-attempt RL — {summary['scale']} experiment",
        "",
        "Generated by the workflow (`snakemake --cores all`) from the evaluation metrics and training logs; "
        "numbers are percent. Accuracy@k: share of questions solved within k attempts (greedy, one run per k), "
        f"averaged over the benchmarks ({', '.join(summary['benchmarks'])}) and over seeds. Every model is "
        "evaluated with the multi-attempt prompt and feedback (config `env`), whatever it was trained on — the "
        "paper's protocol (Fig. 1), under which a single-turn baseline meets the attempts sentence for the first "
        "time. Read the departures from the paper (end of the report) before comparing with the paper's numbers.",
        "",
    ]
    if "grading" in summary:
        lines += [grading_note(summary["grading"]), ""]

    gains = {v: e["gain_k1_to_k2"] for v, e in entries.items() if "gain_k1_to_k2" in e}
    if "gain_difference" in summary:
        d = summary["gain_difference"]
        m, b = (gains[v]["gain"] for v in d["variants"])
        verdict = "more" if d["ci95"][0] > 0 else "less" if d["ci95"][1] < 0 else "not distinguishably more"
        ratio = f", {d['ratio']:.1f}× the baseline's" if d.get("ratio") is not None else ""
        per_seed = ", ".join(f"s{s}: {_pct(x)}" for s, x in d["per_seed"].items())
        lines += [
            f"**Headline:** from 1 to 2 attempts the multi-attempt model gains {_pct(m)} points, the baseline "
            f"{_pct(b)}: multi-attempt training gains {verdict} from a second attempt — a difference of "
            f"{_pct(d['difference'])} points{ratio}, 95% interval [{_pct(d['ci95'][0])}, {_pct(d['ci95'][1])}] "
            f"(paired bootstrap over questions of the seed-averaged gains)"
            + (f"; per seed {per_seed}." if per_seed else "."),
            "",
        ]

    declared = [(v, e) for v, e in variants.items() if "description" in e]
    if declared:
        lines += ["## The trained variants", ""]
        rows = [
            [
                f"`{v}`",
                "–".join(str(x) for x in sorted(set(e["attempts"]))),
                ", ".join(f"`{k}`" for k in e["env_overrides"]) or "–",
                e["description"] or "–",
            ]
            for v, e in declared
        ]
        lines += _table(["variant", "N in training", "own env keys", "what it is"], rows)
        lines += [
            "",
            "Own env keys: what the variant's training environment changes from `env` (config `variants`).",
            "",
        ]

    lines += ["## Accuracy vs allowed attempts", ""]
    rows = []
    for v, e in entries.items():
        rng = e.get("accuracy_at_k_range", {})
        rows.append(
            [
                label(v),
                *(
                    _pct(e["accuracy_at_k"].get(k))
                    + (f" ({_pct(rng[k][0])}–{_pct(rng[k][1])})" if k in rng and len(e.get("seeds", {})) > 1 else "")
                    for k in ks
                ),
            ]
        )
    if "paper" in summary:
        for v, by_k in summary["paper"]["accuracy_at_k"].items():
            rows.append([f"paper: {label(v)}", *(_pct(by_k.get(k)) for k in ks)])
    lines += _table(["model", *(f"k={k}" for k in ks)], rows)
    lines += ["", "Brackets: range over seeds.", "", f"![Accuracy vs attempts]({figures_dir}/accuracy_vs_k.png)", ""]

    if gains:
        lines += ["## Gain from a second attempt (k=1 → k=2)", ""]
        rows = [
            [
                label(v),
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

    if "paper" in summary and summary["paper"].get("ours_minus_paper"):
        lines += _paper_comparison(summary, ks)

    def new(rate: float | None) -> float | None:  # the share of retries whose answer is new, under the grader
        return None if rate is None else 1 - rate

    def new_ci(ci: Sequence[float] | None) -> list[float] | None:
        return None if not ci else [1 - ci[1], 1 - ci[0]]

    retry_rows = [
        [
            label(v),
            *(_pct(e["retry_max_k"].get(rate)) for rate in RETRY_RATES),
            _pct(new(e["retry_max_k"].get(RETRY_RATES[-1]))),
        ]
        for v, e in entries.items()
        if "retry_max_k" in e
    ]
    if retry_rows:
        header = [
            "model",
            "wrong → right",
            "repeats an earlier wrong answer",
            "… or an equal one (grader)",
            "new answer",
        ]
        lines += [f"## What happens after a wrong answer (k={ks[-1]} runs, all retries)", ""]
        lines += _table(header, retry_rows)
        rows = [
            [
                r["model"],
                r["benchmark"],
                str(r["n_retries"]),
                *(_pct(r.get(rate)) + _interval_text(r.get(f"{rate}_ci95")) for rate in RETRY_RATES),
                _pct(new(r.get(RETRY_RATES[-1]))) + _interval_text(new_ci(r.get(f"{RETRY_RATES[-1]}_ci95"))),
            ]
            for r in summary.get("retry_intervals", [])
        ]
        if rows:
            lines += ["", "Per model, with 95% bootstrap intervals over questions:", ""]
            lines += _table(["model", "benchmark", "retries", *header[1:]], rows)
        lines += [
            "",
            "A repeat: an answer equal to an earlier wrong answer of the dialogue as a string (after removing "
            "spaces), or one the grader judges the same (`0.5` after `\\frac{1}{2}`). A new answer: one the "
            "grader judges equal to no earlier answer of the dialogue (of the retries that gave one). Outside "
            "reference, measured with "
            "definitions that differ in detail (UFO, the 'try again' paper, NeurIPS 2025): 70% of a base model's "
            "failures repeat one answer; after its multi-turn training 90% of answers are new, against 80% after "
            "single-turn RL.",
            "",
            f"![Retries]({figures_dir}/retries.png)",
            "",
        ]

    if summary.get("k_attempt_curves"):
        lines += _curves_section(summary["k_attempt_curves"], list(entries), figures_dir)
    if summary.get("controls"):
        lines += _controls_section(summary, list(entries), figures_dir)
    if "grader_audit" in summary:
        lines += _audit_section(summary["grader_audit"], ks, list(entries))

    train_rows = []
    for v, e in variants.items():
        for s, x in e.get("seeds", {}).items():
            t = x.get("training")
            if t:
                train_rows.append(
                    [
                        label(v),
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
        fig4 = summary.get("paper", {}).get("fig4")
        if fig4:
            lines += [
                "",
                "Paper (Fig. 4, read off the figure): "
                + "; ".join(
                    f"{label(v)} final reward {x['final_reward']:.2f}, held-out {x['heldout_end']:.1f} at the end "
                    f"(peak {x['heldout_peak']:.1f})"
                    for v, x in fig4.items()
                )
                + ".",
            ]
        lines += ["", f"![Learning curves]({figures_dir}/learning_curves.png)", ""]

    if summary.get("departures"):
        lines += ["## Departures from the paper", ""]
        lines += [f"{i}. {d}" for i, d in enumerate(summary["departures"], start=1)]
        lines += [""]
    if "run" in summary:
        r = summary["run"]
        versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items() if v)
        lines += [
            "## Provenance",
            "",
            f"- report made at commit `{r['commit']}`"
            + (" (uncommitted changes)" if r["dirty"] else "")
            + f", {r['time_utc']}",
            f"- models made at commit(s): {', '.join(f'`{c}`' for c in r['model_commits']) or '–'}",
            f"- resolved configuration `{r['config_hash']}` (results/<experiment>/configs/{r['config_hash']}.json)",
            f"- {versions}",
            *_numerics_lines(r.get("numerics")),
            "",
        ]
    return "\n".join(lines) + "\n"


def _curves_section(curves: Mapping, order: Sequence[str], figures_dir: str) -> list[str]:
    """Accuracy@1 and @2 at each kept step of training."""
    rows = []
    for v in [v for v in order if v in curves]:
        for step, by_k in sorted(curves[v].items(), key=lambda x: int(x[0])):
            rows.append([label(v), step, _pct(by_k.get("1")), _pct(by_k.get("2"))])
    lines = ["## Accuracy at k attempts over training", ""]
    lines += _table(["model", "RL step", "k=1", "k=2"], rows)
    lines += ["", "Step 0 is the base model; the last step the final model (eval.curve_steps).", ""]
    return [*lines, f"![k-attempt curves]({figures_dir}/k_attempt_curves.png)", ""]


def _controls_section(summary: Mapping, order: Sequence[str], figures_dir: str) -> list[str]:
    """Sequential with feedback vs parallel sampling at equal k, with tokens; the flip probe."""
    controls = summary["controls"]
    lines = ["## Learning from failure, or sampling more?", ""]
    rows = []
    for v in [v for v in order if v in controls]:
        c = controls[v]
        for k in sorted(c.get("sequential", {}), key=int):
            seq, par, maj = c["sequential"][k], c.get("pass", {}).get(k), c.get("majority", {}).get(k)
            rows.append(
                [
                    label(v),
                    k,
                    f"{_pct(seq['accuracy'])} ({seq['tokens']:.1f})",
                    f"{_pct(par['accuracy'])} ({par['tokens']:.1f})" if par else "–",
                    _pct(maj["accuracy"]) if maj else "–",
                ]
            )
    lines += _table(
        ["model", "k", "dialogue with feedback (tokens)", "pass@k of k samples (tokens)", "majority@k"], rows
    )
    lines += [
        "",
        "The k-attempt dialogue (greedy, feedback from the gold answer) against k independent single-attempt samples "
        "at the training temperature: pass@k (unbiased estimator from n = max k samples), majority@k. Tokens: "
        "policy tokens per question. A model that learned from its failures beats sampling at equal k or tokens.",
        "",
        f"![Sequential vs parallel]({figures_dir}/sequential_vs_parallel.png)",
        "",
    ]
    flip = summary.get("flip_probe")
    if flip and flip["models"]:
        rows = [
            [
                r["model"],
                r["benchmark"],
                str(r["n_probed"]),
                _pct(r["flip_rate"]) + _interval_text(r["flip_rate_ci95"]),
                _pct(r["repeat_rate"]),
            ]
            for r in flip["models"]
        ]
        lines += ["### Told a right answer is wrong", ""]
        lines += _table(["model", "benchmark", "right first answers", "second answer wrong [95%]", "repeats it"], rows)
        lines += [
            "",
            'The k = 2 dialogue with feedback that always says "wrong": of the questions answered right at the '
            "first attempt, how often the second attempt is wrong (right → wrong, SCoRe's Δc→i). A model that learned "
            "to use feedback should not simply abandon right answers.",
            "",
        ]
    return lines


def _interval_text(ci: Sequence[float] | None) -> str:
    return f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""


def _audit_section(audit: Mapping, ks: Sequence[str], order: Sequence[str]) -> list[str]:
    """The grader audit: the headline numbers under each grader, and the disagreements."""
    shown = [k for k in ks if k in ("1", "2")]
    lines = ["## Grader audit", ""]
    rows = []
    for v in [v for v in order if v in audit["variants"]]:
        by_grader = audit["variants"][v]
        p, q = by_grader["primary"], by_grader["second"]
        cells = [f"{_pct(p.get(k))} / {_pct(q.get(k))}" for k in shown]
        if "1" in p and "2" in p:
            cells.append(f"{_pct(p['2'] - p['1'])} / {_pct(q['2'] - q['1'])}")
        rows.append([label(v), *cells])
    gain = ["gain k=1 → 2"] if "1" in shown and "2" in shown else []
    lines += _table(["model", *(f"k={k}" for k in shown), *gain], rows)
    models = audit["models"]
    total = sum(m["n_attempts"] for m in models.values())
    disagree = sum(m["n_disagreements"] for m in models.values())
    mv_only = sum(m["primary_only"] for m in models.values())
    lines += [
        "",
        f"Math-Verify (the headline grader) / the second grader (`pipeline/grading/second.py`, no shared parser), "
        f"on the same dialogues. They disagree on {disagree} of {total} graded attempts ({mv_only} accepted by "
        f"Math-Verify only, {disagree - mv_only} by the second grader only); each is listed in "
        "`eval/<model>/<set>/grader_audit.jsonl`.",
        "",
    ]
    return lines


def _paper_comparison(summary: Mapping, ks: Sequence[str]) -> list[str]:
    """Paper scale: ours minus the paper's per benchmark and average (the paper's rounding), with a ±2 verdict, and
    our single attempt beside Table 1."""
    lines = ["## Ours minus the paper's", ""]
    rows = []
    for v, by_bench in summary["paper"]["ours_minus_paper"].items():
        for bench, by_k in by_bench.items():
            if bench == "table1_k1":
                continue
            rows.append(
                [
                    label(v),
                    bench,
                    *(
                        f"{by_k[k]['difference']:+.1f}" + ("" if by_k[k]["within"] else " ✗") if k in by_k else "–"
                        for k in ks
                    ),
                ]
            )
    lines += _table(["model", "benchmark", *(f"k={k}" for k in ks)], rows)
    lines += [
        "",
        "Points; each benchmark rounded to 0.1 first and the average the plain mean of the rounded values (the "
        "paper's convention). ✗: more than 2 points from the paper.",
        "",
        "Single attempt beside the paper's Table 1 (probably its training-time evaluation, spec §8.4):",
        "",
    ]
    rows = [
        [label(v), b, f"{x['ours']:.1f}", f"{x['paper']:.1f}", f"{x['difference']:+.1f}"]
        for v, by_bench in summary["paper"]["ours_minus_paper"].items()
        for b, x in by_bench.get("table1_k1", {}).items()
    ]
    lines += _table(["model", "benchmark", "ours, k=1", "Table 1", "difference"], rows)
    return [*lines, ""]
