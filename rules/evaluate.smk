# Evaluation at k = 1..eval.max_k attempts: greedy runs per model x evaluation set (the paper's protocol), all
# k in one job on one engine start (a vLLM start is minutes with CUDA graphs), then one metrics json per model x
# evaluation set. {feedback} is empty, or /feedback_<provider> for a run under another feedback provider than
# env.feedback.provider (the feedback ablation's, eval/<model>/<set>/feedback_<provider>/).


rule evaluate:
    input:
        model=model_input,
        data=lambda w: eval_sets()[w.eval_set],
        hub=hub_input(),
    output:
        [
            eval_traces("{model}", "{eval_set}", k, "{feedback}")
            for k in range(1, CFG.eval.max_k + 1)
        ],
    log:
        f"{OUT}/logs/evaluate/{{model}}/{{eval_set}}{{feedback}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{model}}/{{eval_set}}{{feedback}}.tsv"
    conda:
        conda_env("evaluate")
    threads: eval_threads(CFG)
    resources:
        **eval_resources(CFG),
    params:
        code=code_version("evaluate"),
        config=config_file,
        launcher=eval_launcher(CFG),
        config_keys=rule_keys(*DIALOGUE_KEYS),
        model=lambda w: model_source(w.model),
        runs=evaluation_runs,  # --k 1..max_k, and --feedback <provider> under another provider
    shell:
        "{params.launcher} evaluate --config {params.config:q} --model {params.model:q} --data {input.data}"
        " --benchmark {wildcards.eval_set} {params.runs} --out {output} --threads {threads} > {log} 2>&1"


rule eval_metrics:
    input:
        lambda w: [
            eval_traces(w.model, w.eval_set, k, w.feedback)
            for k in range(1, CFG.eval.max_k + 1)
        ],
    output:
        eval_metrics("{model}", "{eval_set}", "{feedback}"),
    log:
        f"{OUT}/logs/eval_metrics/{{model}}/{{eval_set}}{{feedback}}.log",
    benchmark:
        f"{OUT}/benchmarks/eval_metrics/{{model}}/{{eval_set}}{{feedback}}.tsv"
    conda:
        conda_env("evaluate")
    threads: CFG.grading.workers if CFG.eval.gpus else 1  # the grader's workers judge repeats, as in evaluate
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_version("eval-metrics"),
        config=config_file,
        config_keys=rule_keys("grading", "eval.models"),  # repeats are judged by the grader's equivalence
    shell:
        "python -m pipeline eval-metrics --config {params.config:q} {input} --model {wildcards.model}"
        " --out {output} > {log} 2>&1"


# The grader audit (issue 18): every attempt of every k re-graded by a second grader independent of Math-Verify
# (pipeline.grading.second); the attempts they disagree on, and accuracy under each grader per k.
rule grader_audit:
    input:
        data=lambda w: eval_sets()[w.eval_set],
        traces=lambda w: [
            eval_traces(w.model, w.eval_set, k) for k in range(1, CFG.eval.max_k + 1)
        ],
    output:
        jsonl=f"{OUT}/eval/{{model}}/{{eval_set}}/grader_audit.jsonl",
        json=f"{OUT}/eval/{{model}}/{{eval_set}}/grader_audit.json",
    log:
        f"{OUT}/logs/grader_audit/{{model}}/{{eval_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/grader_audit/{{model}}/{{eval_set}}.tsv"
    conda:
        conda_env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_version("grader-audit"),
    shell:
        "python -m pipeline grader-audit --data {input.data} --traces {input.traces} --model {wildcards.model}"
        " --out-jsonl {output.jsonl} --out-json {output.json} > {log} 2>&1"


# Controls of issue 18 (pipeline/probes.py), per model x evaluation set: independent single-attempt samples
# beside the k-attempt runs (pass@k, majority@k, tokens), and the flip probe (right first answers told wrong).
rule parallel_eval:
    input:
        model=model_input,
        data=lambda w: eval_sets()[w.eval_set],
        hub=hub_input(),
        sequential=lambda w: [
            eval_traces(w.model, w.eval_set, k) for k in range(1, CFG.eval.max_k + 1)
        ],
    output:
        traces=f"{OUT}/eval/{{model}}/{{eval_set}}/parallel.jsonl",
        summary=f"{OUT}/eval/{{model}}/{{eval_set}}/parallel.json",
    log:
        f"{OUT}/logs/parallel_eval/{{model}}/{{eval_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/parallel_eval/{{model}}/{{eval_set}}.tsv"
    conda:
        conda_env("evaluate")
    threads: eval_threads(CFG)
    resources:
        **eval_resources(CFG),
    params:
        code=code_version("parallel-eval"),
        config=config_file,
        launcher=eval_launcher(CFG),
        config_keys=rule_keys(  # and training's sampling temperature and top-p (pipeline/probes.py)
            *DIALOGUE_KEYS, "eval.max_k", "train.temperature", "train.top_p"
        ),
        model=lambda w: model_source(w.model),
    shell:
        "{params.launcher} parallel-eval --config {params.config:q} --model {params.model:q}"
        " --name {wildcards.model} --data {input.data} --benchmark {wildcards.eval_set}"
        " --sequential {input.sequential} --out {output.traces} --summary {output.summary}"
        " --threads {threads} > {log} 2>&1"


rule flip_probe:
    input:
        model=model_input,
        data=lambda w: eval_sets()[w.eval_set],
        hub=hub_input(),
    output:
        traces=f"{OUT}/eval/{{model}}/{{eval_set}}/flip_probe.jsonl",
        summary=f"{OUT}/eval/{{model}}/{{eval_set}}/flip_probe.json",
    log:
        f"{OUT}/logs/flip_probe/{{model}}/{{eval_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/flip_probe/{{model}}/{{eval_set}}.tsv"
    conda:
        conda_env("evaluate")
    threads: eval_threads(CFG)
    resources:
        **eval_resources(CFG),
    params:
        code=code_version("flip-probe"),
        config=config_file,
        launcher=eval_launcher(CFG),
        config_keys=rule_keys(*DIALOGUE_KEYS),
        model=lambda w: model_source(w.model),
    shell:
        "{params.launcher} flip-probe --config {params.config:q} --model {params.model:q}"
        " --name {wildcards.model} --data {input.data} --benchmark {wildcards.eval_set}"
        " --out {output.traces} --summary {output.summary} --threads {threads} > {log} 2>&1"
