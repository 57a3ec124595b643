# The feedback ablation (issue 17; config `feedback_ablation`): variant fb_<provider> = feedback_ablation.variant
# trained with that feedback provider, from its own base model `base_fb` whose SFT met every provider's feedback;
# each run is evaluated with its own provider and with `fixed` (comparable columns), base_fb with every provider.
# Target: `snakemake --cores all feedback_ablation`. Nothing here is an input of `all`: the default run, its base
# and its numbers are untouched. Outputs: eval/<model>/<set>/feedback_<provider>/k<k>.jsonl and metrics.json;
# {REPORTS}/feedback_ablation.{md,json} and figures/feedback_ablation.{png,pdf} (schema: reports/README.md).
include: "ablation_common.smk"


rule build_ablation_base:
    input:
        train=data_path("synthetic_train"),
        heldout=data_path("synthetic_heldout"),
    output:
        directory(model_folder(ABLATION_BASE)),
    log:
        f"{OUT}/logs/build_ablation_base.log",
    benchmark:
        f"{OUT}/benchmarks/build_ablation_base.tsv"
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
            *rules.build_base.params.config_keys.keys, "feedback_ablation"
        ),
        run_dir=f"{OUT}/runs/{ABLATION_BASE}",
    shell:
        "python -m pipeline build-base --feedback-ablation --config {params.config:q} --train {input.train}"
        " --heldout {input.heldout} --out {output} --run-dir {params.run_dir} --threads {threads} > {log} 2>&1"


rule train_ablation:
    input:
        base=lambda w: (model_folder(ABLATION_BASE) if ablation_builds_base() else []),
        train=training_data(),
        heldout=evaluation_data(),
        hub=hub_input(),
    output:
        trained_model_output(model_folder("fb_{provider}_s{seed}")),
    log:
        f"{OUT}/logs/train/fb_{{provider}}_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/fb_{{provider}}_s{{seed}}.tsv"
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
        config_keys=rule_keys(  # train's, for the ablation's variant
            *rules.train.params.config_keys.keys,
            "feedback_ablation",
            variant=ABLATION.variant,
        ),
        base=lambda w: ablation_model_source(ABLATION_BASE),
        run_dir=lambda w: run_dir(ablation_variant(w.provider), w.seed),
        launcher=train_launcher(CFG),
    shell:
        "{params.launcher} train --feedback-ablation --config {params.config:q} --variant fb_{wildcards.provider}"
        " --seed {wildcards.seed} --base {params.base:q} --train-data {input.train} --heldout {input.heldout}"
        " --run-dir {params.run_dir} --out {output} --threads {threads} > {log} 2>&1"


rule evaluate_feedback:
    input:
        model=ablation_model_input,
        data=lambda w: eval_sets()[w.eval_set],
        hub=hub_input(),
    output:
        ablation_traces("{model}", "{eval_set}", "{provider}", "{k}"),
    log:
        f"{OUT}/logs/evaluate/{{model}}/{{eval_set}}/feedback_{{provider}}/k{{k}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{model}}/{{eval_set}}/feedback_{{provider}}/k{{k}}.tsv"
    conda:
        conda_env("evaluate")
    threads: eval_threads(CFG)
    resources:
        **eval_resources(CFG),
    params:
        code=code_version("evaluate"),
        config=config_file,
        launcher=eval_launcher(CFG),
        config_keys=rules.evaluate.params.config_keys,
        model=lambda w: ablation_model_source(w.model),
    shell:
        "{params.launcher} evaluate --config {params.config:q} --model {params.model:q} --data {input.data}"
        " --benchmark {wildcards.eval_set} --k {wildcards.k} --feedback {wildcards.provider} --out {output}"
        " --threads {threads} > {log} 2>&1"


rule eval_metrics_feedback:
    input:
        lambda w: [
            ablation_traces(w.model, w.eval_set, w.provider, k)
            for k in range(1, CFG.eval.max_k + 1)
        ],
    output:
        ablation_metrics("{model}", "{eval_set}", "{provider}"),
    log:
        f"{OUT}/logs/eval_metrics/{{model}}/{{eval_set}}/feedback_{{provider}}.log",
    benchmark:
        f"{OUT}/benchmarks/eval_metrics/{{model}}/{{eval_set}}/feedback_{{provider}}.tsv"
    conda:
        conda_env("evaluate")
    threads: CFG.grading.workers if CFG.eval.gpus else 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_version("eval-metrics"),
        config=config_file,
        config_keys=rules.eval_metrics.params.config_keys,
    shell:
        "python -m pipeline eval-metrics --config {params.config:q} {input} --model {wildcards.model}"
        " --out {output} > {log} 2>&1"


rule feedback_ablation_report:
    input:
        metrics=[
            ablation_metrics(m, s, p)
            for m, p in ablation_evaluations()
            for s in eval_sets()
        ],
        gain=[  # the k=1 and k=2 runs beside each metrics.json, paired for the gain interval
            ablation_traces(m, s, p, k)
            for m, p in ablation_evaluations()
            for s in eval_sets()
            for k in (1, 2)
            if k <= CFG.eval.max_k
        ],
    output:
        json=f"{REPORTS}/feedback_ablation.json",
        md=f"{REPORTS}/feedback_ablation.md",
        figure=[figure("feedback_ablation", ext) for ext in ("png", "pdf")],
    log:
        f"{OUT}/logs/feedback_ablation_report.log",
    conda:
        conda_env("report")
    threads: 1
    params:
        code=code_version("feedback-ablation-report"),
        config=config_file,
        figures=lambda w, output: os.path.dirname(output.figure[0]),
    shell:
        "python -m pipeline feedback-ablation-report --config {params.config:q} --metrics {input.metrics}"
        " --out-json {output.json} --out-md {output.md} --figures-dir {params.figures} > {log} 2>&1"


rule feedback_ablation:
    input:
        checked(rules.feedback_ablation_report.output),
