"""One process or many: the few places where data-parallel training differs from single-process training.

A single process (the default, and every test of the trainer's logic) trains with plain torch: AdamW, the
cosine-with-floor schedule from transformers, gradient accumulation and clipping by hand. Launched on several
processes (`deepspeed --num_gpus 8 -m pipeline train ...` or `torchrun --nproc_per_node 8 -m pipeline train
...`), each model is wrapped in a DeepSpeed engine (ZeRO-2/3, bf16, optimizer offload, from config
`train.deepspeed`) that does the same three things. On CPU the process group uses gloo.

`Optimized` is the one interface the trainer sees: `optimized(...)` forward (through the DeepSpeed engine,
never around it), `micro_step(loss)` after each micro-batch, `save(folder)/load(folder, weights)` for
checkpoints (plain torch: optimizer and schedule; DeepSpeed: its own sharded checkpoint, weights included).
Either way a restored schedule runs to the total it was built with now, not the one it was saved under
(train.steps may have been raised).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from pipeline.config import TrainConfig
from pipeline.io import DataError, load_tensors

log = logging.getLogger(__name__)


def launched_distributed() -> bool:
    """True when a launcher (deepspeed, torchrun) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(timeout_min: int) -> None:
    """Join the process group the launcher set up (NCCL on GPUs, gloo on CPU). A collective that waits longer than
    `timeout_min` minutes (config distributed.timeout_min) fails the run; the DeepSpeed engines built later use
    this group, so the limit is theirs too."""
    if launched_distributed() and not dist.is_initialized():
        import deepspeed

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        deepspeed.init_distributed(dist_backend=backend, timeout=datetime.timedelta(minutes=timeout_min))
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        global _joined
        _joined = True


_joined = False  # init() created the process group (a single-process vLLM engine creates one of its own)


def shutdown() -> None:
    """Leave the process group `init` joined; one that vLLM created is vLLM's to destroy at exit."""
    global _joined
    if _joined and dist.is_initialized():
        dist.destroy_process_group()
    _joined = False


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (float64); the identity in one process."""
    return _all_reduce(values, "SUM")


def all_max(values: Sequence[float]) -> list[float]:
    """Element-wise maximum over ranks; the identity in one process."""
    return _all_reduce(values, "MAX")


def _all_reduce(values: Sequence[float], op: str) -> list[float]:
    if not dist.is_initialized():
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return t.cpu().tolist()


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def rank_threads(threads: int, ranks: int, grader_workers: int) -> int:
    """Torch threads of one of `ranks` processes of a job given `threads` CPUs, `grader_workers` of which run
    the grader's worker processes: the rest, shared out (at least 1). Every rank setting the job's full count
    would put ranks x threads OpenMP threads on the node's cores."""
    return max(1, (threads - grader_workers) // ranks)


def deepspeed_config(cfg: TrainConfig, lr: float, accumulation: int) -> dict:
    ds = cfg.deepspeed
    zero: dict = {"stage": ds.zero_stage}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.bf16},
        # bf16 weights, float32 gradient accumulation across micro-batches (the released code's grad_accum_dtype);
        # DeepSpeed has no such mix without ZeRO (stage 0), where gradients stay in the weights' dtype.
        **({"data_types": {"grad_accum_dtype": "fp32"}} if ds.bf16 and ds.zero_stage > 0 else {}),
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": lr,
                "betas": list(cfg.adam_betas),
                "weight_decay": cfg.weight_decay,
                "eps": 1e-8,
                # Offloaded state needs DeepSpeed's CPU Adam; elsewhere torch's AdamW avoids a JIT build (70 s).
                "torch_adam": not ds.offload_optimizer,
            },
        },
        "steps_per_print": 10**9,
    }


def deepspeed_checkpoint_classes() -> list[type]:
    """The classes besides tensors and plain data in the engine checkpoints we write (in the ZeRO optimizer
    state): a loss scaler and a fragment record, which load by setting their fields, and an enum."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


class Optimized:
    """A trainable model with its AdamW, cosine schedule (warm-up, floor) and gradient accumulation."""

    def __init__(self, module: torch.nn.Module, lr: float, cfg: TrainConfig, total_steps: int, accumulation: int):
        self.accumulation, self.grad_clip, self.micro = accumulation, cfg.grad_clip, 0
        self.zero_stage = cfg.deepspeed.zero_stage if dist.is_initialized() else 0
        warmup = math.ceil(cfg.warmup_ratio * total_steps)

        def schedule(optimizer):
            return get_cosine_with_min_lr_schedule_with_warmup(
                optimizer, warmup, total_steps, min_lr_rate=cfg.min_lr_ratio
            )

        if dist.is_initialized():
            import deepspeed

            if self.zero_stage == 3:  # weights read outside their owner's forward (models.Policy's LM head)
                for p in getattr(module, "zero3_external_parameters", list)():
                    deepspeed.zero.register_external_parameter(module, p)
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=module,
                model_parameters=[p for p in module.parameters() if p.requires_grad],
                config=deepspeed_config(cfg, lr, accumulation),
                lr_scheduler=schedule,
            )
            self.module = self.engine.module
            if is_main():  # which optimizer DeepSpeed built: CPU Adam when the states are offloaded
                log.info(
                    "DeepSpeed ZeRO-%d engine, optimizer %s%s",
                    self.zero_stage,
                    type(self.engine.basic_optimizer).__name__,
                    " (states offloaded to the CPU)" if cfg.deepspeed.offload_optimizer else "",
                )
        else:
            self.engine, self.module = None, module
            self.optimizer = torch.optim.AdamW(
                module.parameters(), lr=lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay, eps=1e-8
            )
            self.scheduler = schedule(self.optimizer)

    def __call__(self, *args, **kwargs):
        return (self.engine or self.module)(*args, **kwargs)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def micro_step(self, loss: torch.Tensor) -> float | None:
        """Backward one micro-batch's loss; after `accumulation` of them, clip and step. Returns the gradient
        norm when an optimizer step happened, else None."""
        self.micro += 1
        if self.engine is not None:
            self.engine.backward(loss)
            boundary = self.engine.is_gradient_accumulation_boundary()
            self.engine.step()
            if not boundary:
                return None
            norm = self.engine.get_global_grad_norm()
            return float(norm) if norm is not None else float("nan")
        (loss / self.accumulation).backward()
        if self.micro % self.accumulation:
            return None
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    # --- checkpoints: plain torch writes its optimizer and schedule, DeepSpeed its own (sharded) folder

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._follow_schedule()

    def save(self, folder: Path) -> None:
        """Write the training state to `folder` (collective under DeepSpeed: every rank calls it). Plain torch
        writes only the optimizer and schedule (`optimizer.pt`, main process); the weights are the caller's to
        keep (the checkpoint's save_pretrained copy)."""
        if self.engine is not None:
            self.engine.save_checkpoint(str(folder), tag="engine")
        elif rank() == 0:
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(self.state_dict(), folder / "optimizer.pt")

    def load(self, folder: Path, weights: Callable[[], Mapping[str, torch.Tensor]]) -> None:
        """Restore what `save` wrote. DeepSpeed's checkpoint holds the (sharded) weights too; plain torch loads
        `weights()` into the module in place (so the optimizer keeps its parameters), then its state.

        Nothing in the files may run code: DeepSpeed unpickles its files itself, allowing anything, so they are
        checked first."""
        if self.engine is None:
            self.module.load_state_dict(weights())
            self.load_state_dict(load_tensors(folder / "optimizer.pt"))
            return
        files = sorted(folder.rglob("*.pt"))
        if not files:
            raise DataError(f"{folder}: no DeepSpeed checkpoint files (*.pt)")
        for path in files:
            load_tensors(path, deepspeed_checkpoint_classes(), mmap=True)
        self.engine.load_checkpoint(str(folder), tag="engine")
        self._follow_schedule()

    def _follow_schedule(self) -> None:
        """Set the learning rates this schedule gives at the restored step: the optimizer state holds those of
        the schedule it was saved under, whose length differs when train.steps changed."""
        s = self.scheduler
        for group, base, factor in zip(self.optimizer.param_groups, s.base_lrs, s.lr_lambdas):
            group["lr"] = base * factor(s.last_epoch)

    @contextlib.contextmanager
    def full_parameters(self) -> Iterator[torch.nn.Module]:
        """The whole module with every parameter present on this rank, for generation and saving.

        ZeRO-3 gathers its shards and takes its hooks off the modules meanwhile: with them on, every forward of
        a generation would gather (and prefetch) collectively, and ranks whose dialogues need different numbers
        of forwards would wait on each other forever.
        """
        if self.zero_stage == 3:
            from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

            with unwrap_model_for_generation(self.engine):
                yield self.module
        else:
            yield self.module
