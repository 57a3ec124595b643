"""Model cards: the README.md of a model folder, in the Hugging Face hub's layout (YAML metadata, then markdown).

The metadata header is `huggingface_hub.ModelCardData`: base model (when it is a hub id), training datasets (hub
ids), license (this repository's, pyproject.toml), library, tags and, once the model has been evaluated, its
k-attempt accuracies as `model-index` results, one per benchmark and k. The body says what the model is, its
configuration (hash and file) and code commit, the results known when the card was written, and how to load it.

When results are known: the training step (and build-base) writes the card as it saves the model, before any
evaluation, so that card holds the training run's held-out accuracies alone. `python -m pipeline push`
(pipeline/push.py) renders the card again with the evaluations' metrics.json files
(results/<experiment>/eval/<model>/<set>/metrics.json) and uploads that card; the folder's own card is not
rewritten (trained models may be write-protected, config protect_models).

This module knows nothing about training or the hub's API: it formats. Try it:
`python -c "from huggingface_hub import ModelCard; print(ModelCard.load('results/tiny/models/base/README.md').data)"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from pipeline import hub
from pipeline.config import experiment_dirs
from pipeline.io import DataError, atomic_path, read_json
from pipeline.provenance import FILE as PROVENANCE
from pipeline.provenance import config_hash

FILE = "README.md"
LICENSE = "mit"  # pyproject.toml's license, as the hub spells it (tests/test_card.py keeps the two in step)
PAPER = "arXiv 2503.04808"


def _hub_id(source: str) -> str | None:
    """`source` when the hub would be asked for it (a hub id that is not a local path), else None."""
    repo = source.strip("`").partition(":")[0]
    return repo if hub.is_hub_id(repo) and not Path(repo).exists() else None


def training_datasets(cfg: Mapping[str, Any]) -> list[str]:
    """Hub ids of the datasets the model was trained on (none for the synthetic task or a local file)."""
    data = cfg["data"]
    if data["train_set"] != "math":
        return []
    repo = _hub_id(data["math"]["source"])
    return [repo] if repo else []


def eval_results(cfg: Mapping[str, Any], evaluations: Mapping[str, Mapping[str, Any]]) -> list[EvalResult]:
    """One hub result per evaluation set and k: accuracy with k attempts allowed (metrics.json `by_k`).
    A benchmark from the hub is named by its id, split and revision; a local set (the synthetic task) by its name."""
    out = []
    for name, metrics in sorted(evaluations.items()):
        bench = cfg["data"]["benchmarks"].get(name, {})
        repo = _hub_id(bench.get("source", ""))
        for k, m in sorted(metrics["by_k"].items(), key=lambda item: int(item[0])):
            out.append(
                EvalResult(
                    task_type="text-generation",
                    task_name=f"{k}-attempt math reasoning",
                    dataset_type=repo or name,
                    dataset_name=name,
                    dataset_split=bench.get("split"),
                    dataset_revision=bench.get("revision") or None,
                    metric_type="accuracy",
                    metric_name=f"accuracy@k={k}",
                    metric_value=round(float(m["accuracy"]), 4),
                    metric_config=f"k={k}",
                )
            )
    return out


def card_data(
    cfg: Mapping[str, Any], name: str, base: str, evaluations: Mapping[str, Mapping[str, Any]]
) -> ModelCardData:
    """The metadata header: hub ids where there are any, the k-attempt results as model-index."""
    results = eval_results(cfg, evaluations)
    return ModelCardData(
        model_name=name,
        base_model=_hub_id(base),
        datasets=training_datasets(cfg) or None,
        license=LICENSE,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["multi-attempt-rl", "reinforcement-learning", cfg["train"]["algorithm"], "math"],
        eval_results=results or None,
    )


def _trained_on(cfg: Mapping[str, Any]) -> str:
    data = cfg["data"]
    if data["train_set"] == "synthetic":
        s = data["synthetic"]
        return (
            f"synthetic {s['digits']}-digit addition: {s['n_train']} questions, {s['n_heldout']} held out "
            f"(seed {s['seed']})"
        )
    m = data["math"]
    text = f"MATH levels {', '.join(map(str, m['levels']))} from `{m['source']}`"
    if m.get("revision"):
        text += f" at revision `{m['revision']}`"
    if data.get("max_prompt_tokens"):
        text += f" (questions whose prompt exceeds {data['max_prompt_tokens']} tokens dropped)"
    return text


def _code_line(code: Mapping[str, Any]) -> str:
    commit = code.get("commit")
    if not commit:
        return f"unknown ({(code.get('reason') or 'no git checkout').splitlines()[0]})"
    return f"git commit `{commit}`" + (" with uncommitted changes" if code.get("dirty") else "")


EVALUATIONS = "## Evaluations"  # the section `refresh` replaces


def _evaluation_section(cfg: Mapping[str, Any], name: str, evaluations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The evaluations as a markdown table (set x k), or where they will be; ends with an empty line."""
    out_dir, report_dir = experiment_dirs(cfg["experiment"])
    where = f"`{out_dir}/eval/{name}/<set>/metrics.json`"
    compared = f"The comparison of all models is in `{report_dir}/summary.json` and `report.md`."
    if not evaluations:
        text = [f"Not evaluated when this card was written; the evaluations at k = 1..{cfg['eval']['max_k']}"]
        return [EVALUATIONS, "", *text, f"attempts go to {where}.", "", compared, ""]
    ks = sorted({int(k) for m in evaluations.values() for k in m["by_k"]})
    table = ["| set | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for set_name, m in sorted(evaluations.items()):
        cells = [f"{m['by_k'][str(k)]['accuracy']:.3f}" if str(k) in m["by_k"] else "" for k in ks]
        table.append(f"| {set_name} | " + " | ".join(cells) + " |")
    head = f"Greedy accuracy with k attempts allowed (the paper's protocol), from {where}:"
    return [EVALUATIONS, "", head, "", *table, "", compared, ""]


def body(
    prov: Mapping[str, Any],
    name: str,
    made_by: str,
    base: str,
    results: Mapping[str, float],
    evaluations: Mapping[str, Mapping[str, Any]],
) -> str:
    """The card's markdown: what the model is, its configuration and code, its results, how to load it."""
    cfg = prov["config"]
    digest = config_hash(cfg)
    out_dir = experiment_dirs(cfg["experiment"])[0]
    model_rev = cfg["model"].get("revision")
    commits = [r["commit"] for r in prov.get("hub") or [] if r.get("kind") == "model" and r["repo_id"] == _hub_id(base)]
    lines = [
        f"# {name}",
        "",
        "A policy of the multi-attempt RL pipeline (Chung, Du, Fu 2025, *Learning from Failures in Multi-Attempt",
        f"Reinforcement Learning*, {PAPER}), in `save_pretrained` layout.",
        "",
        "| | |",
        "|---|---|",
        f"| made by | {made_by} |",
        f"| base model | {base}"
        + (f" at revision `{model_rev}`" if model_rev and _hub_id(base) else "")
        + (f" (commit `{commits[0]}`)" if commits else "")
        + " |",
        f"| training data | {_trained_on(cfg)} |",
        f"| configuration | `{digest}`: `{out_dir}/configs/{digest}.json` (scale `{cfg['scale']}`); "
        f"the whole resolved configuration is also in `{PROVENANCE}` |",
        f"| code | {_code_line(prov.get('code', {}))} |",
        f"| written | {prov.get('time_utc')} on {prov.get('host')} |",
        "",
        "## Results of the training run",
        "",
        *([f"- {key}: {value:.3f}" for key, value in results.items()] or ["- none"]),
        "",
        *_evaluation_section(cfg, name, evaluations),
        "## Loading",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
        "",
    ]
    return "\n".join(lines)


def render(
    prov: Mapping[str, Any],
    name: str,
    made_by: str,
    base: str,
    results: Mapping[str, float],
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> ModelCard:
    """The card of model `name` made from `prov` (a provenance record); `evaluations`: set -> metrics.json."""
    evaluations = evaluations or {}
    data = card_data(prov["config"], name, base, evaluations)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + body(prov, name, made_by, base, results, evaluations))


def trained(
    prov: Mapping[str, Any], name: str, base: str, summary: Mapping[str, Any], best_step: int | None = None
) -> ModelCard:
    """The card `train()` writes beside the actor: how it was made (algorithm, variant, seed, steps; `best_step`:
    the step of the actor kept by eval.checkpoint best_heldout) and the held-out accuracies of its last step."""
    made_by = (
        f"`python -m pipeline train`: {prov['config']['train']['algorithm'].upper()}, variant `{summary['variant']}`, "
        f"seed {summary['seed']}, {summary['steps']} steps"
        + ("" if best_step is None else f", the actor of step {best_step} (best validation accuracy)")
    )
    heldout = {k: v for k, v in summary["final"].items() if k.startswith("heldout/")}
    return render(prov, name, made_by, base, heldout)


def refresh(card: ModelCard, cfg: Mapping[str, Any], evaluations: Mapping[str, Mapping[str, Any]]) -> ModelCard:
    """A card written by `render` (e.g. before evaluation), with `evaluations` in its header and its Evaluations
    section; every other line kept. `cfg`: the configuration it was made with (its provenance's)."""
    name, text = card.data.model_name, card.text
    start = text.find(EVALUATIONS + "\n")
    end = text.find("\n## ", start + 1)
    if not name or start < 0 or end < 0:
        raise DataError(f"the model card has no model_name or no {EVALUATIONS!r} section: not one this pipeline wrote")
    data = card_data(cfg, name, card.data.base_model or "", evaluations)
    section = "\n".join(_evaluation_section(cfg, name, evaluations))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{text[:start]}{section}\n{text[end + 1 :]}")


def write(folder: str | Path, card: ModelCard) -> None:
    """`folder`/README.md, atomically."""
    with atomic_path(Path(folder) / FILE) as tmp:
        tmp.write_text(str(card), encoding="utf-8")


def read_evaluations(eval_dir: str | Path, name: str) -> dict[str, dict[str, Any]]:
    """set -> metrics.json of model `name` under `eval_dir` (results/<experiment>/eval): the final actor's only
    (the curves' step actors and the feedback ablation's runs live in subfolders and are not the model)."""
    found = {}
    for path in sorted(Path(eval_dir, name).glob("*/metrics.json")):
        metrics = read_json(path)
        if not isinstance(metrics, dict) or not isinstance(metrics.get("by_k"), dict):
            raise DataError(f"{path}: not a metrics.json of `python -m pipeline eval-metrics` (no by_k)")
        found[path.parent.name] = metrics
    return found
