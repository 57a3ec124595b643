# Data preparation: one rule per dataset, each writing normalised jsonl records (id, question, answer, source, meta).


rule prepare_synthetic:
    output:
        train=f"{OUT}/data/synthetic_train.jsonl",
        heldout=f"{OUT}/data/synthetic_heldout.jsonl",
    log:
        f"{OUT}/logs/prepare_synthetic.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_synthetic.tsv"
    conda:
        conda_env("data")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_version("prepare-synthetic"),
        config=config_file,
        config_keys=rule_keys("data.synthetic"),
    shell:
        "python -m pipeline prepare-synthetic --config {params.config:q}"
        " --train {output.train} --heldout {output.heldout} > {log} 2>&1"


rule prepare_math:
    input:
        exclude=excluded_benchmarks(),
        hub=hub_input(),
    output:
        f"{OUT}/data/math_train.jsonl",
    log:
        f"{OUT}/logs/prepare_math.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_math.tsv"
    conda:
        conda_env("data")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_version("prepare-math"),
        config=config_file,
        config_keys=rule_keys(
            "data.math",
            "data.max_prompt_tokens",
            "model.source",  # its tokenizer counts prompt tokens
            "model.revision",
            "variants",  # each trained variant's first prompt at its largest N
            "env.prompt_template",
        ),
    shell:
        "python -m pipeline prepare-math --config {params.config:q} --exclude {input.exclude}"
        " --out {output} > {log} 2>&1"


rule prepare_benchmark:
    input:
        hub=hub_input(),
    output:
        f"{OUT}/data/{{benchmark}}.jsonl",
    log:
        f"{OUT}/logs/prepare_benchmark/{{benchmark}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_benchmark/{{benchmark}}.tsv"
    conda:
        conda_env("data")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code_version("prepare-benchmark"),
        config=config_file,
        config_keys=rule_keys("data.benchmarks"),
    shell:
        "python -m pipeline prepare-benchmark {wildcards.benchmark} --config {params.config:q}"
        " --out {output} > {log} 2>&1"
