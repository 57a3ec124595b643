# The base policies: `base` and the bases declared in config `bases` (the feedback ablation's base_fb). Tiny scale:
# build a small Qwen2 and train it with SFT until the target held-out accuracy. Paper scale (model.source = a hub
# id) has no rule here: evaluation and training load the hub model directly, for every base.


rule build_base:
    input:
        train=data_path("synthetic_train"),
        heldout=data_path("synthetic_heldout"),
    output:
        directory(model_folder("{base}")),
    log:
        f"{OUT}/logs/build_base/{{base}}.log",
    benchmark:
        f"{OUT}/benchmarks/build_base/{{base}}.tsv"
    priority: 10
    conda:
        conda_env("train")
    threads: 2  # SFT on CPU runs two torch threads, whatever --cores gives (pipeline.numerics, sft.CPU_THREADS)
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_version("build-base"),
        config=config_file,
        config_keys=rule_keys(
            "model",
            "env",
            "eval",
            "base_sft.{base}",  # model.sft with the base's own keys (bases.<name>.sft)
            "most_attempts.{base}",  # of any dialogue (its variants, eval.max_k): the SFT transcripts
            "grading",
            "rollout.max_model_len",
        ),
        run_dir=lambda w: f"{OUT}/runs/{w.base}",
    shell:
        "python -m pipeline build-base --config {params.config:q} --base {wildcards.base} --train {input.train}"
        " --heldout {input.heldout} --out {output} --run-dir {params.run_dir} --threads {threads} > {log} 2>&1"
