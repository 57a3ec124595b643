"""Data-parallel training on 2 CPU processes (torchrun, gloo, DeepSpeed), at the mechanism the paper preset uses:
gradient accumulation over micro-batches. ZeRO stages 0, 2 and 3 must give the same actor and critic updates,
and a ZeRO-3 run killed mid-training must resume to the same weights as an uninterrupted one.

(The first DeepSpeed run on a machine JIT-builds its CPU shared-memory op, ~1 min, cached afterwards.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline import models
from tests.test_train import SMALL, kill_after_checkpoints, log_lines, run, task, train_cmd, weights  # noqa: F401

pytestmark = pytest.mark.slow

# 16 dialogues per optimizer step, 8 per rank, micro-batches of 4: accumulation 2 (the paper preset's
# 128 / (8 GPUs x 8) is 2 as well). 3 steps: the first has a zero learning rate (warm-up).
ACCUMULATE = {**SMALL, "train": {**SMALL["train"], "steps": 3, "micro_batch": 4, "save_every": 3, "eval_every": 0}}


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory) -> Path:
    """An untrained Qwen2 wide enough that ZeRO-3 partitions its tied embedding / LM head (DeepSpeed keeps
    parameters under 1e5 elements whole on every rank, which would hide a head that is never gathered)."""
    from pipeline import config
    from tests.conftest import tiny_corpus

    cfg = config.resolve({"model": {"tiny": {"hidden_size": 384, "intermediate_size": 768, "num_heads": 6}}})
    tokenizer = models.build_tokenizer(tiny_corpus(cfg), cfg.model.tiny.vocab_size)
    model = models.build_model(cfg.model.tiny, tokenizer)
    assert model.get_output_embeddings().weight.numel() > 100_000
    path = tmp_path_factory.mktemp("wide") / "model"
    models.save(model, tokenizer, path)
    return path


def torchrun(cmd: list[str], port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        *cmd[1:],
    ]


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensors[k].double().flatten() for k in sorted(tensors)])


def critic_weights(critic: models.Critic) -> dict[str, torch.Tensor]:
    return {**critic.backbone.state_dict(), "value_head": critic.value_head.weight.detach()}


def trained(run_dir: Path, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(actor, critic) weights of a checkpoint, flattened."""
    ckpt = run_dir / "checkpoints" / f"step_{step:06d}"
    actor = flat(load_file(str(ckpt / "actor" / "model.safetensors")))
    return actor, flat(critic_weights(models.Critic.from_pretrained(ckpt / "critic")))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_zero_stages_give_the_same_updates_with_gradient_accumulation(task, wide_model_dir, tmp_path):
    base_actor = flat(load_file(str(wide_model_dir / "model.safetensors")))
    base_critic = flat(critic_weights(models.Critic.from_pretrained(wide_model_dir, seed=0)))
    updates = {}
    for port, stage in zip((29541, 29542, 29543), (0, 2, 3)):
        cfg = {**ACCUMULATE, "train": {**ACCUMULATE["train"], "deepspeed": {"zero_stage": stage}}}
        out = tmp_path / f"zero{stage}"
        run(torchrun(train_cmd(task, wide_model_dir, out / "run", out / "model", cfg), port), timeout=900)
        actor, critic = trained(out / "run", 3)
        updates[stage] = actor - base_actor, critic - base_critic
    actor0, critic0 = updates[0]
    assert actor0.norm() > 0 and critic0.norm() > 0
    for stage in (2, 3):
        actor, critic = updates[stage]
        print(f"ZeRO-{stage} vs ZeRO-0: actor {relative(actor, actor0):.2e}, critic {relative(critic, critic0):.2e}")
        assert relative(actor, actor0) < 1e-4, (stage, relative(actor, actor0))
        assert relative(critic, critic0) < 1e-4, (stage, relative(critic, critic0))


def test_zero3_run_killed_mid_training_resumes_to_the_same_weights(task, wide_model_dir, tmp_path):
    """SIGKILL a 2-process ZeRO-3 run after it wrote checkpoints, rerun: the final weights and log equal an
    uninterrupted run's (DeepSpeed's sharded engine checkpoints hold weights, optimizer states and schedule)."""
    cfg = {**ACCUMULATE, "train": {**ACCUMULATE["train"], "steps": 6, "save_every": 2, "deepspeed": {"zero_stage": 3}}}
    full, killed = tmp_path / "full", tmp_path / "killed"
    run(torchrun(train_cmd(task, wide_model_dir, full / "run", full / "model", cfg), 29544), timeout=900)
    cmd = torchrun(train_cmd(task, wide_model_dir, killed / "run", killed / "model", cfg), 29545)
    assert kill_after_checkpoints(cmd, killed / "run", killed / "model", times=1) == 1
    run(cmd, timeout=900)
    a, b = weights(full / "model"), weights(killed / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert log_lines(full / "model" / "train_log.jsonl") == log_lines(killed / "model" / "train_log.jsonl")
