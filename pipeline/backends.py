"""The rollout backend a configuration asks for: the one place that chooses between transformers and vLLM.

It sits above both backends (`hf_backend.HFBackend`, `vllm_backend.VLLMBackend`), which know nothing of each other;
vLLM is imported only when the configuration names it (the CPU experiment never imports it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline import hub, models
from pipeline.config import Config
from pipeline.hf_backend import HFBackend
from pipeline.rollout import Backend


def make_backend(
    cfg: Config,
    tokenizer,
    model: torch.nn.Module | None = None,
    source: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    distributed: bool = False,
    gpu_memory_utilization: float | None = None,
) -> Backend:
    """The rollout backend of `cfg.rollout.backend`, for training, evaluation and SFT alike.

    vllm: an engine in this process started on the weights at `source` (every rank of a `distributed` job runs
    its own). hf: generation with transformers on `model`, or on the model at `source` (on the GPU when there is
    one). A model that exists only in memory (no `source`: SFT's) always generates with hf.
    """
    if cfg.rollout.backend == "vllm" and source is not None:
        from pipeline.vllm_backend import VLLMBackend

        return VLLMBackend.start(
            source, cfg, tokenizer, dtype=dtype, distributed=distributed, gpu_memory_utilization=gpu_memory_utilization
        )
    if model is None:
        model = models.load(source, dtype=dtype, revision=hub.model_revision(cfg, source))[0]
        if torch.cuda.is_available():
            model.to("cuda")
    return HFBackend(
        model, tokenizer, cfg.env.end_of_turn, cfg.env.stop_at_box, max_model_len=cfg.rollout.max_model_len
    )
