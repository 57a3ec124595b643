"""schema.yaml read: its defaults, and every check of a merged configuration, by the schema (types, ranges, unknown
keys, each named by its key path) and beyond it (relations between keys, template placeholders)."""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.config.tree import Config, EnvConfig, deep_merge, feedback_errors
from pipeline.layout import BASE

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.yaml"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def resolve_ref(node: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
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
    node = resolve_ref(schema if node is None else node, schema)
    if "default" in node:
        return copy.deepcopy(node["default"])
    return {key: schema_defaults(sub) for key, sub in node.get("properties", {}).items()}


KNOWN_BENCHMARKS = known_benchmarks()


_SCALARS = {"integer": int, "number": (int, float), "boolean": bool}


def coerce_strings(value: Any, node: Mapping[str, Any]) -> Any:
    """Read string scalars as YAML where the schema wants a number or boolean.

    Snakemake's `--config 'eval={max_k: 3}'` hands nested values over as strings ('3'); without this, every
    nested override from the command line would fail validation. Anything that does not parse stays a string
    and is reported by the validator.
    """
    schema = load_schema()
    node = resolve_ref(node, schema)
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
            k: coerce_strings(v, props.get(k, extra if isinstance(extra, Mapping) else {})) for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(node.get("items"), Mapping):
        return [coerce_strings(v, node["items"]) for v in value]
    return value


def _key_path(path: typing.Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def schema_errors(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None, at: tuple = ()) -> list[str]:
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
        errors += feedback_errors(where, env, env.feedback.provider)
    return errors


def semantic_errors(c: Config) -> list[str]:
    """Rules a JSON schema cannot state: relations between keys and template placeholders. A disabled variant's
    templates and a declared base's SFT feedback are checked when a job uses them (use_errors): a run that does not
    train the feedback ablation is never stopped by it (e.g. a new env.end_of_turn with echo's templates as they are).
    """
    errors = []
    if not c.trained_variants:
        errors.append("variants: no variant is enabled; nothing would be trained")
    for name, v in c.variants.items():
        if v.min_attempts > v.max_attempts:
            errors.append(f"variants.{name}: min_attempts ({v.min_attempts}) exceeds max_attempts ({v.max_attempts})")
        if v.base != BASE and v.base not in c.bases:
            errors.append(f"variants.{name}.base: {v.base!r} is neither {BASE!r} nor declared in bases")
    errors += use_errors(c, c.trained_variants)
    errors += _template_errors("env", c.env, True, True)
    for name in c.model.sft.feedback_providers:
        errors += feedback_errors("env", c.env, name, "model.sft.feedback_providers")
    a = c.feedback_ablation
    errors += [
        f"feedback_ablation.variants: {name!r} is not a declared variant; declared: {', '.join(c.variants)}"
        for name in a.variants
        if name not in c.variants
    ]
    if len({c.variants[v].base for v in a.variants if v in c.variants}) > 1:
        errors.append("feedback_ablation.variants: the compared variants must train from one base model")
    t = c.train
    if t.algorithm == "grpo" and t.samples_per_prompt < 2:
        errors.append("train.samples_per_prompt: grpo compares samples of a question, so it needs at least 2")
    if t.episodes % t.train_batch:
        errors.append(f"train.train_batch: must divide rollout_batch x samples_per_prompt ({t.episodes})")
    if t.train_batch % t.micro_batch:
        errors.append(f"train.micro_batch: must divide train_batch ({t.train_batch})")
    for name in c.eval.models:
        if name in (BASE, *c.bases) or re.fullmatch(rf"({'|'.join(map(re.escape, c.variants))})_s\d+", name):
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


def use_errors(c: Config, variants: Sequence[str], providers: Sequence[str] = ()) -> list[str]:
    """What a job that trains `variants` (and builds their bases) or evaluates under feedback `providers` needs of
    the configuration beyond its schema: each variant's templates, its base's SFT feedback providers, each
    provider's templates in the top-level env. Resolve checks the enabled variants; the feedback ablation's jobs
    check theirs (rules/report.smk, the train and build-base verbs)."""
    errors = []
    for name in variants:
        v = c.variant(name)
        errors += _template_errors(f"variants.{name}.env", c.variant_env(name), v.max_attempts > 1, bool(v.env))
        held = v.heldout_prompt_template
        if held and held.count("{question}") != 1:
            errors.append(f"variants.{name}.heldout_prompt_template: must contain {{question}} exactly once")
        if v.base in c.bases:
            errors += base_errors(c, v.base)
    for provider in providers:
        errors += feedback_errors("env", c.env, provider, "the evaluation's feedback")
    return sorted(set(errors))


def base_errors(c: Config, name: str) -> list[str]:
    """A declared base's SFT: its feedback providers' templates in the top-level env."""
    chosen_by, errors = f"bases.{name}.sft.feedback_providers", []
    for provider in c.for_base(name).model.sft.feedback_providers:
        errors += feedback_errors("env", c.env, provider, chosen_by)
    return errors


def fill_bases(merged: dict[str, Any]) -> list[str]:
    """Check every declared base's `sft` keys as model.sft is checked, merged over it (errors named
    `bases.<name>.sft.<key>`)."""
    schema = load_schema()
    node = schema["properties"]["model"]["properties"]["sft"]
    bases, sft, errors = merged.get("bases"), (merged.get("model") or {}).get("sft"), []
    for name, entry in bases.items() if isinstance(bases, dict) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("sft"), Mapping) and isinstance(sft, Mapping):
            entry["sft"] = coerce_strings(entry["sft"], node)
            if not schema_errors(sft, node):  # (a model.sft error is reported once, at model.sft)
                errors += schema_errors(deep_merge(sft, entry["sft"]), node, ("bases", name, "sft"))
    return errors


INHERITED = ("min_attempts", "max_attempts", "env", "heldout_prompt_template")  # what `extends` passes on


def _extended(variants: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    """A variant's entry with the keys of the variant it `extends` (recursively) under its own."""
    entry = variants[name]
    parent = entry.get("extends") if isinstance(entry, Mapping) else None
    if not parent or not isinstance(parent, str):
        return entry, []
    if parent in (name, *seen):
        return entry, [f"variants.{name}.extends: {parent!r} extends {name!r} in turn (a circle)"]
    if not isinstance(variants.get(parent), Mapping):
        return entry, [f"variants.{name}.extends: {parent!r} is not a declared variant"]
    above, errors = _extended(variants, parent, (*seen, name))
    inherited = {k: v for k, v in above.items() if k in INHERITED} if isinstance(above, Mapping) else {}
    return deep_merge(inherited, entry), errors


def fill_variants(merged: dict[str, Any]) -> list[str]:
    """Give every declared variant the schema's defaults for the keys it omits, and check its `env` overrides as
    the top-level `env` is checked (errors named `variants.<name>.env.<key>`)."""
    schema = load_schema()
    node, env_node = schema["$defs"]["variant"], schema["properties"]["env"]
    defaults = {key: sub["default"] for key, sub in node["properties"].items() if "default" in sub}
    variants, errors = merged.get("variants"), []
    if isinstance(variants, dict):
        extended = {name: _extended(variants, name) for name in variants}
        for name, (entry, why) in extended.items():
            variants[name], errors = entry, errors + why
    for name, entry in variants.items() if isinstance(variants, dict) else []:
        if not isinstance(entry, Mapping):
            continue  # the schema names it
        variants[name] = entry = deep_merge(defaults, entry)
        env = merged.get("env")
        # (a top-level env error is reported once, at env)
        if isinstance(entry["env"], Mapping) and isinstance(env, Mapping) and not schema_errors(env, env_node):
            entry["env"] = coerce_strings(entry["env"], env_node)
            errors += schema_errors(deep_merge(env, entry["env"]), env_node, ("variants", name, "env"))
    return errors
