# The comparison: every evaluation and training log -> summary.json and csv tables -> figures -> report.md.
# Figures and tables are also registered for `snakemake --report reports/report.html` (captions in report/).
# Seconds of work each: on a cluster they run on the submitting node instead of waiting in the queue.


localrules:
    aggregate,
    figures,
    write_report,
    dvc_views,
    feedback_ablation_report,


rule aggregate:
    input:
        metrics=all_eval_metrics(),
        audits=per_model_and_set("grader_audit.json"),
        parallel=per_model_and_set("parallel.json"),
        flip=per_model_and_set("flip_probe.json"),
        curves=curve_metrics(),
        traces=gain_traces(),
        models=[model_folder(m) for m in trained_models()],
        base=base_model_input(),
    output:
        summary=f"{REPORTS}/summary.json",
        accuracy=report(
            f"{REPORTS}/accuracy.csv",
            caption="report/accuracy_table.rst",
            category="Tables",
        ),
        retries=f"{REPORTS}/retries.csv",
        curves=f"{REPORTS}/learning_curves.csv",
        controls=f"{REPORTS}/controls.csv",
        k_curves=f"{REPORTS}/k_attempt_curves.csv",
    log:
        f"{OUT}/logs/aggregate.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate.tsv"
    conda:
        conda_env("report")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_version("aggregate"),
        config=config_file,
        config_keys=rule_keys("grading.multi_box"),  # stated in summary.json
        train_logs=lambda w, input: [f"{m}/train_log.jsonl" for m in input.models],
        runs=trained_models(),  # the model of each train log, in its order
        out_dir=lambda w, output: os.path.dirname(output.summary),
    shell:
        "python -m pipeline aggregate --config {params.config:q} --metrics {input.metrics}"
        " --train-logs {params.train_logs} --runs {params.runs} --models {input.base} {input.models}"
        " --audits {input.audits}"
        " --parallel {input.parallel} --flip {input.flip} --curve-metrics {input.curves}"
        " --traces {input.traces} --out-dir {params.out_dir} > {log} 2>&1"


rule figures:
    input:
        rules.aggregate.output.accuracy,
        rules.aggregate.output.retries,
        rules.aggregate.output.curves,
        rules.aggregate.output.controls,
        rules.aggregate.output.k_curves,
    output:
        [
            report(
                figure(name, "png"),
                caption=f"report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        ],
        [figure(name, "pdf") for name in FIGURES],
    log:
        f"{OUT}/logs/figures.log",
    benchmark:
        f"{OUT}/benchmarks/figures.tsv"
    conda:
        conda_env("report")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_version("figures"),
        config=config_file,
        config_keys=rule_keys(),
        tables=lambda w, input: os.path.dirname(input[0]),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "python -m pipeline figures --config {params.config:q} --tables {params.tables}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule write_report:
    input:
        rules.aggregate.output,
        rules.figures.output,
    output:
        f"{REPORTS}/report.md",
    log:
        f"{OUT}/logs/write_report.log",
    benchmark:
        f"{OUT}/benchmarks/write_report.tsv"
    conda:
        conda_env("report")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_version("report"),
        tables=lambda w, input: os.path.dirname(input[0]),
    shell:
        "python -m pipeline report --tables {params.tables} --out {output} > {log} 2>&1"


rule dvc_views:
    input:
        summary=rules.aggregate.output.summary,
        curves=rules.aggregate.output.curves,
        retries=rules.aggregate.output.retries,
    output:
        metrics=[
            f"{REPORTS}/metrics/{model}.json"
            for model in [*CFG.trained_variants, "base", *CFG.eval.models]
        ],
        plots=[f"{REPORTS}/plots/{name}.csv" for name in DVC_PLOTS],
    log:
        f"{OUT}/logs/dvc_views.log",
    conda:
        conda_env("report")
    threads: 1
    params:
        code=code_version("dvc-views"),
        out_dir=lambda w, input: os.path.dirname(input.summary),
    shell:
        "python -m pipeline dvc-views --summary {input.summary} --curves {input.curves}"
        " --retries {input.retries} --out-dir {params.out_dir} > {log} 2>&1"


# The feedback ablation (issue 17; config `feedback_ablation`, never part of `all`): its variants are declared
# ones (fb_<provider>, trained from their base base_fb by the train and build_base rules); each run is evaluated
# with its own provider and with `fixed`, the base with every provider (the evaluate rule's {feedback}). Target:
# `snakemake --cores all feedback_ablation`. Outputs: {REPORTS}/feedback_ablation.{md,json} and
# figures/feedback_ablation.{png,pdf} (schema: reports/README.md).
rule feedback_ablation_report:
    input:
        metrics=LAYOUT.ablation_metrics(),
        traces=LAYOUT.ablation_gain_traces(),  # the k=1 and k=2 runs, paired for the gain interval
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
        providers=LAYOUT.ablation_providers(),
        figures=lambda w, output: os.path.dirname(output.figure[0]),
    shell:
        "python -m pipeline feedback-ablation-report --config {params.config:q} --metrics {input.metrics}"
        " --evaluated-with {params.providers} --traces {input.traces} --out-json {output.json}"
        " --out-md {output.md} --figures-dir {params.figures} > {log} 2>&1"


rule feedback_ablation:
    input:
        checked(
            rules.feedback_ablation_report.output,
            CFG.feedback_ablation.variants,
            LAYOUT.ablation_providers(),
        ),
