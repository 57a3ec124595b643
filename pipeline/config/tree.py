"""The configuration as the code receives it: one frozen dataclass per section of schema.yaml (field names mirror
the schema; tests/test_config.py keeps the two in step), `Config` with the views of it that steps take (a variant's
environment, a base's SFT), and the helpers that build and merge the plain data they are made from."""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.layout import BASE


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
    base: str  # the model it trains from: `base` or a name of Config.bases
    extends: str  # the variant it started from ("" none): resolve merged that one's keys under its own
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
class BaseConfig:
    description: str
    sft: dict[str, Any]  # keys of model.sft that differ, as written (Config.for_base merges them)


@dataclass(frozen=True)
class FeedbackAblationConfig:
    variants: list[str]


@dataclass(frozen=True)
class Config:
    scale: str
    experiment: str
    protect_models: bool
    seeds: list[int]
    data: DataConfig
    model: ModelConfig
    bases: dict[str, BaseConfig]
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

    def most_attempts(self, base: str = BASE) -> int:
        """The most attempts of any dialogue a base model's SFT prepares it for: eval.max_k and each variant declared
        to train from it (enabled or not: the feedback ablation trains disabled ones)."""
        return max([self.eval.max_k, *(v.max_attempts for v in self.variants.values() if v.base == base)])

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

    def for_base(self, name: str) -> Config:
        """This configuration as base model `name`'s SFT sees it: model.sft with the base's own keys (bases)."""
        if name == BASE:
            return self
        if name not in self.bases:
            raise ConfigError(f"bases: unknown base model {name!r}; declared: {', '.join([BASE, *self.bases])}")
        sft = build(SFTConfig, deep_merge(dataclasses.asdict(self.model.sft), self.bases[name].sft))
        return dataclasses.replace(self, model=dataclasses.replace(self.model, sft=sft))

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
