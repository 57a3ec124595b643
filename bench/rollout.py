"""Cost per policy token of rollouts: single-attempt vs multi-attempt vs multi-attempt without KV-cache reuse.

Same model, same questions, same batch size. The model is the one given on the command line, else the
workflow's base model when it exists (results/tiny/models/base), else a freshly built tiny Qwen2 of the default
config. To make the three runs comparable token for token, boxes and end-of-turn tokens do not end attempts and
no answer is right (the gold is unreachable), so every attempt runs to its budget: single = N 1, multi = N 5
with the environment's feedback between attempts. Multi-attempt without cache reuse re-encodes the whole
dialogue at every attempt (what a naive engine, or the paper's decode-and-re-encode loop, pays). Each
configuration is timed `REPEATS` times; the median counts.

Run: `python bench/rollout.py [MODEL]` (a model folder or hub id; default as above). The last line printed is
one JSON object.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import config, grading, models  # noqa: E402
from pipeline.config import AttemptRange  # noqa: E402
from pipeline.env import MultiAttemptEnv  # noqa: E402
from pipeline.rollout import HFBackend, Question, SamplingParams, rollout  # noqa: E402

N_QUESTIONS, BATCH, REPEATS, ATTEMPT_TOKENS = 64, 64, 3, 16


def load_model(cfg):
    if len(sys.argv) > 1:  # any model folder or hub id
        return (*models.load(sys.argv[1]), sys.argv[1])
    base = ROOT / cfg.out_dir / "models" / "base"
    if base.is_dir():
        return (*models.load(base), str(base.relative_to(ROOT)))
    rng = random.Random(0)
    corpus = [f"{rng.randrange(1000):03d}+{rng.randrange(1000):03d}=\\boxed{{{rng.randrange(2000):04d}}}"
              for _ in range(300)]
    tokenizer = models.build_tokenizer(corpus, cfg.model.tiny.vocab_size)
    torch.manual_seed(0)
    return models.build_model(cfg.model.tiny, tokenizer).eval(), tokenizer, "untrained tiny Qwen2"


def timed(model, tokenizer, cfg, n_attempts: int, reuse_cache: bool) -> tuple[float, int]:
    env = MultiAttemptEnv(cfg.env, AttemptRange(n_attempts, n_attempts), cfg.grading.timeout_s)
    backend = HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=False, reuse_cache=reuse_cache)
    questions = [Question(f"q{i}", f"{i:03d}+{999 - i:03d}=", "unreachable", n_attempts) for i in range(N_QUESTIONS)]
    params = SamplingParams(temperature=1.0, top_p=1.0, greedy=False, seed=0)
    t0 = time.perf_counter()
    transcripts = rollout(backend, tokenizer, env, questions, params, BATCH)
    seconds = time.perf_counter() - t0
    return seconds, sum(t.dialogue.policy_tokens for t in transcripts)


def main() -> int:
    torch.set_num_threads(2)
    cfg = config.resolve({"env": {"max_attempt_tokens": ATTEMPT_TOKENS, "max_total_tokens": 5 * ATTEMPT_TOKENS}})
    model, tokenizer, name = load_model(cfg)
    eot = tokenizer.convert_tokens_to_ids(cfg.env.end_of_turn)

    def no_end_of_turn(module, args, out):  # every attempt runs to its budget: equal work in all three runs
        out.logits[..., eot] = float("-inf")

    model.register_forward_hook(no_end_of_turn)
    grading.is_correct("\\boxed{1}", "1")  # start the grader workers outside the timings

    runs = {"single": (1, True), "multi": (5, True), "multi_nocache": (5, False)}
    results = {}
    for label, (n, reuse) in runs.items():
        timed(model, tokenizer, cfg, n, reuse)  # warm-up
        samples = [timed(model, tokenizer, cfg, n, reuse) for _ in range(REPEATS)]
        seconds = statistics.median(s for s, _ in samples)
        tokens = samples[0][1]
        results[label] = {"seconds": seconds, "policy_tokens": tokens, "ms_per_token": 1000 * seconds / tokens}

    print(f"model: {name}, {models.n_params(model):,} parameters; {N_QUESTIONS} questions, batch {BATCH}, "
          f"{ATTEMPT_TOKENS} tokens per attempt, median of {REPEATS}, torch threads 2")
    print(f"{'':28s} {'policy tokens':>14s} {'seconds':>9s} {'ms/token':>9s} {'vs single':>10s}")
    single = results["single"]["ms_per_token"]
    for label, r in results.items():
        print(f"{label:28s} {r['policy_tokens']:14d} {r['seconds']:9.3f} {r['ms_per_token']:9.4f} "
              f"{r['ms_per_token'] / single:9.2f}x")
    figures = {
        "multi_over_single": round(results["multi"]["ms_per_token"] / single, 3),
        "nocache_over_single": round(results["multi_nocache"]["ms_per_token"] / single, 3),
        "single_tokens_per_s": round(1000 / single, 1),
    }
    grading.shutdown()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
