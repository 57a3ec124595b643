"""What the Snakemake workflow's rules are given, computed from the resolved configuration: the config values a rule
depends on, the file every step reads, the jobs' scheduler requests, environments and launch lines.

Pure functions, imported by rules/common.smk (which holds the wiring: paths, inputs, targets) and tested in
tests/test_workflow_helpers.py. No verb imports this module, so editing it reruns no rule (pipeline.codehash).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from pipeline.config import Config


def config_values(resolved: Mapping, keys: Sequence[str], scale: str, derived: Mapping[str, object]) -> str:
    """The values of the dotted config `keys` in `resolved` (a name of `derived` for a value computed from several
    keys), and the scale, as JSON: a rule's `config_keys` param, which changes exactly when one of its keys does.
    """
    subset: dict = {"scale": scale}
    for key in keys:
        if key in derived:
            subset[key] = derived[key]
            continue
        src, dst = resolved, subset
        *parents, leaf = key.split(".")
        for part in parents:
            src = src[part]
            dst = dst.setdefault(part, {})
        dst[leaf] = src[leaf]
    return json.dumps(subset, sort_keys=True)


def write_config_file(resolved: Mapping, out_dir: str) -> str:
    """The whole resolved configuration in {out_dir}/configs/<hash of its content>.json, written once; its path.

    Content-addressed, so a Snakemake started with another configuration gets another file and never rewrites
    the one that its queued or running jobs read; written atomically, so no job reads half a file.
    """
    text = json.dumps(resolved, indent=2, sort_keys=True) + "\n"
    path = f"{out_dir}/configs/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), suffix=".tmp", delete=False) as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)
    return path


def write_params_file(resolved: Mapping, path: str | Path = "params.yaml") -> None:
    """The resolved configuration as params.yaml, DVC's parameter file (`dvc params diff` and `dvc exp show` see
    every key, not only what config.yaml sets); rewritten only when it changed."""
    text = (
        "# Written by the Snakefile (rules/common.smk): the resolved configuration of the last snakemake run here.\n"
        + yaml.safe_dump(dict(resolved), sort_keys=True, width=1000)
    )
    path = Path(path)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def minutes(hours: float) -> int:
    """A runtime resource: whole minutes (sbatch -t takes them), at least one."""
    return max(1, round(60 * hours))


def gpu_request(gpu_jobs: bool, gpus: int, nodes: int = 1) -> dict:
    """The GPU resources of a job on `nodes` nodes with `gpus` GPUs each: one SLURM task holding all of the job's
    CPUs (threads) and GPUs on one node (tasks_per_gpu=0 stops the plugin's default of one task per GPU,
    --ntasks-per-gpu=1, which with --cpus-per-task asks for N x threads CPUs; torchrun starts the ranks). On
    several nodes, one task each with the CPUs and `gpus` GPUs (gres is per node; the plugin's gpu resource is
    --gpus, a total), and `mpi` so that the job runs the rule's shell command itself (not under `srun -n1`): its
    srun starts one torchrun per node (train_launcher). No GPU for a CPU job (gpu_jobs false)."""
    if not gpu_jobs:
        return {"gpu": 0}
    if nodes == 1:
        return {"gpu": gpus, "nodes": 1, "tasks_per_gpu": 0}
    return {"gres": f"gpu:{gpus}", "nodes": nodes, "tasks": nodes, "mpi": "srun", "tasks_per_gpu": 0}


def train_resources(cfg: Config) -> dict:
    """Scheduler requests of a training job (Snakemake resources; the SLURM profile turns them into sbatch
    options): always the same time, since it stops with a checkpoint before its limit and the retry resumes.
    tests/test_slurm.py checks the sbatch command the pinned plugin builds from these (docs/slurm.md)."""
    job = cfg.resources.train
    gpus = gpu_request(cfg.resources.gpu_jobs, cfg.train.gpus, cfg.train.nodes)
    first = {"tasks_per_gpu": 0} if "tasks_per_gpu" in gpus else {}  # the order Snakemake prints them in
    return {"mem_mb": job.mem_mb, **first, **gpus, "runtime": minutes(job.runtime_h)}


def eval_resources(cfg: Config) -> dict:
    """Scheduler requests of an evaluation job (one model x evaluation set on eval.gpus GPUs): it starts over on a
    retry, so each retry asks for resources.evaluate.runtime_h more."""
    job = cfg.resources.evaluate
    step = minutes(job.runtime_h)

    def runtime(wildcards, attempt):
        return attempt * step

    return {"mem_mb": job.mem_mb, **gpu_request(cfg.resources.gpu_jobs, cfg.eval.gpus), "runtime": runtime}


# The rule families whose GPU jobs run models: their conda environment is envs/<family>-gpu.yaml (CUDA torch,
# vLLM, DeepSpeed); every other one, and all of them in CPU jobs, envs/<family>.yaml (PyTorch's CPU build).
# tests/test_envs.py checks each against the imports of the rules' verbs.
GPU_ENV_FAMILIES = ("train", "evaluate")


def conda_env(cfg: Config, family: str) -> str:
    """The conda environment file of a rule of `family` (data, train, evaluate, report), relative to rules/."""
    gpu = cfg.resources.gpu_jobs and family in GPU_ENV_FAMILIES
    return f"../envs/{family}{'-gpu' if gpu else ''}.yaml"


def container_image(cfg: Config, pyproject: str | Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The image every job runs in under --sdm apptainer (containers/Dockerfile as an Apptainer .sif): GPU jobs
    only (None: no container). resources/multiattempt-pipeline_<version>.sif, built once on the login node
    (docs/slurm.md), or MULTIATTEMPT_IMAGE: another .sif or a docker:// URI."""
    if not cfg.resources.gpu_jobs:
        return None
    version = re.search(r'^version = "([^"]+)"', Path(pyproject).read_text(), flags=re.M).group(1)
    return environ.get("MULTIATTEMPT_IMAGE", f"resources/multiattempt-pipeline_{version}.sif")


def job_threads(gpus: int, grading_workers: int) -> int:
    """CPU threads of a job that runs models: 1 on CPU (many jobs share a laptop: both variants' runs, evaluations
    side by side); on GPUs 4 per GPU plus the grader's worker processes (a training step splits them among its
    ranks, pipeline.distributed.rank_threads)."""
    return 4 * gpus + grading_workers if gpus else 1


def train_threads(cfg: Config) -> int:
    return job_threads(cfg.train.gpus, cfg.grading.workers)


def eval_threads(cfg: Config) -> int:
    return job_threads(cfg.eval.gpus, cfg.grading.workers)


def gpu_claim(gpus: int) -> str:
    """The prefix that gives a job `gpus` GPUs no other job on the machine holds (pipeline/gpus.py: Snakemake
    counts GPUs with --resources gpu=N but every job would otherwise start on GPU 0); none for CPU jobs."""
    return f"python -m pipeline with-gpus {gpus} -- " if gpus else ""


def train_launcher(cfg: Config) -> str:
    """`python -m pipeline`, or torchrun with one process per GPU (DeepSpeed data parallel) for more than one.
    On several nodes, srun starts one torchrun per node of the job; they meet at a c10d rendezvous on the job's
    first node. The step asks for the job's CPUs per node (a step's default is one per task) and gets all of
    its GPUs. The node list comes from squeue: the slurm-jobstep executor runs the rule without the job's
    SLURM_JOB_NODELIST (it keeps SLURM_JOB_ID)."""
    t = cfg.train
    if t.nodes > 1:
        first_node = 'scontrol show hostnames "$(squeue -h -j "$SLURM_JOB_ID" -o %N)" | head -n1'
        return (
            f"srun --nodes {t.nodes} --ntasks-per-node 1 --cpus-per-task {train_threads(cfg)}"
            f" torchrun --nnodes {t.nodes} --nproc_per_node {t.gpus} --rdzv_backend c10d"
            f' --rdzv_endpoint "$({first_node})":29500 --rdzv_id "$SLURM_JOB_ID" -m pipeline'
        )
    if t.gpus > 1:
        return f"{gpu_claim(t.gpus)}torchrun --standalone --nproc_per_node {t.gpus} -m pipeline"
    return f"{gpu_claim(t.gpus)}python -m pipeline"


def eval_launcher(cfg: Config) -> str:
    """`python -m pipeline` for the evaluation rules, on a GPU of its own when eval.gpus asks for one."""
    return f"{gpu_claim(cfg.eval.gpus)}python -m pipeline"


def unknown_eval_models(cfg: Config, hub_repos: set[str]) -> list[str]:
    """eval.models that are neither a folder nor among `hub_repos` (what the download rule fetches): a local model
    must be there before any job starts."""
    return [
        f"eval.models.{name}: {source!r} is neither a folder nor a Hugging Face hub id"
        for name, source in cfg.eval.models.items()
        if source not in hub_repos and not os.path.isdir(source)
    ]
