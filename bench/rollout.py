"""Cost per policy token of rollouts: single- vs multi-attempt, with and without KV-cache reuse, on both backends.

Same model, same questions, same batch size. The model is a folder or hub id given with --model, else an
untrained tiny Qwen2 built here (--width, --layers; 4 heads of width/4, so width 128 gives vLLM's CPU attention
the head size of 32 it needs). No answer is right (the gold is unreachable), so multi-attempt dialogues use all
their attempts: single = N 1, multi = N 5 with the environment's feedback between attempts. Two sections:

- "to budget": boxes and end-of-turn tokens do not end attempts, so every attempt runs to its budget and the runs
  compare token for token. Multi-attempt without cache reuse re-encodes the whole dialogue at every attempt
  (what a naive engine, or the paper's decode-and-re-encode loop, pays).
- "realistic": attempts end as in training (end of turn, or right after the first complete box), so their
  lengths spread as a real model's do. The built model's tokenizer has BOX_TOKENS extra tokens `\\boxed{d}`;
  an untrained model samples nearly uniformly, so each token closes a box with probability ~BOX_TOKENS/vocab and
  attempt lengths are roughly geometric (mean ~100-150 tokens, some cut by the budget). Reported: vLLM's tokens
  generated past the first box / tokens generated (the engine is streamed and aborts at the box), what the
  released code's 64-token chunks would have generated past it had the model kept writing, and multi- over
  single-attempt wall time per policy token (the cost of the round-by-round barrier between attempts).

The vLLM rows (when vLLM is installed) run the same dialogues on an in-process engine with prefix caching.
Each configuration is timed `REPEATS` times; the median counts.

Run: `python bench/rollout.py [--model PATH] [--width 128 --layers 2] [--smoke]`. The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402, I001  (first: it pins the CPU kernels torch uses, pipeline.numerics)
import torch  # noqa: E402
from pipeline import config, models  # noqa: E402
from pipeline.config import AttemptRange  # noqa: E402
from pipeline.env import MultiAttemptEnv  # noqa: E402
from pipeline.grading import Grader  # noqa: E402
from pipeline.hf_backend import HFBackend  # noqa: E402
from pipeline.rollout import AttemptStop, Question, SamplingParams, end_token_ids, rollout  # noqa: E402

N_QUESTIONS, REPEATS, ATTEMPT_TOKENS = 64, 3, 16
REAL_ATTEMPT_TOKENS, BOX_TOKENS, CHUNK = 256, 3, 64  # the realistic section; CHUNK: the released code's check
REAL_QUESTIONS = 32  # the realistic section's HF rows are slow (per-token cost grows with the context on CPU)
GRADER = Grader.from_config(config.resolve({}).grading)  # the default grading settings (no budget depends on them)


def model_folder(args, cfg, tmp: Path) -> tuple[str, str]:
    """(folder or hub id, description) of the benchmarked model."""
    if args.model:
        return args.model, args.model
    rng = random.Random(0)
    corpus = [
        f"{rng.randrange(1000):03d}+{rng.randrange(1000):03d}=\\boxed{{{rng.randrange(2000):04d}}}" for _ in range(300)
    ]
    tokenizer = models.build_tokenizer(corpus, cfg.model.tiny.vocab_size)
    tokenizer.add_tokens([f"\\boxed{{{d}}}" for d in range(1, BOX_TOKENS + 1)])  # the realistic section's boxes
    tiny = cfg.model.tiny.__class__(
        **{
            **cfg.model.tiny.__dict__,
            "hidden_size": args.width,
            "num_heads": 4,
            "num_kv_heads": 2,
            "num_layers": args.layers,
            "intermediate_size": 4 * args.width,
        }
    )
    torch.manual_seed(0)
    models.save(models.build_model(tiny, tokenizer), tokenizer, tmp / "model")
    return str(tmp / "model"), f"untrained tiny Qwen2, {args.layers} layers x {args.width}"


def timed(backend, tokenizer, cfg, n_attempts: int, n_questions: int, barrier: bool) -> tuple[float, list]:
    env = MultiAttemptEnv(cfg.env, AttemptRange(n_attempts, n_attempts), GRADER)
    questions = [Question(f"q{i}", f"{i:03d}+{999 - i:03d}=", "unreachable", n_attempts) for i in range(n_questions)]
    params = SamplingParams(temperature=1.0, top_p=1.0, greedy=False, seed=0)
    t0 = time.perf_counter()
    transcripts = rollout(backend, tokenizer, env, questions, params, n_questions, barrier=barrier)  # one batch
    return time.perf_counter() - t0, transcripts


def measure(backend, tokenizer, cfg, n_attempts: int, n_questions: int, repeats: int, barrier: bool = False) -> dict:
    """Median wall time per policy token over `repeats` runs (after a warm-up, when more than one), and what the
    attempts looked like. `barrier`: vLLM in rounds, the schedule before 2026-12 (`rollout`)."""
    if repeats > 1:
        timed(backend, tokenizer, cfg, n_attempts, n_questions, barrier)  # warm-up
    generated = getattr(backend, "generated_tokens", None)
    steps = getattr(backend, "engine_steps", None)
    samples = [timed(backend, tokenizer, cfg, n_attempts, n_questions, barrier) for _ in range(repeats)]
    # the dialogue that needs the most sequential engine steps: one per policy token, at best
    longest = max(t.dialogue.policy_tokens + len(t.dialogue.attempts) for t in samples[0][1])
    seconds = statistics.median(s for s, _ in samples)
    kept = sum(t.dialogue.policy_tokens for _, ts in samples for t in ts)
    attempts = [a for t in samples[0][1] for a in t.dialogue.attempts]
    tokens = sum(a.n_tokens for a in attempts)
    # the released code checks for a box every CHUNK tokens: had the model kept writing, it would have generated
    # up to the end of the chunk in which the box closed
    budget = cfg.env.max_attempt_tokens
    past_box = sum(min(-(-a.n_tokens // CHUNK) * CHUNK, budget) - a.n_tokens for a in attempts if a.formatted)
    return {
        "seconds": seconds,
        "policy_tokens": tokens,
        "ms_per_token": 1000 * seconds / tokens,
        "lengths": sorted(a.n_tokens for a in attempts),
        "boxed_share": sum(a.formatted for a in attempts) / len(attempts),
        # tokens the engine generated but no transcript kept (vLLM counts them; HF never generates past the stop)
        "waste": None
        if generated is None
        else (backend.generated_tokens - generated - kept) / (backend.generated_tokens - generated),
        "chunk_waste": past_box / (tokens + past_box),
        # engine steps per run (seeded per request: every run plays the same dialogues) over the longest dialogue
        "steps_over_longest": None if steps is None else (backend.engine_steps - steps) / repeats / longest,
    }


def hf_backends(model, tokenizer, cfg, realistic: bool) -> dict:
    eot = tokenizer.convert_tokens_to_ids(cfg.env.end_of_turn)

    def no_end_of_turn(module, args, out):  # every attempt runs to its budget: equal work in all runs
        out.logits[..., eot] = float("-inf")

    if realistic:
        return {
            "hf single": (HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=True), 1),
            "hf multi": (HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=True), 5),
        }
    model.register_forward_hook(no_end_of_turn)
    return {
        "hf single": (HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=False), 1),
        "hf multi": (HFBackend(model, tokenizer, cfg.env.end_of_turn, stop_at_box=False), 5),
        "hf multi without cache": (HFBackend(model, tokenizer, cfg.env.end_of_turn, False, reuse_cache=False), 5),
    }


def start_vllm(source: str, tokenizer, cfg):
    """An in-process engine, or None and the reason it cannot run here."""
    try:
        from pipeline.vllm_backend import VLLMBackend, VLLMError
    except ImportError as e:
        return None, f"vLLM rows skipped: {e}"
    try:
        return VLLMBackend.start(source, cfg, tokenizer), ""
    except VLLMError as e:
        return None, f"vLLM rows skipped: {e}"


def vllm_backends(engine, tokenizer, cfg, realistic: bool) -> dict:
    if engine is None:
        return {}
    if realistic:  # attempts end as in training
        engine.end_ids = end_token_ids(tokenizer, cfg.env.end_of_turn)
        engine.stop = AttemptStop(tokenizer, engine.end_ids, stop_at_box=True)
    else:  # run to the budget
        engine.end_ids, engine.stop = [], AttemptStop(tokenizer, [], stop_at_box=False)
    return {"vllm single": (engine, 1), "vllm multi": (engine, 5)}


# what a model writes between boxes: every token goes through the session's stop watch (no box closes here)
SOLUTION = (
    "First we expand the product: (x + 3)(x - 2) = x^2 + x - 6. Setting it equal to 14 gives x^2 + x - 20 = 0, "
    "which factors as (x + 5)(x - 4) = 0, so x = -5 or x = 4. Only the positive root satisfies the condition, "
)


class StubEngine:
    """The part of vLLM's engine a `VLLMSession` drives, writing `SOLUTION` over and over in every request, so that
    what the session's own Python costs per request and step can be timed at any number of requests. The time the
    stub itself takes is counted (`seconds`) and taken out."""

    def __init__(self, ids: list[int]):
        self.ids, self.requests, self.seconds = ids, {}, 0.0
        self.logprobs = [{t: types.SimpleNamespace(logprob=-1.0)} for t in ids]

    def add_request(self, request_id, prompt, params) -> None:
        self.requests[request_id] = [params.max_tokens, 0]

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def abort_request(self, request_ids) -> None:
        for request_id in request_ids:
            self.requests.pop(request_id, None)

    def step(self) -> list:
        t0 = time.perf_counter()
        outputs = []
        for request_id, state in list(self.requests.items()):
            j = state[1] % len(self.ids)
            state[1] += 1
            finished = state[1] >= state[0]
            if finished:
                del self.requests[request_id]
            new = types.SimpleNamespace(token_ids=[self.ids[j]], logprobs=[self.logprobs[j]], finish_reason="length")
            output = types.SimpleNamespace(request_id=request_id, outputs=[new], finished=finished, num_cached_tokens=0)
            outputs.append(output)
        self.seconds += time.perf_counter() - t0
        return outputs


def session_overhead(tokenizer, cfg, n_requests: int, tokens: int) -> float:
    """Microseconds of `VLLMSession.step`'s own work per request and engine step, `n_requests` attempts of
    `tokens` tokens each in flight at once (the stub engine's time taken out)."""
    from pipeline.vllm_backend import VLLMSession

    engine = StubEngine(tokenizer(SOLUTION, add_special_tokens=False)["input_ids"])
    end_ids = end_token_ids(tokenizer, cfg.env.end_of_turn)
    backend = types.SimpleNamespace(
        llm=types.SimpleNamespace(llm_engine=engine),
        stop=AttemptStop(tokenizer, end_ids, stop_at_box=True),
        end_ids=end_ids,
        **dict.fromkeys(["engine_steps", "generated_tokens", "cached_tokens", "prompt_tokens"], 0),
    )
    session = VLLMSession(backend, n_requests, SamplingParams(1.0, 1.0, False, 0), None)
    for row in range(n_requests):
        session.feed([row], [[1, 2, 3]])
        session.submit(row, tokens)
    t0 = time.perf_counter()
    while session.busy:
        session.step()
    return 1e6 * (time.perf_counter() - t0 - engine.seconds) / (n_requests * tokens)


def section(title: str, results: dict) -> None:
    print(title)
    print(f"{'':26s} {'policy tokens':>14s} {'seconds':>9s} {'ms/token':>9s} {'tokens/s':>9s} {'vs single':>10s}")
    for label, r in results.items():
        single = results[label.split()[0] + " single"]["ms_per_token"]
        print(
            f"{label:26s} {r['policy_tokens']:14d} {r['seconds']:9.3f} {r['ms_per_token']:9.4f} "
            f"{1000 / r['ms_per_token']:9.0f} {r['ms_per_token'] / single:9.2f}x"
        )


def ratio(results: dict, backend: str) -> float:
    return round(results[f"{backend} multi"]["ms_per_token"] / results[f"{backend} single"]["ms_per_token"], 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: an untrained tiny Qwen2 built here)")
    parser.add_argument("--width", type=int, default=128, help="hidden size of the built model")
    parser.add_argument("--layers", type=int, default=2, help="layers of the built model")
    parser.add_argument("--smoke", action="store_true", help="8 questions, one run each: it works, no timings (tests)")
    args = parser.parse_args()
    n_questions, real_questions, repeats = (8, 8, 1) if args.smoke else (N_QUESTIONS, REAL_QUESTIONS, REPEATS)
    pipeline.numerics.set_threads(None)  # as the pipeline computes on CPU: one thread
    budgets = {"max_attempt_tokens": ATTEMPT_TOKENS, "max_total_tokens": 5 * ATTEMPT_TOKENS, "stop_at_box": False}
    real = {"max_attempt_tokens": REAL_ATTEMPT_TOKENS, "max_total_tokens": 5 * REAL_ATTEMPT_TOKENS, "stop_at_box": True}
    tiny = {"model": {"tiny": {"max_positions": 2048}}}
    if args.smoke:  # no timings: an eager engine starts in seconds instead of a minute of torch.compile
        tiny["rollout"] = {"vllm": {"enforce_eager": True}}
    cfg = config.resolve({"env": budgets, **tiny})
    real_cfg = config.resolve({"env": real, **tiny})
    GRADER.is_correct("\\boxed{1}", "1")  # start the grader workers outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        source, name = model_folder(args, cfg, Path(tmp))
        model, tokenizer = models.load(source)
        engine, note = start_vllm(source, tokenizer, cfg)
        runs = hf_backends(model, tokenizer, real_cfg, True) | vllm_backends(engine, tokenizer, real_cfg, True)
        realistic = {
            label: measure(backend, tokenizer, real_cfg, n, real_questions, 1 if label.startswith("hf") else repeats)
            for label, (backend, n) in runs.items()
        }
        if engine is not None:  # the schedule before 2026-12, and an evaluation-sized set in one window
            realistic["vllm multi, rounds"] = measure(engine, tokenizer, real_cfg, 5, real_questions, repeats, True)
            realistic["vllm multi, 4x questions"] = measure(engine, tokenizer, real_cfg, 5, 4 * real_questions, repeats)
        runs = hf_backends(model, tokenizer, cfg, False) | vllm_backends(engine, tokenizer, cfg, False)
        to_budget = {
            label: measure(backend, tokenizer, cfg, n, n_questions, repeats) for label, (backend, n) in runs.items()
        }

    overhead = {}
    if engine is not None:  # the step-by-step session's own Python at evaluation-sized batches
        overhead = {n: session_overhead(tokenizer, real_cfg, n, 32 if args.smoke else 256) for n in (256, 1024)}

    print(f"model: {name}, {models.n_params(model):,} parameters; torch threads {torch.get_num_threads()}")
    section(
        f"to budget: every attempt {ATTEMPT_TOKENS} tokens; {n_questions} questions in one batch, median of {repeats}",
        to_budget,
    )
    section(
        f"realistic: attempts end at end of turn or their first box (budget {REAL_ATTEMPT_TOKENS}); "
        f"{real_questions} questions in one batch, hf 1 run, vllm median of {repeats}",
        realistic,
    )
    lengths = realistic["hf multi"]["lengths"]
    print(
        f"  attempt lengths (hf multi): mean {statistics.mean(lengths):.0f}, p10 {lengths[len(lengths) // 10]}, "
        f"median {lengths[len(lengths) // 2]}, p90 {lengths[9 * len(lengths) // 10]}; "
        f"{realistic['hf multi']['boxed_share']:.0%} end at a box"
    )
    if engine is not None:
        print(
            f"  vLLM tokens generated past the first box: {realistic['vllm multi']['waste']:.2%} of those generated "
            f"(the released {CHUNK}-token chunks, had the model kept writing: "
            f"{realistic['vllm multi']['chunk_waste']:.1%})"
        )
        print(
            "  vLLM engine steps / (policy tokens + attempts of the longest dialogue), what sets a GPU's wall time: "
            f"multi {realistic['vllm multi']['steps_over_longest']:.3f}, "
            f"single {realistic['vllm single']['steps_over_longest']:.3f}, "
            f"multi in rounds {realistic['vllm multi, rounds']['steps_over_longest']:.3f}, "
            f"multi on {4 * real_questions} questions "
            f"{realistic['vllm multi, 4x questions']['steps_over_longest']:.3f} "
            "(1.0: no dialogue ever waits)"
        )
    if overhead:
        print(
            "vLLM session, Python per request and engine step (stub engine writing a solution's text, no box): "
            + ", ".join(f"{us:.2f} us at {n} requests" for n, us in overhead.items())
        )
    if note:
        print(note)
    hf = to_budget["hf single"]["ms_per_token"]
    figures = {
        "multi_over_single": ratio(to_budget, "hf"),
        "nocache_over_single": round(to_budget["hf multi without cache"]["ms_per_token"] / hf, 3),
        "single_tokens_per_s": round(1000 / hf, 1),
        "multi_over_single_wall": ratio(realistic, "hf"),
        "chunk64_waste_after_box": round(realistic["hf multi"]["chunk_waste"], 4),
    }
    if engine is not None:
        figures["vllm_multi_over_single"] = ratio(to_budget, "vllm")
        figures["vllm_over_hf_tokens_per_s"] = round(
            to_budget["hf multi"]["ms_per_token"] / to_budget["vllm multi"]["ms_per_token"], 3
        )
        figures["vllm_waste_after_box"] = round(
            max(realistic["vllm multi"]["waste"], realistic["vllm single"]["waste"]), 4
        )
        figures["vllm_multi_over_single_wall"] = ratio(realistic, "vllm")
        figures["vllm_steps_over_longest"] = round(realistic["vllm multi"]["steps_over_longest"], 3)
        figures["vllm_single_steps_over_longest"] = round(realistic["vllm single"]["steps_over_longest"], 3)
        figures["vllm_rounds_steps_over_longest"] = round(realistic["vllm multi, rounds"]["steps_over_longest"], 3)
        figures |= {f"python_us_per_request_step_{n}": round(us, 2) for n, us in overhead.items()}
        figures["vllm_eval_steps_over_longest"] = round(realistic["vllm multi, 4x questions"]["steps_over_longest"], 3)
    GRADER.close()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
