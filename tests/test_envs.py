"""envs/*.yaml (the rules' conda environments) against pyproject.toml: same pins, and each family's packages are
enough for its verbs. conda is not installed here, so the second check runs the verbs in this environment with
every pyproject package the env does not bring (directly or as a dependency) made unimportable."""

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

ENVS = {path.stem: path for path in sorted((ROOT / "envs").glob("*.yaml"))}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINS = {canonicalize_name(Requirement(r).name): Requirement(r) for r in PYPROJECT["project"]["dependencies"]}


def env_requirements(path) -> list[Requirement]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [Requirement(r) for r in pip]


def test_every_rule_family_has_an_env_and_every_rule_uses_one():
    assert set(ENVS) == {"data", "train", "evaluate", "report"}
    rules = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    used = set(re.findall(r'conda:\s*"\.\./envs/(\w+)\.yaml"', rules))
    assert used == set(ENVS)
    assert rules.count("conda:") == rules.count("\n    shell:")  # every job rule names its environment (targets: none)


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_pins_equal_pyproject(name):
    for req in env_requirements(ENVS[name]):
        key = canonicalize_name(req.name)
        assert key in PINS, f"envs/{name}.yaml: {req.name} is not a dependency in pyproject.toml"
        assert (req.specifier, req.extras) == (PINS[key].specifier, PINS[key].extras), f"envs/{name}.yaml: {req}"


def _closure(names: set[str]) -> set[str]:
    """Distributions installed for `names`, following their (unconditional) requirements in this environment."""
    seen, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in map(Requirement, requires):
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return seen


def _top_level_modules(dist: str) -> set[str]:
    files = metadata.distribution(dist).files or []
    tops = {
        f.parts[0].removesuffix(".py")
        for f in files
        if f.parts
        and not f.parts[0].endswith((".dist-info", ".pth"))
        and not f.parts[0].startswith(("_", "."))
        and f.parts[0] != "bin"
    }
    return tops or {dist.replace("-", "_")}


# Blocked packages look absent, as in a real environment without them: every finder is asked through one that
# answers None for them (so `importlib.util.find_spec` probes, e.g. transformers' for deepspeed, see nothing and
# `import` raises "No module named ...").
BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = set({blocked!r})
class Block(importlib.abc.MetaPathFinder):
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec
        return None
    def find_distributions(self, *args, **kwargs):  # package metadata stays visible (importlib.metadata)
        for finder in self.finders:
            if hasattr(finder, "find_distributions"):
                yield from finder.find_distributions(*args, **kwargs)
sys.meta_path[:] = [Block(list(sys.meta_path))]
sys.argv = ["pipeline", *{argv!r}]
runpy.run_module("pipeline", run_name="__main__")
"""


def run_with_only(env: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run `python -m pipeline argv` with the pyproject packages outside envs/<env>.yaml unimportable."""
    allowed = _closure({r.name for r in env_requirements(ENVS[env])})
    blocked = set()
    for dist in PINS:
        if dist not in allowed:
            blocked |= _top_level_modules(dist)
    blocked -= {"pipeline"}
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=sorted(blocked), argv=argv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_blocking_works():
    proc = run_with_only(
        "report", ["evaluate", "--model", "m", "--data", "d", "--benchmark", "b", "--k", "1", "--out", "o"]
    )
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_data_env_runs_the_data_verbs(tmp_path):
    cfg = json.dumps({"data": {"synthetic": {"n_train": 20, "n_heldout": 5}}})
    proc = run_with_only(
        "data",
        [
            "prepare-synthetic",
            "--config",
            cfg,
            "--train",
            str(tmp_path / "t.jsonl"),
            "--heldout",
            str(tmp_path / "h.jsonl"),
        ],
    )
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 20


def test_report_env_runs_the_report_verbs(tmp_path):
    from tests.test_report import _trace

    folder = tmp_path / "eval" / "base" / "synthetic"
    from pipeline import metrics
    from pipeline.io import write_json, write_jsonl

    runs = {k: [_trace("synthetic", i, k, 1 if i < 3 else 2 if i < 5 else None) for i in range(8)] for k in (1, 2)}
    for k, traces in runs.items():
        write_jsonl(folder / f"k{k}.jsonl", traces)
    typed = {k: metrics.traces_from(traces) for k, traces in runs.items()}
    write_json(folder / "metrics.json", metrics.metrics_for("base", typed))
    out = tmp_path / "reports"
    for argv in (
        ["aggregate", "--config", "{}", "--metrics", str(folder / "metrics.json"), "--out-dir", str(out)],
        ["figures", "--config", "{}", "--tables", str(out), "--out-dir", str(out / "figures")],
        ["report", "--tables", str(out), "--out", str(out / "report.md")],
    ):
        proc = run_with_only("report", argv)
        assert proc.returncode == 0, proc.stderr
    assert "| base model | 37.5 | 62.5 |" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "env, modules",
    [
        ("train", ["pipeline.train", "pipeline.sft", "pipeline.distributed"]),
        ("evaluate", ["pipeline.evaluate", "pipeline.grading"]),
    ],
)
def test_model_envs_import_their_modules(env, modules):
    """Training and evaluation verbs need a model (their runs are tested elsewhere); here: their imports."""
    code = "; ".join(f"import {m}" for m in modules)
    allowed = _closure({r.name for r in env_requirements(ENVS[env])})
    blocked = sorted({m for dist in PINS if dist not in allowed for m in _top_level_modules(dist)} - {"pipeline"})
    script = BLOCKER.split("sys.argv")[0].format(blocked=blocked) + code + "\nprint('ok')\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
