"""What separates a run from the paper: the configuration keys and variants that differ from the paper's preset,
the paper's own numbers (paper_numbers.yaml) and ours minus them, and where the report's models came from
(their provenance). Kept apart from the tables: these read the configuration and the paper, not the evaluations.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import config, provenance
from pipeline.config import Config
from pipeline.departures import load as load_departures
from pipeline.io import read_json

PAIR = ("multi_attempt", "baseline")  # the paper's comparison: the headline is the difference of their gains


def _paper_numbers() -> dict:
    """paper_numbers.yaml beside the pipeline's modules: the paper's Fig. 1 average, Fig. 5 per benchmark, Table 1,
    Fig. 4, and this implementation's departures from the released code."""
    import yaml

    return yaml.safe_load((Path(__file__).parents[1] / "paper_numbers.yaml").read_text(encoding="utf-8"))


PAPER = _paper_numbers()
PAPER_AVERAGE = {v: x for v, x in PAPER["average"].items() if v != "source"}  # variant -> accuracy (%) at k = 1..7
PAPER_SOURCE, PAPER_PER_BENCHMARK = PAPER["average"]["source"], PAPER["per_benchmark"]


def paper_summary(acc: pd.DataFrame) -> dict:
    """summary.json's `paper` (paper scale): the paper's average accuracy@k, its source, ours minus the paper's
    and the paper's Fig. 4 training results."""
    return {
        "accuracy_at_k": {v: {str(k + 1): x / 100 for k, x in enumerate(vals)} for v, vals in PAPER_AVERAGE.items()},
        "source": PAPER_SOURCE,
        "ours_minus_paper": ours_minus_paper(acc),
        "fig4": PAPER["fig4"],
    }


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
    this implementation's fixed departures from the released code (pipeline/departures.yaml)."""
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
    return [*lines, *released_code_departures(cfg)]


def released_code_departures(cfg: Config) -> list[str]:
    """The report lines of pipeline/departures.yaml, the one list of departures from the released code: first
    those a configuration key decides (the line for its value here), then those of every run."""
    entries = load_departures()
    values = config.leaves(cfg.to_dict())
    scoped = [d.report[values[d.scope]] for d in entries if d.scope != "always" and d.report]
    return [*scoped, *(d.report for d in entries if d.scope == "always" and d.report)]


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
