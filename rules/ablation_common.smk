# The feedback ablation's helpers (rules/ablation.smk): its models, its output paths.
from pipeline.config import ConfigError
from pipeline.feedback import PROVIDERS

ABLATION = CFG.feedback_ablation


wildcard_constraints:
    provider="|".join(PROVIDERS),


def ablation_model(provider, seed):
    """fb_<provider>_s<seed>: the ablation's run trained with `provider`."""
    return trained_name(ablation_variant(provider), seed)


def ablation_evaluations():
    """(model, provider it is evaluated with): base_fb with every provider, each run with its own and `fixed`."""
    pairs = [(ABLATION_BASE, p) for p in ABLATION.providers]
    for p in ABLATION.providers:
        for seed in CFG.seeds:
            pairs += [(ablation_model(p, seed), q) for q in dict.fromkeys([p, "fixed"])]
    return pairs


def ablation_traces(model, eval_set, provider, k):
    return f"{OUT}/eval/{model}/{eval_set}/feedback_{provider}/k{k}.jsonl"


def ablation_metrics(model, eval_set, provider):
    return f"{OUT}/eval/{model}/{eval_set}/feedback_{provider}/metrics.json"


def ablation_builds_base():
    return CFG.model.source == "build"


def ablation_model_source(name):
    """--model of an ablation job: base_fb's folder (tiny scale) or model.source (a hub model needs no SFT)."""
    if name == ABLATION_BASE and not ablation_builds_base():
        return CFG.model.source
    return model_folder(name)


def ablation_model_input(wildcards):
    if wildcards.model == ABLATION_BASE and not ablation_builds_base():
        return []
    return model_folder(wildcards.model)


def checked(paths):
    """An input function giving `paths` once the ablation's configuration is checked (Config.for_feedback_ablation):
    a bad `feedback_ablation` stops `snakemake feedback_ablation` before any job, and never the default run.
    """

    def inputs(wildcards):
        try:
            CFG.for_feedback_ablation()
        except ConfigError as e:
            raise WorkflowError(str(e)) from None
        return paths

    return inputs
