"""The code a `python -m pipeline <verb>` call runs, as one hash: Snakemake reruns a rule when its verb's hash
changes (a `params` entry of every rule, rules/common.smk), so fixing a metric reruns the metrics and the report,
and editing the trainer reruns training, without rerunning what does not run that code.

The unit is a top-level definition, not a module: `report/aggregate.py` holds both the summary (run by aggregate)
and read_csv (run by figures), and `evaluate.py` the evaluation loop run by training, SFT and the evaluate verb, so a
module-level dependency would rerun far more than an edit touches. Starting from the verb's `cmd_*` function in
`pipeline/verbs/`, every definition it names is followed, transitively: a name defined in the same module, a
name imported from a pipeline module (`from pipeline.env import render_prompt`, also from a subpackage's module or a
name a package's `__init__.py` imports: `from pipeline.grading import Grader`), or an attribute of an imported
pipeline module or package (`metrics.summarize`, `grading.extract.first_box_end`). A class counts whole (its methods
are reached through instances). Each definition is hashed as its syntax tree without docstrings, so comments,
docstrings and formatting never rerun anything. Top-level statements that bind no name (e.g. `if` blocks) and
definitions a local decorator registers at import (`@figure("name")`) count for every verb that reaches their
module; `from pipeline.x import name` written in a string (code a subprocess runs, as the grader's workers do)
counts as a use of that name; a data file beside the code named in a reached definition (`"paper_numbers.yaml"`)
counts with its text.

Not followed: `pipeline.config` (what it computes reaches each rule as resolved configuration values, the rule's
config keys), the command line (`__main__.py` and each verb's `@verb(...)` declaration: its arguments' values reach
the rule as its shell line), and other packages (their versions are in each model's provenance).
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
NOT_FOLLOWED = {"pipeline.config"}
# `from pipeline.x import a, b` inside a string: code a subprocess runs (the grader's workers: `python -c ...`)
# a string naming a data file (`Path(__file__).parents[1] / "paper_numbers.yaml"`): its text counts as code
_DATA_FILE = re.compile(r"Constant\(value='([\w-]+\.(?:yaml|json))'\)")
_STRING_IMPORT = re.compile(r"from\s+(pipeline(?:\.\w+)*)\s+import\s+(\w+(?:\s*,\s*\w+)*)")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _registers(decorator: ast.expr, functions: set[str]) -> bool:
    """A decorator made by a call of one of the module's own `functions` (`@figure("name")`) puts the definition in
    a registry at import, where no name reaches it: it counts like a top-level statement."""
    return isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name) and decorator.func.id in functions


def _declares_verb(decorator: ast.expr) -> bool:
    return isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name) and decorator.func.id == "verb"


class _Module:
    """One pipeline module: its top-level definitions (name -> syntax dump, names it uses) and its imports."""

    def __init__(self, name: str, path: Path):
        tree = _strip_docstrings(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        self.name = name
        self.aliases: dict[str, tuple[str, str | None]] = {}  # local name -> (module, attribute or None)
        for node in ast.walk(tree):  # imports anywhere, also inside functions (the verbs import lazily)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    is_module = sub.startswith("pipeline.") and _module_path(sub) is not None
                    self.aliases[a.asname or a.name] = (sub, None) if is_module else (node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = (a.name, None)
        self.units: dict[str, tuple[str, set]] = {}
        self.always: list[tuple[str, set]] = []
        functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):  # `@verb(...)`: the command line
                node.decorator_list = [d for d in node.decorator_list if not _declares_verb(d)]
            unit = (ast.dump(node), self._references(node))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.units[node.name] = unit
                if any(_registers(d, functions) for d in node.decorator_list):  # @figure("name"): runs at import
                    self.always.append(unit)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                for name in names:
                    self.units[name] = unit
                if not names:
                    self.always.append(unit)
            else:
                self.always.append(unit)

    def _references(self, node: ast.AST) -> set[tuple[str, str]]:
        """(module, top-level name) pairs this node uses, within the pipeline package."""
        refs = set()
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute) and (ref := self._attribute(n)):
                refs.add(ref)
            if isinstance(n, ast.Constant) and isinstance(n.value, str):  # code run in a subprocess
                for module, names in _STRING_IMPORT.findall(n.value):
                    refs.update((module, name.strip()) for name in names.split(","))
            if isinstance(n, ast.Name):
                if n.id in self.aliases:
                    module, attr = self.aliases[n.id]
                    if attr is not None:
                        refs.add((module, attr))
                else:
                    refs.add((self.name, n.id))
        return {(m, a) for m, a in refs if m == "pipeline" or m.startswith("pipeline.")}

    def _attribute(self, node: ast.Attribute) -> tuple[str, str] | None:
        """(module, name) that `a.b.c` names when `a` is an imported module: `grading.extract.first_box_end` is
        first_box_end of pipeline.grading.extract; None when the chain names only modules or starts elsewhere."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.insert(0, node.attr)
            node = node.value
        module, attr = self.aliases.get(node.id, (None, None)) if isinstance(node, ast.Name) else (None, None)
        if module is None or attr is not None:
            return None
        for part in parts:
            if _module_path(f"{module}.{part}") is None:
                return module, part
            module = f"{module}.{part}"
        return None


def _module_path(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for path in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def _load(module: str) -> _Module | None:
    if any(module == m or module.startswith(m + ".") for m in NOT_FOLLOWED):
        return None
    path = _module_path(module)
    return _Module(module, path) if path is not None else None


def verb_function(verb: str) -> tuple[str, str]:
    """(module, function) of a `python -m pipeline` verb: `eval-metrics` is cmd_eval_metrics of a module of
    pipeline/verbs/ (read, not imported: hashing a verb never imports torch)."""
    name = "cmd_" + verb.replace("-", "_")
    for path in sorted((PACKAGE / "verbs").glob("*.py")):
        module = f"pipeline.verbs.{path.stem}" if path.stem != "__init__" else "pipeline.verbs"
        if name in _load(module).units:
            return module, name
    return "pipeline.verbs", name


def definitions(verb: str) -> dict[str, str]:
    """`module:name` -> syntax dump of every definition the verb's code reaches (plus `module:<always n>`); a verb
    is a `python -m pipeline` verb (`eval-metrics`) or a module run as `python -m pipeline.<module>`."""
    # `python -m pipeline <verb>` starts at cmd_<verb> in pipeline/verbs/; `python -m pipeline.<module>` at its main
    root = (verb, "main") if verb.startswith("pipeline.") else verb_function(verb)
    main = _load(root[0])
    if main is None or root[1] not in main.units:
        raise KeyError(f"python -m pipeline has no verb {verb!r} (no function {root[1]} in {root[0]})")
    seen: dict[str, str] = {}
    visited_modules: set[str] = set()
    re_exported: set[tuple[str, str]] = set()
    todo = [root]
    while todo:
        module, name = todo.pop()
        if module == "pipeline":  # `from pipeline import x`: x is a module
            module, name = f"pipeline.{name}", None
        mod = _load(module)
        if mod is None:
            continue
        if module not in visited_modules and module != root[0]:  # the root module: only the verb itself
            visited_modules.add(module)
            for i, (dump, refs) in enumerate(mod.always):
                seen[f"{module}:<always {i}>"] = dump
                todo.extend(refs)
        if name is not None and name not in mod.units and name in mod.aliases:  # a package's __init__ imports it
            if (module, name) not in re_exported:
                re_exported.add((module, name))
                todo.append(mod.aliases[name])
            continue
        if name is None or f"{module}:{name}" in seen or name not in mod.units:
            continue
        dump, refs = mod.units[name]
        seen[f"{module}:{name}"] = dump
        todo.extend(refs)
    for dump in list(seen.values()):  # data files beside the code that a reached definition names
        for file in _DATA_FILE.findall(dump):
            for path in PACKAGE.rglob(file):
                seen[f"data:{path.relative_to(PACKAGE)}"] = path.read_text(encoding="utf-8")
    return dict(sorted(seen.items()))


def verb_hash(verb: str) -> str:
    """16 hex digits over the definitions the verb reaches (see the module docstring)."""
    h = hashlib.sha256()
    for key, dump in definitions(verb).items():
        h.update(f"{key}\n{dump}\n".encode())
    return h.hexdigest()[:16]
