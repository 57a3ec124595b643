"""The command line and the package's shape: every verb the rules call is declared once in pipeline/verbs/ and
listed by `python -m pipeline --help`; no module or function grows past what one reading takes (issue 31)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from pipeline import codehash
from pipeline.__main__ import VERB_MODULES
from pipeline.verbs import VERBS
from tests.conftest import ROOT

MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_MAIN_LINES = 600, 80, 300


def test_help_lists_every_verb():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    listed = re.findall(r"^    ([a-z][a-z-]+)\s", out.stdout, flags=re.M)
    assert listed == [v.name for m in VERB_MODULES for v in VERBS.values() if v.fn.__module__ == m.__name__]
    assert set(listed) == set(VERBS) and len(VERBS) >= 20


def test_every_verb_a_rule_calls_is_declared_in_pipeline_verbs():
    called = set()
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        called |= set(re.findall(r"-m pipeline ([a-z][a-z-]+)", smk.read_text()))
    assert called and called <= set(VERBS), called - set(VERBS)
    for name in called:  # the code hash of each rule starts at its verb's function
        module, function = codehash.verb_function(name)
        assert module.startswith("pipeline.verbs") and VERBS[name].fn.__name__ == function


@pytest.mark.parametrize("path", sorted((ROOT / "pipeline").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_readable(path):
    text = path.read_text(encoding="utf-8")
    limit = MAX_MAIN_LINES if path.name == "__main__.py" else MAX_MODULE_LINES
    assert len(text.splitlines()) <= limit, f"{path.name}: {len(text.splitlines())} lines (at most {limit})"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
