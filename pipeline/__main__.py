"""`python -m pipeline <verb> ...`: the verbs the Snakemake rules call (one per rule family).

Every verb takes `--config`, a YAML file (e.g. config.yaml) or an inline JSON mapping (what the rules pass: the
config keys the rule depends on), resolved and validated by `pipeline.config` before any work starts.
Bad configuration or input data ends the command with a one-paragraph error (exit code 2), not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline import config as config_mod
from pipeline.io import DataError

log = logging.getLogger("pipeline")


def cmd_config(args: argparse.Namespace) -> None:
    """Print the resolved configuration (defaults -> preset -> user config)."""
    print(config_mod.dumps(config_mod.load(args.config)))


def cmd_prepare_synthetic(args: argparse.Namespace) -> None:
    from pipeline import data

    cfg = config_mod.load(args.config).data.synthetic
    train, heldout = data.synthetic_splits(cfg.seed, cfg.n_train, cfg.n_heldout, cfg.digits)
    data.write_records(args.train, train)
    data.write_records(args.heldout, heldout)
    log.info("synthetic task: %d train and %d held-out questions -> %s, %s", len(train), len(heldout),
             args.train, args.heldout)


def cmd_prepare_math(args: argparse.Namespace) -> None:
    from pipeline import data

    cfg = config_mod.load(args.config).data.math
    excluded = [r["question"] for path in args.exclude for r in data.read_records(path)]
    records = data.load_math_train(cfg.source, levels=cfg.levels, splits=cfg.splits, exclude_questions=excluded)
    data.write_records(args.out, records)
    log.info("MATH levels %s from %s: %d questions -> %s", cfg.levels, cfg.source, len(records), args.out)


def cmd_prepare_benchmark(args: argparse.Namespace) -> None:
    from pipeline import data

    benchmarks = config_mod.load(args.config).data.benchmarks
    if args.name not in benchmarks:
        raise config_mod.ConfigError(
            f"data.benchmarks: no entry for {args.name!r} (configured: {', '.join(benchmarks) or 'none'})"
        )
    src = benchmarks[args.name]
    records = data.load_benchmark(args.name, src.source, split=src.split)
    data.write_records(args.out, records)
    log.info("benchmark %s from %s (%s): %d questions -> %s", args.name, src.source, src.split, len(records),
             args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, fn, help: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help, description=help)
        p.add_argument("--config", default="config.yaml", help="YAML file or inline JSON mapping")
        p.set_defaults(fn=fn)
        return p

    verb("config", cmd_config, "print the resolved configuration")
    p = verb("prepare-synthetic", cmd_prepare_synthetic, "generate the synthetic arithmetic task")
    p.add_argument("--train", required=True, help="output jsonl of training questions")
    p.add_argument("--heldout", required=True, help="output jsonl of held-out questions")
    p = verb("prepare-math", cmd_prepare_math, "load and normalise the MATH training set")
    p.add_argument("--out", required=True, help="output jsonl")
    p.add_argument("--exclude", nargs="*", default=[], help="prepared benchmark jsonl whose questions to drop")
    p = verb("prepare-benchmark", cmd_prepare_benchmark, "load and normalise one evaluation benchmark")
    p.add_argument("name", help="benchmark name (a key of data.benchmarks)")
    p.add_argument("--out", required=True, help="output jsonl")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.fn(args)
    except (config_mod.ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
