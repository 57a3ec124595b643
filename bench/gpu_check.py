"""What only a GPU can show, in one run of at most 8 minutes on one GPU, nothing downloaded (docs/gpu-validation.md).

The model is Qwen2.5-Math-1.5B-shaped (vocabulary 151,936, 28 layers, width 1536, tied embeddings) with random
bf16 weights, built here (bench/shapes.py); the dialogues are synthetic. Each check runs in its own child process,
so a crash or an out-of-memory in one leaves the others their GPU and their figures:

- zero3_vs_zero0: one GRPO actor update (2 micro-batches accumulated) from the same weights on the same buffer,
  three ways: DeepSpeed bf16 ZeRO-3, DeepSpeed bf16 ZeRO-0, plain torch fp32 (no process group). Reported: the
  relative difference of the actor's update ||d3 - d0|| / ||d0|| (fp32 master weights), each engine's against
  the fp32 update (bf16's own share), step sizes ||d|| / ||d_fp32|| and the three gradient norms. DeepSpeed
  engines are built through pipeline.distributed.Optimized, which it does whenever torch.distributed is
  initialised: a 1-process group.
- train_memory: peak GPU memory of experience() and of update() of the paper's PPO (actor + critic + reference,
  DeepSpeed ZeRO-3 bf16, gradient checkpointing on as in the paper preset; optimizer not offloaded) at
  micro_batch 8 x ~3,300-token dialogues with ~2,800 policy tokens each.
- rollout_speed: policy tokens per second of the transformers backend (HFBackend + rollout()), 64 dialogues x 256
  tokens in bf16, every attempt run to its budget (end of turn blocked); and the largest gap between the
  rollout's cached log-probs and a from-scratch recomputation (the rollout check allows 1e-3). Should sampling
  on the GPU fail (HFSession draws with a CPU generator), the error is recorded and sampling moves to the CPU.
- bf16_logprob_gap: policy-token log-probs of the same batch under bf16 and fp32 weights and compute.

`--smoke` runs every check at tiny shapes on the CPU (gloo instead of nccl), skipping what needs CUDA, in under
a minute. Run: `python bench/gpu_check.py [--smoke]`. The last line printed is one JSON object; without CUDA and
without --smoke it prints one `skipped:` line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402, F401, I001  (first: it pins the CPU kernels torch uses, pipeline.numerics)
import torch  # noqa: E402
from bench import shapes  # noqa: E402
from pipeline import config, models  # noqa: E402
from pipeline.config import AttemptRange  # noqa: E402
from pipeline.env import MultiAttemptEnv, Role  # noqa: E402
from pipeline.grading import Grader  # noqa: E402
from pipeline.rollout import (  # noqa: E402
    LOGPROB_TOLERANCE,
    HFBackend,
    Question,
    SamplingParams,
    rollout,
    sequence_logprobs,  # noqa: E402
)
from pipeline.train import Trainer  # noqa: E402

GIB = 2**30
TIME_LIMIT_S = 480  # the whole run
CHECK_LIMIT_S = 240  # one check, so that a hung one (NCCL, say) leaves the others time


class Skip(Exception):
    """A check that cannot run here; the message says why."""


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: the full one on a GPU, or the smoke one on the CPU."""

    shape: shapes.Shape
    device: str
    equivalence: tuple[int, int, int]  # dialogues, prompt tokens, policy tokens
    memory: tuple[int, int, int]
    rollout: tuple[int, int]  # dialogues, tokens each
    gap: tuple[int, int, int]


FULL = Plan(shapes.QWEN25_MATH_15B, "cuda", (4, 200, 400), (8, 400, 2800), (64, 256), (4, 200, 800))
SMOKE = Plan(shapes.QWEN25_MATH_15B.smoke(), "cpu", (4, 40, 60), (8, 40, 60), (8, 16), (2, 40, 60))
TRAIN_RECORDS = [{"id": 0, "question": "", "answer": "0"}]  # the Trainer needs one; rollout() is never called


# ------------------------------------------------------------------------------------------ zero3_vs_zero0


def process_group(plan: Plan) -> None:
    """A 1-process torch.distributed group on a free local port, so the Trainer builds DeepSpeed engines."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    torch.distributed.init_process_group("nccl" if plan.device == "cuda" else "gloo", rank=0, world_size=1)


def require_deepspeed() -> None:
    try:
        import deepspeed  # noqa: F401
    except Exception as e:  # ImportError, or a broken build that fails while importing
        raise Skip(f"import deepspeed failed ({type(e).__name__}: {e})") from None


def master_weights(trainer) -> dict[str, torch.Tensor]:
    """The actor's weights as its optimizer steps them, fp32 on the CPU. Under bf16 the module holds a rounded
    copy that a small update hardly moves; DeepSpeed's fp32 master copy shows it exactly."""
    named = [(n, p) for n, p in trainer.actor.module.named_parameters() if p.requires_grad]
    if trainer.actor.zero_stage == 3:
        from deepspeed.utils import safe_get_full_fp32_param

        values = [safe_get_full_fp32_param(p) for _, p in named]
    else:  # plain AdamW and DeepSpeed's stage-0 bf16 optimizer both step fp32 tensors in the module's order
        values = [p for group in trainer.actor.optimizer.param_groups for p in group["params"]]
    assert len(values) == len(named), "optimizer parameters do not line up with the module's"
    return {n: v.detach().float().cpu().clone() for (n, _), v in zip(named, values)}


def actor_update(plan: Plan, folder: str, stage: int | None) -> tuple[dict[str, torch.Tensor], float]:
    """(the actor's weight change, gradient norm) of one GRPO update with 2 accumulated micro-batches. Stage
    None: plain torch in fp32 (call before the process group exists); 0 or 3: a DeepSpeed bf16 engine."""
    n, prompt, policy = plan.equivalence
    cfg = config.resolve(
        {
            "scale": "paper",
            "rollout": {"backend": "hf"},
            "train": {
                "algorithm": "grpo",
                "kl_coef": 0.0,
                "rollout_batch": n // 2,
                "samples_per_prompt": 2,
                "train_batch": n,
                "micro_batch": n // 2,
                # lr at full strength from the first step (the paper's 5e-7 after warm-up is near fp32's
                # resolution of the weights, and warm-up would make the first step's lr 0)
                "actor_lr": 1e-5,
                "warmup_ratio": 0.0,
                "deepspeed": {"zero_stage": stage or 0, "bf16": True, "offload_optimizer": False},
            },
        }
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, "multi_attempt", 0, folder, TRAIN_RECORDS, {}, run_dir, Grader.from_config(cfg.grading))
        batch = shapes.transcripts(n, trainer.actor.module.lm.config.vocab_size, prompt, policy)
        before = master_weights(trainer)
        stats = trainer.update(trainer.experience(batch, [i // 2 for i in range(n)]), 0)
        after = master_weights(trainer)
    return {k: after[k] - before[k] for k in before}, stats.mean("ppo/grad_norm")


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over all tensors together."""
    return norm({k: a[k] - b[k] for k in b}) / norm(b)


def zero3_vs_zero0(plan: Plan, folder: str, out: dict) -> None:
    """Adam's first step moves every weight by lr x sign(gradient), so against the fp32 update a correct bf16
    update has step size 1 (ratio of norms) and differs only where tiny gradients flip sign."""
    require_deepspeed()
    fp32, out["grad_norm_fp32"] = actor_update(plan, folder, None)
    process_group(plan)
    zero0, out["grad_norm_zero0"] = actor_update(plan, folder, 0)
    zero3, out["grad_norm_zero3"] = actor_update(plan, folder, 3)
    out["update_rel_diff_zero3_vs_zero0"] = relative_difference(zero3, zero0)
    out["update_rel_diff_zero0_vs_fp32"] = relative_difference(zero0, fp32)
    out["update_rel_diff_zero3_vs_fp32"] = relative_difference(zero3, fp32)
    out["step_size_zero0"] = norm(zero0) / norm(fp32)
    out["step_size_zero3"] = norm(zero3) / norm(fp32)


def norm(delta: dict[str, torch.Tensor]) -> float:
    return sum(float(t.double().norm() ** 2) for t in delta.values()) ** 0.5


# ------------------------------------------------------------------------------------------ train_memory


def train_memory(plan: Plan, folder: str, out: dict) -> None:
    if plan.device != "cuda":
        raise Skip("needs CUDA (torch.cuda.max_memory_allocated)")
    require_deepspeed()
    process_group(plan)
    n, prompt, policy = plan.memory
    cfg = config.resolve(
        {
            "scale": "paper",
            "rollout": {"backend": "hf"},
            "train": {
                "rollout_batch": n,
                "samples_per_prompt": 1,
                "train_batch": n,
                "micro_batch": n,
                "deepspeed": {"zero_stage": 3, "bf16": True, "offload_optimizer": False},
            },
        }
    )
    assert cfg.train.deepspeed.gradient_checkpointing, "the paper preset turns gradient checkpointing on"
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, "multi_attempt", 0, folder, TRAIN_RECORDS, {}, run_dir, Grader.from_config(cfg.grading))
        batch = shapes.transcripts(n, trainer.actor.module.lm.config.vocab_size, prompt, policy)
        out["dialogue_tokens"] = sum(len(t.token_ids) for t in batch) / n
        out["policy_tokens"] = sum(sum(t.policy_mask) for t in batch) / n
        torch.cuda.synchronize()
        out["allocated_before_gib"] = torch.cuda.memory_allocated() / GIB  # the three models and their states
        with gpu_phase(out, "experience"):
            exp = trainer.experience(batch, list(range(n)))
        with gpu_phase(out, "update"):
            trainer.update(exp, 0)


@contextlib.contextmanager
def gpu_phase(out: dict, name: str) -> Iterator[None]:
    """Time a phase and record its peak GPU memory (the peak counter restarts at its start)."""
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    yield
    torch.cuda.synchronize()
    out[f"{name}_s"] = time.perf_counter() - t0
    out[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated() / GIB


# ------------------------------------------------------------------------------------------ rollout_speed


def rollout_speed(plan: Plan, folder: str, out: dict) -> None:
    n, budget = plan.rollout
    model, tokenizer = models.load(folder, dtype=torch.bfloat16)
    model.to(plan.device)
    cfg = config.resolve({"env": {"max_attempt_tokens": budget, "max_total_tokens": budget}})
    end_ids = tokenizer.convert_tokens_to_ids([cfg.env.end_of_turn, tokenizer.eos_token])

    def no_end_of_turn(module, args, output):  # every attempt runs to its budget: a fixed amount of work
        output.logits[..., end_ids] = float("-inf")

    model.register_forward_hook(no_end_of_turn)
    grader = Grader.from_config(cfg.grading)
    env = MultiAttemptEnv(cfg.env, AttemptRange(1, 1), grader)
    questions = [Question(f"q{i}", f"{i:03d}+{999 - i:03d}=", "unreachable", 1) for i in range(n)]
    backend = HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=False)
    params = SamplingParams(temperature=1.0, top_p=1.0, greedy=False, seed=0)
    rollout(backend, tokenizer, env, questions[:8], params, 8)  # warm-up: kernels, allocator, grader workers
    t0 = time.perf_counter()
    transcripts = rollout(backend, tokenizer, env, questions, params, n)
    if plan.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = sum(t.dialogue.policy_tokens for t in transcripts)
    assert tokens == n * budget, f"generation stopped early: {tokens} of {n * budget} policy tokens"
    out["policy_tokens"], out["seconds"], out["tokens_per_s"] = tokens, seconds, tokens / seconds
    # The rollout check (rollout(check=True)) recomputes log-probs without a cache and allows LOGPROB_TOLERANCE.
    sample = transcripts[:8]
    scored = backend.score([t.token_ids for t in sample], 1.0)
    out["cached_vs_recomputed_max_abs"] = max(
        abs(float(s[j]) - t.logprobs[j])
        for t, s in zip(sample, scored)
        for j, r in enumerate(t.roles)
        if r == Role.POLICY
    )
    out["rollout_check_tolerance"] = LOGPROB_TOLERANCE
    grader.close()


# ------------------------------------------------------------------------------------------ bf16_logprob_gap


def bf16_logprob_gap(plan: Plan, folder: str, out: dict) -> None:
    """The weights are saved in bf16, so both models hold the same values: the gap is the compute's alone."""
    n, prompt, policy = plan.gap
    batch, logprobs = shapes.transcripts(n, plan.shape.vocab, prompt, policy), {}
    for dtype in (torch.float32, torch.bfloat16):
        model, tokenizer = models.load(folder, dtype=dtype)
        logprobs[dtype] = sequence_logprobs(
            model.to(plan.device), [t.token_ids for t in batch], 1.0, tokenizer.pad_token_id
        )
        del model
    gaps = torch.cat(
        [
            (a - b).abs()[torch.tensor(t.policy_mask)]
            for t, a, b in zip(batch, logprobs[torch.float32], logprobs[torch.bfloat16])
        ]
    )
    out["policy_tokens"] = gaps.numel()
    out["max_abs"], out["mean_abs"] = float(gaps.max()), float(gaps.mean())


# ------------------------------------------------------------------------------------------ the run

CHECKS = {
    "zero3_vs_zero0": zero3_vs_zero0,
    "train_memory": train_memory,
    "rollout_speed": rollout_speed,
    "bf16_logprob_gap": bf16_logprob_gap,
}


def child(name: str, plan: Plan, folder: str) -> dict:
    """Run one check in this (child) process: its status and figures, those measured before a failure too."""
    out: dict = {}
    try:
        CHECKS[name](plan, folder, out)
    except Skip as e:
        return {"status": "skipped", "reason": str(e)}
    except Exception as e:
        traceback.print_exc()
        return {"status": "failed", "reason": f"{type(e).__name__}: {e}"[:500], **_rounded(out)}
    return {"status": "ok", **_rounded(out)}


def _rounded(figures: dict) -> dict:
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in figures.items()}


def run_check(name: str, smoke: bool, folder: str, timeout: float) -> dict:
    """One check in a child process; its stdout and stderr are echoed to stderr, its result is its last line."""
    if timeout <= 0:
        return {"status": "skipped", "reason": f"the run's {TIME_LIMIT_S} s were spent", "seconds": 0.0}
    command = [sys.executable, __file__, "--child", name, "--folder", folder, *(["--smoke"] if smoke else [])]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        lines = proc.stdout.strip().splitlines()
        sys.stderr.write("".join(f"[{name}] {line}\n" for line in lines + proc.stderr.splitlines()))
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result = {"status": "failed", "reason": f"exit {proc.returncode}: {tail}"[:500]}
    except subprocess.TimeoutExpired:
        result = {"status": "failed", "reason": f"timed out after {timeout:.0f} s"}
    return {**result, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU; skips what needs CUDA")
    parser.add_argument("--child", choices=CHECKS, help=argparse.SUPPRESS)  # run one check in this process
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # the model, built by the parent
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    if args.child:
        print(json.dumps(child(args.child, plan, args.folder)), flush=True)
        return 0
    if plan.device == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA device (run with --smoke for the CPU version of every check)")
        return 0

    t0 = time.perf_counter()
    device = torch.cuda.get_device_name(0) if plan.device == "cuda" else "CPU (smoke)"
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(shapes.build(plan.shape, Path(tmp) / "model", torch.bfloat16, plan.device))
        if plan.device == "cuda":
            torch.cuda.empty_cache()  # the children need the GPU
        build_s = time.perf_counter() - t0
        for name in CHECKS:
            left = TIME_LIMIT_S - (time.perf_counter() - t0)
            results[name] = run_check(name, args.smoke, folder, min(CHECK_LIMIT_S, left))
    total = time.perf_counter() - t0

    print(
        f"device: {device}; model: {plan.shape.name}, random bf16 weights, built in {build_s:.0f} s; "
        f"total {total:.0f} s (limit {TIME_LIMIT_S} s)"
    )
    print(f"| {'check':17s}| {'status':8s}| {'s':>6s} | figures")
    for name, r in results.items():
        figures = r.get("reason") or ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("status", "seconds"))
        print(f"| {name:17s}| {r['status']:8s}| {r['seconds']:6.1f} | {figures}")
    print(
        json.dumps(
            {
                "device": device,
                "model": plan.shape.name,
                "smoke": args.smoke,
                "build_s": round(build_s, 1),
                "total_s": round(total, 1),
                "checks": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
