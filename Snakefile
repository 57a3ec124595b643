# Multi-attempt RL (Chung, Du, Fu 2025) as a workflow: data -> base model -> PPO -> evaluation -> report.
# Rules only wire files together; every step is a `python -m pipeline <verb>` call. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# Rules call `python -m pipeline`: from the activated environment, or, with --use-conda, from envs/*.yaml,
# which hold each rule family's packages but not this package; so the repository goes on PYTHONPATH.
shell.prefix(f"export PYTHONPATH={workflow.basedir}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


include: "rules/common.smk"
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


# Targets for parts of the pipeline (also the stages of dvc.yaml).


rule data:
    input:
        training_data(),
        evaluation_data(),


rule base_model:
    input:
        base_input,


rule policies:
    input:
        [model_folder(m) for m in trained_models()],


rule evaluation:
    input:
        all_eval_metrics(),
