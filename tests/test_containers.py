"""containers/: the paper-scale image (Dockerfile) and its Apptainer definition, checked without building them
(no Docker or Apptainer on the machines this project is developed on): every version pinned there equals
pyproject.toml's, every file copied exists, the instructions are known ones, and the tag is the package's version."""

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

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
