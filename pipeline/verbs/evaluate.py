"""Verbs of the evaluation step: k-attempt dialogues of a model on a benchmark (pipeline/evaluate.py), their
metrics (pipeline/metrics.py), the controls beside them (parallel samples and the flip probe, pipeline/probes.py)
and the second grader's audit (pipeline/audit.py)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from pipeline import config as config_mod
from pipeline.feedback import PROVIDERS
from pipeline.io import PipelineError
from pipeline.verbs import BENCHMARK, DATA, MODEL, NAME, THREADS, arg, threads, verb

if TYPE_CHECKING:
    from pipeline.config import Config

log = logging.getLogger("pipeline")


@verb(
    "evaluate",
    "greedy k-attempt dialogues on one evaluation set; writes traces",
    MODEL,
    DATA,
    BENCHMARK,
    arg("--k", type=int, nargs="+", required=True, help="attempts allowed (N = k), one run per value"),
    arg("--out", nargs="+", required=True, help="output traces (jsonl), one per --k value"),
    THREADS,
    arg("--feedback", default=None, choices=PROVIDERS, help="feedback provider (default: env.feedback.provider)"),
)
def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline import evaluate
    from pipeline.feedback import with_provider
    from pipeline.grading import Grader
    from pipeline.io import write_jsonl

    cfg = computing(args)
    if args.feedback:  # the feedback ablation: evaluation under another provider than env.feedback.provider
        cfg = dataclasses.replace(cfg, env=with_provider(cfg.env, args.feedback))
    if len(args.k) != len(args.out) or len(set(args.k)) != len(args.k):
        raise PipelineError(f"evaluate: --k {args.k} needs distinct values, one per --out ({len(args.out)})")
    records, backend, tokenizer = questions_and_model(cfg, args)  # one engine start for every k
    with Grader.from_config(cfg.grading) as grader:
        for k, out in zip(args.k, args.out):
            traces = evaluate.evaluate(backend, tokenizer, cfg, records, args.benchmark, k, grader)
            write_jsonl(out, traces)
            solved = sum(t["solved_at"] is not None for t in traces)
            log.info(
                "%s on %s, k=%d: %d/%d solved (%.1f%%) -> %s",
                *(args.model, args.benchmark, k, solved, len(traces), 100 * solved / len(traces), out),
            )


@verb(
    "parallel-eval",
    "eval.max_k independent single-attempt samples per question at train.temperature; pass@k, majority@k and "
    "tokens beside the k-attempt runs",
    MODEL,
    NAME,
    DATA,
    BENCHMARK,
    arg("--sequential", nargs="*", default=[], help="the model's k-attempt traces (jsonl), one per k"),
    arg("--out", required=True, help="output sample traces (jsonl)"),
    arg("--summary", required=True, help="output parallel.json"),
    THREADS,
)
def cmd_parallel_eval(args: argparse.Namespace) -> None:
    from pipeline import probes
    from pipeline.grading import Grader
    from pipeline.io import write_json, write_jsonl

    cfg = computing(args)
    sequential = probes.read_sequential(args.sequential)
    records, backend, tokenizer = questions_and_model(cfg, args)
    with Grader.from_config(cfg.grading) as grader:
        samples = probes.parallel_samples(backend, tokenizer, cfg, records, args.benchmark, grader)
    write_jsonl(args.out, samples)
    summary = probes.parallel_json(cfg, args.name, args.benchmark, samples, sequential, args.out)
    write_json(args.summary, summary)
    log.info(
        "%s on %s, %d samples per question at T=%g: pass@k %s -> %s",
        args.name,
        args.benchmark,
        summary["n_samples"],
        cfg.train.temperature,
        ", ".join(f"{k}: {m['pass_at_k']:.3f}" for k, m in summary["by_k"].items()),
        args.summary,
    )


@verb(
    "flip-probe",
    "tell right first answers they are wrong; how often does the second flip?",
    MODEL,
    NAME,
    DATA,
    arg("--benchmark", required=True, help="name recorded in the records"),
    arg("--out", required=True, help="output probe records (jsonl)"),
    arg("--summary", required=True, help="output flip_probe.json"),
    THREADS,
)
def cmd_flip_probe(args: argparse.Namespace) -> None:
    from pipeline import probes
    from pipeline.grading import Grader
    from pipeline.io import write_json, write_jsonl

    cfg = computing(args)
    records, backend, tokenizer = questions_and_model(cfg, args)
    with Grader.from_config(cfg.grading) as grader:
        probed = probes.flip_probe(backend, tokenizer, cfg, records, args.benchmark, grader)
    write_jsonl(args.out, probed)
    stats = probes.flip_stats(probed)
    write_json(args.summary, {"model": args.name, "benchmark": args.benchmark, **stats})
    log.info(
        "%s on %s: %d of %d right first answers flipped to wrong after feedback saying wrong -> %s",
        *(args.name, args.benchmark, stats["n_flipped"], stats["n_probed"], args.summary),
    )


@verb(
    "eval-metrics",
    "metrics json of one model x benchmark from its k runs",
    arg("traces", nargs="+", help="traces jsonl, one per k"),
    arg("--model", required=True, help="the evaluated model's name: base or <variant>_s<seed>"),
    arg("--out", required=True, help="output metrics json"),
)
def cmd_eval_metrics(args: argparse.Namespace) -> None:
    from pipeline import metrics
    from pipeline.grading import Grader
    from pipeline.io import write_json

    cfg = config_mod.load(args.config)
    runs = {}
    for path in args.traces:
        traces = metrics.read_traces(path)
        runs[traces[0].n] = traces
    with Grader.from_config(cfg.grading) as grader:
        equivalent, timed_out = metrics.judge_repeats([t for traces in runs.values() for t in traces], grader)
    others = [*cfg.eval.models, *cfg.bases]  # names that are not <variant>_s<seed>
    out = metrics.metrics_for(args.model, runs, equivalent=equivalent, others=others)
    write_json(args.out, out)
    log.info(
        "%s: accuracy@k %s; %d answer pairs judged for repeats (%d equivalent, %d timed out) -> %s",
        out["benchmark"],
        ", ".join(f"k={k}: {m['accuracy']:.3f}" for k, m in out["by_k"].items()),
        *(len(equivalent), sum(equivalent.values()), timed_out, args.out),
    )


@verb(
    "grader-audit",
    "re-grade evaluation traces with the second grader; list disagreements",
    arg("--data", required=True, help="the evaluation set (jsonl): ids and gold answers"),
    arg("--traces", nargs="+", required=True, help="traces jsonl, one per k"),
    arg("--model", required=True, help="the evaluated model's name (recorded in the outputs)"),
    arg("--out-jsonl", required=True, help="output: one line per attempt the graders disagree on"),
    arg("--out-json", required=True, help="output: accuracy under each grader and counts per k"),
)
def cmd_grader_audit(args: argparse.Namespace) -> None:
    from pipeline import audit, data, metrics

    records = data.read_records(args.data)
    rows, summary = audit.audit(args.model, records, [metrics.read_traces(path) for path in args.traces])
    audit.write_audit(args.out_jsonl, args.out_json, rows, summary)
    log.info(
        "%s on %s: %d of %d attempts graded differently by %s -> %s",
        args.model,
        summary["eval_set"],
        summary["total"]["n_disagreements"],
        summary["total"]["n_attempts"],
        summary["second_grader"],
        args.out_jsonl,
    )


def questions_and_model(cfg: Config, args: argparse.Namespace) -> tuple[list[dict], Any, Any]:
    """(--data's questions, the backend of --model, its tokenizer): the questions first, so a bad file fails
    before the model loads."""
    from pipeline import data, evaluate

    records = data.read_records(args.data)
    return (records, *evaluate.open_backend(cfg, args.model))


def computing(args: argparse.Namespace) -> Config:
    """--config resolved, and the torch threads of a verb that runs a model set (pipeline.numerics)."""
    cfg = config_mod.load(args.config)
    threads(args.threads)
    return cfg
