"""Configuration: one JSON schema, two presets, one validated dataclass tree.

Resolution order (later wins): the schema's defaults (= the tiny CPU experiment) -> `presets/<scale>.yaml` ->
the user's config (config.yaml plus Snakemake `--config` overrides). The merged result is validated against
`schema.yaml`; every violation is reported by key path (`env.reward.correct: 'x' is not of type 'number'`)
before any work starts. Code below this module takes the frozen dataclasses and never re-declares a default.

The workflow resolves once (rules/common.smk) and hands every step the result as a JSON file; resolving a
resolved configuration again gives it back unchanged.

Try it: `python -m pipeline config --config config.yaml` prints the resolved configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
SCHEMA_PATH = HERE / "schema.yaml"
PRESETS_DIR = HERE / "presets"


class ConfigError(ValueError):
    """Invalid configuration; the message names the key path of every problem."""


# ---------------------------------------------------------------------------------------------------------------
# The dataclass tree (field names mirror schema.yaml; tests/test_config.py keeps the two in step)


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


ABLATION_BASE = "base_fb"  # the feedback ablation's own base model (a folder under models/, a model name)


def ablation_variant(provider: str) -> str:
    """The feedback ablation's variant trained with `provider`: fb_<provider>."""
    return f"fb_{provider}"


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
        return _build(EnvConfig, deep_merge(dataclasses.asdict(self.env), self.variant(variant).env))

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
# Schema, defaults, presets


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve_ref(node: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def known_benchmarks() -> tuple[str, ...]:
    """Benchmark names the schema accepts under data.benchmarks."""
    return tuple(load_schema()["properties"]["data"]["properties"]["benchmarks"]["propertyNames"]["enum"])


def schema_defaults(node: Mapping[str, Any] | None = None) -> Any:
    """The default configuration: every leaf's `default`, nested as the schema nests objects."""
    schema = load_schema()
    node = _resolve_ref(schema if node is None else node, schema)
    if "default" in node:
        return copy.deepcopy(node["default"])
    return {key: schema_defaults(sub) for key, sub in node.get("properties", {}).items()}


KNOWN_BENCHMARKS = known_benchmarks()


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(scale: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{scale}.yaml"
    if not path.is_file():
        raise ConfigError(f"scale: unknown preset {scale!r}; choose one of: {', '.join(presets())}")
    return yaml.safe_load(path.read_text()) or {}


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


# ---------------------------------------------------------------------------------------------------------------
# Validation


_SCALARS = {"integer": int, "number": (int, float), "boolean": bool}


def _coerce_strings(value: Any, node: Mapping[str, Any]) -> Any:
    """Read string scalars as YAML where the schema wants a number or boolean.

    Snakemake's `--config 'eval={max_k: 3}'` hands nested values over as strings ('3'); without this, every
    nested override from the command line would fail validation. Anything that does not parse stays a string
    and is reported by the validator.
    """
    schema = load_schema()
    node = _resolve_ref(node, schema)
    wanted = _SCALARS.get(node.get("type"))
    if isinstance(value, str) and wanted is not None:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        fits = isinstance(parsed, wanted) and (node.get("type") == "boolean" or not isinstance(parsed, bool))
        return parsed if fits else value
    if isinstance(value, Mapping):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        return {
            k: _coerce_strings(v, props.get(k, extra if isinstance(extra, Mapping) else {})) for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(node.get("items"), Mapping):
        return [_coerce_strings(v, node["items"]) for v in value]
    return value


def _key_path(path: typing.Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_errors(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None, at: tuple = ()) -> list[str]:
    """Every violation of `schema` (default: the whole schema) by `config`, named by key path (`at` prefixes it)."""
    validator = jsonschema.Draft202012Validator(load_schema() if schema is None else schema)
    messages = []
    for error in validator.iter_errors(config):
        error.absolute_path.extendleft(reversed(at))
        where = _key_path(error.absolute_path)
        if error.validator == "additionalProperties":
            known = sorted(error.schema.get("properties", {}))
            extra = sorted(set(error.instance) - set(known))
            for key in extra:
                messages.append(
                    f"{_key_path([*error.absolute_path, key])}: unknown key"
                    + (f" (known keys here: {', '.join(known)})" if known else "")
                )
        else:
            messages.append(f"{where}: {error.message}")
    return sorted(set(messages))


def _template_errors(where: str, env: EnvConfig, retries: bool, report: bool) -> list[str]:
    """Placeholders an environment's templates need; the feedback's only when dialogues have a second attempt
    (`retries`). `report` False: nothing (a variant without overrides has the top-level env, checked once)."""
    if not report:
        return []
    errors, p, fb, eot = [], env.prompt_template, env.feedback_template, env.end_of_turn
    if p.count("{question}") != 1:
        errors.append(f"{where}.prompt_template: must contain the placeholder {{question}} exactly once")
    if retries and "{N}" not in p:
        errors.append(f"{where}.prompt_template: must state the allowed attempts with the placeholder {{N}}")
    if retries and "{n}" not in fb:
        errors.append(f"{where}.feedback_template: must state the attempts left with the placeholder {{n}}")
    if retries and not fb.startswith(eot):
        errors.append(f"{where}.feedback_template: must start with env.end_of_turn ({eot!r}), which closes the attempt")
    if retries:
        errors += _feedback_errors(where, env, env.feedback.provider)
    return errors


def _semantic_errors(c: Config) -> list[str]:
    """Rules a JSON schema cannot state: relations between keys and template placeholders."""
    errors = []
    if not c.trained_variants:
        errors.append("variants: no variant is enabled; nothing would be trained")
    for name, v in c.variants.items():
        if v.min_attempts > v.max_attempts:
            errors.append(f"variants.{name}: min_attempts ({v.min_attempts}) exceeds max_attempts ({v.max_attempts})")
        env = c.variant_env(name)
        errors += _template_errors(f"variants.{name}.env", env, v.max_attempts > 1, bool(v.env))
        held = v.heldout_prompt_template
        if held and held.count("{question}") != 1:
            errors.append(f"variants.{name}.heldout_prompt_template: must contain {{question}} exactly once")
    errors += _template_errors("env", c.env, True, True)
    for name in c.model.sft.feedback_providers:
        errors += _feedback_errors("env", c.env, name, "model.sft.feedback_providers")
    t = c.train
    if t.algorithm == "grpo" and t.samples_per_prompt < 2:
        errors.append("train.samples_per_prompt: grpo compares samples of a question, so it needs at least 2")
    if t.episodes % t.train_batch:
        errors.append(f"train.train_batch: must divide rollout_batch x samples_per_prompt ({t.episodes})")
    if t.train_batch % t.micro_batch:
        errors.append(f"train.micro_batch: must divide train_batch ({t.train_batch})")
    for name in c.eval.models:
        made = [*c.variants, *map(ablation_variant, c.feedback_ablation.providers)]
        if name in ("base", ABLATION_BASE) or re.fullmatch(rf"({'|'.join(map(re.escape, made))})_s\d+", name):
            errors.append(f"eval.models.{name}: the name of a model the workflow makes; choose another")
    late = [n for n in c.eval.curve_steps if n >= t.steps]
    if late:
        errors.append(f"eval.curve_steps: {late} not below train.steps ({t.steps}); the final actor is the model")
    if c.eval.checkpoint == "best_heldout" and not t.eval_every:
        errors.append("eval.checkpoint: best_heldout picks among the checks every train.eval_every steps; set it > 0")
    if t.is_correction != "none" and t.behaviour_logprobs != "actor":
        errors.append(
            f"train.is_correction: {t.is_correction} weighs tokens by p_actor / p_rollout, which needs the actor's "
            "own log-probs; set train.behaviour_logprobs: actor (with rollout the two are the same)"
        )
    if t.nodes > 1 and t.gpus < 1:
        errors.append("train.nodes: training on several nodes starts GPU processes; set train.gpus (per node) >= 1")
    if c.rollout.backend == "vllm":
        if t.top_p < 1:
            errors.append(
                "train.top_p: the vllm backend reports log-probs renormalised to the nucleus, which PPO's "
                "ratio would not match; use top_p 1 (the paper's value) or backend hf"
            )
        tiny = c.model.tiny
        if c.model.source == "build" and (
            tiny.hidden_size % tiny.num_heads or (tiny.hidden_size // tiny.num_heads) % 32
        ):
            errors.append(
                f"model.tiny: vLLM's CPU attention needs a head size (hidden_size / num_heads) that is a "
                f"multiple of 32; {tiny.hidden_size} / {tiny.num_heads} is not"
            )
    if c.data.max_prompt_tokens and c.data.train_set != "math":
        errors.append("data.max_prompt_tokens: applies to the MATH training set (data.train_set: math); use 0")
    elif c.data.max_prompt_tokens and c.model.source == "build":
        errors.append(
            "data.max_prompt_tokens: counts tokens with model.source's tokenizer, which model.source "
            "build only makes from the prepared data; use 0 or a model folder / hub id"
        )
    for name in c.data.math.exclude_benchmarks:
        if c.data.train_set == "math" and name not in c.data.benchmarks:
            errors.append(f"data.math.exclude_benchmarks: {name!r} is not configured under data.benchmarks")
    if c.data.train_set == "synthetic" and (
        c.data.synthetic.n_train + c.data.synthetic.n_heldout > (10**c.data.synthetic.digits) ** 2
    ):
        errors.append("data.synthetic: n_train + n_heldout exceeds the number of distinct questions for these digits")
    return errors


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
        errors += _feedback_errors(at, c.variant_env(a.variant), p, "feedback_ablation.providers")
        errors += _feedback_errors("env", c.env, p, "feedback_ablation.providers")
    for p in a.sft_providers:
        errors += _feedback_errors("env", c.env, p, "feedback_ablation.sft_providers")
    return sorted(set(errors))


def _fill_variants(merged: dict[str, Any]) -> list[str]:
    """Give every declared variant the schema's defaults for the keys it omits, and check its `env` overrides as
    the top-level `env` is checked (errors named `variants.<name>.env.<key>`)."""
    schema = load_schema()
    node, env_node = schema["$defs"]["variant"], schema["properties"]["env"]
    defaults = {key: sub["default"] for key, sub in node["properties"].items() if "default" in sub}
    variants, errors = merged.get("variants"), []
    for name, entry in variants.items() if isinstance(variants, dict) else []:
        if not isinstance(entry, Mapping):
            continue  # the schema names it
        variants[name] = entry = deep_merge(defaults, entry)
        env = merged.get("env")
        # (a top-level env error is reported once, at env)
        if isinstance(entry["env"], Mapping) and isinstance(env, Mapping) and not _schema_errors(env, env_node):
            entry["env"] = _coerce_strings(entry["env"], env_node)
            errors += _schema_errors(deep_merge(env, entry["env"]), env_node, ("variants", name, "env"))
    return errors


# The templates each feedback provider uses (pipeline/feedback.py), beside env.feedback_template.
FEEDBACK_TEMPLATES = {
    "echo": ("echo_template", "echo_no_answer_template"),
    "direction": ("direction_high_template", "direction_low_template"),
    "none": ("none_template",),
}


def _feedback_errors(at: str, env: EnvConfig, provider: str, chosen_by: str = "") -> list[str]:
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


def _build(cls: Any, value: Any) -> Any:
    """Turn validated plain data into the dataclass tree (types come from the annotations)."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(cls)})
    origin = typing.get_origin(cls)
    if origin is dict:
        _, item = typing.get_args(cls)
        return {k: _build(item, v) for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(cls)
        return [_build(item, v) for v in value]
    if cls is float:
        return float(value)
    return value


def resolve(user: Mapping[str, Any] | None = None) -> Config:
    """Defaults -> preset of `user['scale']` -> `user`; validated. Raises ConfigError naming every bad key path."""
    user = {} if user is None else user
    if not isinstance(user, Mapping):
        raise ConfigError(f"(top level): the configuration must be a mapping, got {type(user).__name__}")
    defaults = schema_defaults()
    scale = user.get("scale", defaults["scale"])
    if not isinstance(scale, str):
        raise ConfigError(f"scale: must be a string, one of: {', '.join(presets())}")
    user = _coerce_strings(user, load_schema())
    merged = deep_merge(deep_merge(defaults, load_preset(scale)), user)
    # Benchmark entries may omit `split` and `max_questions`; fill them with the schema's defaults.
    entry_defaults = {
        key: spec["default"]
        for key, spec in load_schema()["properties"]["data"]["properties"]["benchmarks"]["additionalProperties"][
            "properties"
        ].items()
        if "default" in spec
    }
    for entry in (merged.get("data", {}).get("benchmarks") or {}).values():
        if isinstance(entry, dict):
            for key, value in entry_defaults.items():
                entry.setdefault(key, value)
    errors = _fill_variants(merged)
    errors += _schema_errors(merged)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    config = _build(Config, merged)
    errors = _semantic_errors(config)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    return config


def _parse(text: str) -> Any:
    """JSON as JSON, anything else as YAML: YAML 1.1 reads JSON's 5e-07 (the paper's actor_lr) as a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)


def load(source: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Resolve a config file (YAML) or an inline JSON/YAML mapping, with optional overrides on top."""
    user: Any = {}
    if source is not None:
        text = str(source)
        if text.lstrip().startswith("{"):
            user = _parse(text)
        else:
            path = Path(text)
            if not path.is_file():
                raise ConfigError(f"config file {path} not found")
            try:
                user = _parse(path.read_text()) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if overrides:
        user = deep_merge(user, overrides)
    return resolve(user)


def dumps(config: Config) -> str:
    """Canonical JSON of a resolved config (what `python -m pipeline config` prints; models, checkpoints and
    summary.json hold it as `config` of their provenance, see pipeline.provenance)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
