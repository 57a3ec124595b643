"""containers/: the paper-scale image (Dockerfile) and its Apptainer definition, checked without building them
(no Docker or Apptainer on the machines this project is developed on): every version pinned there equals
pyproject.toml's, every file copied exists, the instructions are known ones, and the tag is the package's version.
And the workflow's `container:` (rules/common.smk): the image at paper scale, none in the CPU experiment.

    pytest -n 0 -q tests/test_containers.py
"""

import os
import re
import subprocess
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT
from tests.test_envs import workflow_rules
from tests.test_workflow import ENV, SNAKEMAKE

DOCKERFILE = (ROOT / "containers" / "Dockerfile").read_text()
APPTAINER = (ROOT / "containers" / "apptainer.def").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
INSTRUCTIONS = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "ENTRYPOINT", "CMD", "LABEL"}


def pins() -> dict[str, str]:
    reqs = [*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"]["gpu"]]
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in map(Requirement, reqs)}


def instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    return [tuple(line.split(maxsplit=1)) for line in joined.splitlines() if line.strip()]


def test_the_dockerfile_pins_what_pyproject_pins():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, flags=re.M))
    expected = pins()
    assert args == {
        "VLLM_VERSION": expected["vllm"],
        "DEEPSPEED_VERSION": expected["deepspeed"],
        "TRANSFORMERS_VERSION": expected["transformers"],
    }
    assert "FROM vllm/vllm-openai:v${VLLM_VERSION}" in DOCKERFILE


def test_the_dockerfile_is_well_formed_and_copies_files_that_exist():
    steps = instructions(DOCKERFILE)
    assert {name for name, _ in steps} <= INSTRUCTIONS
    assert [name for name, _ in steps if name != "ARG"][0] == "FROM"  # only ARGs before the base image
    copied = [path for name, rest in steps if name == "COPY" for path in rest.split()[:-1]]
    assert copied and all((ROOT / path).exists() for path in copied), copied
    assert 'pip install -e ".[gpu]"' in DOCKERFILE and "DS_BUILD_CPU_ADAM=1" in DOCKERFILE


def test_the_apptainer_definition_starts_from_the_image_of_this_version():
    header = dict(re.findall(r"^(Bootstrap|From): (\S+)$", APPTAINER, flags=re.M))
    assert header == {"Bootstrap": "docker-daemon", "From": f"multiattempt-pipeline:{PYPROJECT['version']}"}
    assert f"-t multiattempt-pipeline:{PYPROJECT['version']} ." in DOCKERFILE
    sections = re.findall(r"^%(\w+)$", APPTAINER, flags=re.M)
    assert set(sections) <= {"environment", "runscript", "test", "labels", "post", "files"} and "test" in sections


IMAGE = f"resources/multiattempt-pipeline_{PYPROJECT['version']}.sif"  # the .sif docs/slurm.md builds


def test_paper_scale_jobs_run_in_the_image_and_the_cpu_experiment_in_none(tmp_path):
    paper, tiny = workflow_rules("paper", tmp_path), workflow_rules("tiny", tmp_path)
    assert {rule: image for rule, (_, _, image) in paper.items()} == dict.fromkeys(paper, IMAGE)
    assert {rule: image for rule, (_, _, image) in tiny.items()} == dict.fromkeys(tiny, None)


# Apptainer is not installable here (not in Debian's archive); Snakemake asks the binary only for its version
# before a dry run, so a stand-in answers that and fails on anything else (a job would fail, not run).
STAND_IN = """#!/bin/sh
[ "$1" = "--version" ] && { echo "apptainer version 1.4.5"; exit 0; }
echo "stand-in apptainer, not installed here: $*" >&2; exit 1
"""


def snakemake_with_apptainer(tmp_path, *args, image=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apptainer").write_text(STAND_IN)
    (bin_dir / "apptainer").chmod(0o755)
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}"}
    env.pop("MULTIATTEMPT_IMAGE", None)
    if image:
        env["MULTIATTEMPT_IMAGE"] = image
    cmd = [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(ROOT / "config.yaml"), "--sdm", "apptainer"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_a_paper_dry_run_with_apptainer_names_the_image(tmp_path):
    proc = snakemake_with_apptainer(tmp_path, "-n", "--config", "scale=paper")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"--sdm apptainer: every job runs in the container {IMAGE}" in out
    assert f"{IMAGE} does not exist yet" in out  # not built here: a dry run warns
    assert "rule train:" in out
    tiny = snakemake_with_apptainer(tmp_path, "-n")
    assert tiny.returncode == 0 and "rule build_base:" in tiny.stdout + tiny.stderr
    assert "every job runs in the container" not in tiny.stdout + tiny.stderr


def test_a_missing_image_stops_a_real_run_before_any_job(tmp_path):
    proc = snakemake_with_apptainer(tmp_path, "--cores", "1", "--config", "scale=paper")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{IMAGE}: no such image" in out and "stand-in apptainer" not in out
    assert not (tmp_path / "results" / "paper" / "logs").exists()


def test_an_image_on_a_registry_is_pulled_by_snakemake(tmp_path):
    """A docker:// image (MULTIATTEMPT_IMAGE) is pulled once, where Snakemake runs, before any job."""
    url = f"docker://ghcr.io/example/multiattempt-pipeline:{PYPROJECT['version']}"
    proc = snakemake_with_apptainer(tmp_path, "-n", "--config", "scale=paper", image=url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Singularity image {url} will be pulled." in proc.stdout + proc.stderr
