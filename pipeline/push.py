"""`python -m pipeline push`: a model folder to the Hugging Face hub, as one commit, with its card refreshed.

What goes up (`files`): the top-level files of the folder that `save_pretrained` writes (config, weights,
generation config, tokenizer files, chat template) and what describes the model (provenance.json,
train_summary.json, best.json, train_log.jsonl, sft_summary.json). Never subfolders (the curve actors of
eval.curve_steps under steps/, anything a user put there), checkpoints or TensorBoard files (they live in the
run folder, results/<experiment>/runs/, not here), dotfiles or temporary files.

The card (README.md) is the folder's own, refreshed with the evaluations found for the model
(results/<experiment>/eval/<name>/<set>/metrics.json, or `--eval-dir`): the k-attempt accuracies become the
card's model-index (`pipeline.card.refresh`). The refreshed card is uploaded from memory, not written into the
folder (trained models may be write-protected), so the upload is `HfApi.create_commit` with one operation per
file, which is what `upload_folder` does after filtering by its allow/ignore patterns: here the file list is
computed once, so the dry run shows exactly what would be sent.

Needs a token (`hf auth login` or HF_TOKEN) and the network: the workflow's jobs run with HF_HUB_OFFLINE=1, so
push from a login node, outside Snakemake. This module is no rule: sharing is a person's decision.

Try it: `python -m pipeline push results/tiny/models/multi_attempt_s0 --repo-id you/multi-attempt-tiny --dry-run`.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

from huggingface_hub import ModelCard

from pipeline import card, hub
from pipeline.config import experiment_dirs
from pipeline.io import DataError, PipelineError, read_json
from pipeline.provenance import FILE as PROVENANCE

log = logging.getLogger(__name__)

# Top-level files of a model folder that are shared: save_pretrained's (model, generation config, tokenizer),
# and the files that say where the model comes from.
SHARED = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    PROVENANCE,
    "train_summary.json",
    "train_log.jsonl",
    "best.json",
    "sft_summary.json",
)


def files(folder: str | Path) -> list[str]:
    """The folder's files that are uploaded beside the card, sorted: top-level files matching SHARED."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise DataError(f"{folder}: not a model folder (no config.json and *.safetensors: save_pretrained's layout)")
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and any(fnmatch.fnmatchcase(p.name, pat) for pat in SHARED)
    )


def refreshed_card(folder: str | Path, eval_dir: str | Path | None = None) -> tuple[ModelCard, Path]:
    """(the folder's card with its model's evaluations, the evaluation folder read). `eval_dir` default: the
    experiment's, results/<experiment>/eval, from the configuration in the folder's provenance.json (relative to
    the working directory, the workflow's)."""
    folder = Path(folder)
    readme = folder / card.FILE
    if not readme.is_file():
        raise DataError(f"{folder}: no {card.FILE} (model card); this pipeline writes one beside every model")
    cfg = read_json(folder / PROVENANCE)["config"]
    eval_dir = Path(eval_dir) if eval_dir else Path(experiment_dirs(cfg["experiment"])[0]) / "eval"
    old = ModelCard.load(readme)
    name = old.data.model_name or folder.name
    return card.refresh(old, cfg, card.read_evaluations(eval_dir, name)), eval_dir


def _token_or_fail(token: str | None) -> str:
    """The token to push with; a PipelineError saying what to do when offline mode is on or there is none."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise PipelineError(
            "push: HF_HUB_OFFLINE is set (the workflow's jobs run offline); push from a node with internet, "
            "outside Snakemake, with HF_HUB_OFFLINE unset"
        )
    token = token or get_token()
    if not token:
        raise PipelineError("push: no Hugging Face token; run `hf auth login` or set HF_TOKEN (a write token)")
    return token


def upload(
    folder: str | Path,
    repo_id: str,
    model_card: ModelCard,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Create `repo_id` (a model repository; `private` when new) and its branch `revision` if missing, and commit
    the folder's `files` and `model_card`; returns the commit's URL."""
    import httpx
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if not hub.is_hub_id(repo_id):
        raise PipelineError(f"push: --repo-id {repo_id!r} is not a hub repository id (owner/name)")
    api = HfApi(endpoint=endpoint, token=_token_or_fail(token))
    folder = Path(folder)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files(folder)]
    operations.append(CommitOperationAdd(path_in_repo=card.FILE, path_or_fileobj=str(model_card).encode()))
    try:
        api.create_repo(repo_id, private=private or None, repo_type="model", exist_ok=True)  # None: the default
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=f"Upload {folder.name} (python -m pipeline push)",
            repo_type="model",
            revision=revision,
        )
    except HfHubHTTPError as e:
        raise PipelineError(f"push: the hub refused {repo_id}: {e}".splitlines()[0]) from None
    except httpx.TransportError as e:  # no route to the hub, refused, timed out
        raise PipelineError(f"push: cannot reach the hub at {api.endpoint} ({type(e).__name__}: {e})") from None
    except ValueError as e:  # the hub's check of the card's metadata (create_commit validates README.md first)
        raise PipelineError(f"push: the hub rejected the card's metadata: {e}") from None
    return commit.commit_url


def dry_run_lines(folder: str | Path, model_card: ModelCard, eval_dir: Path) -> list[str]:
    """What `push --dry-run` prints: each file and its size, then the card's metadata header."""
    folder = Path(folder)
    names = files(folder)
    sizes = {name: (folder / name).stat().st_size for name in names}
    n_results = len(model_card.data.eval_results or [])
    return [
        *(f"{sizes[name]:>14,d}  {name}" for name in names),
        f"{len(str(model_card).encode()):>14,d}  {card.FILE} (the card, with {n_results} results from {eval_dir})",
        f"{sum(sizes.values()) + len(str(model_card).encode()):>14,d}  in {len(names) + 1} files",
        "",
        f"---\n{model_card.data.to_yaml()}\n---",
    ]


def run(folder, repo_id: str, eval_dir, private: bool, revision: str | None, dry_run: bool) -> None:
    """The `push` verb: with `dry_run`, print the files and the card's header; else upload them."""
    card, eval_dir = refreshed_card(folder, eval_dir)
    if dry_run:
        print("\n".join(dry_run_lines(folder, card, eval_dir)))
        return
    log.info("%s -> %s", folder, upload(folder, repo_id, card, private=private, revision=revision))
