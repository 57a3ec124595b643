"""Every benchmark of the project in one run: one table of the figures against the targets the issues set.

Usage: `python -m bench [--only NAME ...] [--skip-pipeline] [--smoke]`. Each benchmark runs as its own subprocess
(`python bench/<name>.py`), so one that crashes is reported as failed while the others still run; each measures
its ratios side by side within its own run. Their output is echoed to stderr as it comes; stdout gets the
machine, one table (benchmark | figure | measured | target | met?) and, as its last line, one JSON object:
{"machine", "results", "skipped", "failed"}. The exit status is 1 when a benchmark failed; a missed target is
reported, not an error.
"""

from __future__ import annotations

import argparse
import datetime
import json
import operator
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import psutil

from pipeline import numerics  # pins the CPU kernels; the benchmarks' processes inherit the pins

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("grader", "rollout", "train_step", "memory", "pipeline")
HAS_SMOKE = ("rollout", "memory")  # the benchmarks with a --smoke size (the others run as they are)
STDERR_TAIL = 15  # lines of a failed benchmark's stderr shown under the table


class Target(NamedTuple):
    """What an issue asks of a figure; op None when it asks for no threshold (the figure is only reported)."""

    text: str
    op: str | None = None
    value: float | None = None


OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le}
TARGETS = {
    ("grader", "speedup_vs_math_verify"): Target(">= 5 (steady state)", ">=", 5),
    ("rollout", "multi_over_single"): Target("close to 1"),
    ("rollout", "vllm_multi_over_single"): Target("close to 1"),
    ("rollout", "vllm_over_hf_tokens_per_s"): Target("> 1", ">", 1),
    ("rollout", "vllm_waste_after_box"): Target("<= 0.02", "<=", 0.02),
    ("rollout", "vllm_multi_over_single_wall"): Target("<= 1.2", "<=", 1.2),
    ("rollout", "multi_over_single_wall"): Target("close to 1 (HF is the CPU path; paper scale runs vLLM)"),
    ("rollout", "vllm_steps_over_longest"): Target("<= 1.15 (1.0: no dialogue waits)", "<=", 1.15),
    ("rollout", "vllm_eval_steps_over_longest"): Target("<= 1.15", "<=", 1.15),
    ("rollout", "vllm_rounds_steps_over_longest"): Target("reported: the schedule in rounds, for comparison"),
    ("rollout", "python_us_per_request_step_256"): Target("<= 5", "<=", 5),
    ("rollout", "python_us_per_request_step_1024"): Target("<= 5", "<=", 5),
    ("train_step", "ours_over_trl"): Target("<= 0.67", "<=", 0.67),
    ("memory", "peak_over_static"): Target("<= 1.3", "<=", 1.3),
    ("pipeline", "wall_s"): Target("<= 900 on 2 cores (goal 600)", "<=", 900),
    ("pipeline", "peak_mem_gib"): Target("<= 4", "<=", 4),
}


def parse_output(name: str, code: int, stdout: str, stderr: str) -> dict:
    """A benchmark's outcome: {"status": "ok", "figures"}, {"status": "skipped", "reason"} (exit 0 without a
    JSON last line: the script said why it had nothing to measure) or {"status": "failed", "code", "stderr"}."""
    if code != 0:
        return {"status": "failed", "code": code, "stderr": "\n".join(stderr.splitlines()[-STDERR_TAIL:])}
    lines = [line for line in stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    try:
        figures = json.loads(last)
    except json.JSONDecodeError:
        figures = None
    if isinstance(figures, dict):
        return {"status": "ok", "figures": figures}
    return {"status": "skipped", "reason": last.removeprefix("skipped: ") or f"bench/{name}.py printed nothing"}


def met(name: str, figure: str, value) -> str:
    target = TARGETS.get((name, figure))
    if target is None or target.op is None or not isinstance(value, (int, float)):
        return "—"
    return "yes" if OPS[target.op](value, target.value) else "no"


def rows(outcomes: dict[str, dict]) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, figure, measured, target, met?) for every figure, skip and failure, in run order."""
    out = []
    for name, outcome in outcomes.items():
        if outcome["status"] == "skipped":
            out.append((name, "—", f"skipped: {outcome['reason']}", "", "—"))
        elif outcome["status"] == "failed":
            out.append((name, "—", f"failed (exit {outcome['code']}; stderr below)", "", "no"))
        else:
            for figure, value in outcome["figures"].items():
                target = TARGETS.get((name, figure))
                out.append((name, figure, str(value), target.text if target else "—", met(name, figure, value)))
    return out


def table(rows: list[tuple[str, ...]]) -> str:
    """A Markdown table, padded so it also reads as plain text."""
    header = ("benchmark", "figure", "measured", "target", "met?")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def machine() -> dict:
    """The machine the figures were measured on: the CPU with the instruction sets that pick kernels (lscpu's
    model name; AVX2, AVX-512, AMX), cores, memory, load, versions, date."""
    return {
        "platform": platform.platform(),
        "cpu": numerics.cpu_line(),
        "cpu_flags": numerics.cpu(),
        "logical_cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # at the start: other work on the machine skews timings
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def machine_line(m: dict) -> str:
    return (
        f"machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM; {m['platform']}; "
        f"Python {m['python']}, torch {m['torch']}; {m['date']}, load average {m['load_avg_1m']}"
    )


def report(m: dict, outcomes: dict[str, dict]) -> dict:
    """The JSON object printed last."""

    def having(status):
        return {n: o for n, o in outcomes.items() if o["status"] == status}

    return {
        "machine": m,
        "results": {n: o["figures"] for n, o in having("ok").items()},
        "skipped": {n: o["reason"] for n, o in having("skipped").items()},
        "failed": {n: {"code": o["code"], "stderr": o["stderr"]} for n, o in having("failed").items()},
    }


def run(name: str, smoke: bool = False) -> dict:
    """Runs bench/<name>.py (at smoke sizes where it has them), echoing its output to stderr; its outcome (see
    parse_output)."""
    print(f"\n=== bench/{name}.py ===", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # echo lines as they come
    argv = [sys.executable, f"bench/{name}.py", *(["--smoke"] if smoke and name in HAS_SMOKE else [])]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=err)
        stdout = []
        for line in proc.stdout:
            stdout.append(line)
            print(f"[{name}] {line}", end="", file=sys.stderr, flush=True)
        code = proc.wait()
        err.seek(0)
        stderr = err.read()
    return parse_output(name, code, "".join(stdout), stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", choices=NAMES, metavar="NAME", help=f"run only these benchmarks (of: {', '.join(NAMES)})"
    )
    parser.add_argument(
        "--skip-pipeline", action="store_true", help="leave out the end-to-end pipeline run (about 10 minutes)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help=f"smoke sizes where a benchmark has them ({', '.join(HAS_SMOKE)}): tests"
    )
    args = parser.parse_args(argv)
    m = machine()  # dated when the run starts
    outcomes = {}
    for name in NAMES:
        if args.only and name not in args.only:
            continue
        if name == "pipeline" and args.skip_pipeline:
            outcomes[name] = {"status": "skipped", "reason": "--skip-pipeline"}
        else:
            outcomes[name] = run(name, args.smoke)
    print(machine_line(m))
    print(table(rows(outcomes)))
    for name, outcome in outcomes.items():
        if outcome["status"] == "failed":
            print(f"\n{name}: last lines of stderr")
            print("\n".join(f"    {line}" for line in outcome["stderr"].splitlines()))
    print(json.dumps(report(m, outcomes)))
    return 1 if any(o["status"] == "failed" for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
