"""Bad input through the command line, as a rule meets it: each case stops with exit code 2 and one `error:` line
naming the problem and where it is — never a traceback. (The library-level errors are tested beside their
modules; a damaged checkpoint is in tests/test_faults.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a hub id fails at once instead of after network retries
    return subprocess.run([sys.executable, "-m", "pipeline", *argv], capture_output=True, text=True, cwd=ROOT, env=env)


def evaluate(model, data, config="{}") -> subprocess.CompletedProcess:
    return cli(
        "evaluate",
        "--config",
        config,
        "--model",
        str(model),
        "--data",
        str(data),
        "--benchmark",
        "synthetic",
        "--k",
        "1",
        "--out",
        str(data.parent / "k1.jsonl"),
    )


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "q0", "question": "1+1=", "answer": "2", "source": "t", "meta": {}}\n')
    return path


def no_template(tiny_model_dir, folder):
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    return folder


def no_weights(tiny_model_dir, folder):
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    return folder


def assert_clean(proc: subprocess.CompletedProcess, *expected: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, proc.stderr[-2000:]
    message = "\n".join(lines[starts[0] :])  # the error and its indented details, the end of the output
    for text in expected:
        assert text in message, message


def test_config_violation_names_the_key_path(tiny_model_dir, questions):
    proc = evaluate(tiny_model_dir, questions, json.dumps({"env": {"reward": {"corect": 1}}, "eval": {"max_k": 0}}))
    assert_clean(proc, "env.reward.corect: unknown key", "eval.max_k: 0 is less than the minimum of 1")


def test_missing_model_folder(tmp_path, questions):
    assert_clean(evaluate(tmp_path / "models" / "nope", questions), "models/nope: no such folder")


def test_hub_id_that_cannot_be_loaded(questions):
    assert_clean(evaluate("nobody/no-such-model", questions), "model nobody/no-such-model: could not be loaded")


def test_model_folder_without_weights(tiny_model_dir, tmp_path, questions):
    assert_clean(evaluate(no_weights(tiny_model_dir, tmp_path / "m"), questions), "incomplete: missing weights")


def test_tokenizer_without_chat_template(tiny_model_dir, tmp_path, questions):
    proc = evaluate(no_template(tiny_model_dir, tmp_path / "m"), questions)
    assert_clean(proc, "tokenizer of", "has no chat template")


def test_malformed_line_of_evaluation_data(tiny_model_dir, tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text('{"id": "q0", "question": "1+1=", "answer": "2", "source": "t", "meta": {}}\n{"id": "q1",\n')
    assert_clean(evaluate(tiny_model_dir, data), "q.jsonl:2: malformed JSON")


def test_malformed_line_of_a_benchmark_file(tmp_path):
    source = tmp_path / "math500.jsonl"
    good = json.dumps({"problem": "1+1?", "answer": "2", "solution": "\\boxed{2}"})
    source.write_text(f"{good}\n{good}\n{{not json\n")
    config = json.dumps({"data": {"benchmarks": {"math500": {"source": str(source), "split": "test"}}}})
    proc = cli("prepare-benchmark", "math500", "--config", config, "--out", str(tmp_path / "out.jsonl"))
    assert_clean(proc, "math500.jsonl:3")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_trace_that_breaks_the_format(tmp_path):
    ok = {
        "id": "q0",
        "benchmark": "synthetic",
        "N": 1,
        "attempts": [{"text": "", "answer": "2", "correct": True}],
        "solved_at": 1,
        "stop_reason": "correct",
    }
    traces = tmp_path / "k1.jsonl"
    traces.write_text(json.dumps(ok) + "\n" + json.dumps({**ok, "id": "q1", "solved_at": None}) + "\n")
    proc = cli("eval-metrics", str(traces), "--model", "base", "--out", str(tmp_path / "metrics.json"))
    assert_clean(proc, "k1.jsonl:2 (id 'q1'): solved_at=None disagrees with the attempts (expected 1)")
    assert not (tmp_path / "metrics.json").exists()
