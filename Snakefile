# Multi-attempt RL (Chung, Du, Fu 2025) as a workflow: data -> base model -> PPO -> evaluation -> report.
# Rules only wire files together; every step is a `python -m pipeline <verb>` call. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


rule data:
    input:
        training_data(),
        evaluation_data(),
