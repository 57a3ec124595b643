# RL training of each variant x seed from its base model (PPO or GRPO, config `train`); the trained actor is a
# model folder like the base, so the evaluation rules take it as they are. Checkpoints live in the run folder,
# which is not an output: Snakemake leaves it alone, and a rerun resumes from its last complete checkpoint.


rule train:
    input:
        base=base_input,
        train=training_data(),
        heldout=evaluation_data(),
        hub=hub_input(),
    output:
        # protect_models (paper preset): a config change that would retrain this model stops Snakemake with
        # "Write-protected output files for rule train". To retrain anyway, remove the model yourself:
        #   chmod -R u+w results/<experiment>/models/<name> && rm -r results/<experiment>/models/<name>
        # or keep it and train under a new name: --config experiment=<new name>.
        trained_model_output(model_folder("{variant}_s{seed}")),
    log:
        f"{OUT}/logs/train/{{variant}}_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{variant}}_s{{seed}}.tsv"
    # before evaluation jobs: training is the long pole of the DAG, evaluations fill the gaps
    priority: 10
    retries: train_retries()
    conda:
        conda_env("train")
    threads: train_threads(CFG)
    resources:
        **train_resources(CFG),
    params:
        code=code_version("train"),
        config=config_file,
        config_keys=rule_keys(
            *DIALOGUE_KEYS,
            "train",
            "eval.checkpoint",  # which actor is the model, and whether a validation split leaves training
            "eval.validation_questions",
            "variants.{variant}",
        ),
        base=lambda w: model_source(LAYOUT.base_of(w.variant)),
        run_dir=lambda w: run_dir(w.variant, w.seed),
        launcher=train_launcher(CFG),
    shell:
        "{params.launcher} train --config {params.config:q} --variant {wildcards.variant} --seed {wildcards.seed}"
        " --base {params.base:q} --train-data {input.train} --heldout {input.heldout} --run-dir {params.run_dir}"
        " --out {output} --threads {threads} > {log} 2>&1"
