"""The Snakemake workflow, run for real: lint, formatting, dry-runs of both presets, the data rules, and (slow)
the whole default experiment.

`pytest tests/test_workflow.py -q`. Each test runs Snakemake in a temporary working directory
(`--directory`), so nothing is written into the checkout.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from pipeline import config
from tests.conftest import ROOT, copy_of_repository

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
# Rules call `python -m pipeline`: the interpreter of this environment must come first on PATH, as it does
# for a user who activated the virtual environment.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(ROOT / "config.yaml"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_ci_runs_the_readme_test_command():
    """.ci/run is the README's second command, verbatim."""
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_catalog_file_and_license():
    """.snakemake-workflow-catalog.yml has the catalog's usage keys; LICENSE is the license pyproject.toml names."""
    import yaml

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["description"] and set(catalog["usage"]) == {
        "mandatory-flags",
        "software-stack-deployment",
        "report",
    }
    # only what has run: no env created by conda, no image built (see the comment in the file)
    assert catalog["usage"]["software-stack-deployment"] == {
        "conda": False,
        "singularity": False,
        "singularity+conda": False,
    }
    license = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert license == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().splitlines()[0] == "MIT License"


def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_snakefmt_clean():
    files = [str(ROOT / "Snakefile"), *map(str, sorted((ROOT / "rules").glob("*.smk")))]
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_clean(command):
    """The Python code passes `ruff check` and `ruff format --check` (settings in pyproject.toml)."""
    paths = [str(ROOT / p) for p in ("pipeline", "tests", "bench")]
    proc = subprocess.run([sys.executable, "-m", "ruff", *command, *paths], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_tiny_lists_the_data_rules(tmp_path):
    out = snakemake(tmp_path, "-n").stdout
    assert "prepare_synthetic" in out


def test_dry_run_paper_preset(tmp_path):
    out = snakemake(tmp_path, "-n", "--config", "scale=paper").stdout
    assert "prepare_math" in out and out.count("rule prepare_benchmark:") == 5
    # benchmarks x (the hub model, multi-attempt and baseline trained from it with seed 42); k = 1..7 in each job
    assert out.count("rule evaluate:") == 5 * 3 and out.count("rule train:") == 2
    assert "build_base" not in out and "rule write_report:" in out and "reports/paper/report.md" in out
    printed = snakemake(tmp_path, "-n", "-p", "--config", "scale=paper").stdout
    assert "--model Qwen/Qwen2.5-Math-1.5B" in printed
    # training: one 8-GPU node, DeepSpeed processes started by torchrun; evaluation: one GPU per job
    assert printed.count("torchrun --standalone --nproc_per_node 8 -m pipeline train") == 2
    train_jobs = printed.split("rule train:")[1:]
    assert all("gpu=8" in job.split("Shell command")[0] for job in train_jobs)
    eval_jobs = printed.split("rule evaluate:")[1:]
    assert len(eval_jobs) == 15 and all("gpu=1" in job.split("Shell command")[0] for job in eval_jobs)
    assert all(" --k 1 2 3 4 5 6 7 --out " in job for job in eval_jobs)  # one engine start for every k


def test_eval_models_are_evaluated_beside_the_trained_ones(tmp_path):
    """eval.models: a local folder (or a hub id, which the download rule fetches) is evaluated at every k, audited
    and reported like the workflow's own models; a path that is neither stops the workflow before any job."""
    folder = tmp_path / "instruct"
    folder.mkdir()
    cfg = f"eval={{models: {{instruct: {folder}}}}}"
    out = snakemake(tmp_path, "-n", "-p", "--config", cfg).stdout
    assert out.count("pipeline evaluate --config") == 6 and out.count("--model " + str(folder)) == 1 + 2
    assert "--name instruct --data" in out  # its parallel samples and flip probe
    assert "results/tiny/eval/instruct/synthetic/grader_audit.json" in out and "reports/metrics/instruct.json" in out
    hub = snakemake(tmp_path, "-n", "-p", "--config", "eval={models: {qwen: Qwen/Qwen2.5-Math-1.5B-Instruct}}").stdout
    assert "rule download:" in hub and hub.count("--model Qwen/Qwen2.5-Math-1.5B-Instruct") == 1 + 2
    bad = snakemake(tmp_path, "-n", "--config", f"eval={{models: {{gone: {tmp_path / 'nowhere'}}}}}", check=False)
    assert bad.returncode != 0 and "eval.models.gone" in bad.stderr + bad.stdout
    clash = snakemake(tmp_path, "-n", "--config", f"eval={{models: {{baseline_s0: {folder}}}}}", check=False)
    assert clash.returncode != 0 and "eval.models.baseline_s0: the name of a model the workflow makes" in clash.stdout


def test_curve_steps_evaluate_the_kept_actors(tmp_path):
    """eval.curve_steps: the actor of each kept step of each run is evaluated at every k, from inside its run's
    model folder, and feeds the report; the default run has none."""
    out = snakemake(tmp_path, "-n", "-p", "--config", "eval={curve_steps: [100]}").stdout
    assert out.count("rule train:") == 4
    kept = "--model results/tiny/models/multi_attempt_s0/steps/step_000100"
    assert out.count(kept) == 1 and "results/tiny/eval/baseline_s1_step100/synthetic/metrics.json" in out
    assert (
        "_step1" not in snakemake(tmp_path, "-n").stdout and "steps/step_" not in snakemake(tmp_path, "-n", "-p").stdout
    )
    late = snakemake(tmp_path, "-n", "--config", "eval={curve_steps: [200]}", check=False)
    assert late.returncode != 0 and "eval.curve_steps: [200] not below train.steps (200)" in late.stdout


def test_a_named_experiment_has_its_own_folders(tmp_path):
    """`experiment: NAME` moves every output to results/NAME and reports/NAME; the default keeps results/tiny and
    reports/ (and the paper preset results/paper and reports/paper, test_dry_run_paper_preset)."""
    named = snakemake(tmp_path, "-n", "--config", "experiment=lr_sweep").stdout
    default = snakemake(tmp_path, "-n").stdout
    outputs = re.compile(r"^    output: (.*)$", re.M)
    named_files = {f for line in outputs.findall(named) for f in line.split(", ")}
    assert named_files and all(f.startswith(("results/lr_sweep/", "reports/lr_sweep/")) for f in named_files)
    assert {"reports/lr_sweep/report.md", "reports/lr_sweep/metrics/multi_attempt.json"} <= named_files
    default_files = {f for line in outputs.findall(default) for f in line.split(", ")}
    assert {
        f.replace("results/lr_sweep/", "results/tiny/").replace("reports/lr_sweep/", "reports/") for f in named_files
    } == default_files


def test_params_yaml_is_the_resolved_configuration(tmp_path):
    """DVC's parameter file: every key of the configuration config.yaml resolves to, rewritten only when it
    changes, and left alone by runs with --config or --configfile (a smoke check must not touch it)."""
    import yaml

    def dry_run(*args: str) -> None:
        cmd = [*SNAKEMAKE, "--directory", str(tmp_path), "-n", *args]
        subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, check=True)

    (tmp_path / "config.yaml").write_text("scale: tiny\ntrain:\n  steps: 7\n")
    dry_run()
    params = tmp_path / "params.yaml"
    assert yaml.safe_load(params.read_text()) == config.resolve({"train": {"steps": 7}}).to_dict()
    written = params.stat().st_mtime_ns
    dry_run()
    dry_run("--config", "train={steps: 9}")
    dry_run("--configfile", str(ROOT / ".test" / "config.yaml"))
    assert params.stat().st_mtime_ns == written
    (tmp_path / "config.yaml").write_text("scale: tiny\n")
    dry_run()
    assert yaml.safe_load(params.read_text())["train"]["steps"] == config.resolve({}).train.steps


def test_paper_preset_downloads_the_hub_once_and_jobs_run_offline(tmp_path):
    """The paper preset's hub models and datasets come from one local download rule (pipeline.download's plan,
    tests/test_download.py); every job that reads the hub waits for it, and every job runs with
    HF_HUB_OFFLINE=1 and HF_HOME=resources/hf."""
    printed = snakemake(tmp_path, "-n", "-p", "--config", "scale=paper").stdout
    jobs = printed.split("\n\n")
    download = [j for j in jobs if re.search(r"^(local)?rule download:", j, re.M)]
    assert len(download) == 1 and "output: resources/hf/manifests/paper.json" in download[0]
    assert "python -m pipeline download --config" in download[0] and "--hf-home resources/hf" in download[0]
    for rule, count in (("prepare_math", 1), ("prepare_benchmark", 5), ("train", 2), ("evaluate", 15)):
        waiting = [j for j in jobs if re.search(rf"^rule {rule}:", j, re.M)]
        assert len(waiting) == count and all("resources/hf/manifests/paper.json" in j for j in waiting), rule
    assert "manifests" not in snakemake(tmp_path, "-n").stdout  # the tiny experiment reads nothing from the hub

    repo = copy_of_repository(tmp_path / "repo")
    with open(repo / "Snakefile", "a") as f:
        f.write('\n\nrule env_probe:\n    output:\n        "env.txt",\n    shell:\n        "env > {output}"\n')
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "env.txt"],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**ENV, "HF_HUB_OFFLINE": "0", "HF_HOME": "/elsewhere"},
    )
    env = dict(line.split("=", 1) for line in (repo / "env.txt").read_text().splitlines() if "=" in line)
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HOME"] == str(repo / "resources" / "hf")


def test_part_targets(tmp_path):
    """The named targets (also the dvc.yaml stages) schedule their part of the pipeline and no more."""
    jobs = {}
    for target in ("data", "base_model", "policies", "evaluation", "all"):
        out = snakemake(tmp_path, "-n", target).stdout
        jobs[target] = set(re.findall(r"^(?:local)?rule (\w+):", out, re.M)) - {target}
    assert jobs["data"] == {"prepare_synthetic"}
    assert jobs["base_model"] == {"prepare_synthetic", "build_base"}
    assert jobs["policies"] == {"prepare_synthetic", "build_base", "train"}
    controls = {"grader_audit", "parallel_eval", "flip_probe"}  # beside every evaluated model's runs
    assert jobs["evaluation"] == jobs["policies"] | {"evaluate", "eval_metrics", *controls}
    assert jobs["all"] == jobs["evaluation"] | {"aggregate", "figures", "write_report", "dvc_views"}
    one = snakemake(tmp_path, "-n", "results/tiny/eval/base/synthetic/k2.jsonl").stdout
    assert set(re.findall(r"^rule (\w+):", one, re.M)) == {"prepare_synthetic", "build_base", "evaluate"}


def test_every_step_gets_the_whole_resolved_config(tmp_path):
    """Overrides of keys a rule does not depend on (rollout for build_base, model for train and evaluate) reach
    its step all the same: every command names one file holding the whole resolved configuration, and a
    Snakemake with the same configuration reads that file as it is, one with another configuration its own."""
    overrides = {"rollout": {"backend": "vllm"}, "model": {"tiny": {"hidden_size": 128}}}
    target = "results/tiny/eval/multi_attempt_s0/synthetic/k1.jsonl"

    def config_files(*args: str) -> dict[str, set[str]]:
        """The `--config` files of the printed build-base, train and evaluate commands."""
        printed = snakemake(tmp_path, "-n", "-p", "-F", target, *args).stdout
        return {
            verb: set(re.findall(rf"pipeline {verb} --config (\S+)", printed))
            for verb in ("build-base", "train", "evaluate")
        }

    with_overrides = ["--config", *(f"{key}={json.dumps(value)}" for key, value in overrides.items())]
    files = config_files(*with_overrides)
    assert all(len(named) == 1 for named in files.values()) and len(set.union(*files.values())) == 1
    path = tmp_path / files["train"].pop()
    expected = config.load(ROOT / "config.yaml", overrides)
    assert json.loads(path.read_text()) == expected.to_dict() and config.load(path) == expected
    written = path.stat().st_mtime_ns
    assert config_files(*with_overrides)["train"] == {str(path.relative_to(tmp_path))}
    assert path.stat().st_mtime_ns == written  # not written again
    other = tmp_path / config_files()["train"].pop()
    assert other != path and config.load(other) == config.load(ROOT / "config.yaml")


def test_bad_config_stops_before_any_work(tmp_path):
    proc = snakemake(tmp_path, "--cores", "1", "--config", "eval={max_k: zero}", check=False)
    assert proc.returncode != 0
    assert "eval.max_k: 'zero' is not of type 'integer'" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_data_rules_write_the_prepared_data(tmp_path):
    small = "data={synthetic: {n_train: 300, n_heldout: 50}}"
    snakemake(tmp_path, "--cores", "1", "data", "--config", small)
    data = tmp_path / "results" / "tiny" / "data"
    train = [json.loads(line) for line in (data / "synthetic_train.jsonl").read_text().splitlines()]
    heldout = [json.loads(line) for line in (data / "synthetic_heldout.jsonl").read_text().splitlines()]
    assert len(train) == 300 and len(heldout) == 50
    assert set(train[0]) == {"id", "question", "answer", "source", "meta"}
    assert (tmp_path / "results" / "tiny" / "logs" / "prepare_synthetic.log").is_file()
    # Nothing to do the second time; a changed data key reruns the rule.
    assert "Nothing to be done" in snakemake(tmp_path, "-n", "data", "--config", small).stdout
    rerun = snakemake(tmp_path, "-n", "data", "--config", "data={synthetic: {n_train: 301, n_heldout: 50}}")
    assert "prepare_synthetic" in rerun.stdout


def test_benchmark_rule_on_shared_files(tmp_path, benchmarks_dir):
    sources = {name: {"source": str(benchmarks_dir / name / "test.jsonl")} for name in ("math500", "amc23")}
    snakemake(
        tmp_path,
        "--cores",
        "1",
        "results/tiny/data/math500.jsonl",
        "results/tiny/data/amc23.jsonl",
        "--config",
        "data=" + json.dumps({"benchmarks": sources}),
    )
    lines = (tmp_path / "results" / "tiny" / "data" / "amc23.jsonl").read_text().splitlines()
    assert len(lines) == 40 and json.loads(lines[0])["answer"] == "27"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """A copy of the repository in which the README's one-minute check has run to the end:
    `snakemake --cores 2 --configfile .test/config.yaml`. Its tests may edit the copy's code (and restore it)."""
    repo = copy_of_repository(tmp_path_factory.mktemp("smoke") / "repo")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", ".test/config.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (repo / "reports" / "report.md").is_file()
    return repo


def planned(repo: Path, *targets: str, overrides: tuple[str, ...] = ()) -> set[str]:
    """The rules `snakemake -n` (default rerun triggers) would run in the smoke copy, but for the target `all`."""
    cmd = [sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", ".test/config.yaml"]
    proc = subprocess.run(
        [*cmd, *(("--config", *overrides) if overrides else ())], cwd=repo, capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout, re.M)) - {"all"}


def test_a_rule_reruns_for_its_own_config_keys_only(smoke_run):
    """A policy trained on the smoke config records the whole resolved configuration in its provenance (also
    keys its rule does not depend on: eval.max_k and model.sft of the smoke config are not the defaults); a
    changed key reruns the rules that depend on it, and no other."""
    target = "results/tiny/models/multi_attempt_s0"
    provenance = json.loads((smoke_run / target / "provenance.json").read_text())
    assert provenance["config"] == config.load(smoke_run / ".test" / "config.yaml").to_dict()

    def rerun(*overrides: str) -> set[str]:
        return planned(smoke_run, target, overrides=overrides)

    assert rerun("variants={baseline: {max_attempts: 2}}") == set()  # the baseline's run reads it, not this one
    assert rerun("variants={multi_attempt: {max_attempts: 4}}") == {"build_base", "train"}  # both read it
    assert rerun("train={steps: 3}") == {"train"}


def test_code_is_an_input(smoke_run):
    """After a complete run, `snakemake -n` reruns exactly the rules whose code changed, and what depends on
    their outputs: a metrics function -> the metrics and the report; the trainer -> training and everything
    after it, not the data or the base model; a comment or a docstring -> nothing."""
    report = {"aggregate", "figures", "write_report", "dvc_views"}
    controls = {"grader_audit", "parallel_eval", "flip_probe"}
    assert planned(smoke_run) == set()
    cases = [
        (
            "pipeline/metrics.py",
            "def summarize(\n    traces: Sequence[Trace],\n    n_boot: int = 1000,",
            "def summarize(\n    traces: Sequence[Trace],\n    n_boot: int = 2000,",
            {"eval_metrics", *report},
        ),
        (
            "pipeline/train.py",
            "def token_groups(lengths: torch.Tensor, budget: int, count: int | None = None)",
            "def token_groups(lengths: torch.Tensor, budget: int, count: int | None = 0)",
            {"train", "evaluate", "eval_metrics", *controls, *report},
        ),
        (
            "pipeline/metrics.py",
            '    """Everything reported for one run',
            '    # a comment\n    """Everything, and more, reported for one run',
            set(),
        ),
        # rewritten as it was: a new mtime only
        ("pipeline/report/markdown.py", "def markdown(", "def markdown(", set()),
    ]
    for path, old, new, expected in cases:
        file = smoke_run / path
        text = file.read_text()
        assert text.count(old) == 1, (path, old)
        file.write_text(text.replace(old, new))
        try:
            assert planned(smoke_run) == expected, (path, new)
        finally:
            file.write_text(text)
    assert planned(smoke_run) == set()


def test_model_folders_can_be_shared(smoke_run):
    """Every model folder (and checkpoint) has weights the group can read: the umask's permissions, like every
    other file (transformers writes model.safetensors 0600); and a model card naming its base model, data, the
    file of its configuration and the held-out results of its training."""
    from pipeline import provenance

    umask = os.umask(0)
    os.umask(umask)
    out = smoke_run / "results" / "tiny"
    digest = provenance.config_hash(config.load(smoke_run / ".test" / "config.yaml").to_dict())
    assert (out / "configs" / f"{digest}.json").is_file()
    weights = [*(out / "models").glob("*/model.safetensors"), *(out / "runs").glob("*/checkpoints/*/*/*.safetensors")]
    assert len(weights) >= 3 + 2  # 3 models, and at least one checkpoint of each training run
    assert {oct(w.stat().st_mode & 0o777) for w in weights} == {oct(0o666 & ~umask)}
    for name, base, results in (
        ("base", "built from scratch", "heldout_accuracy"),
        ("multi_attempt_s0", "`results/tiny/models/base`", "heldout/mean"),
        ("baseline_s0", "`results/tiny/models/base`", "heldout/mean"),
    ):
        hub_card = ModelCard.load(out / "models" / name / "README.md")  # the hub's metadata header, then the text
        card = hub_card.text
        assert hub_card.data.model_name == name and hub_card.data.license == "mit", hub_card.data
        assert card.lstrip().startswith(f"# {name}\n"), card
        assert "| base model | " in card and base in card.split("| base model |")[1].splitlines()[0], card
        assert "synthetic 3-digit addition: 400 questions, 20 held out" in card, card
        assert f"`{digest}`: `results/tiny/configs/{digest}.json`" in card, card
        assert f"- {results}: " in card and "results/tiny/eval/" + name in card, card


# Snakemake decides a file is protected with os.access(W_OK), which is always true for root: run as root (as in
# a container), it sees through the protection, as root's rm would. This runs Snakemake as a user would see it.
AS_A_USER = """
import os, stat, sys
real = os.access
def access(path, mode, **kw):
    if mode & os.W_OK and os.path.exists(path) and not os.stat(path).st_mode & stat.S_IWUSR:
        return False
    return real(path, mode, **kw)
os.access = access
from snakemake.cli import main
sys.argv[0] = "snakemake"
main()
"""


def test_protected_models_stop_a_retraining(smoke_run):
    """With protect_models (the paper preset's setting) a trained model is write-protected, and a configuration
    change that would retrain it stops Snakemake before any job runs, naming the rule, whose comment says how to
    retrain; nothing is deleted. Runs last of the smoke tests: it retrains baseline_s0 (and touches the rest)."""
    target = "results/tiny/models/baseline_s0"
    snakemake = [sys.executable, "-c", AS_A_USER if os.geteuid() == 0 else "from snakemake.cli import main; main()"]

    def run(*args: str, overrides: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        cmd = [*snakemake, *args, "--configfile", ".test/config.yaml", "--config", "protect_models=true", *overrides]
        return subprocess.run(cmd, cwd=smoke_run, capture_output=True, text=True, env=ENV)

    model = smoke_run / target
    try:
        trained = run("--cores", "2", target, "--forcerun", "train")
        assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
        assert not model.stat().st_mode & 0o222 and not (model / "model.safetensors").stat().st_mode & 0o222
        weights = (model / "model.safetensors").read_bytes()
        assert "Nothing to be done" in run("-n", target).stdout  # protection alone reruns nothing
        blocked = run("--cores", "2", target, overrides=("train={steps: 3}",))
        assert blocked.returncode != 0
        assert "Write-protected output files for rule train" in blocked.stderr and target in blocked.stderr
        assert "rules/train.smk" in blocked.stderr and (model / "model.safetensors").read_bytes() == weights
        assert "chmod -R u+w results/<experiment>/models/<name>" in (ROOT / "rules" / "train.smk").read_text()
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(model)], check=True)
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1", "--touch", "--configfile", ".test/config.yaml"],
            cwd=smoke_run,
            capture_output=True,
            check=True,
            env=ENV,
        )


@pytest.mark.slow
def test_default_workflow_end_to_end(tmp_path):
    """`snakemake --cores all` on the default config with one seed: data -> base model (SFT) -> RL training of
    both variants -> evaluation at k = 1..5 -> report — and the multi-attempt model gains more from a second
    attempt."""
    from pipeline import models

    snakemake(tmp_path, "--cores", "all", "--config", "seeds=[0]")
    out = tmp_path / "results" / "tiny"
    summary = json.loads((out / "models" / "base" / "sft_summary.json").read_text())
    assert summary["heldout_accuracy"] >= 0.45 and summary["retry_accuracy"] >= 0.25
    model, tokenizer = models.load(out / "models" / "base")  # the path users and rules take
    assert type(model).__name__ == "Qwen2ForCausalLM"
    metrics = {}
    for name in ("base", "multi_attempt_s0", "baseline_s0"):
        metrics[name] = json.loads((out / "eval" / name / "synthetic" / "metrics.json").read_text())
        assert sorted(metrics[name]["by_k"]) == ["1", "2", "3", "4", "5"]
        for k, m in metrics[name]["by_k"].items():
            assert m["n"] == 500 and m["k"] == int(k)
            assert m["accuracy_ci95"][0] <= m["accuracy"] <= m["accuracy_ci95"][1]
    assert 0.3 <= metrics["base"]["by_k"]["1"]["accuracy"] <= 0.75  # the base sits near its target
    for variant in ("multi_attempt", "baseline"):
        trained = metrics[f"{variant}_s0"]["by_k"]["1"]["accuracy"]
        assert trained > metrics["base"]["by_k"]["1"]["accuracy"] + 0.1, variant  # RL learned the task
        log = (out / "models" / f"{variant}_s0" / "train_log.jsonl").read_text().splitlines()
        assert json.loads(log[-1])["step"] == 200
    gain = {name: m["gain_over_k1"]["2"]["gain"] for name, m in metrics.items()}
    assert gain["multi_attempt_s0"] > gain["baseline_s0"] + 0.03, gain  # the paper's effect, at CPU scale
    traces = [json.loads(line) for line in (out / "eval" / "base" / "synthetic" / "k3.jsonl").read_text().splitlines()]
    assert len(traces) == 500 and all(len(t["attempts"]) <= 3 for t in traces)
    retries = [a for t in traces for a in t["attempts"][1:]]
    assert (
        retries and sum(a["answer"] is not None for a in retries) / len(retries) >= 0.9
    )  # format holds after feedback
    for rule in (
        "prepare_synthetic",
        "build_base/base",
        "train/multi_attempt_s0",
        "evaluate/base/synthetic",
        "eval_metrics/base/synthetic",
    ):
        assert (out / "logs" / f"{rule}.log").is_file()
    # the report: summary.json for machines, tables, figures, report.md, and Snakemake's html report
    reports = tmp_path / "reports"
    summary = json.loads((reports / "summary.json").read_text())
    for variant in ("multi_attempt", "baseline"):
        v = summary["variants"][variant]
        assert sorted(v["accuracy_at_k"]) == ["1", "2", "3", "4", "5"] and list(v["seeds"]) == ["0"]
        assert v["accuracy_at_k"]["2"] == pytest.approx(metrics[f"{variant}_s0"]["by_k"]["2"]["accuracy"])
        assert v["gain_k1_to_k2"]["gain"] == pytest.approx(gain[f"{variant}_s0"])
    for name in ("accuracy_vs_k", "per_benchmark", "learning_curves", "retries"):
        assert (reports / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (reports / "figures" / f"{name}.pdf").is_file()
    text = (reports / "report.md").read_text()
    assert "multi-attempt training gains more from a second attempt" in text
    # after a wrong answer: the share of retries with a new answer is what the grader-judged repeats leave
    lines = text.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.endswith("| new answer |")) :]
    row = next(line for line in table if line.startswith("| multi-attempt RL |"))
    *_, equal, new = [float(cell) for cell in row.strip("| ").split(" | ")[1:]]
    assert new == pytest.approx(100 - equal, abs=0.11)
    snakemake(tmp_path, "--report", str(reports / "report.html"), "--config", "seeds=[0]")
    html = (reports / "report.html").read_text()
    assert "accuracy_vs_k.png" in html and "Accuracy against the number of attempts allowed" in html
    assert "Nothing to be done" in snakemake(tmp_path, "-n", "--config", "seeds=[0]").stdout
