# Multi-attempt RL (Chung, Du, Fu 2025) as a workflow: data -> base model -> PPO -> evaluation -> report.
# Rules only wire files together; every step is a `python -m pipeline <verb>` call. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"


# Rules call `python -m pipeline`: from the activated environment, or, with --use-conda, from envs/*.yaml,
# which hold each rule family's packages but not this package; so the repository goes on PYTHONPATH.
# Every job reads the Hugging Face hub only from what the download rule fetched (compute nodes are often offline).
shell.prefix(
    f"export PYTHONPATH={workflow.basedir}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"
    f" HF_HOME={os.path.abspath(HF_HOME)} HF_HUB_OFFLINE=1; "
)


# Paper scale with --sdm apptainer: every job runs in the paper-scale image (containers/; docs/slurm.md). The CPU
# experiment has none: its jobs run in the active environment, or in envs/ with --sdm conda.
container: IMAGE


include: "rules/download.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


report: "rules/report/workflow.rst"


rule all:
    default_target: True
    input:
        rules.write_report.output,
        rules.dvc_views.output,


# Targets for parts of the pipeline (also the stages of dvc.yaml).


rule data:
    input:
        training_data(),
        evaluation_data(),


rule base_model:
    input:
        base_model_input(),


rule policies:
    input:
        [model_folder(m) for m in trained_models()],


rule evaluation:
    input:
        all_eval_metrics(),
        curve_metrics(),
        [
            per_model_and_set(name)
            for name in ("grader_audit.json", "parallel.json", "flip_probe.json")
        ],
