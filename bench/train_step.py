"""Time of one RL update (rollout + scoring + one optimizer step): ours vs TRL's GRPOTrainer, in one run.

Same model (the workflow's base model when it exists, else a freshly built tiny Qwen2), same batch (64
questions x 4 samples = 256 single-attempt dialogues, one optimizer step in 4 micro-batches of 64), same
lengths (at most 16 sampled tokens), temperature 0.6, KL coefficient 0.01 to a frozen reference, the same
reward (+1 / -0.5 / -1 through our grader). TRL has no multi-attempt environment, so both run the
single-attempt task (the baseline variant). Each trainer does one warm-up update, then `STEPS` timed ones;
the median counts. Target (issue 4): ours <= 0.67 x TRL's time.

Needs TRL: `pip install -e '.[bench]'`. Run: `python bench/train_step.py [MODEL]`. Last line: one JSON object.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402, I001  (first: it pins the CPU kernels torch uses, pipeline.numerics)
from pipeline import config, data, models  # noqa: E402
from pipeline.dialogue import Attempt  # noqa: E402
from pipeline.env import render_prompt, terminal_reward  # noqa: E402
from pipeline.grading import Grader  # noqa: E402
from pipeline.train import Trainer  # noqa: E402

PROMPTS, SAMPLES, MICRO, TOKENS, TEMPERATURE, STEPS = 64, 4, 64, 16, 0.6, 3


def model_folder(cfg, tmp: Path) -> tuple[str, str]:
    if len(sys.argv) > 1:
        return sys.argv[1], sys.argv[1]
    base = ROOT / cfg.out_dir / "models" / "base"
    if base.is_dir():
        return str(base), str(base.relative_to(ROOT))
    rng = random.Random(0)
    corpus = [
        f"{rng.randrange(1000):03d}+{rng.randrange(1000):03d}=\\boxed{{{rng.randrange(2000):04d}}}" for _ in range(300)
    ]
    tokenizer = models.build_tokenizer(corpus, cfg.model.tiny.vocab_size)
    models.save(models.build_model(cfg.model.tiny, tokenizer), tokenizer, tmp / "tiny")
    return str(tmp / "tiny"), "untrained tiny Qwen2"


def ours(cfg, model: str, records: list[dict], tmp: Path) -> list[float]:
    with Grader.from_config(cfg.grading) as grader:
        trainer = Trainer(cfg, "baseline", 0, model, records, {}, tmp / "ours", grader)
        times = []
        for _ in range(STEPS + 1):
            t0 = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - t0)
    return times[1:]


def trl(cfg, model: str, records: list[dict], tmp: Path) -> list[float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    table, grader = cfg.env.reward, Grader.from_config(cfg.grading)

    def reward(prompts, completions, gold, **_):
        grades = grader.grade(list(completions), list(gold))
        return [
            terminal_reward([Attempt(c, g.answer, g.answer is not None, g.correct, 0)], table)
            for c, g in zip(completions, grades)
        ]

    class Clock(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], 0.0

        def on_step_begin(self, *args, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            self.times.append(time.perf_counter() - self.t0)

    prompts = [
        {"prompt": render_prompt(cfg.env.prompt_template, r["question"], 1), "gold": str(r["answer"])} for r in records
    ]
    args = GRPOConfig(
        output_dir=str(tmp / "trl"),
        per_device_train_batch_size=MICRO,
        gradient_accumulation_steps=4,
        num_generations=SAMPLES,
        max_completion_length=TOKENS,
        temperature=TEMPERATURE,
        top_p=1.0,
        beta=cfg.train.kl_coef,
        learning_rate=cfg.train.actor_lr,
        max_steps=STEPS + 1,
        num_iterations=1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    clock = Clock()
    _, tokenizer = models.load(model)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(prompts),
        processing_class=tokenizer,
        callbacks=[clock],
    )
    with grader:
        trainer.train()
    return clock.times[1:]


def main() -> None:
    if importlib.util.find_spec("trl") is None:  # checked first: our half alone takes a minute
        print("skipped: TRL not installed (pip install -e '.[bench]')")
        return
    logging.disable(logging.WARNING)
    pipeline.numerics.set_threads(None)  # as the pipeline computes on CPU: one thread
    cfg = config.resolve(
        {
            "train": {
                "algorithm": "grpo",
                "rollout_batch": PROMPTS,
                "samples_per_prompt": SAMPLES,
                "train_batch": PROMPTS * SAMPLES,
                "micro_batch": MICRO,
                "temperature": TEMPERATURE,
                "eval_every": 0,
            },
            "env": {"max_attempt_tokens": TOKENS},
        }
    )
    records = data.synthetic_splits(0, 2000, 1, 3)[0]
    with tempfile.TemporaryDirectory() as tmp:
        model, name = model_folder(cfg, Path(tmp))
        ours_times = ours(cfg, model, records, Path(tmp))
        trl_times = trl(cfg, model, records, Path(tmp))
    a, b = statistics.median(ours_times), statistics.median(trl_times)
    print(
        f"one update on {name}: {PROMPTS} questions x {SAMPLES} samples, <= {TOKENS} tokens, "
        f"{MICRO}-dialogue micro-batches, 2 threads; median of {STEPS} after a warm-up"
    )
    print(f"{'trainer':<28}{'s / update':>12}   all timed updates")
    print(f"{'ours (pipeline.train)':<28}{a:>12.3f}   {', '.join(f'{t:.3f}' for t in ours_times)}")
    print(f"{'TRL 1.16 GRPOTrainer':<28}{b:>12.3f}   {', '.join(f'{t:.3f}' for t in trl_times)}")
    print(f"ours / TRL = {a / b:.3f} (target <= 0.67)")
    print(json.dumps({"ours_s": round(a, 4), "trl_s": round(b, 4), "ours_over_trl": round(a / b, 4)}))


if __name__ == "__main__":
    main()
