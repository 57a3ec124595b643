"""The README's layout map matches the tree, and every relative link of the README and docs/ resolves, anchors
included. `pytest tests/test_readme.py -q`"""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "reports" / "README.md"]
NOT_IN_GIT = {"resources/hf/"}  # named in the map, made by runs; .gitignore keeps it out


def _layout() -> list[str]:
    """The paths the map's lines start with: `name  purpose`, `a, b  purpose`; indented lines sit under the last
    unindented folder."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"^## Layout\n.*?^```\n(.*?)^```", text, flags=re.M | re.S)
    assert block, "README.md has no ## Layout section with a code block"
    paths, parent = [], ""
    for line in block[1].splitlines():
        indented = line.startswith("  ")
        names = re.split(r"\s{2,}", line.strip())[0]
        for name in names.split(", "):
            if not indented:
                parent = name if name.endswith("/") else ""
            paths.append(parent + name if indented else name)
    return paths


def _module(path: str) -> str:
    """A module and a package of that name are one thing to a reader: `report.py` and `report/`."""
    return path.removesuffix("/").removesuffix(".py")


def _exists(path: str) -> bool:
    p = ROOT / path.removesuffix("/")
    return p.exists() or (path.endswith(".py") and (ROOT / _module(path)).is_dir()) or Path(f"{p}.py").is_file()


def test_every_path_the_layout_names_exists():
    paths = _layout()
    assert len(paths) == len(set(paths)), "a path is named twice"
    missing = [p for p in paths if p not in NOT_IN_GIT and not _exists(p)]
    assert not missing, f"README.md's layout names paths the tree lacks: {missing}"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert all(f"/{p.split('/')[0]}/" in ignored for p in NOT_IN_GIT)


def test_the_layout_names_every_tracked_entry_of_the_root_and_of_pipeline():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    top = {p.split("/")[0] + ("/" if "/" in p else "") for p in tracked}
    inside = [p.split("/", 2) for p in tracked if p.startswith("pipeline/")]
    package = {f"pipeline/{parts[1]}" + ("/" if len(parts) > 2 else "") for parts in inside}
    named = {_module(p) for p in _layout()} | {_module(p).split("/")[0] for p in _layout()}
    unnamed = sorted(p for p in top | package if _module(p) not in named)
    assert not unnamed, f"README.md's layout does not name {unnamed}: add a line for each"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_every_relative_link_and_anchor_of_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_stays_a_guide():
    """About 250 lines; the handbook lives in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 280


def _blocks(language: str) -> list[tuple[str, str]]:
    return [
        (page.name, block)
        for page in PAGES
        for block in re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.M | re.S)
    ]


def test_the_python_blocks_of_the_readme_and_docs_are_formatted_code_and_the_yaml_blocks_parse():
    """Python blocks pass `ruff format --check` (pyproject.toml's settings); yaml blocks load ("..." elides)."""
    assert _blocks("python") and _blocks("yaml")
    for page, block in _blocks("python"):
        compile(block, page, "exec")
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--check", "--stdin-filename", "block.py", "-"],
            input=block,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 0, f"{page}: a python block is not ruff-formatted:\n{block}"
    for _, block in _blocks("yaml"):
        yaml.safe_load(block)
