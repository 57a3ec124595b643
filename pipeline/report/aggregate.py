"""The aggregate step: evaluation metrics, probes and training logs -> the csv tables and summary.json (schema in
reports/README.md).

Accuracy is a fraction. Across benchmarks we take the plain mean (the paper's "average"); across seeds the mean,
with the min-max range. The k=1 -> k=2 gain interval resamples questions (stratified by benchmark) of the
per-question gain averaged over seeds: it says how sure we are given these seeds, not across new seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from pipeline import metrics, stats
from pipeline.config import Config
from pipeline.io import DataError, atomic_path, read_json, read_jsonl, write_json
from pipeline.layout import BASE, parse_model
from pipeline.report.departures import PAIR, departures, paper_summary, provenance_of, run_provenance

IDENTITY = ("model", "variant", "seed", "benchmark")  # what each metrics.json says it scores


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


def learning_curves_table(train_logs: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per training step of every run (model name -> its train_log.jsonl): reward, held-out accuracy."""
    rows = []
    for name, path in train_logs.items():
        variant, seed = parse_model(name)
        rows += [{"variant": variant, "seed": seed, **_curve_point(rec)} for _, rec in read_jsonl(path)]
    cols = ["variant", "seed", "step", "reward", "train_accuracy", "heldout_accuracy"]
    # one row per step, whether a step's held-out evaluation was logged with its training record or separately
    return pd.DataFrame(rows, columns=cols).groupby(["variant", "seed", "step"], as_index=False).first()


Pairs = Mapping[Path, tuple[Path, Path]]  # metrics.json -> its k=1 and k=2 traces


def trace_pairs(metrics_files: Sequence[str | Path], traces: Sequence[str | Path]) -> dict[Path, tuple[Path, Path]]:
    """Each metrics.json's k=1 and k=2 traces, which the rule lists in the metrics' order, two each
    (Layout.gain_traces): the report reads the runs it is given, never files found beside others."""
    if len(traces) != 2 * len(metrics_files):
        raise DataError(
            f"the gain from k=1 to k=2 needs the k=1 and k=2 traces of each metrics.json, two per file in their "
            f"order: {len(metrics_files)} metrics.json, {len(traces)} traces"
        )
    it = iter(map(Path, traces))
    return {Path(m): (next(it), next(it)) for m in metrics_files}


def _question_gains(metrics_files: Sequence[Path], pairs: Pairs) -> dict[str, list[float]]:
    """Benchmark -> per-question gain from k=1 to k=2 (0/1 at k=2 minus 0/1 at k=1, paired by id, in sorted-id
    order), averaged over the runs (the seeds of one variant)."""
    per_benchmark: dict[str, list[list[int]]] = {}
    for path in map(Path, metrics_files):
        a, b = (metrics.read_traces(run) for run in pairs[path])
        per_benchmark.setdefault(read_metrics(path)["benchmark"], []).append(
            [y - x for x, y in zip(*metrics.paired(a, b))]
        )
    averaged = {}
    for bench, runs in per_benchmark.items():
        if len({len(r) for r in runs}) != 1:
            raise DataError(f"benchmark {bench!r}: runs evaluated on different question sets")
        averaged[bench] = [sum(col) / len(col) for col in zip(*runs)]
    return averaged


def gain_k1_to_k2(metrics_files: Sequence[Path], pairs: Pairs, n_boot: int = 1000) -> dict:
    """Gain in macro accuracy from k=1 to k=2 of a group of runs (the seeds of one variant), with its 95% interval.

    Per benchmark, the per-question gain is averaged over the runs; the point estimate is the macro mean and the
    interval a stratified bootstrap over questions (stats.macro_ci).
    """
    averaged = _question_gains(metrics_files, pairs)
    point = stats.macro_average({b: sum(v) / len(v) for b, v in averaged.items()})
    lo, hi = stats.macro_ci(averaged, n_boot=n_boot)
    return {"gain": point, "ci95": [lo, hi]}


def gain_difference(files_a: Sequence[Path], files_b: Sequence[Path], pairs: Pairs, n_boot: int = 1000) -> dict:
    """How much more variant A gains from a second attempt than variant B: the difference of their k=1 -> k=2
    gains, with a 95% interval from a bootstrap over questions (stratified by benchmark) of the per-question
    difference of seed-averaged gains -- paired: both variants answer the same questions."""
    a, b = _question_gains(files_a, pairs), _question_gains(files_b, pairs)
    if a.keys() != b.keys() or any(len(a[x]) != len(b[x]) for x in a):
        raise DataError("gain difference: the two variants were evaluated on different questions")
    diff = {x: [u - v for u, v in zip(a[x], b[x])] for x in a}
    point = stats.macro_average({x: sum(v) / len(v) for x, v in diff.items()})
    lo, hi = stats.macro_ci(diff, n_boot=n_boot)
    return {"difference": point, "ci95": [lo, hi]}


def mean_by_k(frame: pd.DataFrame) -> dict[str, float]:
    """k -> mean accuracy of the rows (str keys, as in summary.json)."""
    return {str(k): float(v) for k, v in frame.groupby("k")["accuracy"].mean().items()}


def macro_per_seed(acc: pd.DataFrame) -> pd.DataFrame:
    """Macro accuracy (mean over benchmarks) per model x k; keeps variant and seed."""
    return acc.groupby(["model", "variant", "seed", "k"], dropna=False, as_index=False)["accuracy"].mean()


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The files the aggregate step reads (rules/report.smk): metrics.json of every evaluation, the training logs,
    the model folders (their provenance), and the optional probes: grader audits, parallel sampling, flip probes and
    the k-attempt curves' metrics.json."""

    metrics: Sequence[str | Path]
    train_logs: Mapping[str, str | Path]  # trained model name -> its train_log.jsonl
    models: Sequence[str | Path] = ()
    audits: Sequence[str | Path] = ()
    parallel: Sequence[str | Path] = ()
    flip: Sequence[str | Path] = ()
    curve_metrics: Sequence[str | Path] = ()
    traces: Sequence[str | Path] = ()  # the k=1 and k=2 traces of each of `metrics`, two each in its order


def build_tables(cfg: Config, inputs: Inputs) -> dict[str, pd.DataFrame]:
    """The tidy tables, by csv name: the figures and report.md are drawn from these and summary.json."""
    acc = accuracy_table(inputs.metrics)
    return {
        "accuracy": acc,
        "retries": retries_table(inputs.metrics),
        "learning_curves": learning_curves_table(inputs.train_logs),
        "controls": controls_table(inputs.parallel, list(cfg.eval.models)),
        "k_attempt_curves": k_attempt_curves(inputs.curve_metrics, acc, cfg.train.steps),
    }


def build_summary(cfg: Config, inputs: Inputs, tables: Mapping[str, pd.DataFrame]) -> dict:
    """summary.json: accuracy@k per variant (mean over seeds of the macro average), its per-seed and per-benchmark
    values, the k=1 -> k=2 gain with its interval, retry rates, training results; the difference of the paired
    variants' gains, the departures from the paper and, at paper scale, ours minus the paper's numbers; then the
    controls and probes that ran, the grading rule and the provenance of the models and of this report."""
    acc = tables["accuracy"]
    evaluations = {Path(p): read_metrics(p) for p in inputs.metrics}
    ks = sorted(int(k) for k in acc["k"].unique())
    pairs = trace_pairs(inputs.metrics, inputs.traces) if {1, 2} <= set(ks) else {}
    out: dict = {
        "scale": cfg.scale,
        "benchmarks": sorted(acc["benchmark"].unique()),
        "k": ks,
        **_models(cfg, tables, evaluations, pairs),
    }
    if all("gain_k1_to_k2" in out["variants"].get(v, {}) for v in PAIR):
        out["gain_difference"] = _gain_difference(evaluations, out["variants"], pairs)
    out["departures"] = departures(cfg, acc)
    if cfg.scale == "paper":
        out["paper"] = paper_summary(acc)
    out["controls"] = controls_summary(tables["controls"])
    if inputs.flip:
        out["flip_probe"] = flip_probe(inputs.flip, list(cfg.eval.models))
    out["retry_intervals"] = retry_intervals(inputs.metrics)
    if inputs.curve_metrics:
        out["k_attempt_curves"] = curves_summary(tables["k_attempt_curves"])
    if inputs.audits:
        out["grader_audit"] = grader_audit(inputs.audits)
    out["grading"] = {"multi_box": cfg.grading.multi_box}  # the evaluations' rule (evaluate reruns when it changes)
    out["provenance"] = provenance_of(inputs.models)
    out["run"] = run_provenance(cfg, out["provenance"])
    return out


def write(out_dir: str | Path, summary: Mapping, tables: Mapping[str, pd.DataFrame]) -> None:
    """summary.json and <name>.csv of each table into `out_dir`."""
    out = Path(out_dir)
    for name, frame in tables.items():
        write_csv(out / f"{name}.csv", frame)
    write_json(out / "summary.json", summary)


def _models(cfg: Config, tables: Mapping[str, pd.DataFrame], evaluations: Mapping[Path, Mapping], pairs: Pairs) -> dict:
    """summary.json's `variants` (the trained ones, with their seeds), `base` and `others` (eval.models)."""
    acc, macro = tables["accuracy"], macro_per_seed(tables["accuracy"])
    out: dict = {"variants": {}}
    for variant in [*cfg.trained_variants, BASE, *cfg.eval.models]:
        rows = macro[macro["variant"] == variant]
        if rows.empty:
            continue
        runs = {p: m for p, m in evaluations.items() if m["variant"] == variant}  # its metrics.json by path
        entry = _entry(cfg, variant, rows, acc, tables["retries"], list(runs), pairs)
        if variant == BASE:
            out["base"] = entry
        elif variant in cfg.eval.models:  # evaluated beside the others, not trained here
            out.setdefault("others", {})[variant] = {"source": cfg.eval.models[variant], **entry}
        else:
            with_gain = pairs if "gain_k1_to_k2" in entry else None
            entry["seeds"] = _seeds(variant, rows, acc, tables["learning_curves"], runs, with_gain)
            out["variants"][variant] = entry
    return out


def _entry(
    cfg: Config,
    variant: str,
    rows: pd.DataFrame,
    acc: pd.DataFrame,
    retries: pd.DataFrame,
    files: Sequence[Path],
    pairs: Pairs,
) -> dict:
    """One model's summary over its seeds (`rows`: its macro accuracy per seed and k; `files`: its metrics.json;
    `pairs`: their k=1 and k=2 traces)."""
    per_k = rows.groupby("k")["accuracy"]
    entry = {
        **(_declared(cfg, variant) if variant in cfg.variants else {}),
        "accuracy_at_k": {str(k): float(v) for k, v in per_k.mean().items()},
        "accuracy_at_k_range": {
            str(k): [float(lo), float(hi)] for (k, lo), hi in zip(per_k.min().items(), per_k.max().values)
        },
        "per_benchmark": {b: mean_by_k(g) for b, g in acc[acc["variant"] == variant].groupby("benchmark")},
    }
    if 2 in set(rows["k"]) and 1 in set(rows["k"]):
        entry["gain_k1_to_k2"] = gain_k1_to_k2(files, pairs)
    r = retries[retries["variant"] == variant]
    if not r.empty:
        entry["retry_max_k"] = {rate: _weighted(r, rate) for rate in RETRY_RATES}
    return entry


def _seeds(
    variant: str,
    rows: pd.DataFrame,
    acc: pd.DataFrame,
    curves: pd.DataFrame,
    runs: Mapping[Path, Mapping],
    with_gain: Pairs | None,
) -> dict:
    """A trained variant's `seeds`: per seed its accuracy@k, per benchmark, gain (from the traces `with_gain` pairs
    with its metrics.json, when given; `runs`: the variant's metrics.json by path) and training results."""
    seeds = {}
    for seed, g in rows.groupby("seed"):
        s = {
            "accuracy_at_k": mean_by_k(g),
            "per_benchmark": {
                b: mean_by_k(x)
                for b, x in acc[(acc["variant"] == variant) & (acc["seed"] == seed)].groupby("benchmark")
            },
        }
        if with_gain is not None:
            s["gain_k1_to_k2"] = gain_k1_to_k2([p for p, m in runs.items() if m["seed"] == seed], with_gain)
        c = curves[(curves["variant"] == variant) & (curves["seed"] == seed)]
        if not c.empty:
            s["training"] = _training(c)
        seeds[str(int(seed))] = s
    return seeds


def _declared(cfg: Config, variant: str) -> dict:
    """What a variant is (summary.json): its description, attempt range and the env keys it overrides."""
    v = cfg.variant(variant)
    return {
        "description": v.description,
        "attempts": [v.min_attempts, v.max_attempts],
        "env_overrides": sorted(v.env),
        "heldout_prompt": "own" if not v.heldout_prompt_template else "heldout_prompt_template",
    }


def _gain_difference(evaluations: Mapping[Path, Mapping], variants: Mapping[str, Mapping], pairs: Pairs) -> dict:
    """The headline: multi-attempt's k=1 -> 2 gain minus the baseline's, with its interval paired over questions
    (seed-averaged), the per-seed differences (seeds paired by number) and the ratio of the two gains."""
    a, b = PAIR
    files = {v: [p for p, m in evaluations.items() if m["variant"] == v] for v in PAIR}
    out = {"variants": list(PAIR), **gain_difference(files[a], files[b], pairs)}
    seeds_a, seeds_b = variants[a].get("seeds", {}), variants[b].get("seeds", {})
    out["per_seed"] = {
        s: seeds_a[s]["gain_k1_to_k2"]["gain"] - seeds_b[s]["gain_k1_to_k2"]["gain"]
        for s in sorted(seeds_a.keys() & seeds_b.keys(), key=int)
        if "gain_k1_to_k2" in seeds_a[s] and "gain_k1_to_k2" in seeds_b[s]
    }
    gain_b = variants[b]["gain_k1_to_k2"]["gain"]
    out["ratio"] = variants[a]["gain_k1_to_k2"]["gain"] / gain_b if gain_b > 0 else None
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
