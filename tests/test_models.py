"""Model building and the one loading path. `pytest tests/test_models.py -q`"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import Qwen2ForCausalLM

from pipeline import config, models


def test_load_round_trip(tiny_model_dir):
    model, tokenizer = models.load(tiny_model_dir)
    assert isinstance(model, Qwen2ForCausalLM)
    # Same weights after a second load: save_pretrained/from_pretrained is lossless.
    again, _ = models.load(tiny_model_dir)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1="}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\n1+1=<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_keeps_specials_atomic_and_digits_split(tiny_model_dir):
    _, tok = models.load(tiny_model_dir)
    ids = tok("<|im_start|>user\n123+45=<|im_end|>", add_special_tokens=False)["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|im_start|>" and tokens[-1] == "<|im_end|>"
    assert ["1", "2", "3", "+", "4", "5", "="] == [t for t in tokens if t in "0123456789+="]
    text = "<|im_start|>system\nYou have 3 attempts.<|im_end|>\n\\boxed{0579}"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_tiny_model_matches_config():
    cfg = config.resolve({})
    tok = models.build_tokenizer(["<|im_start|>1+1=<|im_end|>"] * 10, cfg.model.tiny.vocab_size)
    model = models.build_model(cfg.model.tiny, tok)
    assert model.config.hidden_size == cfg.model.tiny.hidden_size
    assert model.config.num_hidden_layers == cfg.model.tiny.num_layers
    assert models.n_params(model) < 1_000_000


def test_clear_load_errors(tiny_model_dir, tmp_path):
    with pytest.raises(models.ModelLoadError, match="no such folder, and not a hub id"):
        models.load(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(models.ModelLoadError, match=r"incomplete: missing weights"):
        models.load(broken)
    no_template = tmp_path / "no_template"
    shutil.copytree(tiny_model_dir, no_template)
    (no_template / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((no_template / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (no_template / "tokenizer_config.json").write_text(json.dumps(tc))
    with pytest.raises(models.ModelLoadError, match="no chat template"):
        models.load(no_template)


def test_hub_id_without_network_is_a_clear_error():
    # The hub path is the same call as the local one; here it can only fail, and must fail clearly.
    # HF_HUB_OFFLINE is read at import time, hence a fresh interpreter.
    code = "from pipeline import models; models.load('Qwen/Qwen2.5-Math-1.5B')"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert "ModelLoadError: model Qwen/Qwen2.5-Math-1.5B: could not be loaded" in proc.stderr
