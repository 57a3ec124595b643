"""The workflow's helpers (pipeline/workflow.py, imported by rules/common.smk): pure functions of the configuration.
`pytest tests/test_workflow_helpers.py -q`"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import config
from pipeline.layout import Layout
from pipeline.workflow import (
    conda_env,
    config_values,
    container_image,
    eval_launcher,
    eval_resources,
    eval_threads,
    train_launcher,
    train_resources,
    train_threads,
    unknown_eval_models,
    write_config_file,
    write_params_file,
)
from tests.conftest import ROOT


def test_config_values_are_the_rule_keys_and_the_scale():
    resolved = config.resolve({"train": {"steps": 7}}).to_dict()
    derived = {"most_attempts.base": 5}
    values = json.loads(config_values(resolved, ["train.steps", "env", "most_attempts.base"], "tiny", derived))
    assert values == {"scale": "tiny", "train": {"steps": 7}, "env": resolved["env"], "most_attempts.base": 5}
    # a key inside another one the rule names adds nothing; the text does not depend on the keys' order
    both = config_values(resolved, ["env.prompt_template", "env", "train.steps"], "tiny", {})
    assert both == config_values(resolved, ["train.steps", "env", "env.prompt_template"], "tiny", {})
    assert json.loads(both)["env"] == resolved["env"]
    other = config.resolve({"train": {"steps": 8}}).to_dict()
    assert config_values(other, ["env"], "tiny", {}) == config_values(resolved, ["env"], "tiny", {})
    assert config_values(other, ["train.steps"], "tiny", {}) != config_values(resolved, ["train.steps"], "tiny", {})


def test_resources_come_from_the_config():
    """The jobs' scheduler requests: the CPU experiment's and the paper preset's, from resources.* and the GPUs."""
    tiny, paper = config.resolve({}), config.resolve({"scale": "paper"})
    assert train_resources(tiny) == {"mem_mb": 4000, "gpu": 0, "runtime": 60}
    assert train_resources(paper) == {"mem_mb": 256000, "gpu": 8, "nodes": 1, "tasks_per_gpu": 0, "runtime": 2880}
    two_nodes = config.resolve({"scale": "paper", "train": {"nodes": 2}})
    assert train_resources(two_nodes) == {
        **{"mem_mb": 256000, "gres": "gpu:8", "nodes": 2, "tasks": 2, "mpi": "srun", "tasks_per_gpu": 0},
        "runtime": 2880,
    }
    evaluate = eval_resources(paper)
    runtime = evaluate.pop("runtime")
    assert evaluate == {"mem_mb": 64000, "gpu": 1, "nodes": 1, "tasks_per_gpu": 0}
    assert [runtime(None, attempt) for attempt in (1, 2)] == [720, 1440]  # each retry asks for 12 h more
    # a CPU job asks for no GPU whatever the step uses; the memory is the config's
    cpu = config.resolve({"train": {"gpus": 2}, "resources": {"evaluate": {"mem_mb": 123, "runtime_h": 0.001}}})
    assert train_resources(cpu)["gpu"] == 0 and eval_resources(cpu)["mem_mb"] == 123
    assert eval_resources(cpu)["runtime"](None, 1) == 1  # at least a minute


def test_environments_image_threads_and_launchers(tmp_path):
    tiny, paper = config.resolve({}), config.resolve({"scale": "paper"})
    assert [conda_env(tiny, f) for f in ("data", "train")] == ["../envs/data.yaml", "../envs/train.yaml"]
    assert [conda_env(paper, f) for f in ("report", "evaluate")] == ["../envs/report.yaml", "../envs/evaluate-gpu.yaml"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nversion = "1.2.3"\n')
    assert container_image(tiny, pyproject, {}) is None
    assert container_image(paper, pyproject, {}) == "resources/multiattempt-pipeline_1.2.3.sif"
    assert container_image(paper, pyproject, {"MULTIATTEMPT_IMAGE": "docker://x/y"}) == "docker://x/y"
    assert (train_threads(tiny), eval_threads(tiny), train_threads(paper), eval_threads(paper)) == (1, 1, 48, 20)
    assert train_launcher(tiny) == eval_launcher(tiny) == "python -m pipeline"
    assert (
        train_launcher(paper)
        == "python -m pipeline with-gpus 8 -- torchrun --standalone --nproc_per_node 8 -m pipeline"
    )
    assert eval_launcher(paper) == "python -m pipeline with-gpus 1 -- python -m pipeline"
    two_nodes = train_launcher(config.resolve({"scale": "paper", "train": {"nodes": 2}}))
    assert two_nodes.startswith("srun --nodes 2 --ntasks-per-node 1 --cpus-per-task 48 torchrun --nnodes 2")


def test_the_config_file_is_content_addressed_and_params_yaml_rewritten_only_on_change(tmp_path):
    resolved = config.resolve({}).to_dict()
    path = write_config_file(resolved, str(tmp_path / "out"))
    assert json.loads(Path(path).read_text()) == resolved and Path(path).parent == tmp_path / "out" / "configs"
    assert write_config_file(resolved, str(tmp_path / "out")) == path
    other = write_config_file(config.resolve({"train": {"steps": 3}}).to_dict(), str(tmp_path / "out"))
    assert other != path and sorted(p.name for p in (tmp_path / "out" / "configs").iterdir()) == sorted(
        [Path(path).name, Path(other).name]
    )
    params = tmp_path / "params.yaml"
    write_params_file(resolved, params)
    assert yaml.safe_load(params.read_text()) == resolved
    written = params.stat().st_mtime_ns
    write_params_file(resolved, params)
    assert params.stat().st_mtime_ns == written


def test_layout_names_the_files_and_models():
    tiny = Layout(config.resolve({"eval": {"curve_steps": [4], "models": {"other": "/models/other"}}}))
    assert tiny.trained_models() == ["multi_attempt_s0", "multi_attempt_s1", "baseline_s0", "baseline_s1"]
    assert tiny.evaluated_models() == ["base", *tiny.trained_models(), "other"]
    assert tiny.curve_models()[0] == "multi_attempt_s0_step4"
    assert tiny.model_folder("multi_attempt_s0_step4") == "results/tiny/models/multi_attempt_s0/steps/step_000004"
    assert tiny.model_folder("nobody_step4") == "results/tiny/models/nobody_step4"
    assert tiny.model_source("other") == "/models/other" and tiny.model_source("base") == "results/tiny/models/base"
    assert tiny.eval_sets() == {"synthetic": "results/tiny/data/synthetic_heldout.jsonl"}
    assert tiny.training_data() == "results/tiny/data/synthetic_train.jsonl"
    assert (
        tiny.all_eval_metrics()[0]
        == tiny.eval_metrics("base", "synthetic")
        == tiny.per_model_and_set("metrics.json")[0]
    )
    assert tiny.gain_traces()[:2] == [tiny.eval_traces("base", "synthetic", k) for k in (1, 2)]
    assert tiny.run_dir("baseline", 1) == "results/tiny/runs/baseline_s1"
    assert tiny.figure("accuracy", "png") == "reports/figures/accuracy.png"
    paper = Layout(config.resolve({"scale": "paper"}))
    assert paper.training_data() == "results/paper/data/math_train.jsonl"
    assert paper.excluded_benchmarks() == ["results/paper/data/math500.jsonl"]
    assert len(paper.eval_sets()) == 5 and paper.model_source("base") == "Qwen/Qwen2.5-Math-1.5B"
    assert paper.figure("accuracy", "pdf") == "reports/paper/figures/accuracy.pdf"


def test_eval_models_must_be_folders_or_hub_models(tmp_path):
    cfg = config.resolve({"eval": {"models": {"here": str(tmp_path), "hub": "org/model", "gone": "/no/such/dir"}}})
    assert unknown_eval_models(cfg, {"org/model"}) == [
        "eval.models.gone: '/no/such/dir' is neither a folder nor a Hugging Face hub id"
    ]


# Each rule's config keys as the workflow's rules name them (params config_keys=rule_keys(...)), read from the
# workflow as Snakemake loads it.
RULE_CONFIG_KEYS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

root, workdir = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), storage_settings=StorageSettings(), snakefile=root / "Snakefile",
        config_settings=ConfigSettings(configfiles=[root / "config.yaml"]), workdir=workdir)._workflow
    keys = {r.name: list(r.params.config_keys.keys) for r in workflow.rules if "config_keys" in r.params._names}
print("KEYS " + json.dumps(keys))
"""
DIALOGUE = [
    "model.revision",
    "env",
    "grading",
    "eval.batch_size",
    "eval.max_attempt_tokens",
    "eval.max_total_tokens",
    "rollout.backend",
    "rollout.max_model_len",
]
TRAIN = [*DIALOGUE, "train", "eval.checkpoint", "eval.validation_questions", "variants.{variant}"]
# {base}: base or a declared base (bases); base_sft.<base> and most_attempts.<base> are computed (DERIVED_KEYS)
BASE = ["model", "env", "eval", "base_sft.{base}", "most_attempts.{base}", "grading", "rollout.max_model_len"]
EXPECTED_KEYS = {
    "prepare_synthetic": ["data.synthetic"],
    "prepare_math": [
        "data.math",
        "data.max_prompt_tokens",
        "model.source",
        "model.revision",
        "variants",
        "env.prompt_template",
    ],
    "prepare_benchmark": ["data.benchmarks"],
    "build_base": BASE,
    "train": TRAIN,
    "evaluate": DIALOGUE,
    "eval_metrics": ["grading", "eval.models"],
    "parallel_eval": [*DIALOGUE, "eval.max_k", "train.temperature", "train.top_p"],
    "flip_probe": DIALOGUE,
    "aggregate": ["grading.multi_box"],
    "figures": [],
}


def test_each_rule_names_its_config_keys(tmp_path):
    """The keys each rule reruns for, as its rule names them; a rule that reads no configuration has none."""
    proc = subprocess.run(
        [sys.executable, "-c", RULE_CONFIG_KEYS, str(ROOT), str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    keys = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("KEYS "))[5:])
    assert {rule: sorted(k) for rule, k in keys.items()} == {rule: sorted(k) for rule, k in EXPECTED_KEYS.items()}
