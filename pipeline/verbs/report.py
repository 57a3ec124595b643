"""Verbs of the report step: every evaluation and training run aggregated into tables and summary.json, the
figures, the markdown report (pipeline/report.py), DVC's views of them (pipeline/dvc_views.py), and the feedback
ablation's report (pipeline/report/ablation.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline import config as config_mod
from pipeline.verbs import arg, verb

log = logging.getLogger("pipeline")

FILES = "eval/<model>/<benchmark>/{} files"
TABLES = arg("--tables", required=True, help="the report folder aggregate wrote: summary.json and the csv tables")
GAIN_TRACES = arg(
    "--traces",
    nargs="*",
    default=[],
    help="the k=1 and k=2 traces of each --metrics file, two each in their order (the gain from k=1 to k=2)",
)


@verb(
    "aggregate",
    "summary.json and csv tables of every evaluation and training run",
    arg("--metrics", nargs="+", required=True, help=FILES.format("metrics.json")),
    arg("--train-logs", nargs="*", default=[], help="models/<variant>_s<seed>/train_log.jsonl files"),
    arg("--runs", nargs="*", default=[], help="the model of each --train-logs file, in order (<variant>_s<seed>)"),
    arg("--models", nargs="*", default=[], help="model folders whose provenance.json to collect"),
    arg("--audits", nargs="*", default=[], help=FILES.format("grader_audit.json")),
    arg("--parallel", nargs="*", default=[], help=FILES.format("parallel.json")),
    arg("--flip", nargs="*", default=[], help=FILES.format("flip_probe.json")),
    arg("--curve-metrics", nargs="*", default=[], help="metrics.json files of the curves' actors (eval.curve_steps)"),
    GAIN_TRACES,
    arg("--out-dir", required=True, help="report folder (summary.json, accuracy.csv, ...)"),
)
def cmd_aggregate(args: argparse.Namespace) -> None:
    from pipeline.io import DataError
    from pipeline.report import aggregate

    cfg = config_mod.load(args.config)
    if len(args.runs) != len(args.train_logs):
        raise DataError(f"--runs names {len(args.runs)} models for {len(args.train_logs)} --train-logs files")
    inputs = aggregate.Inputs(  # in the order of its fields
        args.metrics,
        dict(zip(args.runs, args.train_logs)),
        *(args.models, args.audits, args.parallel, args.flip, args.curve_metrics, args.traces),
    )
    tables = aggregate.build_tables(cfg, inputs)
    aggregate.write(args.out_dir, aggregate.build_summary(cfg, inputs, tables), tables)
    log.info("%d evaluation runs and %d training logs -> %s", len(args.metrics), len(args.train_logs), args.out_dir)


@verb(
    "figures",
    "draw the report's figures (PNG and PDF) from the aggregated tables",
    TABLES,
    arg("--out-dir", required=True, help="figures folder"),
)
def cmd_figures(args: argparse.Namespace) -> None:
    from pipeline.report.aggregate import read_csv
    from pipeline.report.figures import figures

    cfg = config_mod.load(args.config)
    tables = Path(args.tables)
    paths = figures(
        read_csv(tables / "accuracy.csv"),
        read_csv(tables / "retries.csv"),
        read_csv(tables / "learning_curves.csv"),
        read_csv(tables / "controls.csv"),
        read_csv(tables / "k_attempt_curves.csv"),
        args.out_dir,
        cfg.scale,
        [*cfg.trained_variants, *cfg.eval.models],
    )
    log.info("%d figure files -> %s", len(paths), args.out_dir)


@verb(
    "report",
    "write report.md from summary.json and the tables",
    TABLES,
    arg("--out", required=True, help="output markdown file"),
)
def cmd_report(args: argparse.Namespace) -> None:
    from pipeline.io import atomic_path, read_json
    from pipeline.report.aggregate import read_csv
    from pipeline.report.markdown import markdown

    tables = Path(args.tables)
    summary = read_json(tables / "summary.json")
    text = markdown(summary, read_csv(tables / "accuracy.csv"))
    with atomic_path(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("report -> %s", args.out)


@verb(
    "dvc-views",
    "the headline metrics per model and wide plot tables, as DVC reads them (dvc.yaml)",
    arg("--summary", required=True, help="summary.json of the report"),
    arg("--curves", required=True, help="learning_curves.csv of the report"),
    arg("--retries", required=True, help="retries.csv of the report"),
    arg("--out-dir", required=True, help="writes metrics/<model>.json and plots/<name>.csv here"),
    config=None,  # not read: summary.json holds what the views show
)
def cmd_dvc_views(args: argparse.Namespace) -> None:
    import pandas as pd

    from pipeline import dvc_views
    from pipeline.io import read_json

    dvc_views.write(read_json(args.summary), pd.read_csv(args.curves), pd.read_csv(args.retries), args.out_dir)
    log.info("DVC metrics and plots -> %s", args.out_dir)


@verb(
    "feedback-ablation-report",
    "the feedback ablation's table, json and figure from its metrics.json files",
    arg("--metrics", nargs="+", required=True, help="eval/<model>/<set>/feedback_<provider>/metrics.json files"),
    arg("--evaluated-with", nargs="+", required=True, help="the feedback provider of each --metrics file, in order"),
    GAIN_TRACES,
    arg("--out-json", required=True, help="output feedback_ablation.json"),
    arg("--out-md", required=True, help="output feedback_ablation.md"),
    arg("--figures-dir", required=True, help="folder of figures/feedback_ablation.{png,pdf}"),
)
def cmd_feedback_ablation_report(args: argparse.Namespace) -> None:
    from pipeline.report import ablation

    cfg = config_mod.load(args.config)
    evaluations = ablation.Evaluations(args.metrics, args.evaluated_with, args.traces)
    written = ablation.write(cfg, evaluations, args.out_json, args.out_md, args.figures_dir)
    log.info("feedback ablation: %s", ", ".join(map(str, written)))
