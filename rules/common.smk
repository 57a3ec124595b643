# The workflow's wiring: configuration resolution and helpers named for what they return; what they compute from
# the configuration (requests, environments, launch lines, file names) is pipeline/workflow.py.
import dataclasses
import json
import os
from pathlib import Path

from snakemake.common import is_local_file
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from pipeline.codehash import verb_hash
from pipeline.config import KNOWN_BENCHMARKS, resolve, use_errors
from pipeline.download import HF_HOME, manifest_path
from pipeline.download import plan as hub_plan
from pipeline.dvc_views import PLOTS as DVC_PLOTS
from pipeline.report import FIGURES
from pipeline.feedback import PROVIDERS
from pipeline.layout import BASE, Layout, suffix_provider
from pipeline.workflow import (
    conda_env as family_env,
    config_values,
    container_image,
    eval_launcher,
    eval_resources,
    eval_threads,
    train_launcher,
    train_resources,
    train_threads,
    unknown_eval_models,
    write_config_file,
    write_params_file,
)

# Defaults -> presets/<scale>.yaml -> config.yaml and --config overrides; stops here, naming every bad key path.
CFG = resolve(config)
RESOLVED = CFG.to_dict()
validate(RESOLVED, schema="../pipeline/config/schema.yaml")
BASES = [BASE, *CFG.bases]  # the base models: `base` and the declared ones
OUT = CFG.out_dir  # results/<experiment>
REPORTS = CFG.report_dir  # reports/<experiment>, or reports/ for the default experiment

# The image every job runs in under --sdm apptainer (the Snakefile's `container:`): GPU jobs only (docs/slurm.md).
IMAGE = container_image(CFG, Path(workflow.main_snakefile).parent / "pyproject.toml")


def conda_env(family):
    """The conda environment file of the rules of `family` (data, train, evaluate, report), envs/<family>.yaml, or
    envs/<family>-gpu.yaml for the model families' GPU jobs (pipeline.workflow.conda_env).
    """
    return family_env(CFG, family)


def check_container_image():
    """Under --sdm apptainer with GPU jobs (resources.gpu_jobs), name the image (Snakemake says nothing of a local
    one before a job starts in it), and stop before any job is submitted when its .sif is missing (a dry run only
    warns).
    """
    image = IMAGE
    if (
        not image
        or DeploymentMethod.APPTAINER
        not in workflow.deployment_settings.deployment_method
    ):
        return
    if is_local_file(image) and not os.path.exists(image):
        if not workflow.output_settings.dryrun:
            raise WorkflowError(
                f"{image}: no such image (--sdm apptainer, resources.gpu_jobs). Build it once on the login node"
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
    base="|".join(BASES),
    variant="|".join(CFG.variants),
    # "" (evaluation under env.feedback.provider) or /feedback_<provider> (feedback_suffix)
    feedback=f"(/feedback_({'|'.join(PROVIDERS)}))?",
    seed="[0-9]+",
    k="[0-9]+",


# The whole resolved configuration, the file every step reads (content-addressed, written once); and params.yaml,
# DVC's parameter file, written only by runs of config.yaml alone (as DVC's stages run): a smoke check
# (--configfile .test/config.yaml) or a --config override leaves it as it is. Edit config.yaml, not params.yaml.
CONFIG_FILE = write_config_file(RESOLVED, OUT)
if workflow.is_main_process and not workflow.config_settings.overwrite_config:
    write_params_file(RESOLVED)


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


# Values computed from several keys, per base model: its SFT settings (Config.for_base) and the most attempts its
# SFT prepares for (Config.most_attempts)
DERIVED_KEYS = {
    **{f"base_sft.{b}": dataclasses.asdict(CFG.for_base(b).model.sft) for b in BASES},
    **{f"most_attempts.{b}": CFG.most_attempts(b) for b in BASES},
}
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
HUB_MANIFEST = str(manifest_path(HF_HOME, CFG.experiment))
if unknown := unknown_eval_models(CFG, {f.repo_id for f in HUB_PLAN}):
    raise WorkflowError("\n".join(unknown))


def hub_input():
    return [ancient(HUB_MANIFEST)] if HUB_PLAN else []


# The files and model names of the rules (pipeline.layout.Layout), each a helper named for what it returns.
LAYOUT = Layout(CFG)
data_path = LAYOUT.data_path
excluded_benchmarks = LAYOUT.excluded_benchmarks
training_data = LAYOUT.training_data
eval_sets = LAYOUT.eval_sets
evaluation_data = LAYOUT.evaluation_data
trained_models = LAYOUT.trained_models
curve_models = LAYOUT.curve_models
evaluated_models = LAYOUT.evaluated_models
model_folder = LAYOUT.model_folder
model_source = LAYOUT.model_source
run_dir = LAYOUT.run_dir
eval_traces = LAYOUT.eval_traces
eval_metrics = LAYOUT.eval_metrics
per_model_and_set = LAYOUT.per_model_and_set
all_eval_metrics = LAYOUT.all_eval_metrics
curve_metrics = LAYOUT.curve_metrics
gain_traces = LAYOUT.gain_traces
figure = LAYOUT.figure


def model_input(wildcards):
    """The model folder as a rule input when the workflow builds it; nothing for a hub id or given path."""
    name = wildcards.model
    if name in CFG.eval.models or (name in BASES and not LAYOUT.builds(name)):
        return []
    if name in curve_models():  # inside its run's model folder, the train rule's output
        return model_folder(name.partition("_step")[0])
    return model_folder(name)


def base_input(wildcards):
    """The base model folder a variant trains from, as an input of training when the workflow builds it."""
    base = LAYOUT.base_of(wildcards.variant)
    return model_folder(base) if LAYOUT.builds(base) else []


def base_model_input():
    """The base model's folder (`base`) when the workflow builds it; nothing for a hub id."""
    return model_folder(BASE) if LAYOUT.builds(BASE) else []


def evaluation_runs(wildcards):
    """evaluate's runs: --k 1..eval.max_k, and --feedback <provider> for an evaluation under another provider
    than env.feedback.provider ({feedback}: /feedback_<provider>)."""
    ks = " ".join(str(k) for k in range(1, CFG.eval.max_k + 1))
    feedback = (
        f" --feedback {suffix_provider(wildcards.feedback)}"
        if wildcards.feedback
        else ""
    )
    return f"--k {ks}{feedback}"


def checked(paths, variants, providers):
    """An input function giving `paths` once the configuration's checks of what these jobs use pass (training
    `variants`, evaluating under `providers`; pipeline.config.use_errors): a target of disabled variants (the
    feedback ablation) stops before any job when their templates are wrong, and never stops the default run.
    """

    def inputs(wildcards):
        if errors := use_errors(CFG, variants, providers):
            raise WorkflowError("invalid configuration:\n  " + "\n  ".join(errors))
        return paths

    return inputs


def train_retries():
    """Resubmissions of a training job on a cluster: resources.train.sessions - 1 (a job stopped before its time
    limit is resubmitted and resumes, pipeline/time_limit.py). Only in the Snakemake that submits jobs: a rule's
    retries also hold in the one that runs the job inside SLURM (it ignores the --retries 0 it is given), which
    would restart the stopped trainer in the same job until SLURM kills it. Elsewhere --retries decides.
    """
    if workflow.is_main_process and workflow.non_local_exec:
        return CFG.resources.train.sessions - 1
    return None
