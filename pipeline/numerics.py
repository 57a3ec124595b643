"""Same numbers on every x86-64 CPU: which kernels compute on the CPU, pinned before torch loads.

RL amplifies the last bit of a float into whole points of accuracy, so the CPU experiment gives its numbers only
if every process computes bit for bit alike on any machine. Three things pick CPU code by the machine
(measured with MKL_VERBOSE, ONEDNN_VERBOSE and the fingerprint tests, tests/test_numerics.py):
- ATen, torch's own kernels (softmax, norms, reductions, normal sampling...), dispatch by CPU capability: AVX-512
  kernels where the CPU has them, AVX2 otherwise, and they sum in a different order. Pinned to `avx2`
  (`ATEN_CPU_CAPABILITY`), which every x86-64 CPU since 2015 (Intel Haswell, AMD Zen) runs.
- MKL computes every float32 matrix product (SGEMM and SGEMM_BATCH are its only calls in SFT, PPO and
  evaluation) and picks its code by vendor and ISA. Its conditional numerical reproducibility branch
  `COMPATIBLE` (`MKL_CBWR`, SSE2 without approximate reciprocals) is the one branch Intel documents as giving the
  same results on Intel and AMD: its AVX2 and AVX-512 branches are Intel-only (on an AMD EPYC, MKL_CBWR=AVX2 runs
  `CNR:AUTO`).
- The thread count: an ATen reduction of more than 32,768 elements into one value splits its work by thread
  (the sum of 200,000 floats differs between 1 and 2 threads on any CPU), and MKL's COMPATIBLE branch is
  reproducible only at a fixed thread count. So where no GPU computes, each verb runs a fixed number of torch
  threads (`set_threads`), whatever the rule's threads, `--cores` or OMP_NUM_THREADS: one, as the jobs that run
  side by side (training, evaluation), and two for the base model's SFT, whose large batches pay for them (1.6x
  faster per step than one thread) and which runs alone.
Not pinned: oneDNN (`ONEDNN_MAX_CPU_ISA`): no oneDNN primitive runs in the CPU experiment (ONEDNN_VERBOSE prints
nothing; a test keeps it so); it would serve bfloat16 matrix products on a CPU. Not covered: GPUs (their results are
not bitwise across GPU models anyway), the vLLM CPU build (its own kernels), CPUs without AVX2 and non-x86 CPUs
(the pins do not apply there, and the run's provenance says its numbers are not portable).

`pin()` runs when the `pipeline` package is imported (pipeline/__init__.py), so every verb, test and bench script
that imports pipeline before torch is pinned, and so are the processes they start (the variables are inherited).
A variable the user set to another value is kept, with a warning and `portable: false` in `state()`, which each
model's provenance.json and the report's provenance block record. Try it:
`python -c "import pipeline, json; from pipeline import numerics; print(json.dumps(numerics.state(), indent=1))"`.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from functools import cache
from pathlib import Path

PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
_overridden: dict[str, str] = {}  # variables the user had set to another value before pin()
_torch_first = False  # torch was imported before pin(): its kernels may already be chosen
_fixed_threads: int | None = None  # the thread count set_threads fixed for CPU compute in this process


def pin() -> None:
    """Set the PINS variables that are unset (on x86-64 only: they mean nothing elsewhere); note the others."""
    global _torch_first
    _torch_first = "torch" in sys.modules
    if not is_x86_64():
        return
    for name, value in PINS.items():
        given = os.environ.setdefault(name, value)
        if given.upper() != value.upper():
            _overridden[name] = given
            warnings.warn(
                f"{name}={given} is set: the CPU numbers of this run are not portable (pipeline.numerics pins "
                f"{name}={value}; unset it to get the same numbers on every x86-64 CPU)",
                stacklevel=2,
            )


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


@cache
def cpu() -> dict:
    """The CPU as lscpu names it, and the instruction sets that pick kernels: {"model", "vendor", "avx2",
    "avx512", "amx"} (flags None where /proc/cpuinfo is absent)."""
    info, flags = {}, None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        flags = set(info.get("flags", "").split())
    return {
        "model": info.get("model name") or platform.processor() or platform.machine() or "unknown",
        "vendor": info.get("vendor_id"),
        "avx2": None if flags is None else {"avx2", "fma"} <= flags,
        "avx512": None if flags is None else "avx512f" in flags,
        "amx": None if flags is None else "amx_tile" in flags,
    }


def cpu_line() -> str:
    """One line naming the CPU and the instruction sets that matter, for logs, benchmarks and docs."""
    c = cpu()
    sets = [name for name, key in (("AVX2", "avx2"), ("AVX-512", "avx512"), ("AMX", "amx")) if c[key]]
    return f"{c['model']} ({', '.join(sets) or 'no AVX2'})"


def set_threads(requested: int | None, cpu: int = 1) -> int:
    """Torch's intra-op threads for this process: `requested` (or torch's default) where a GPU computes; where the
    CPU computes, `cpu` whatever was requested, so the numbers do not depend on the job's or the machine's thread
    count (ATen's reductions and MKL split their work by thread). Returns the count set."""
    import torch

    global _fixed_threads
    n = (requested or torch.get_num_threads()) if torch.cuda.is_available() else cpu
    _fixed_threads = None if torch.cuda.is_available() else n
    torch.set_num_threads(n)
    return n


def describe(st: dict) -> str:
    """One line of `state()` for logs and reports."""
    how = f"ATen {st['aten_capability']}, MKL_CBWR={st['variables']['MKL_CBWR']}, {st['torch_threads']} torch thread(s)"
    if st["portable"]:
        return f"{cpu_line()}: {how}: the numbers of every x86-64 CPU with AVX2"
    return f"{cpu_line()}: {how}: not portable ({'; '.join(st['not_portable_because'])})"


def state() -> dict:
    """What this process computes with, for provenance: the CPU, the pinned variables, ATen's capability, the
    threads, and `portable` (the numbers are those of every x86-64 CPU with AVX2) with the reasons when not."""
    import torch

    c, capability, threads = cpu(), torch.backends.cpu.get_cpu_capability(), torch.get_num_threads()
    gpu = torch.cuda.is_available()
    why_not = [f"{name}={value} set by the user (pinned: {PINS[name]})" for name, value in _overridden.items()]
    if not is_x86_64():
        why_not.append(f"not an x86-64 CPU ({platform.machine()})")
    elif not c["avx2"]:
        why_not.append("the CPU has no AVX2" if c["avx2"] is False else "the CPU's instruction sets are unknown")
    else:
        if capability != "AVX2" and "ATEN_CPU_CAPABILITY" not in _overridden:
            why_not.append(f"ATen runs {capability} kernels: torch had chosen them before pipeline was imported")
        if _torch_first and "MKL_CBWR" not in _overridden:
            why_not.append("torch was imported before pipeline: MKL may have started before MKL_CBWR was set")
    if gpu:
        why_not.append("a GPU computes (GPU results are not bitwise across GPU models)")
    elif _fixed_threads is None:
        why_not.append(f"{threads} torch threads, not fixed by pipeline.numerics.set_threads")
    elif threads != _fixed_threads:
        why_not.append(f"{threads} torch threads, not the {_fixed_threads} pipeline.numerics.set_threads fixed")
    return {
        "cpu": c,
        "variables": {name: os.environ.get(name) for name in PINS},
        "aten_capability": capability,
        "torch_threads": threads,
        "device": "cuda" if gpu else "cpu",
        "portable": not why_not,
        "not_portable_because": why_not,
    }
