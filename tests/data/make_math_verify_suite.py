"""Writes tests/data/math_verify_suite.json: the (gold, prediction, expected) cases of Math-Verify's own test suite.

Usage: python tests/data/make_math_verify_suite.py GIT_DIR [COMMIT]
GIT_DIR is a clone (or bare mirror) of https://github.com/huggingface/Math-Verify; COMMIT defaults to HEAD.

Only the data is kept: the `@pytest.mark.parametrize` rows of the tests that compare a gold with a prediction
(`compare_strings(...)` or `verify(parse(gold), parse(pred))`), read with `ast.literal_eval` (the one row built
with an f-string is evaluated with `math` in scope), and of those only the rows the project can be held to:
LaTeX extraction among the test's match types (19 rows test the expression extractor alone, which the project never
uses), default precision (6), strict comparison, no set-relation comparison.  Nothing of Math-Verify's code is copied.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

FILES = ("test_all", "test_boxed", "test_numina_cases", "test_open_thoughts", "test_strict", "test_yujianll")
OUT = Path(__file__).with_name("math_verify_suite.json")


def rows(source: str, file: str):
    """(test name, gold, pred, expected, options) for every parametrized gold/prediction row of one test file."""
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        calls = [
            n for n in ast.walk(node) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "compare_strings"
        ]
        keywords = {k.arg: k.value for k in calls[0].keywords} if calls else {}
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize"):
                continue
            names = [n.strip() for n in ast.literal_eval(decorator.args[0]).split(",")]
            try:
                values = ast.literal_eval(decorator.args[1])
            except ValueError:  # f"{math.sqrt(17):.15f}"
                values = eval(compile(ast.Expression(decorator.args[1]), file, "eval"), {"math": math})
            for value in values:
                row = dict(zip(names, value))
                options = {}
                for key, expr in keywords.items():
                    if isinstance(expr, ast.Name) and expr.id in row:
                        options[key] = row[expr.id]
                    else:
                        options[key] = ast.literal_eval(expr)
                yield node.name, row["gold"], row["pred"], int(row.get("expected", row.get("result"))), options


def usable(options: dict) -> bool:
    return (
        "latex" in options.get("match_types", ["latex"])
        and options.get("precision", 6) == 6
        and options.get("strict", True)
        and not options.get("allow_set_relation_comp", False)
    )


def main(git_dir: str, commit: str = "HEAD") -> None:
    def show(path: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
        ).stdout

    sha = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", commit], check=True, capture_output=True, text=True
    ).stdout.strip()
    cases, skipped = [], 0
    for file in FILES:
        for test, gold, pred, expected, options in rows(show(f"tests/{file}.py"), file):
            if usable(options):
                cases.append({"test": f"{file}::{test}", "gold": gold, "pred": pred, "expected": expected})
            else:
                skipped += 1
    note = {
        "source": "https://github.com/huggingface/Math-Verify",
        "commit": sha,
        "files": [f"tests/{f}.py" for f in FILES],
        "licence": "Apache-2.0 (the repository's LICENCE file; tests/test_all.py carries an MIT header, "
        "Copyright (c) 2024 The HuggingFace Team)",
        "what": "the (gold, pred, expected) rows of the suite's parametrized gold/prediction tests, unchanged; "
        "written by tests/data/make_math_verify_suite.py",
        "left_out": f"{skipped} rows: expression extractor only, non-default precision, strict=False, "
        "allow_set_relation_comp=True",
    }
    OUT.write_text(json.dumps({"note": note, "cases": cases}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases ({skipped} left out) from {sha} -> {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
