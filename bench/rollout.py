"""Cost per policy token of rollouts: single- vs multi-attempt, with and without KV-cache reuse, on both backends.

Same model, same questions, same batch size. The model is a folder or hub id given with --model, else an
untrained tiny Qwen2 built here (--width, --layers; 4 heads of width/4, so width 128 gives vLLM's CPU attention
the head size of 32 it needs). To make the runs comparable token for token, boxes and end-of-turn tokens do not
end attempts and no answer is right (the gold is unreachable), so every attempt runs to its budget: single = N 1,
multi = N 5 with the environment's feedback between attempts. Multi-attempt without cache reuse re-encodes the
whole dialogue at every attempt (what a naive engine, or the paper's decode-and-re-encode loop, pays). The vLLM
rows (when vLLM is installed) run the same dialogues on an in-process engine with prefix caching. Each
configuration is timed `REPEATS` times; the median counts.

Run: `python bench/rollout.py [--model PATH] [--width 128 --layers 2]`. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import config, grading, models  # noqa: E402
from pipeline.config import AttemptRange  # noqa: E402
from pipeline.env import MultiAttemptEnv  # noqa: E402
from pipeline.rollout import AttemptStop, HFBackend, Question, SamplingParams, rollout  # noqa: E402

N_QUESTIONS, BATCH, REPEATS, ATTEMPT_TOKENS = 64, 64, 3, 16


def model_folder(args, cfg, tmp: Path) -> tuple[str, str]:
    """(folder or hub id, description) of the benchmarked model."""
    if args.model:
        return args.model, args.model
    rng = random.Random(0)
    corpus = [f"{rng.randrange(1000):03d}+{rng.randrange(1000):03d}=\\boxed{{{rng.randrange(2000):04d}}}"
              for _ in range(300)]
    tokenizer = models.build_tokenizer(corpus, cfg.model.tiny.vocab_size)
    tiny = cfg.model.tiny.__class__(**{**cfg.model.tiny.__dict__, "hidden_size": args.width, "num_heads": 4,
                                       "num_kv_heads": 2, "num_layers": args.layers,
                                       "intermediate_size": 4 * args.width})
    torch.manual_seed(0)
    models.save(models.build_model(tiny, tokenizer), tokenizer, tmp / "model")
    return str(tmp / "model"), f"untrained tiny Qwen2, {args.layers} layers x {args.width}"


def timed(backend, tokenizer, cfg, n_attempts: int) -> tuple[float, int]:
    env = MultiAttemptEnv(cfg.env, AttemptRange(n_attempts, n_attempts), cfg.grading.timeout_s)
    questions = [Question(f"q{i}", f"{i:03d}+{999 - i:03d}=", "unreachable", n_attempts) for i in range(N_QUESTIONS)]
    params = SamplingParams(temperature=1.0, top_p=1.0, greedy=False, seed=0)
    t0 = time.perf_counter()
    transcripts = rollout(backend, tokenizer, env, questions, params, BATCH)
    seconds = time.perf_counter() - t0
    return seconds, sum(t.dialogue.policy_tokens for t in transcripts)


def measure(backend, tokenizer, cfg, n_attempts: int) -> dict:
    timed(backend, tokenizer, cfg, n_attempts)  # warm-up
    samples = [timed(backend, tokenizer, cfg, n_attempts) for _ in range(REPEATS)]
    seconds = statistics.median(s for s, _ in samples)
    tokens = samples[0][1]
    return {"seconds": seconds, "policy_tokens": tokens, "ms_per_token": 1000 * seconds / tokens}


def hf_backends(model, tokenizer, cfg) -> dict:
    eot = tokenizer.convert_tokens_to_ids(cfg.env.end_of_turn)

    def no_end_of_turn(module, args, out):  # every attempt runs to its budget: equal work in all runs
        out.logits[..., eot] = float("-inf")

    model.register_forward_hook(no_end_of_turn)
    return {
        "hf single": (HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=False), 1),
        "hf multi": (HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=False), 5),
        "hf multi without cache": (HFBackend(model, tokenizer, cfg.env.end_of_turn, False, reuse_cache=False), 5),
    }


def vllm_backends(source: str, tokenizer, cfg) -> tuple[dict, str]:
    """The vLLM rows, or none and the reason."""
    try:
        from pipeline.vllm_backend import VLLMBackend, VLLMError
    except ImportError as e:
        return {}, f"vLLM rows skipped: {e}"
    try:
        engine = VLLMBackend.start(source, cfg, tokenizer)
    except VLLMError as e:
        return {}, f"vLLM rows skipped: {e}"
    engine.end_ids, engine.stop = [], AttemptStop(tokenizer, [], stop_at_box=False)  # run to the budget
    return {"vllm single": (engine, 1), "vllm multi": (engine, 5)}, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: an untrained tiny Qwen2 built here)")
    parser.add_argument("--width", type=int, default=128, help="hidden size of the built model")
    parser.add_argument("--layers", type=int, default=2, help="layers of the built model")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = config.resolve({"env": {"max_attempt_tokens": ATTEMPT_TOKENS, "max_total_tokens": 5 * ATTEMPT_TOKENS}})
    grading.is_correct("\\boxed{1}", "1")  # start the grader workers outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        source, name = model_folder(args, cfg, Path(tmp))
        model, tokenizer = models.load(source)
        runs = hf_backends(model, tokenizer, cfg)
        vllm_runs, note = vllm_backends(source, tokenizer, cfg)
        runs.update(vllm_runs)
        results = {label: measure(backend, tokenizer, cfg, n) for label, (backend, n) in runs.items()}

    print(f"model: {name}, {models.n_params(model):,} parameters; {N_QUESTIONS} questions, batch {BATCH}, "
          f"{ATTEMPT_TOKENS} tokens per attempt, median of {REPEATS}, torch threads 2")
    print(f"{'':26s} {'policy tokens':>14s} {'seconds':>9s} {'ms/token':>9s} {'tokens/s':>9s} {'vs single':>10s}")
    for label, r in results.items():
        single = results[label.split()[0] + " single"]["ms_per_token"]
        print(f"{label:26s} {r['policy_tokens']:14d} {r['seconds']:9.3f} {r['ms_per_token']:9.4f} "
              f"{1000 / r['ms_per_token']:9.0f} {r['ms_per_token'] / single:9.2f}x")
    if note:
        print(note)
    hf = results["hf single"]["ms_per_token"]
    figures = {
        "multi_over_single": round(results["hf multi"]["ms_per_token"] / hf, 3),
        "nocache_over_single": round(results["hf multi without cache"]["ms_per_token"] / hf, 3),
        "single_tokens_per_s": round(1000 / hf, 1),
    }
    if vllm_runs:
        figures["vllm_multi_over_single"] = round(
            results["vllm multi"]["ms_per_token"] / results["vllm single"]["ms_per_token"], 3)
        figures["vllm_over_hf_tokens_per_s"] = round(
            results["hf multi"]["ms_per_token"] / results["vllm multi"]["ms_per_token"], 3)
    grading.shutdown()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
