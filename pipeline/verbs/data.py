"""Verbs of the data step: fetch what the hub serves, then write each question set as jsonl records
(pipeline/data.py)."""

from __future__ import annotations

import argparse
import logging

from pipeline import config as config_mod
from pipeline.download import HF_HOME
from pipeline.verbs import arg, verb

log = logging.getLogger("pipeline")


@verb(
    "download",
    "fetch the hub model and datasets the configuration loads (login node)",
    arg("--hf-home", default=HF_HOME, help=f"download folder, used as HF_HOME (default {HF_HOME})"),
    arg("--manifest", help="write what was fetched here (JSON)"),
    arg("--dry-run", action="store_true", help="print the plan as JSON and download nothing"),
)
def cmd_download(args: argparse.Namespace) -> None:
    """What the configuration loads from the hub, for offline compute nodes (pipeline/download.py)."""
    from pipeline import download

    download.run(config_mod.load(args.config), args.hf_home, args.manifest, args.dry_run)


@verb(
    "prepare-synthetic",
    "generate the synthetic arithmetic task",
    arg("--train", required=True, help="output jsonl of training questions"),
    arg("--heldout", required=True, help="output jsonl of held-out questions"),
)
def cmd_prepare_synthetic(args: argparse.Namespace) -> None:
    from pipeline import data

    cfg = config_mod.load(args.config).data.synthetic
    train, heldout = data.synthetic_splits(cfg.seed, cfg.n_train, cfg.n_heldout, cfg.digits)
    data.write_records(args.train, train)
    data.write_records(args.heldout, heldout)
    log.info(
        "synthetic task: %d train and %d held-out questions -> %s, %s",
        len(train),
        len(heldout),
        args.train,
        args.heldout,
    )


@verb(
    "prepare-math",
    "load and normalise the MATH training set",
    arg("--out", required=True, help="output jsonl"),
    arg("--exclude", nargs="*", default=[], help="prepared benchmark jsonl whose questions to drop"),
)
def cmd_prepare_math(args: argparse.Namespace) -> None:
    from pipeline import data

    cfg = config_mod.load(args.config)
    excluded = [r["question"] for path in args.exclude for r in data.read_records(path)]
    records = data.prepare_math(cfg, excluded)
    data.write_records(args.out, records)
    math = cfg.data.math
    log.info("MATH levels %s from %s: %d questions -> %s", math.levels, math.source, len(records), args.out)


@verb(
    "prepare-benchmark",
    "load and normalise one evaluation benchmark",
    arg("name", help="benchmark name (a key of data.benchmarks)"),
    arg("--out", required=True, help="output jsonl"),
)
def cmd_prepare_benchmark(args: argparse.Namespace) -> None:
    from pipeline import data

    benchmarks = config_mod.load(args.config).data.benchmarks
    if args.name not in benchmarks:
        raise config_mod.ConfigError(
            f"data.benchmarks: no entry for {args.name!r} (configured: {', '.join(benchmarks) or 'none'})"
        )
    src = benchmarks[args.name]
    records = data.prepare_benchmark(args.name, src)
    data.write_records(args.out, records)
    log.info("benchmark %s from %s (%s): %d questions -> %s", args.name, src.source, src.split, len(records), args.out)
