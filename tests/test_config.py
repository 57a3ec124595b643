"""Configuration: schema completeness, presets, key-path errors. `pytest tests/test_config.py -q`"""

import dataclasses
import json
import subprocess
import sys
import typing

import pytest

from pipeline import config as C
from tests.conftest import ROOT


def _walk_leaves(node, path=()):
    """Yield (key path, schema node) for every leaf key of the schema."""
    schema = C.load_schema()
    node = C.resolve_ref(node, schema)
    props = node.get("properties")
    if props and "default" not in node:
        for key, sub in props.items():
            yield from _walk_leaves(sub, (*path, key))
    else:
        yield ".".join(path), node


def test_every_key_has_type_description_default():
    for path, node in _walk_leaves(C.load_schema()):
        assert "description" in node, f"{path}: no description"
        assert "default" in node, f"{path}: no default"
        assert "type" in node or "$ref" in node or "properties" in node, f"{path}: no type"


def _schema_shape(node):
    schema = C.load_schema()
    node = C.resolve_ref(node, schema)
    if "properties" in node:
        return {k: _schema_shape(v) for k, v in node["properties"].items()}
    return None


def _dataclass_shape(cls):
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return {f.name: _dataclass_shape(hints[f.name]) for f in dataclasses.fields(cls)}
    return None


def test_dataclass_tree_mirrors_schema():
    # `benchmarks` is a free mapping (name -> source) in both; everything else must match key for key.
    assert _dataclass_shape(C.Config) == _schema_shape(C.load_schema())


def test_defaults_are_the_tiny_preset_and_validate():
    cfg = C.resolve({})
    assert cfg.scale == "tiny"
    assert C.load_preset("tiny") == {}
    assert cfg.to_dict() == C.resolve({"scale": "tiny"}).to_dict()
    assert cfg.attempt_range("multi_attempt") == C.AttemptRange(1, 5)
    assert cfg.attempt_range("baseline") == C.AttemptRange(1, 1)
    assert cfg.variant_env("baseline") == cfg.env  # tiny: the baseline is the multi-attempt env with N = 1


def test_paper_preset_values_from_spec():
    cfg = C.resolve({"scale": "paper"})
    assert cfg.seeds == [42]  # spec §4
    assert cfg.eval.max_k == 7  # spec §5.4
    assert cfg.data.train_set == "math" and cfg.data.math.levels == [3, 4, 5]  # spec §4
    assert set(cfg.data.benchmarks) == {"math500", "aime24", "amc23", "minerva_math", "olympiadbench"}  # §5.1
    assert cfg.env.max_total_tokens == 51 * 64  # spec §1.3
    assert cfg.env.reward == C.RewardConfig("boxed", 1.0, -0.5, -1.0, 1.0, "graded")  # spec §2
    assert cfg.grading.timeout_s == 10.0 and cfg.grading.workers == 16  # spec §6
    assert cfg.grading.multi_box == "last"  # the released code grades the last box
    assert cfg.attempt_range("multi_attempt") == C.AttemptRange(1, 5)  # spec §1.1, M = 5
    assert cfg.rollout.backend == "vllm"  # the released code generates with vLLM


def test_train_nodes_default_to_one_and_several_take_gpus_per_node():
    assert C.resolve({}).train.nodes == 1 and C.resolve({"scale": "paper"}).train.nodes == 1
    cfg = C.resolve({"scale": "paper", "train": {"nodes": 2}})
    assert (cfg.train.nodes, cfg.train.gpus) == (2, 8)  # 16 processes, 8 per node


def test_user_values_override_preset():
    cfg = C.resolve({"scale": "paper", "eval": {"max_k": 3}, "seeds": [1, 2]})
    assert cfg.eval.max_k == 3 and cfg.seeds == [1, 2]
    assert cfg.env.max_total_tokens == 3264  # untouched keys keep the preset's value


@pytest.mark.parametrize(
    "user, expected",
    [
        ({"sedes": [0]}, "sedes: unknown key"),  # typo at top level
        ({"env": {"rewards": {}}}, "env.rewards: unknown key"),  # typo nested
        ({"env": {"reward": {"correct": "one"}}}, "env.reward.correct: 'one' is not of type 'number'"),
        ({"grading": {"timeout_s": 0}}, "grading.timeout_s: 0 is less than or equal to the minimum of 0"),
        ({"grading": {"multi_box": "first"}}, "grading.multi_box: 'first' is not one of ['last', 'all']"),
        ({"eval": {"max_k": 0}}, "eval.max_k: 0 is less than the minimum of 1"),
        ({"seeds": []}, "seeds: [] should be non-empty"),
        ({"data": {"benchmarks": {"math5000": {"source": "x"}}}}, "data.benchmarks: 'math5000' is not one of"),
        ({"variants": {"baseline": {"min_attempts": 2, "max_attempts": 1}}}, "variants.baseline: min_attempts (2)"),
        ({"env": {"prompt_template": "no placeholders"}}, "env.prompt_template: must contain the placeholder"),
        ({"env": {"feedback_template": "Wrong. {n} left."}}, "env.feedback_template: must start with"),
        ({"rollout": {"backend": "vllm"}, "train": {"top_p": 0.9}}, "train.top_p: the vllm backend"),
        ({"rollout": {"backend": "vllm"}}, "model.tiny: vLLM's CPU attention needs a head size"),  # 64 / 4 = 16
        ({"rollout": {"backend": "sglang"}}, "rollout.backend: 'sglang' is not one of"),
        ({"train": {"is_correction": "tis"}}, "train.is_correction: tis weighs tokens by p_actor / p_rollout"),
        ({"train": {"is_cap": 1.0}}, "train.is_cap: 1.0 is less than or equal to the minimum of 1"),
        ({"train": {"nodes": 0}}, "train.nodes: 0 is less than the minimum of 1"),
        ({"train": {"nodes": 2}}, "train.nodes: training on several nodes starts GPU processes"),  # gpus: 0
        ({"scale": "huge"}, "scale: unknown preset 'huge'"),
        ({"scale": 3}, "scale: must be a string"),
    ],
)
def test_errors_name_the_key_path(user, expected):
    with pytest.raises(C.ConfigError) as err:
        C.resolve(user)
    assert expected in str(err.value)


def test_experiment_names_the_output_folders():
    # The default keeps the paths the workflow always had; the paper preset's experiment is `paper`.
    tiny, paper = C.resolve({}), C.resolve({"scale": "paper"})
    assert (tiny.experiment, tiny.out_dir, tiny.report_dir, tiny.protect_models) == (
        "tiny",
        "results/tiny",
        "reports",
        False,
    )
    assert (paper.experiment, paper.out_dir, paper.report_dir, paper.protect_models) == (
        "paper",
        "results/paper",
        "reports/paper",
        True,
    )
    named = C.resolve({"scale": "paper", "experiment": "lr_sweep-2"})
    assert (named.out_dir, named.report_dir) == ("results/lr_sweep-2", "reports/lr_sweep-2")
    with pytest.raises(C.ConfigError, match="experiment: '../x' does not match"):
        C.resolve({"experiment": "../x"})


def test_all_errors_reported_at_once():
    with pytest.raises(C.ConfigError) as err:
        C.resolve({"foo": 1, "eval": {"max_k": -1}})
    assert "foo: unknown key" in str(err.value) and "eval.max_k" in str(err.value)


def test_load_file_and_inline_json(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scale: tiny\neval:\n  max_k: 2\n")
    assert C.load(path).eval.max_k == 2
    assert C.load('{"eval": {"max_k": 4}}').eval.max_k == 4
    with pytest.raises(C.ConfigError, match="not found"):
        C.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("eval: [unclosed\n")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "user", [{}, {"scale": "paper"}, {"rollout": {"backend": "vllm"}, "model": {"tiny": {"hidden_size": 128}}}]
)
def test_a_resolved_config_resolves_to_itself(user, tmp_path):
    """What the workflow hands every step (the resolved config as a JSON file) is the configuration it runs with."""
    resolved = C.resolve(user)
    path = tmp_path / "resolved.json"
    path.write_text(json.dumps(resolved.to_dict()))
    assert C.load(path) == resolved


def test_repository_config_yaml_resolves():
    assert C.load(ROOT / "config.yaml").scale == "tiny"


def test_cli_reports_config_error_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "config", "--config", '{"eval": {"max_k": "seven"}}'],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "eval.max_k: 'seven' is not of type 'integer'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_command_line_strings_are_read_as_yaml_scalars():
    # Snakemake's --config parses nested values with YAML's BaseLoader: every scalar arrives as a string.
    cfg = C.resolve(
        {"eval": {"max_k": "3"}, "seeds": ["0", "1"], "env": {"stop_at_box": "false"}, "grading": {"timeout_s": "2.5"}}
    )
    assert cfg.eval.max_k == 3 and cfg.seeds == [0, 1] and cfg.env.stop_at_box is False
    assert cfg.grading.timeout_s == 2.5
    with pytest.raises(C.ConfigError, match="eval.max_k: 'three' is not of type 'integer'"):
        C.resolve({"eval": {"max_k": "three"}})
    with pytest.raises(C.ConfigError, match="eval.max_k: '2.5' is not of type 'integer'"):
        C.resolve({"eval": {"max_k": "2.5"}})
