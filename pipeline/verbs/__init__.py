"""The `python -m pipeline` verbs, one module per step of the workflow (data, models, train, evaluate, report)
and one for the node (config, doctor, with-gpus).

A verb is a `cmd_<name>` function declared with `@verb(name, help, *arguments)` beside its body, so its command
line, its rule's shell line and its code read together. Verbs stay thin: read the inputs, call the module that does
the work, write, log one line. Modules here import only light things at the top and each verb imports what it
needs in its body, so `python -m pipeline --help` and the report's environment never load torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Sequence
from types import ModuleType

log = logging.getLogger("pipeline")


@dataclasses.dataclass(frozen=True)
class Verb:
    name: str
    help: str
    fn: Callable[[argparse.Namespace], None]
    arguments: tuple[tuple[tuple[str, ...], dict], ...]
    config: str | None  # the default of --config (None: the verb reads none)


VERBS: dict[str, Verb] = {}


def arg(*flags: str, **options) -> tuple[tuple[str, ...], dict]:
    """One argument of a verb, as `argparse.ArgumentParser.add_argument` takes it."""
    return flags, options


def verb(name: str, help: str, *arguments: tuple[tuple[str, ...], dict], config: str | None = "config.yaml"):
    """Register the decorated function as `python -m pipeline <name>`; every verb takes `--config` too."""

    def register(fn: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
        if name in VERBS:
            raise ValueError(f"verb {name!r} is declared twice ({VERBS[name].fn.__module__}, {fn.__module__})")
        VERBS[name] = Verb(name, help, fn, arguments, config)
        return fn

    return register


def parser(description: str, modules: Sequence[ModuleType]) -> argparse.ArgumentParser:
    """The command line of every registered verb, in the order of the `modules` that declare them."""
    top = argparse.ArgumentParser(prog="python -m pipeline", description=description)
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")
    order = [m.__name__ for m in modules]
    for v in sorted(VERBS.values(), key=lambda v: order.index(v.fn.__module__)):
        p = verbs.add_parser(v.name, help=v.help, description=v.help)
        p.add_argument("--config", default=v.config, help="YAML file or inline JSON mapping")
        for flags, options in v.arguments:
            p.add_argument(*flags, **options)
        p.set_defaults(fn=v.fn)
    return top


# Arguments several verbs share.
MODEL = arg("--model", required=True, help="model folder or hub id")
NAME = arg("--name", required=True, help="the model's name in the json: base or <variant>_s<seed>")
DATA = arg("--data", required=True, help="evaluation questions (jsonl)")
BENCHMARK = arg("--benchmark", required=True, help="name recorded in the traces")
THREADS = arg("--threads", type=int, default=None, help="torch CPU threads")
OUT_MODEL = arg("--out", required=True, help="output model folder (save_pretrained layout)")


def threads(n: int | None, cpu: int = 1) -> None:
    """Torch threads of a computing verb (on CPU a fixed `cpu`: pipeline.numerics), and what it computes with,
    in its log."""
    from pipeline import numerics

    numerics.set_threads(n, cpu)
    state = numerics.state()
    level = logging.INFO if state["portable"] or state["device"] == "cuda" else logging.WARNING
    log.log(level, "numerics: %s", numerics.describe(state))
