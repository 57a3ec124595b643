"""One home for the workflow's names: the models it makes and where each artefact lives.

Model names: `base` (the base model) and the names of config `bases` (e.g. `base_fb`, the feedback ablation's),
`<variant>_s<seed>` (a trained run, `trained_name`), `<run>_step<N>` (an actor of the k-attempt learning curves),
and the names of config eval.models. This module writes them and reads them back (`parse_model`); the rules
(rules/common.smk binds `Layout`'s methods) and the Python (metrics.json, the report) both take them from here.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pipeline.io import DataError

BASE = "base"
# <variant>_s<seed>, or <variant>_s<seed>_step<N> for the actor of step N (eval.curve_steps)
MODEL_NAME = re.compile(r"^(?P<variant>[a-z][a-z0-9]*(?:_[a-z0-9]+)*?)_s(?P<seed>\d+)(?:_step(?P<step>\d+))?$")
COMPARED_FEEDBACK = "fixed"  # the feedback ablation evaluates every run with this provider too: one wording for all


def trained_name(variant: str, seed: int | str) -> str:
    """Model name of a trained policy, e.g. multi_attempt_s0 (a folder under models/, a {model} of evaluation)."""
    return f"{variant}_s{seed}"


def curve_name(run: str, step: int) -> str:
    """Model name of an actor of the k-attempt learning curves: <run>_step<N>."""
    return f"{run}_step{step}"


def feedback_suffix(provider: str = "") -> str:
    """The evaluation folder's suffix of a run under another feedback provider than env.feedback.provider:
    eval/<model>/<set>/feedback_<provider>/ ("" for the configured one, eval/<model>/<set>/)."""
    return f"/feedback_{provider}" if provider else ""


def suffix_provider(suffix: str) -> str:
    """The provider of a feedback_suffix: '/feedback_echo' -> 'echo'."""
    return suffix.removeprefix("/feedback_")


def parse_model(name: str, others: Collection[str] = ()) -> tuple[str, int | None]:
    """The workflow's model names: 'multi_attempt_s1' -> ('multi_attempt', 1); 'base' -> ('base', None); a base of
    config `bases` or a model of config eval.models (`others`) -> (its name, None)."""
    if name == BASE or name in others:
        return name, None
    m = MODEL_NAME.match(name)
    if not m:
        raise DataError(f"model name {name!r} is neither {BASE!r} nor <variant>_s<seed>")
    return m["variant"], int(m["seed"])


class Layout:
    """The workflow's file names and model names, from the configuration: data, models, runs and evaluations under
    results/<experiment>/ (Config.out_dir), figures under reports/<experiment>/ (Config.report_dir).

    rules/common.smk binds each method to a name of its own (model_folder, eval_traces, ...), which the rules call.
    """

    def __init__(self, cfg):  # a resolved pipeline.config.Config (not imported: the config imports this module)
        self.cfg, self.out, self.reports = cfg, cfg.out_dir, cfg.report_dir

    def data_path(self, name: str) -> str:
        return f"{self.out}/data/{name}.jsonl"

    def excluded_benchmarks(self) -> list[str]:
        """Prepared benchmarks whose questions are kept out of the MATH training set."""
        return [self.data_path(name) for name in self.cfg.data.math.exclude_benchmarks]

    def training_data(self) -> str:
        """The prepared training questions of the configured training set."""
        return self.data_path("synthetic_train" if self.cfg.data.train_set == "synthetic" else "math_train")

    def eval_sets(self) -> dict[str, str]:
        """Evaluation set name -> prepared jsonl: the synthetic held-out set (tiny) or the configured benchmarks."""
        if self.cfg.data.train_set == "synthetic":
            return {"synthetic": self.data_path("synthetic_heldout")}
        return {name: self.data_path(name) for name in self.cfg.data.benchmarks}

    def evaluation_data(self) -> list[str]:
        return list(self.eval_sets().values())

    def trained_models(self) -> list[str]:
        return [trained_name(v, s) for v in self.cfg.trained_variants for s in self.cfg.seeds]

    def curve_models(self) -> list[str]:
        """The actors of the k-attempt learning curves: <run>_step<N> for every trained run and eval.curve_steps."""
        return [curve_name(m, n) for m in self.trained_models() for n in sorted(self.cfg.eval.curve_steps)]

    def evaluated_models(self) -> list[str]:
        """The base model, the trained ones and config eval.models."""
        return [BASE, *self.trained_models(), *self.cfg.eval.models]

    def model_folder(self, name: str) -> str:
        """models/<name>; an actor of the curves (<run>_step<N>) lives in its run's model folder, steps/step_NNNNNN."""
        run, _, step = name.partition("_step")
        if step.isdigit() and run in self.trained_models():
            return f"{self.out}/models/{run}/steps/step_{int(step):06d}"
        return f"{self.out}/models/{name}"

    def builds(self, name: str) -> bool:
        """Whether the workflow builds base model `name` (tiny scale); a hub id or folder as model.source needs none."""
        return self.cfg.model.source == "build" and (name == BASE or name in self.cfg.bases)

    def base_of(self, variant: str) -> str:
        """The base model a variant trains from (its `base` key)."""
        return self.cfg.variant(variant).base

    def model_source(self, name: str) -> str:
        """What `--model` gets: a folder the workflow builds, or (a base model, model.source != build; eval.models)
        a hub id or path."""
        if (name == BASE or name in self.cfg.bases) and not self.builds(name):
            return self.cfg.model.source
        return self.cfg.eval.models.get(name) or self.model_folder(name)

    def run_dir(self, variant: str, seed: int | str) -> str:
        """Checkpoints, train_log.jsonl and TensorBoard of a training run: kept across reruns, for resume."""
        return f"{self.out}/runs/{trained_name(variant, seed)}"

    def eval_traces(self, model: str, eval_set: str, k: int | str, feedback: str = "") -> str:
        """The traces of `model` on `eval_set` at k attempts; `feedback` is the suffix of a run under another
        provider (feedback_suffix), a wildcard in the rules."""
        return f"{self.out}/eval/{model}/{eval_set}{feedback}/k{k}.jsonl"

    def eval_metrics(self, model: str, eval_set: str, feedback: str = "") -> str:
        return f"{self.out}/eval/{model}/{eval_set}{feedback}/metrics.json"

    def per_model_and_set(self, filename: str) -> list[str]:
        """results/<experiment>/eval/<model>/<set>/<filename> of every evaluated model and evaluation set."""
        return [f"{self.out}/eval/{m}/{name}/{filename}" for m in self.evaluated_models() for name in self.eval_sets()]

    def all_eval_metrics(self) -> list[str]:
        return self.per_model_and_set("metrics.json")

    def curve_metrics(self) -> list[str]:
        return [self.eval_metrics(m, name) for m in self.curve_models() for name in self.eval_sets()]

    def gain_traces(self) -> list[str]:
        """The k=1 and k=2 traces the report pairs question by question for the gain interval."""
        ks = [k for k in (1, 2) if k <= self.cfg.eval.max_k]
        return [self.eval_traces(m, name, k) for m in self.evaluated_models() for name in self.eval_sets() for k in ks]

    def ablation_evaluations(self) -> list[tuple[str, str]]:
        """The feedback ablation's (model, provider it is evaluated with): its base with every compared provider,
        each run with its own and with COMPARED_FEEDBACK."""
        c = self.cfg
        names = c.feedback_ablation.variants
        own = {v: c.variant_env(v).feedback.provider for v in names}
        pairs = [(self.base_of(names[0]), p) for p in dict.fromkeys(own.values())]
        for v in names:
            for seed in c.seeds:
                pairs += [(trained_name(v, seed), p) for p in dict.fromkeys([own[v], COMPARED_FEEDBACK])]
        return pairs

    def ablation_metrics(self) -> list[str]:
        """metrics.json of every ablation evaluation and set, in ablation_evaluations' order."""
        return [
            self.eval_metrics(m, name, feedback_suffix(p))
            for m, p in self.ablation_evaluations()
            for name in self.eval_sets()
        ]

    def ablation_providers(self) -> list[str]:
        """The provider of each of ablation_metrics, in its order."""
        return [p for _, p in self.ablation_evaluations() for _ in self.eval_sets()]

    def ablation_gain_traces(self) -> list[str]:
        """The k=1 and k=2 traces of every ablation evaluation, which its report pairs for the gain interval."""
        ks = [k for k in (1, 2) if k <= self.cfg.eval.max_k]
        return [
            self.eval_traces(m, name, k, feedback_suffix(p))
            for m, p in self.ablation_evaluations()
            for name in self.eval_sets()
            for k in ks
        ]

    def figure(self, name: str, ext: str) -> str:
        return f"{self.reports}/figures/{name}.{ext}"
