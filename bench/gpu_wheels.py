"""Wheels to carry to a lent GPU machine, so that bench/gpu_check.py starts there (docs/gpu-validation.md).

That machine's image has torch, transformers and accelerate (and what they need), and no package index. The
check also needs jsonschema (pipeline.config validates every configuration with it) and DeepSpeed, so this
downloads them, with what they need beyond that image, into one folder:

- wheels that fit every CPython 3 (pure Python, or compiled once for all of them: ninja), at the versions this
  repository's environment runs;
- the compiled ones (msgpack, pydantic-core, rpds-py) for each of CPython 3.10 to 3.13: the image's Python was
  3.12 when last seen, and pip takes the one that fits;
- DeepSpeed's source distribution (it publishes no wheel), with setuptools and wheel, which pip builds it with
  there. With DS_BUILD_OPS=0 nothing is compiled at install; DeepSpeed compiles the ops it uses (CPU Adam) at
  their first use.

A device call carries the working tree and the carried folders, 64 MiB in all: the script fails when this folder
and the tree exceed that. It ends with the command that installs the wheels on the device.

Run: `python bench/gpu_wheels.py --out .whl/gpu` (/.whl/ is git-ignored; files of an earlier run there go first).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY_LIMIT = 64 * 2**20  # bytes a device call carries: working tree and carried folders together
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# Wheels of glibc 2.28 or older run on any Linux from then on (this machine's Debian 12 and the image alike); pip
# matches each manylinux tag exactly, so every one is named.
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 29))]

ANY_PYTHON = [
    "jsonschema==4.26.0",
    "attrs==26.1.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    # DeepSpeed's requirements but those the image has (torch, numpy, packaging, psutil, tqdm)
    "einops==0.8.2",
    "hjson==3.1.0",
    "ninja==1.13.2",
    "py-cpuinfo==9.0.0",
    "pydantic==2.14.4",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "typing-extensions==4.16.0",  # pydantic needs >= 4.16, newer than torch asks for
    # what pip builds DeepSpeed's source distribution with (wheel 0.45 is the last that needs no packaging)
    "setuptools==78.1.1",
    "wheel==0.45.1",
]
COMPILED = {"msgpack": "1.2.4", "pydantic-core": "2.50.5", "rpds-py": "2026.9.1"}
OLDER = {"3.10": {"rpds-py": "0.30.0"}}  # rpds-py 2026 needs Python 3.11
DEEPSPEED = "deepspeed==0.19.8"


def download(out: Path, requirements: list[str], python: str) -> None:
    """Wheels of exactly these versions for CPython `python` on x86-64 Linux (no dependencies followed)."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip(out, "--only-binary=:all:", "--implementation", "cp", "--python-version", python, *platforms, *requirements)


def pip(out: Path, *args: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(out), *args]
    subprocess.run(command, check=True)


def tree_bytes() -> int:
    """Bytes of the working tree that every device call carries: tracked files and untracked, not ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    paths = [ROOT / name for name in listed.decode().split("\0") if name]
    return sum(p.stat().st_size for p in paths if p.is_file())


def install_command(out: Path) -> str:
    """What installs the folder's packages on the device, where `python3` is the interpreter that has torch."""
    top = ANY_PYTHON[0]  # jsonschema; DeepSpeed and both their dependencies come from the folder
    return f"DS_BUILD_OPS=0 python3 -m pip install --no-index --find-links {out} {top} {DEEPSPEED}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the wheels (e.g. .whl/gpu)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    others = sorted(p.name for p in out.iterdir() if not p.name.endswith((".whl", ".tar.gz")))
    if others:
        sys.exit(
            f"{out} holds files that are not wheels or source distributions ({', '.join(others[:3])}): "
            "give an empty or new folder"
        )
    for p in out.iterdir():  # an earlier run's: pip would install the newest version it finds, stale or not
        p.unlink()

    download(out, ANY_PYTHON, PYTHONS[-1])
    for python in PYTHONS:
        versions = COMPILED | OLDER.get(python, {})
        download(out, [f"{name}=={version}" for name, version in versions.items()], python)
    pip(out, "--no-binary=:all:", DEEPSPEED)

    files = sorted(out.iterdir())
    for p in files:
        print(f"{p.stat().st_size / 2**20:7.2f} MiB  {p.name}")
    folder, tree = sum(p.stat().st_size for p in files), tree_bytes()
    print(f"{folder / 2**20:7.2f} MiB in {len(files)} files; the working tree carries {tree / 2**20:.2f} MiB more")
    if folder + tree > CARRY_LIMIT:
        sys.exit(
            f"{out} and the working tree come to {(folder + tree) / 2**20:.1f} MiB, over the "
            f"{CARRY_LIMIT / 2**20:.0f} MiB a device call carries"
        )
    print("install on the device, from the repository root:")
    print(install_command(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
