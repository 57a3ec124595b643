"""Benchmark pipeline.grading against plain Math-Verify on every benchmark answer we have.

Pairs (response, gold), built from ../shared/data/benchmarks (relative to the repo root):
  * positive: "... so the answer is \\boxed{GOLD}." vs GOLD, for every record;
  * negative: the same sentence with another record's (different) answer, same benchmark, seeded;
  * solution: for math500 and minerva_math, the reference solution text itself vs GOLD.

Ours: `Grader.grade` with the configuration's workers and timeout (start-up timed separately).  Plain Math-Verify:
`verify(parse(gold), parse(response))` sequentially in this process, default configs and timeouts, after the
same parser warm-up (`WARMUP_ANSWERS`) that our workers do when they start.  The pairs are split in two
seeded halves, graded in order by both: the first from a cold start (fresh workers, empty caches; ANTLR builds
its prediction cache lazily), the second in steady state, which is what a training run grading thousands of
batches sees.  The headline figures (`pairs_per_s`, `speedup_vs_math_verify`) are steady state; the cold and
overall speedups are printed and reported too.  The gold is wrapped in `$...$` when it has no math delimiters,
as Math-Verify's README does
(`parse("$123$")`): its LaTeX extractor finds nothing in a bare `\\sqrt{5}`, so unwrapped it marks about 10% of
the positive pairs wrong; that raw variant is reported too, on a subset.

Latency: per pair, `Grade.elapsed_s` (fast path: its own time; Math-Verify: dispatch to reply, no queueing),
and end-to-end single `is_correct` calls on a seeded subset with the cache cleared before each call.
The last line printed is one JSON object.  Run: `.venv/bin/python bench/grader.py`.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import config  # noqa: E402
from pipeline.grading import Grader  # noqa: E402
from pipeline.grading.extract import extract_answer  # noqa: E402
from pipeline.grading.math_verify import WARMUP_ANSWERS  # noqa: E402

BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"
SEED = 0
RAW_SUBSET = 1500  # pairs for the unwrapped-gold variant
SINGLE_CALLS = 400  # pairs timed one `is_correct` call at a time


def gold_answers() -> list[tuple[str, str, str | None]]:
    """(benchmark, gold, solution or None) for every record found."""
    out = []
    for name in ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "gsm8k"]:
        path = BENCHMARKS / name / "test.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            solution = None
            if name == "math500":
                gold, solution = r["answer"], r["solution"]
            elif name in ("aime24", "amc23"):
                gold = r["answer"]
                gold = str(int(gold)) if isinstance(gold, float) and gold.is_integer() else str(gold)
            elif name == "minerva_math":
                gold, solution = extract_answer(r["solution"]), r["solution"]
            elif name == "olympiadbench":
                gold = r["final_answer"][0]
            else:
                gold = r["answer"].split("####")[-1].strip()
            if gold:
                out.append((name, gold, solution))
    return out


def build_pairs(golds) -> list[tuple[str, str, str, str]]:
    """(kind, benchmark, response, gold)."""
    rng = random.Random(SEED)
    by_bench: dict[str, list[str]] = {}
    for name, gold, _ in golds:
        by_bench.setdefault(name, []).append(gold)
    pairs = []
    for name, gold, solution in golds:
        pairs.append(("positive", name, f"Let me think. ... so the answer is \\boxed{{{gold}}}.", gold))
        others = [g for g in by_bench[name] if g != gold]
        if others:
            other = rng.choice(others)
            pairs.append(("negative", name, f"Let me think. ... so the answer is \\boxed{{{other}}}.", gold))
        if solution is not None:
            pairs.append(("solution", name, solution, gold))
    return pairs


def wrap_gold(gold: str) -> str:
    return gold if any(t in gold for t in ("$", "\\(", "\\[", "\\boxed")) else f"${gold}$"


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> int:
    if not BENCHMARKS.is_dir():
        print(f"bench/grader.py: {BENCHMARKS} is absent; nothing to measure")
        return 0
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from math_verify import parse, verify

    golds = gold_answers()
    pairs = build_pairs(golds)
    responses = [p[2] for p in pairs]
    gold_strs = [p[3] for p in pairs]
    n = len(pairs)

    # Two halves, seeded: the first is graded from a cold start (fresh workers, empty caches), the second right
    # after it ("steady state": what a training run that grades thousands of batches sees).  Plain Math-Verify
    # gets the same treatment in this process, so both sides warm their parser on the same first half.
    order = list(range(n))
    random.Random(SEED).shuffle(order)
    halves = {"cold": order[: n // 2], "steady": order[n // 2 :]}

    # ---- ours: fresh workers -------------------------------------------------------------------------------
    grader = Grader.from_config(config.resolve({}).grading)
    t0 = time.perf_counter()
    grader.grade(["\\boxed{y+1}"], ["1+y"])  # starts the workers (new interpreters + imports)
    startup_s = time.perf_counter() - t0
    grader.clear_cache()
    ours, ours_s = [None] * n, {}
    for name, idx in halves.items():
        t0 = time.perf_counter()
        grades = grader.grade([responses[i] for i in idx], [gold_strs[i] for i in idx])
        ours_s[name] = time.perf_counter() - t0
        for i, g in zip(idx, grades):
            ours[i] = g
    via = {}
    for g in ours:
        via[g.via] = via.get(g.via, 0) + 1

    # ---- plain Math-Verify ------------------------------------------------------------------------------
    for text in WARMUP_ANSWERS:  # the same parser warm-up our workers get at start-up
        verify(parse("$1$"), parse(f"so the answer is \\boxed{{{text}}}."))
    mv, mv_s = {}, {}
    for name, idx in halves.items():
        t0 = time.perf_counter()
        for i in idx:
            mv[i] = bool(verify(parse(wrap_gold(gold_strs[i])), parse(responses[i])))
        mv_s[name] = time.perf_counter() - t0
    mv_idx = list(range(n))
    raw_idx = sorted(random.Random(SEED + 1).sample(range(n), min(RAW_SUBSET, n)))
    raw = {i: bool(verify(parse(gold_strs[i]), parse(responses[i]))) for i in raw_idx}

    agree = sum(ours[i].correct == mv[i] for i in mv_idx) / len(mv_idx)
    agree_raw = sum(ours[i].correct == raw[i] for i in raw_idx) / len(raw_idx)
    mv_vs_raw = sum(mv[i] == raw[i] for i in raw_idx if i in mv) / max(1, sum(i in mv for i in raw_idx))
    disagreements = [i for i in mv_idx if ours[i].correct != mv[i]]

    # ---- latency ----------------------------------------------------------------------------------------
    batch_ms = [g.elapsed_s * 1000 for g in ours]
    mv_items_ms = [g.elapsed_s * 1000 for g in ours if g.via in ("math_verify", "timeout", "crash")]
    single_idx = random.Random(SEED + 2).sample(range(n), min(SINGLE_CALLS, n))
    single_ms = []
    for i in single_idx:
        grader.clear_cache()
        t = time.perf_counter()
        grader.is_correct(responses[i], gold_strs[i])
        single_ms.append((time.perf_counter() - t) * 1000)

    rate = {k: len(halves[k]) / ours_s[k] for k in halves}
    mv_rate = {k: len(halves[k]) / mv_s[k] for k in halves}
    total_rate, mv_total_rate = n / sum(ours_s.values()), n / sum(mv_s.values())
    result = {
        "pairs_per_s": round(rate["steady"], 1),
        "math_verify_pairs_per_s": round(mv_rate["steady"], 1),
        "speedup_vs_math_verify": round(rate["steady"] / mv_rate["steady"], 2),
        "cold_speedup_vs_math_verify": round(rate["cold"] / mv_rate["cold"], 2),
        "overall_speedup_vs_math_verify": round(total_rate / mv_total_rate, 2),
        "agreement": round(agree, 4),
        "p50_ms": round(pct(single_ms, 50), 3),
        "p99_ms": round(pct(single_ms, 99), 2),
        "batch_item_p99_ms": round(pct(batch_ms, 99), 2),
        "n_pairs": n,
    }

    kinds = {}
    for (kind, *_), g in zip(pairs, ours):
        kinds.setdefault(kind, []).append(g.correct)
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"benchmarks: {BENCHMARKS}  records: {len(golds)}  pairs: {n}")
    print("pairs by kind: " + ", ".join(f"{k} {len(v)} ({sum(v)} judged correct)" for k, v in kinds.items()))
    print(f"grader workers: {grader.pool.n_workers}   start-up (new interpreters + imports): {startup_s:.2f} s")
    print(f"decided by: {', '.join(f'{k} {v} ({v / n:.1%})' for k, v in sorted(via.items()))}")
    print(f"\n{'':34s} {'pairs':>6s} {'ours s':>8s} {'ours/s':>8s} {'MV s':>8s} {'MV/s':>8s} {'speedup':>8s}")
    for name, label in (("cold", "first half (cold start)"), ("steady", "second half (steady state)")):
        k = len(halves[name])
        print(
            f"{label:34s} {k:6d} {ours_s[name]:8.2f} {rate[name]:8.1f} {mv_s[name]:8.2f} {mv_rate[name]:8.1f} "
            f"{rate[name] / mv_rate[name]:7.2f}x"
        )
    print(
        f"{'all pairs':34s} {n:6d} {sum(ours_s.values()):8.2f} {total_rate:8.1f} {sum(mv_s.values()):8.2f} "
        f"{mv_total_rate:8.1f} {total_rate / mv_total_rate:7.2f}x\n"
    )
    print(f"agreement with Math-Verify (gold in $..$):       {agree:.4f}  ({len(disagreements)} pairs differ)")
    print(f"agreement with Math-Verify (gold unwrapped):     {agree_raw:.4f}  (seeded subset {len(raw_idx)})")
    print(f"  (Math-Verify wrapped vs unwrapped agree on {mv_vs_raw:.4f} of that subset)")
    print(
        f"latency, single is_correct calls ({len(single_ms)}, cache cleared): p50 {pct(single_ms, 50):.3f} ms, "
        f"p99 {pct(single_ms, 99):.2f} ms, max {max(single_ms):.1f} ms"
    )
    print(
        f"latency, per item inside the batch: p50 {pct(batch_ms, 50):.3f} ms, p99 {pct(batch_ms, 99):.2f} ms; "
        f"Math-Verify items only ({len(mv_items_ms)}): p50 {pct(mv_items_ms, 50):.1f} ms, "
        f"p99 {pct(mv_items_ms, 99):.1f} ms, max {max(mv_items_ms):.1f} ms"
        if mv_items_ms
        else ""
    )
    if disagreements:
        print("\nfirst disagreements (kind, benchmark, ours, Math-Verify, via, answer | gold):")
        for i in disagreements[:15]:
            kind, bench, _, gold = pairs[i]
            ans = ours[i].answer if ours[i].answer is not None else "<no box>"
            print(
                f"  {kind:8s} {bench:13s} {ours[i].correct!s:5s} {mv[i]!s:5s} {ours[i].via:11s} "
                f"{ans[:60]!r} | {gold[:60]!r}"
            )
    grader.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
