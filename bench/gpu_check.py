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
- zero3_offload_vs_zero3: the same GRPO update under bf16 ZeRO-3 with the optimizer offloaded to the CPU
  (DeepSpeed's CPU Adam, compiled on first use) and without (torch's AdamW on the GPU); the two must agree to
  a relative difference of OFFLOAD_TOLERANCE.
- trainer_resume: the paper's PPO (ZeRO-3, bf16, gradient checkpointing, optimizer offload; kl_coef 0, so no
  reference model) takes two real Trainer.train_step()s (rollout, experience, update), writes a checkpoint, and
  a fresh Trainer resumes from it: its weights (fp32 master and bf16, actor and critic) must equal the saved
  ones exactly.
- train_memory: peak GPU memory of experience() and of update() of the paper's PPO (actor + critic + reference,
  DeepSpeed ZeRO-3 bf16, gradient checkpointing and optimizer offload on, as in the paper preset) at
  micro_batch 8 x ~3,300-token dialogues with ~2,800 policy tokens each.
- rollout_speed: policy tokens per second of the transformers backend (HFBackend + rollout()), 64 dialogues x 256
  tokens in bf16, every attempt run to its budget (end of turn blocked); and the largest gap between the
  rollout's cached log-probs and a from-scratch recomputation (the rollout check allows 1e-3). Should sampling
  on the GPU fail (HFSession draws with a CPU generator), the error is recorded and sampling moves to the CPU.

A check whose pass criterion is a number asserts it, so it reports `failed` (with its figures) when it is not met.
Besides torch, transformers and accelerate the run needs jsonschema and DeepSpeed: bench/gpu_wheels.py prepares
them as wheels to carry to a machine without a package index.

`--smoke` runs every check at tiny shapes on the CPU (gloo instead of nccl), skipping what needs CUDA, in a few
minutes. Run: `python bench/gpu_check.py [--smoke]`. The last line printed is one JSON object; without CUDA and
without --smoke it prints one `skipped:` line.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
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
from pipeline.distributed import Optimized  # noqa: E402
from pipeline.dialogue import Role  # noqa: E402
from pipeline.env import MultiAttemptEnv  # noqa: E402
from pipeline.grading import Grader  # noqa: E402
from pipeline.hf_backend import HFBackend  # noqa: E402
from pipeline.rollout import LOGPROB_TOLERANCE, Question, SamplingParams, rollout  # noqa: E402
from pipeline.train import Trainer  # noqa: E402

GIB = 2**30
TIME_LIMIT_S = 480  # the whole run
CHECK_LIMIT_S = 240  # one check, so that a hung one (NCCL, say) leaves the others time
OFFLOAD_TOLERANCE = 1e-3  # ||d_offload - d_zero3|| / ||d_zero3||: float rounding, not a different optimizer


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
    resume: tuple[int, int]  # dialogues per training step, tokens per attempt


FULL = Plan(shapes.QWEN25_MATH_15B, "cuda", (4, 200, 400), (8, 400, 2800), (64, 256), (4, 32))
SMOKE = Plan(shapes.QWEN25_MATH_15B.smoke(), "cpu", (4, 40, 60), (8, 40, 60), (8, 16), (4, 8))
TRAIN_RECORDS = [  # what trainer_resume's rollouts ask; the other checks never call rollout()
    {"id": i, "question": f"{i:03d}+{999 - i:03d}=", "answer": "999"} for i in range(4)
]


def paper_config(train: dict, env: dict | None = None) -> config.Config:
    """The paper preset on the transformers rollout backend, with these `train` (and `env`) settings."""
    return config.resolve({"scale": "paper", "rollout": {"backend": "hf"}, "train": train, "env": env or {}})


def paper_trainer(cfg: config.Config, folder: str, run_dir: str) -> Trainer:
    return Trainer(cfg, "multi_attempt", 0, folder, TRAIN_RECORDS, {}, run_dir, Grader.from_config(cfg.grading))


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


def master_weights(model: Optimized) -> dict[str, torch.Tensor]:
    """A model's weights as its optimizer steps them, fp32 on the CPU. Under bf16 the module holds a rounded
    copy that a small update hardly moves; DeepSpeed's fp32 master copy shows it exactly."""
    named = [(n, p) for n, p in model.module.named_parameters() if p.requires_grad]
    if model.zero_stage == 3:
        from deepspeed.utils import safe_get_full_fp32_param

        values = [safe_get_full_fp32_param(p) for _, p in named]
    else:  # plain AdamW and DeepSpeed's stage-0 bf16 optimizer both step fp32 tensors in the module's order
        values = [p for group in model.optimizer.param_groups for p in group["params"]]
    assert len(values) == len(named), "optimizer parameters do not line up with the module's"
    return {n: v.detach().float().cpu().clone() for (n, _), v in zip(named, values)}


def actor_update(
    plan: Plan, folder: str, out: dict, name: str, stage: int | None, offload: bool = False
) -> dict[str, torch.Tensor]:
    """The actor's weight change in one GRPO update with 2 accumulated micro-batches; its gradient norm and the
    class of the optimizer that stepped go to `out` as grad_norm_<name> and optimizer_<name>. Stage None: plain
    torch in fp32 (call before the process group exists); 0 or 3: a DeepSpeed bf16 engine, its optimizer on the
    CPU with `offload`."""
    n, prompt, policy = plan.equivalence
    cfg = paper_config(
        {
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
            "deepspeed": {"zero_stage": stage or 0, "bf16": True, "offload_optimizer": offload},
        }
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = paper_trainer(cfg, folder, run_dir)
        batch = shapes.transcripts(n, trainer.actor.module.lm.config.vocab_size, prompt, policy)
        before = master_weights(trainer.actor)
        stats = trainer.update(trainer.experience(batch, [i // 2 for i in range(n)]), 0)
        after = master_weights(trainer.actor)
    engine = trainer.actor.engine
    out[f"grad_norm_{name}"] = stats.mean("ppo/grad_norm")
    out[f"optimizer_{name}"] = type(engine.basic_optimizer if engine else trainer.actor.optimizer).__name__
    return {k: after[k] - before[k] for k in before}


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over all tensors together."""
    return norm({k: a[k] - b[k] for k in b}) / norm(b)


def zero3_vs_zero0(plan: Plan, folder: str, out: dict) -> None:
    """Adam's first step moves every weight by lr x sign(gradient), so against the fp32 update a correct bf16
    update has step size 1 (ratio of norms) and differs only where tiny gradients flip sign."""
    require_deepspeed()
    fp32 = actor_update(plan, folder, out, "fp32", None)
    process_group(plan)
    zero0 = actor_update(plan, folder, out, "zero0", 0)
    zero3 = actor_update(plan, folder, out, "zero3", 3)
    out["update_rel_diff_zero3_vs_zero0"] = relative_difference(zero3, zero0)
    out["update_rel_diff_zero0_vs_fp32"] = relative_difference(zero0, fp32)
    out["update_rel_diff_zero3_vs_fp32"] = relative_difference(zero3, fp32)
    out["step_size_zero0"] = norm(zero0) / norm(fp32)
    out["step_size_zero3"] = norm(zero3) / norm(fp32)


def norm(delta: dict[str, torch.Tensor]) -> float:
    return sum(float(t.double().norm() ** 2) for t in delta.values()) ** 0.5


# ------------------------------------------------------------------------------------------ zero3_offload_vs_zero3


def zero3_offload_vs_zero3(plan: Plan, folder: str, out: dict) -> None:
    """The paper keeps the optimizer on the CPU, where DeepSpeed's compiled CPU Adam steps the fp32 master
    weights; the same gradients must give the same update as torch's AdamW on the GPU, to float rounding."""
    require_deepspeed()
    process_group(plan)
    zero3 = actor_update(plan, folder, out, "zero3", 3)
    with timed(out, "offload_update"):  # with the CPU Adam build, the first time on a machine
        offload = actor_update(plan, folder, out, "offload", 3, offload=True)
    out["update_rel_diff_offload_vs_zero3"] = difference = relative_difference(offload, zero3)
    assert out["optimizer_offload"] == "DeepSpeedCPUAdam", "the offloaded update was not stepped by CPU Adam"
    assert difference <= OFFLOAD_TOLERANCE, f"the offloaded update differs from ZeRO-3's by {difference:.3g}"


# ------------------------------------------------------------------------------------------ trainer_resume


def trainer_resume(plan: Plan, folder: str, out: dict) -> None:
    """A resumed run must go on from the weights it saved. Random weights answer nothing right, so GRPO's
    advantages (reward minus its group's mean) would all be 0 and its steps would change no weight; PPO's critic
    makes them non-zero."""
    require_deepspeed()
    process_group(plan)
    n, budget = plan.resume
    cfg = paper_config(
        {
            "kl_coef": 0.0,  # a frozen reference is not in a checkpoint: the resume needs none
            "steps": 2,
            "rollout_batch": n,
            "train_batch": n,
            "micro_batch": n // 2,
            "actor_lr": 1e-5,  # the paper's 5e-7, and a first step of warm-up at lr 0, would hardly move a weight
            "warmup_ratio": 0.0,
        },
        {"max_attempt_tokens": budget, "max_total_tokens": 3 * budget},
    )
    ds = cfg.train.deepspeed
    assert (ds.zero_stage, ds.bf16, ds.gradient_checkpointing, ds.offload_optimizer) == (3, True, True, True)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = paper_trainer(cfg, folder, run_dir)
        start = master_weights(trainer.actor)
        with timed(out, "steps"):
            for _ in range(cfg.train.steps):
                out["response_tokens"] = trainer.train_step()["train/response_tokens"]
        out["actor_update_rel"] = relative_difference(master_weights(trainer.actor), start)
        del start
        saved = weight_digests(trainer)
        with timed(out, "save"):
            trainer.checkpoints.save(trainer.step, trainer.actor, trainer.critic, [])
        del trainer  # its optimizer states (pinned CPU memory) go before the fresh Trainer allocates its own
        gc.collect()
        resumed = paper_trainer(cfg, folder, run_dir)
        with timed(out, "resume"):
            out["resumed_step"] = resumed.checkpoints.resume(resumed.actor, resumed.critic, cfg.train.steps)[0]
        restored = weight_digests(resumed)
    differing = [k for k in saved if restored[k] != saved[k]]
    out["tensors"], out["tensors_differing"] = len(saved), len(differing)
    assert out["resumed_step"] == cfg.train.steps, f"resumed at step {out['resumed_step']}"
    assert out["actor_update_rel"] > 0, "the two steps changed no weight of the actor: equal weights would show nothing"
    assert not differing, f"resumed weights differ from the saved ones: {', '.join(differing[:3])}"


@contextlib.contextmanager
def timed(out: dict, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    out[f"{name}_s"] = time.perf_counter() - t0


def weight_digests(trainer: Trainer) -> dict[str, str]:
    """A SHA-256 of the bits of every trained weight of actor and critic: the fp32 master copies the optimizer
    steps, and the module's own (bf16) weights that forwards use, gathered from their ZeRO-3 shards. Digests, not
    copies: at the 1.5B shape the copies would hold 18 GB of CPU memory per Trainer."""
    digests = {}
    for role, model in (("actor", trainer.actor), ("critic", trainer.critic)):
        digests |= {f"{role} master {k}": digest(v) for k, v in master_weights(model).items()}
        with model.full_parameters() as module:
            digests |= {f"{role} {k}": digest(p) for k, p in module.named_parameters()}
    return digests


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().view(torch.uint8).numpy()).hexdigest()


# ------------------------------------------------------------------------------------------ train_memory


def train_memory(plan: Plan, folder: str, out: dict) -> None:
    if plan.device != "cuda":
        raise Skip("needs CUDA (torch.cuda.max_memory_allocated)")
    require_deepspeed()
    process_group(plan)
    n, prompt, policy = plan.memory
    cfg = paper_config({"rollout_batch": n, "samples_per_prompt": 1, "train_batch": n, "micro_batch": n})
    ds = cfg.train.deepspeed
    assert ds.gradient_checkpointing and ds.offload_optimizer, "the paper preset checkpoints and offloads"
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = paper_trainer(cfg, folder, run_dir)
        batch = shapes.transcripts(n, trainer.actor.module.lm.config.vocab_size, prompt, policy)
        out["dialogue_tokens"] = sum(len(t.token_ids) for t in batch) / n
        out["policy_tokens"] = sum(sum(t.policy_mask) for t in batch) / n
        torch.cuda.synchronize()
        out["allocated_before_gib"] = torch.cuda.memory_allocated() / GIB  # the three models
        with gpu_phase(out, "experience"):
            exp = trainer.experience(batch, list(range(n)))
        with gpu_phase(out, "update"):
            trainer.update(exp, 0)


@contextlib.contextmanager
def gpu_phase(out: dict, name: str) -> Iterator[None]:
    """Time a phase and record its peak GPU memory (the peak counter restarts at its start)."""
    torch.cuda.reset_peak_memory_stats()
    with timed(out, name):
        yield
        torch.cuda.synchronize()
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


# ------------------------------------------------------------------------------------------ the run

CHECKS = {
    "zero3_vs_zero0": zero3_vs_zero0,
    "zero3_offload_vs_zero3": zero3_offload_vs_zero3,
    "trainer_resume": trainer_resume,
    "train_memory": train_memory,
    "rollout_speed": rollout_speed,
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
    width = max(map(len, CHECKS))
    print(f"| {'check':{width}s} | {'status':8s}| {'s':>6s} | figures")
    for name, r in results.items():
        figures = r.get("reason") or ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("status", "seconds"))
        print(f"| {name:{width}s} | {r['status']:8s}| {r['seconds']:6.1f} | {figures}")
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
