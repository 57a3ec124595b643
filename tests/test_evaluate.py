"""Evaluation at k attempts: traces from the real engine and the CLI's errors (the metrics json: test_metrics.py)."""

from __future__ import annotations

import subprocess
import sys

from pipeline import config, evaluate, metrics
from pipeline.grading import Grader
from tests.conftest import ROOT

GRADER = Grader.from_config(config.resolve({}).grading)


def test_evaluate_writes_valid_traces_in_order(tiny_model_dir):
    cfg = config.resolve({"eval": {"max_attempt_tokens": 5, "max_total_tokens": 30, "batch_size": 2}})
    backend, tokenizer = evaluate.open_backend(cfg, tiny_model_dir)
    records = [{"id": f"q{i}", "question": f"{i:03d}+100=", "answer": f"{i + 100:04d}"} for i in range(5)]
    traces = evaluate.evaluate(backend, tokenizer, cfg, records, "synthetic", k=2, grader=GRADER, progress=False)
    summary = metrics.summarize(metrics.traces_from(traces))  # valid traces of one run
    assert [t["id"] for t in traces] == [r["id"] for r in records]
    assert all(t["N"] == 2 and 1 <= len(t["attempts"]) <= 2 and t["token_exact"] for t in traces)
    assert summary["token_mismatches"] == 0
    again = evaluate.evaluate(backend, tokenizer, cfg, records, "synthetic", k=2, grader=GRADER, progress=False)
    assert again == traces  # greedy: deterministic


def test_cli_names_a_missing_model(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text('{"id": "q0", "question": "1+1=", "answer": "2", "source": "t", "meta": {}}\n')
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "evaluate",
        "--config",
        "{}",
        "--model",
        str(tmp_path / "nope"),
        "--data",
        str(data),
        "--benchmark",
        "synthetic",
        "--k",
        "1",
        "--out",
        str(tmp_path / "k1.jsonl"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert f"error: model {tmp_path / 'nope'}: no such folder" in proc.stderr
    assert not (tmp_path / "k1.jsonl").exists()


def test_evaluation_has_budgets_of_its_own(tiny_model_dir):
    """eval.max_attempt_tokens / max_total_tokens, not training's env budgets; 0 leaves only the context."""
    records = [{"id": f"q{i}", "question": f"{i:03d}+100=", "answer": "none"} for i in range(4)]
    own = config.resolve({"env": {"max_attempt_tokens": 40}, "eval": {"max_attempt_tokens": 3, "batch_size": 4}})
    backend, tokenizer = evaluate.open_backend(own, tiny_model_dir)
    traces = evaluate.evaluate(backend, tokenizer, own, records, "synthetic", k=3, grader=GRADER, progress=False)
    assert all(a["n_tokens"] <= 3 for t in traces for a in t["attempts"])
    unbounded = config.resolve(
        {"rollout": {"max_model_len": 60}, "eval": {"max_attempt_tokens": 0, "max_total_tokens": 0}}
    )
    backend, tokenizer = evaluate.open_backend(unbounded, tiny_model_dir)
    traces = evaluate.evaluate(backend, tokenizer, unbounded, records, "synthetic", k=5, grader=GRADER, progress=False)
    metrics.summarize(metrics.traces_from(traces))  # valid traces of one run
    assert any(t["stop_reason"] == "context" for t in traces)
    assert max(a["n_tokens"] for t in traces for a in t["attempts"]) > 16  # more than the training budget


def evaluate_cli(model, data, ks: list[int], outs: list) -> subprocess.CompletedProcess:
    cfg = '{"eval": {"max_attempt_tokens": 5, "max_total_tokens": 30, "batch_size": 2}}'
    cmd = [sys.executable, "-m", "pipeline", "evaluate", "--config", cfg, "--model", str(model), "--data", str(data)]
    cmd += ["--benchmark", "synthetic", "--k", *map(str, ks), "--out", *map(str, outs), "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_one_job_evaluates_every_k_as_separate_jobs_would(tiny_model_dir, tmp_path):
    """The evaluate rule runs k = 1..K in one job (one engine start); its traces are byte for byte those of one
    job per k."""
    data = tmp_path / "q.jsonl"
    data.write_text(
        "".join(
            f'{{"id": "q{i}", "question": "{i:03d}+100=", "answer": "{i + 100:04d}", "source": "t", "meta": {{}}}}\n'
            for i in range(6)
        )
    )
    together = [tmp_path / "together" / f"k{k}.jsonl" for k in (1, 2, 3)]
    assert evaluate_cli(tiny_model_dir, data, [1, 2, 3], together).returncode == 0
    for k, path in zip((1, 2, 3), together):
        alone = tmp_path / "alone" / f"k{k}.jsonl"
        assert evaluate_cli(tiny_model_dir, data, [k], [alone]).returncode == 0
        assert path.read_bytes() == alone.read_bytes()
    bad = evaluate_cli(tiny_model_dir, data, [1, 2], [tmp_path / "one.jsonl"])
    assert bad.returncode != 0 and "one per --out" in bad.stderr and not (tmp_path / "one.jsonl").exists()
