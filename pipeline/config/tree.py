"""The configuration as the code receives it: one frozen dataclass per section of schema.yaml (field names mirror
the schema; tests/test_config.py keeps the two in step), `Config` with the views of it that steps take (a variant's
environment, the feedback ablation's), and the helpers that build and merge the plain data they are made from."""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.layout import ablation_variant


class ConfigError(ValueError):
    """Invalid configuration; the message names the key path of every problem."""


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int
    n_train: int
    n_heldout: int
    digits: int


@dataclass(frozen=True)
class MathConfig:
    source: str
    revision: str  # "" = the default branch
    splits: list[str]
    levels: list[int]
    exclude_benchmarks: list[str]


@dataclass(frozen=True)
class BenchmarkSource:
    source: str
    revision: str
    split: str
    max_questions: int


@dataclass(frozen=True)
class DataConfig:
    train_set: str
    synthetic: SyntheticConfig
    math: MathConfig
    benchmarks: dict[str, BenchmarkSource]
    max_prompt_tokens: int


@dataclass(frozen=True)
class TinyModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_positions: int
    seed: int


@dataclass(frozen=True)
class SFTConfig:
    seed: int
    lr: float
    batch_size: int
    max_steps: int
    warmup_steps: int
    target_accuracy: float
    retry_accuracy_target: float
    eval_every: int
    eval_questions: int
    multi_attempt_fraction: float
    multi_attempt_after: float
    max_wrong: int
    feedback_providers: list[str]


@dataclass(frozen=True)
class ModelConfig:
    source: str
    revision: str
    tiny: TinyModelConfig
    sft: SFTConfig


@dataclass(frozen=True)
class AttemptRange:
    min_attempts: int
    max_attempts: int


@dataclass(frozen=True)
class VariantConfig:
    min_attempts: int
    max_attempts: int
    enabled: bool
    description: str
    env: dict[str, Any]  # overrides of the top-level env, as written (Config.variant_env merges them)
    heldout_prompt_template: str


@dataclass(frozen=True)
class RewardConfig:
    rule: str
    correct: float
    wrong_formatted: float
    unformatted: float
    attempt_discount: float
    truncated: str


@dataclass(frozen=True)
class FeedbackConfig:
    provider: str
    echo_template: str
    echo_no_answer_template: str
    direction_high_template: str
    direction_low_template: str
    none_template: str
    custom_function: str


@dataclass(frozen=True)
class EnvConfig:
    prompt_template: str
    feedback_template: str
    feedback: FeedbackConfig
    end_of_turn: str
    stop_at_box: bool
    max_attempt_tokens: int
    max_total_tokens: int
    reward: RewardConfig


@dataclass(frozen=True)
class GradingConfig:
    timeout_s: float
    workers: int
    multi_box: str


@dataclass(frozen=True)
class VLLMConfig:
    gpu_memory_utilization: float
    eval_gpu_memory_utilization: float
    cpu_kv_cache_gib: float
    block_size: int
    sleep: bool
    enforce_eager: bool


@dataclass(frozen=True)
class RolloutConfig:
    backend: str
    max_model_len: int
    vllm: VLLMConfig


@dataclass(frozen=True)
class DeepSpeedConfig:
    zero_stage: int
    bf16: bool
    offload_optimizer: bool
    gradient_checkpointing: bool


@dataclass(frozen=True)
class TrainConfig:
    algorithm: str
    steps: int
    rollout_batch: int
    samples_per_prompt: int
    train_batch: int
    micro_batch: int
    epochs: int
    temperature: float
    top_p: float
    actor_lr: float
    critic_lr: float
    min_lr_ratio: float
    warmup_ratio: float
    adam_betas: list[float]
    weight_decay: float
    grad_clip: float
    clip: float
    value_clip: float
    kl_coef: float
    gamma: float
    lam: float
    normalize_advantages: bool
    behaviour_logprobs: str
    is_correction: str
    is_cap: float
    eval_every: int
    eval_questions: int
    save_every: int
    keep_checkpoints: int
    resume: str
    gpus: int
    nodes: int
    deepspeed: DeepSpeedConfig

    @property
    def episodes(self) -> int:
        """Dialogues per rollout step."""
        return self.rollout_batch * self.samples_per_prompt


@dataclass(frozen=True)
class DistributedConfig:
    timeout_min: int


@dataclass(frozen=True)
class TrainJobConfig:
    mem_mb: int
    runtime_h: float
    sessions: int
    stop_before_end_min: float


@dataclass(frozen=True)
class EvalJobConfig:
    runtime_h: float
    mem_mb: int


@dataclass(frozen=True)
class ResourcesConfig:
    gpu_jobs: bool
    train: TrainJobConfig
    evaluate: EvalJobConfig


@dataclass(frozen=True)
class EvalConfig:
    max_k: int
    max_attempt_tokens: int
    max_total_tokens: int
    batch_size: int
    gpus: int
    checkpoint: str
    validation_questions: int
    models: dict[str, str]
    curve_steps: list[int]


@dataclass(frozen=True)
class FeedbackAblationConfig:
    providers: list[str]
    variant: str
    sft_providers: list[str]
    sft_max_steps: int


@dataclass(frozen=True)
class Config:
    scale: str
    experiment: str
    protect_models: bool
    seeds: list[int]
    data: DataConfig
    model: ModelConfig
    variants: dict[str, VariantConfig]
    env: EnvConfig
    grading: GradingConfig
    rollout: RolloutConfig
    train: TrainConfig
    distributed: DistributedConfig
    resources: ResourcesConfig
    eval: EvalConfig
    feedback_ablation: FeedbackAblationConfig
    trackers: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def out_dir(self) -> str:
        return experiment_dirs(self.experiment)[0]

    @property
    def report_dir(self) -> str:
        return experiment_dirs(self.experiment)[1]

    @property
    def trained_variants(self) -> list[str]:
        """The variants this run trains and evaluates (enabled), in declaration order."""
        return [name for name, v in self.variants.items() if v.enabled]

    @property
    def largest_n(self) -> int:
        """The most attempts any dialogue of the run allows (training variants and evaluation)."""
        return max([self.eval.max_k, *(self.variants[v].max_attempts for v in self.trained_variants)])

    def variant(self, name: str) -> VariantConfig:
        if name not in self.variants:
            raise ConfigError(f"variants: unknown variant {name!r}; declared: {', '.join(self.variants)}")
        return self.variants[name]

    def attempt_range(self, variant: str) -> AttemptRange:
        """The training attempt range of a declared variant."""
        v = self.variant(variant)
        return AttemptRange(v.min_attempts, v.max_attempts)

    def variant_env(self, variant: str) -> EnvConfig:
        """The environment a variant trains in: the top-level `env` with the variant's overrides."""
        return build(EnvConfig, deep_merge(dataclasses.asdict(self.env), self.variant(variant).env))

    def for_variant(self, variant: str) -> Config:
        """This configuration as a variant's training sees it: `env` is the variant's."""
        return dataclasses.replace(self, env=self.variant_env(variant))

    def ablation_variants(self) -> dict[str, VariantConfig]:
        """fb_<provider> -> feedback_ablation.variant with env.feedback.provider = <provider>, for each provider."""
        a = self.feedback_ablation
        source = self.variant(a.variant)
        return {
            ablation_variant(p): dataclasses.replace(
                source,
                enabled=True,
                description=f"{a.variant} with feedback provider {p} (feedback ablation)",
                env=deep_merge(source.env, {"feedback": {"provider": p}}),
            )
            for p in a.providers
        }

    def for_feedback_ablation(self) -> Config:
        """This configuration as the ablation's jobs see it: the variants are the fb_<provider> ones, and the base
        model's SFT draws its feedback from feedback_ablation.sft_providers (its own base, `base_fb`).

        The ablation's relations to the rest of the config are checked here, not in `resolve`: a run that does not
        ask for the ablation is never stopped by it (e.g. a new env.end_of_turn with the echo templates as they are).
        """
        errors = ablation_errors(self)
        if errors:
            raise ConfigError("invalid configuration for the feedback ablation:\n  " + "\n  ".join(errors))
        a, sft = self.feedback_ablation, self.model.sft
        sft = dataclasses.replace(
            sft, feedback_providers=a.sft_providers or a.providers, max_steps=a.sft_max_steps or sft.max_steps
        )
        model = dataclasses.replace(self.model, sft=sft)
        return dataclasses.replace(self, model=model, variants=self.ablation_variants())

    def heldout_env(self, variant: str) -> EnvConfig:
        """The variant's environment with the first prompt of its held-out checks (heldout_prompt_template)."""
        env = self.variant_env(variant)
        prompt = self.variant(variant).heldout_prompt_template
        return dataclasses.replace(env, prompt_template=prompt) if prompt else env


DEFAULT_EXPERIMENT = "tiny"


def experiment_dirs(experiment: str) -> tuple[str, str]:
    """(outputs, report) folders of an experiment: results/<experiment> and reports/<experiment>, except that the
    default experiment (what a bare `snakemake --cores all` runs) reports at the top of reports/, as it always has."""
    report = "reports" if experiment == DEFAULT_EXPERIMENT else f"reports/{experiment}"
    return f"results/{experiment}", report


# ---------------------------------------------------------------------------------------------------------------
# Building and merging the plain data


def leaves(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested dict as {dotted.key: leaf}, the key paths errors and departures name; an empty mapping is a leaf."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge mappings; values of `override` win, lists are replaced whole."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build(cls: Any, value: Any) -> Any:
    """Turn validated plain data into the dataclass tree (types come from the annotations)."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: build(hints[f.name], value[f.name]) for f in dataclasses.fields(cls)})
    origin = typing.get_origin(cls)
    if origin is dict:
        _, item = typing.get_args(cls)
        return {k: build(item, v) for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(cls)
        return [build(item, v) for v in value]
    if cls is float:
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------------------------
# The feedback providers' templates (checked by pipeline.config.schema too)


# The templates each feedback provider uses (pipeline/feedback.py), beside env.feedback_template.
FEEDBACK_TEMPLATES = {
    "echo": ("echo_template", "echo_no_answer_template"),
    "direction": ("direction_high_template", "direction_low_template"),
    "none": ("none_template",),
}


def feedback_errors(at: str, env: EnvConfig, provider: str, chosen_by: str = "") -> list[str]:
    """A provider's templates in the environment at key path `at`: {n} present, {answer} where the answer is
    quoted, end_of_turn first; a custom provider's function spelled module:function. Only providers in use are
    checked: the environment's own, and those `chosen_by` another key (model.sft.feedback_providers)."""
    fb, errors = env.feedback, []
    because = f" ({provider} is listed in {chosen_by})" if chosen_by else ""
    for key in FEEDBACK_TEMPLATES.get(provider, ()):
        template, where = getattr(fb, key), f"{at}.feedback.{key}"
        if "{n}" not in template:
            errors.append(f"{where}: must state the attempts left with the placeholder {{n}}{because}")
        if not template.startswith(env.end_of_turn):
            errors.append(f"{where}: must start with env.end_of_turn ({env.end_of_turn!r}), which closes the attempt")
    if provider == "echo" and "{answer}" not in fb.echo_template:
        errors.append(f"{at}.feedback.echo_template: must quote the answer with the placeholder {{answer}}{because}")
    if provider == "custom" and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", fb.custom_function):
        errors.append(
            f"{at}.feedback.custom_function: provider custom needs 'module:function', got {fb.custom_function!r}"
            + because
        )
    return sorted(set(errors))


def ablation_errors(c: Config) -> list[str]:
    """feedback_ablation: its source variant is declared, its fb_<provider> names are free, and the templates of
    every provider it trains, evaluates or teaches the base are valid."""
    a = c.feedback_ablation
    if a.variant not in c.variants:
        return [
            f"feedback_ablation.variant: {a.variant!r} is not a declared variant; declared: {', '.join(c.variants)}"
        ]
    errors = [
        f"feedback_ablation.providers: {p!r} makes variant {ablation_variant(p)!r}, which variants already declares"
        for p in a.providers
        if ablation_variant(p) in c.variants
    ]
    at = f"variants.{a.variant}.env" if c.variants[a.variant].env else "env"
    for p in a.providers:  # trained in the variant's env, evaluated in the top-level env
        errors += feedback_errors(at, c.variant_env(a.variant), p, "feedback_ablation.providers")
        errors += feedback_errors("env", c.env, p, "feedback_ablation.providers")
    for p in a.sft_providers:
        errors += feedback_errors("env", c.env, p, "feedback_ablation.sft_providers")
    return sorted(set(errors))
