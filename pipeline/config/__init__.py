"""Configuration: one JSON schema, two presets, one validated dataclass tree.

Resolution order (later wins): the schema's defaults (= the tiny CPU experiment) -> `presets/<scale>.yaml` ->
the user's config (config.yaml plus Snakemake `--config` overrides). The merged result is validated against
`schema.yaml`; every violation is reported by key path (`env.reward.correct: 'x' is not of type 'number'`)
before any work starts. Code below this module takes the frozen dataclasses and never re-declares a default.

The workflow resolves once (rules/common.smk) and hands every step the result as a JSON file; resolving a
resolved configuration again gives it back unchanged.

Three modules: `tree.py` (the dataclasses and `Config`), `schema.py` (schema.yaml's defaults and every check),
and this one (presets, resolution, loading); everything is importable from `pipeline.config`.

Try it: `python -m pipeline config --config config.yaml` prints the resolved configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.schema import (
    KNOWN_BENCHMARKS,
    SCHEMA_PATH,
    base_errors,
    coerce_strings,
    fill_bases,
    fill_variants,
    known_benchmarks,
    load_schema,
    resolve_ref,
    schema_defaults,
    schema_errors,
    semantic_errors,
    use_errors,
)
from pipeline.config.tree import (
    DEFAULT_EXPERIMENT,
    FEEDBACK_TEMPLATES,
    AttemptRange,
    BaseConfig,
    BenchmarkSource,
    Config,
    ConfigError,
    DataConfig,
    DeepSpeedConfig,
    DistributedConfig,
    EnvConfig,
    EvalConfig,
    EvalJobConfig,
    FeedbackAblationConfig,
    FeedbackConfig,
    GradingConfig,
    MathConfig,
    ModelConfig,
    ResourcesConfig,
    RewardConfig,
    RolloutConfig,
    SFTConfig,
    SyntheticConfig,
    TinyModelConfig,
    TrainConfig,
    TrainJobConfig,
    VariantConfig,
    VLLMConfig,
    build,
    deep_merge,
    experiment_dirs,
    leaves,
)

__all__ = [
    "AttemptRange",
    "BaseConfig",
    "BenchmarkSource",
    "Config",
    "ConfigError",
    "DEFAULT_EXPERIMENT",
    "DataConfig",
    "DeepSpeedConfig",
    "DistributedConfig",
    "EnvConfig",
    "EvalConfig",
    "EvalJobConfig",
    "FEEDBACK_TEMPLATES",
    "FeedbackAblationConfig",
    "FeedbackConfig",
    "GradingConfig",
    "KNOWN_BENCHMARKS",
    "MathConfig",
    "ModelConfig",
    "PRESETS_DIR",
    "ResourcesConfig",
    "RewardConfig",
    "RolloutConfig",
    "SCHEMA_PATH",
    "SFTConfig",
    "SyntheticConfig",
    "TinyModelConfig",
    "TrainConfig",
    "TrainJobConfig",
    "VLLMConfig",
    "VariantConfig",
    "base_errors",
    "build",
    "coerce_strings",
    "deep_merge",
    "dumps",
    "experiment_dirs",
    "fill_bases",
    "fill_variants",
    "known_benchmarks",
    "leaves",
    "load",
    "load_preset",
    "load_schema",
    "presets",
    "resolve",
    "resolve_ref",
    "schema_defaults",
    "schema_errors",
    "semantic_errors",
    "use_errors",
]

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(scale: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{scale}.yaml"
    if not path.is_file():
        raise ConfigError(f"scale: unknown preset {scale!r}; choose one of: {', '.join(presets())}")
    return yaml.safe_load(path.read_text()) or {}


def resolve(user: Mapping[str, Any] | None = None) -> Config:
    """Defaults -> preset of `user['scale']` -> `user`; validated. Raises ConfigError naming every bad key path."""
    user = {} if user is None else user
    if not isinstance(user, Mapping):
        raise ConfigError(f"(top level): the configuration must be a mapping, got {type(user).__name__}")
    defaults = schema_defaults()
    scale = user.get("scale", defaults["scale"])
    if not isinstance(scale, str):
        raise ConfigError(f"scale: must be a string, one of: {', '.join(presets())}")
    user = coerce_strings(user, load_schema())
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
    errors = fill_variants(merged) + fill_bases(merged)
    errors += schema_errors(merged)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    config = build(Config, merged)
    errors = semantic_errors(config)
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
