# All of the workflow's Python: configuration resolution and helpers named for what they return.
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import yaml
from snakemake.common import is_local_file
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from pipeline.codehash import verb_hash
from pipeline.config import KNOWN_BENCHMARKS, resolve
from pipeline.download import HF_HOME, manifest_path
from pipeline.download import plan as hub_plan
from pipeline.dvc_views import PLOTS as DVC_PLOTS
from pipeline.report import FIGURES
from pipeline.workflow import config_values

# Defaults -> presets/<scale>.yaml -> config.yaml and --config overrides; stops here, naming every bad key path.
CFG = resolve(config)
RESOLVED = CFG.to_dict()
validate(RESOLVED, schema="../pipeline/config/schema.yaml")
VARIANTS = CFG.trained_variants  # the declared variants that are enabled
OUT = CFG.out_dir  # results/<experiment>
REPORTS = CFG.report_dir  # reports/<experiment>, or reports/ for the default experiment

# Scheduler requests (Snakemake resources; the SLURM profile turns them into sbatch options). CPU experiment:
# small and short. Paper scale: training is one 8-GPU node for about 4 days (spec §7), in jobs of
# resources.train.runtime_h (48 h) that each stop with a checkpoint before their limit and are resubmitted
# (the train rule's retries); each evaluation job (one model x benchmark, k = 1..max_k) holds one GPU and asks
# for more time on each retry. A GPU job is one SLURM task holding all of the job's CPUs
# (threads) and GPUs on one node: tasks_per_gpu=0 stops the plugin's default of one task per GPU
# (--ntasks-per-gpu=1, which with --cpus-per-task asks for N x threads CPUs); torchrun starts the ranks.
# Training on train.nodes > 1: that many nodes, one task each with the CPUs and train.gpus GPUs (gres is per
# node; the plugin's gpu resource is --gpus, a total), and `mpi` so that the job runs the rule's shell command
# itself (not under `srun -n1`): its srun starts one torchrun per node (train_launcher).
# tests/test_slurm.py checks the sbatch command the pinned plugin builds from these (docs/slurm.md).
RESOURCES = {
    "tiny": {
        "train": {"mem_mb": 4000, "gpu": 0},
        "evaluate": {"mem_mb": 4000, "gpu": 0},
    },
    "paper": {
        "train": {
            "mem_mb": 256000,
            "tasks_per_gpu": 0,
            **(
                {"gpu": CFG.train.gpus, "nodes": 1}
                if CFG.train.nodes == 1
                else {
                    "gres": f"gpu:{CFG.train.gpus}",
                    "nodes": CFG.train.nodes,
                    "tasks": CFG.train.nodes,
                    "mpi": "srun",
                }
            ),
        },
        "evaluate": {
            "mem_mb": 64000,
            "gpu": CFG.eval.gpus,
            "nodes": 1,
            "tasks_per_gpu": 0,
        },
    },
}[CFG.scale]
# Minutes (sbatch -t takes whole minutes): a training job always asks for the same time (it stops before its
# limit and the retry resumes); an evaluation starts over, so each retry asks for runtime_h more.
RESOURCES["train"]["runtime"] = max(1, round(60 * CFG.resources.train.runtime_h))
RESOURCES["evaluate"]["runtime"] = lambda wildcards, attempt: attempt * max(
    1, round(60 * CFG.resources.evaluate.runtime_h)
)


# Each rule family's conda environment (envs/<family>.yaml, with --sdm conda), the CPU experiment's, with
# PyTorch's CPU build; at paper scale, for the families that run models on GPUs, envs/<family>-gpu.yaml (CUDA
# torch, vLLM 0.31.0, DeepSpeed). tests/test_envs.py checks each against the imports of the rules' verbs.
GPU_ENV_FAMILIES = ("train", "evaluate")


def conda_env(family):
    """The conda environment file of a rule of `family` (data, train, evaluate, report) at the configured scale."""
    gpu = CFG.scale == "paper" and family in GPU_ENV_FAMILIES
    return f"../envs/{family}{'-gpu' if gpu else ''}.yaml"


# The paper-scale image (containers/Dockerfile, as an Apptainer .sif): every job's `container:` (Snakefile), used
# with --sdm apptainer at paper scale; none in the CPU experiment. docs/slurm.md: build it once on the login node
# into resources/, or point MULTIATTEMPT_IMAGE at another .sif or a docker:// URI.
VERSION = re.search(
    r'^version = "([^"]+)"',
    (Path(workflow.main_snakefile).parent / "pyproject.toml").read_text(),
    flags=re.M,
).group(1)


def container_image():
    """The image the jobs run in under --sdm apptainer: paper scale only (None: no container)."""
    if CFG.scale != "paper":
        return None
    default = f"resources/multiattempt-pipeline_{VERSION}.sif"
    return os.environ.get("MULTIATTEMPT_IMAGE", default)


def check_container_image():
    """Under --sdm apptainer at paper scale, name the image (Snakemake says nothing of a local one before a job
    starts in it), and stop before any job is submitted when its .sif is missing (a dry run only warns).
    """
    image = container_image()
    if (
        not image
        or DeploymentMethod.APPTAINER
        not in workflow.deployment_settings.deployment_method
    ):
        return
    if is_local_file(image) and not os.path.exists(image):
        if not workflow.output_settings.dryrun:
            raise WorkflowError(
                f"{image}: no such image (--sdm apptainer at paper scale). Build it once on the login node"
                " (docs/slurm.md), or set MULTIATTEMPT_IMAGE to a .sif or docker:// URI"
            )
        logger.warning(f"{image} does not exist yet (docs/slurm.md)")
    logger.info(f"--sdm apptainer: every job runs in the container {image}")


if workflow.is_main_process:
    check_container_image()


wildcard_constraints:
    benchmark="|".join(KNOWN_BENCHMARKS),
    eval_set="|".join([*KNOWN_BENCHMARKS, "synthetic"]),
    model="[A-Za-z0-9_]+",
    variant="|".join(VARIANTS),
    seed="[0-9]+",
    k="[0-9]+",


def write_config_file():
    """The whole resolved configuration in {OUT}/configs/<hash of its content>.json, written once.

    Content-addressed, so a Snakemake started with another configuration gets another file and never rewrites
    the one that its queued or running jobs read; written atomically, so no job reads half a file.
    """
    text = json.dumps(RESOLVED, indent=2, sort_keys=True) + "\n"
    path = f"{OUT}/configs/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=os.path.dirname(path), suffix=".tmp", delete=False
        ) as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)
    return path


CONFIG_FILE = write_config_file()


def write_params_file():
    """The resolved configuration as params.yaml, DVC's parameter file: `dvc params diff` and `dvc exp show` see
    every key, not only what config.yaml sets. Written only by runs of config.yaml alone (as DVC's stages run),
    when it changed: a smoke check (--configfile .test/config.yaml) or a --config override leaves it as it is.
    Edit config.yaml, not this file."""
    text = (
        "# Written by the Snakefile (rules/common.smk): the resolved configuration of the last snakemake run here.\n"
        + yaml.safe_dump(RESOLVED, sort_keys=True, width=1000)
    )
    path = Path("params.yaml")
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


if workflow.is_main_process and not workflow.config_settings.overwrite_config:
    write_params_file()


def config_file(wildcards, output):
    """`--config` of every step: CONFIG_FILE.

    It takes `output` only so that Snakemake counts this param as derived from files and leaves it out of its
    rerun triggers: the file's name changes with any key, and a rule reruns for its own keys (rule_keys).
    """
    return CONFIG_FILE


def rule_keys(*keys, **fixed):
    """A params entry: the values of the config `keys` the rule's step depends on (dotted paths; "{variant}" stands
    for the rule's wildcard, or for `fixed`'s value; a name of DERIVED_KEYS for a value computed from several keys),
    and the scale, as JSON (pipeline.workflow.config_values).

    Every step reads the whole configuration (config_file), but Snakemake reruns a job when one of its params
    changes, so each reruns exactly when one of its own keys does (a new train.steps reruns training and what
    follows it, not the data or the base model). A function, so Snakemake does not read braces in the values
    (templates' {N}) as wildcards; its `keys` are the rule's, for a rule that adds to another's.
    """

    def values(wildcards):
        names = {**wildcards, **fixed}
        return config_values(
            RESOLVED, [k.format(**names) for k in keys], CFG.scale, DERIVED_KEYS
        )

    values.keys = keys
    return values


DERIVED_KEYS = {"largest_n": CFG.largest_n}
# The keys of every step that runs a policy in dialogues (training, evaluation, the probes): the base model's
# weights when it is model.source (a hub id), the environment and grader, evaluation's batches and budgets (the
# held-out checks of training are evaluations), and the sampler (hf and vLLM sample differently).
DIALOGUE_KEYS = (
    "model.revision",
    "env",
    "grading",
    "eval.batch_size",
    "eval.max_attempt_tokens",
    "eval.max_total_tokens",
    "rollout.backend",
    "rollout.max_model_len",
)


def code_version(verb):
    """A params entry: the hash of the code `python -m pipeline <verb>` runs (pipeline.codehash).

    Snakemake reruns a job when one of its params changes, so an edit to a function the verb reaches reruns the
    rule, and an edit elsewhere (or to a comment or docstring) does not. Shell rules need this: Snakemake's
    `code` rerun trigger covers only run:/script: rules, and the shell text of our rules never changes.
    """
    return verb_hash(verb)


def trained_model_output(path):
    """The output entry of a trained model: write-protected when protect_models is set (the paper preset), so that a
    configuration change that would retrain it stops the run instead of deleting days of GPU time.
    """
    return protected(directory(path)) if CFG.protect_models else directory(path)


# What the configuration loads from the Hugging Face hub (pipeline/download.py), fetched once into HF_HOME by
# rules/download.smk. The jobs that read the hub take its manifest as an input, marked ancient so that a new
# download does not rerun them, and run offline.
HUB_PLAN = hub_plan(CFG)
for (
    _name,
    _source,
) in CFG.eval.models.items():  # a local model must be there before any job starts
    if not any(f.repo_id == _source for f in HUB_PLAN) and not os.path.isdir(_source):
        raise WorkflowError(
            f"eval.models.{_name}: {_source!r} is neither a folder nor a Hugging Face hub id"
        )
HUB_MANIFEST = str(manifest_path(HF_HOME, CFG.experiment))


def hub_input():
    return [ancient(HUB_MANIFEST)] if HUB_PLAN else []


def data_path(name):
    return f"{OUT}/data/{name}.jsonl"


def excluded_benchmarks():
    """Prepared benchmarks whose questions are kept out of the MATH training set."""
    return [data_path(name) for name in CFG.data.math.exclude_benchmarks]


def training_data():
    """The prepared training questions of the configured training set."""
    if CFG.data.train_set == "synthetic":
        return data_path("synthetic_train")
    return data_path("math_train")


def eval_sets():
    """Evaluation set name -> prepared jsonl: the synthetic held-out set (tiny) or the configured benchmarks."""
    if CFG.data.train_set == "synthetic":
        return {"synthetic": data_path("synthetic_heldout")}
    return {name: data_path(name) for name in CFG.data.benchmarks}


def evaluation_data():
    return list(eval_sets().values())


def model_folder(name):
    """models/<name>; an actor of the curves (<run>_step<N>) lives in its run's model folder, steps/step_NNNNNN."""
    run, _, step = name.partition("_step")
    if step.isdigit() and run in trained_models():
        return f"{OUT}/models/{run}/steps/step_{int(step):06d}"
    return f"{OUT}/models/{name}"


def model_source(name):
    """What `--model` gets: a folder the workflow builds, or (base model, model.source != build; eval.models) a
    hub id or path."""
    if name == "base" and CFG.model.source != "build":
        return CFG.model.source
    return CFG.eval.models.get(name) or model_folder(name)


def model_input(wildcards):
    """The model folder as a rule input when the workflow builds it; nothing for a hub id or given path."""
    if wildcards.model in CFG.eval.models or (
        wildcards.model == "base" and CFG.model.source != "build"
    ):
        return []
    if (
        wildcards.model in curve_models()
    ):  # inside its run's model folder, the train rule's output
        return model_folder(wildcards.model.partition("_step")[0])
    return model_folder(wildcards.model)


def base_input(wildcards):
    """The base model folder as an input of training when the workflow builds it; nothing for a hub id."""
    return model_folder("base") if CFG.model.source == "build" else []


def trained_name(variant, seed):
    """Model name of a trained policy, e.g. multi_attempt_s0 (a folder under models/, a {model} of evaluation)."""
    return f"{variant}_s{seed}"


def trained_models():
    return [trained_name(v, s) for v in VARIANTS for s in CFG.seeds]


def run_dir(variant, seed):
    """Checkpoints, train_log.jsonl and TensorBoard of a training run: kept across reruns, for resume."""
    return f"{OUT}/runs/{trained_name(variant, seed)}"


def eval_traces(model, eval_set, k):
    return f"{OUT}/eval/{model}/{eval_set}/k{k}.jsonl"


def eval_metrics(model, eval_set):
    return f"{OUT}/eval/{model}/{eval_set}/metrics.json"


def train_threads():
    """CPU threads of a training job: 1 on CPU (runs of both variants share a laptop); on GPUs 4 per GPU plus
    the grader's worker processes (the step splits them among its ranks, pipeline.distributed.rank_threads).
    """
    return 4 * CFG.train.gpus + CFG.grading.workers if CFG.train.gpus else 1


def eval_threads():
    """CPU threads of an evaluation job: 1 on CPU (many run side by side); on GPUs as for training, 4 per GPU
    plus the grader's worker processes."""
    return 4 * CFG.eval.gpus + CFG.grading.workers if CFG.eval.gpus else 1


def train_launcher():
    """`python -m pipeline`, or torchrun with one process per GPU (DeepSpeed data parallel) for more than one.
    On several nodes, srun starts one torchrun per node of the job; they meet at a c10d rendezvous on the job's
    first node. The step asks for the job's CPUs per node (a step's default is one per task) and gets all of
    its GPUs. The node list comes from squeue: the slurm-jobstep executor runs the rule without the job's
    SLURM_JOB_NODELIST (it keeps SLURM_JOB_ID)."""
    t = CFG.train
    if t.nodes > 1:
        first_node = (
            'scontrol show hostnames "$(squeue -h -j "$SLURM_JOB_ID" -o %N)" | head -n1'
        )
        return (
            f"srun --nodes {t.nodes} --ntasks-per-node 1 --cpus-per-task {train_threads()}"
            f" torchrun --nnodes {t.nodes} --nproc_per_node {t.gpus} --rdzv_backend c10d"
            f' --rdzv_endpoint "$({first_node})":29500 --rdzv_id "$SLURM_JOB_ID" -m pipeline'
        )
    if t.gpus > 1:
        return f"{gpu_claim(t.gpus)}torchrun --standalone --nproc_per_node {t.gpus} -m pipeline"
    return f"{gpu_claim(t.gpus)}python -m pipeline"


def train_retries():
    """Resubmissions of a training job on a cluster: resources.train.sessions - 1 (a job stopped before its time
    limit is resubmitted and resumes, pipeline/time_limit.py). Only in the Snakemake that submits jobs: a rule's
    retries also hold in the one that runs the job inside SLURM (it ignores the --retries 0 it is given), which
    would restart the stopped trainer in the same job until SLURM kills it. Elsewhere --retries decides.
    """
    if workflow.is_main_process and workflow.non_local_exec:
        return CFG.resources.train.sessions - 1
    return None


def eval_launcher():
    """`python -m pipeline` for the evaluation rules, on a GPU of its own when eval.gpus asks for one."""
    return f"{gpu_claim(CFG.eval.gpus)}python -m pipeline"


def gpu_claim(gpus):
    """The prefix that gives a job `gpus` GPUs no other job on the machine holds (pipeline/gpus.py: Snakemake
    counts GPUs with --resources gpu=N but every job would otherwise start on GPU 0); none for CPU jobs.
    """
    return f"python -m pipeline with-gpus {gpus} -- " if gpus else ""


def curve_models():
    """The actors of the k-attempt learning curves: <run>_step<N> for every trained run and eval.curve_steps."""
    return [
        f"{m}_step{n}" for m in trained_models() for n in sorted(CFG.eval.curve_steps)
    ]


def curve_metrics():
    return [eval_metrics(m, name) for m in curve_models() for name in eval_sets()]


def evaluated_models():
    """The base model, the trained ones and config eval.models."""
    return ["base", *trained_models(), *CFG.eval.models]


def all_eval_metrics():
    return [eval_metrics(m, name) for m in evaluated_models() for name in eval_sets()]


def per_model_and_set(filename):
    """results/<experiment>/eval/<model>/<set>/<filename> of every evaluated model and evaluation set."""
    return [
        f"{OUT}/eval/{m}/{name}/{filename}"
        for m in evaluated_models()
        for name in eval_sets()
    ]


def gain_traces():
    """The k=1 and k=2 traces the report pairs question by question for the gain interval."""
    ks = [k for k in (1, 2) if k <= CFG.eval.max_k]
    return [
        eval_traces(m, name, k)
        for m in evaluated_models()
        for name in eval_sets()
        for k in ks
    ]


def figure(name, ext):
    return f"{REPORTS}/figures/{name}.{ext}"
