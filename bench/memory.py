"""Peak memory of one PPO update (actor + critic + frozen reference) against the memory it cannot do without.

The model has a real vocabulary and depth: a SmolLM2-135M-shaped Llama (vocabulary 49,152, 30 layers, tied
embeddings) with random weights, built here (see bench/shapes.py). One process, fp32, the paper preset's training
settings (PPO, kl_coef 0.01, gradient checkpointing on) with micro_batch 4 and train_batch 8; the buffer is 8
synthetic multi-attempt dialogues (a prompt, 2-3 attempts separated by feedback, ~250 policy tokens each).

STATIC memory = actor weights + gradients + AdamW's two states, the same for the critic, plus the reference's
weights, from parameter counts and dtype sizes: the state the update itself keeps. The work runs in
a child process, so building the model here does not count. The child records its RSS after the Trainer is built
and its (memory-mapped) weights are read once: imports + the three models' weights. Then it resets the kernel's
high-water mark (/proc/self/clear_refs) and reads it after experience() + update(): that is the peak.
Target (issue 14): peak <= 1.3 x static.

Run: `python bench/memory.py [--smoke] [--no-gradient-checkpointing]`. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402, I001  (first: it pins the CPU kernels torch uses, pipeline.numerics)
from bench import shapes  # noqa: E402

DIALOGUES, MICRO_BATCH, PROMPT_TOKENS, POLICY_TOKENS = 8, 4, 120, 250
GIB = 2**30


def train_config(checkpointing: bool):
    """The paper preset's PPO settings at this benchmark's batch sizes, on the transformers backend."""
    from pipeline import config

    return config.resolve(
        {
            "scale": "paper",
            # no rollout here: the context is the model's own (the smoke model has fewer positions than 4,024)
            "rollout": {"backend": "hf", "max_model_len": 0},
            "train": {
                "rollout_batch": DIALOGUES,
                "samples_per_prompt": 1,
                "train_batch": DIALOGUES,
                "micro_batch": MICRO_BATCH,
                "deepspeed": {"gradient_checkpointing": checkpointing},
            },
        }
    )


def static_bytes(trainer) -> dict[str, int]:
    """Bytes no PPO update can do without: weights, gradients and AdamW's two states (each the parameters'
    dtype in plain torch) of actor and critic, and the frozen reference's weights."""

    def size(module):
        return sum(p.numel() * p.element_size() for p in module.parameters())

    return {
        "actor": 4 * size(trainer.actor.module),
        "critic": 4 * size(trainer.critic.module),
        "reference": size(trainer.ref),
    }


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def child(folder: str, checkpointing: bool) -> dict:
    """In the child process: build the Trainer, then one experience() + update(); memory in bytes."""
    from pipeline.grading import Grader
    from pipeline.train import Trainer

    pipeline.numerics.set_threads(None)  # as the pipeline computes on CPU: one thread
    rss_imports = _status_kib("VmRSS") * 1024
    cfg = train_config(checkpointing)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(
            cfg,
            "multi_attempt",
            0,
            folder,
            [{"id": 0, "question": "", "answer": "0"}],
            {},
            run_dir,
            Grader.from_config(cfg.grading),
        )  # no answer is graded here: its workers never start
        for module in (trainer.actor.module, trainer.critic.module, trainer.ref):
            for p in module.parameters():  # the weights are memory-mapped from the safetensors file: fault them
                p.detach().sum()  # in, so the baseline shows them (the work would touch them anyway)
        rss_built, peak_building = _status_kib("VmRSS") * 1024, _status_kib("VmHWM") * 1024
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from the current RSS
        vocab = trainer.actor.module.lm.config.vocab_size
        batch = shapes.transcripts(DIALOGUES, vocab, PROMPT_TOKENS, POLICY_TOKENS)
        t0 = time.perf_counter()
        trainer.update(trainer.experience(batch, list(range(DIALOGUES))), 0)
        seconds = time.perf_counter() - t0
    return {
        "rss_imports": rss_imports,
        "rss_built": rss_built,
        "peak_building": peak_building,
        "peak": _status_kib("VmHWM") * 1024,
        "seconds": seconds,
        "static": static_bytes(trainer),
        "actor_params": sum(p.numel() for p in trainer.actor.module.parameters()),
        "dialogue_tokens": sum(len(t.token_ids) for t in batch) / DIALOGUES,
        "policy_tokens": sum(sum(t.policy_mask) for t in batch) / DIALOGUES,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 layers, vocabulary 4096, width / 4: seconds, for tests")
    parser.add_argument(
        "--no-gradient-checkpointing",
        dest="checkpointing",
        action="store_false",
        help="keep activations (the paper preset turns checkpointing on)",
    )
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)  # the measured process
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.checkpointing)))
        return 0

    shape = shapes.SMOLLM2_135M.smoke() if args.smoke else shapes.SMOLLM2_135M
    with tempfile.TemporaryDirectory() as tmp:
        folder = shapes.build(shape, Path(tmp) / "model")
        command = [sys.executable, __file__, "--child", str(folder)]
        if not args.checkpointing:
            command.append("--no-gradient-checkpointing")
        proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    m = json.loads(proc.stdout.splitlines()[-1])
    static = sum(m["static"].values())
    checkpointing = (
        "on (train.deepspeed.gradient_checkpointing, as in the paper preset)"
        if args.checkpointing
        else "off (--no-gradient-checkpointing; the paper preset turns it on)"
    )

    print(f"model: {shape.name}, {m['actor_params']:,} parameters per model, fp32, one process")
    print(f"PPO: actor + critic + frozen reference (kl_coef 0.01); gradient checkpointing {checkpointing}")
    print(
        f"work: experience() + update() on {DIALOGUES} synthetic dialogues ({m['dialogue_tokens']:.0f} tokens, "
        f"{m['policy_tokens']:.0f} policy tokens each), micro_batch {MICRO_BATCH}, train_batch {DIALOGUES}: "
        f"{m['seconds']:.1f} s"
    )
    print(f"{'':56s}{'GiB':>8s}")
    for label, value in [
        ("static: actor weights + grads + 2 AdamW states", m["static"]["actor"]),
        ("        critic weights + grads + 2 AdamW states", m["static"]["critic"]),
        ("        reference weights", m["static"]["reference"]),
        ("        total", static),
        ("RSS after imports", m["rss_imports"]),
        ("RSS after building the Trainer, weights read (baseline)", m["rss_built"]),
        ("peak RSS while building the Trainer", m["peak_building"]),
        ("peak RSS during experience() + update()", m["peak"]),
    ]:
        print(f"{label:56s}{value / GIB:8.2f}")
    print(f"{'peak / static (target <= 1.3)':56s}{m['peak'] / static:8.2f}")
    print(
        json.dumps(
            {
                "peak_gib": round(m["peak"] / GIB, 3),
                "static_gib": round(static / GIB, 3),
                "peak_over_static": round(m["peak"] / static, 3),
                "baseline_gib": round(m["rss_built"] / GIB, 3),
                "imports_gib": round(m["rss_imports"] / GIB, 3),
                "seconds": round(m["seconds"], 1),
                "gradient_checkpointing": args.checkpointing,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
