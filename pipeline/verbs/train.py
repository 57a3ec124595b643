"""The RL step: one variant x seed trained from the base model (pipeline/train.py), under torchrun or DeepSpeed's
launcher on several processes, resumable from its run folder."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from pipeline import config as config_mod
from pipeline.verbs import THREADS, arg, threads, verb

log = logging.getLogger("pipeline")


@verb(
    "train",
    "RL-train one variant x seed from its base model (PPO or GRPO)",
    arg("--variant", required=True, help="a variant declared in config variants (multi_attempt, baseline, ...)"),
    arg("--seed", type=int, required=True, help="training seed"),
    arg("--base", required=True, help="base model folder or hub id (actor, reference, critic)"),
    arg("--train-data", required=True, help="training questions (jsonl)"),
    arg("--heldout", nargs="+", default=[], help="held-out sets (jsonl) for the learning curves"),
    arg("--run-dir", required=True, help="checkpoints, train_log.jsonl and TensorBoard (resumable)"),
    arg("--out", required=True, help="output folder of the trained actor (save_pretrained layout)"),
    THREADS,
    arg("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS),  # deepspeed's launcher
)
def cmd_train(args: argparse.Namespace) -> None:
    from pipeline import data, distributed, runlog, time_limit, train
    from pipeline.grading import Grader

    cfg = config_mod.load(args.config)
    # unknown variant, or a disabled one (the feedback ablation's) with broken templates: an error before any work
    if errors := config_mod.use_errors(cfg, [args.variant]):
        raise config_mod.ConfigError(f"invalid configuration for variant {args.variant}:\n  " + "\n  ".join(errors))
    runlog.check_trackers(cfg.trackers)
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # processes of this job on this node (torchrun)
    threads(distributed.rank_threads(args.threads, ranks, cfg.grading.workers) if args.threads else None)
    distributed.init(cfg.distributed.timeout_min)
    try:
        records = data.read_records(args.train_data)
        heldout = {set_name(path): data.read_records(path) for path in args.heldout}
        with Grader.from_config(cfg.grading, ranks) as grader:  # the node runs grading.workers in all
            trainer = train.Trainer(cfg, args.variant, args.seed, args.base, records, heldout, args.run_dir, grader)
            try:
                summary = train.train(
                    trainer, args.out, limit=time_limit.of_job(cfg.resources.train.stop_before_end_min)
                )
            finally:
                trainer.backend.close()
    finally:
        distributed.shutdown()
    final = summary["final"]
    log.info(
        "%s seed %d: %d steps; last step reward %.3f, training accuracy %.3f, held-out %s -> %s",
        args.variant,
        args.seed,
        summary["steps"],
        final.get("train/reward", float("nan")),
        final.get("train/accuracy", float("nan")),
        final.get("heldout/mean", "n/a"),
        args.out,
    )


def set_name(path: str) -> str:
    """results/tiny/data/synthetic_heldout.jsonl -> synthetic_heldout (the name in logs and curves)."""
    return Path(path).name.removesuffix(".jsonl")
