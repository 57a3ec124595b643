"""Verbs about the run and the node rather than a step: the resolved configuration, whether this node can run
it, and GPUs of its own for a command."""

from __future__ import annotations

import argparse
import sys

from pipeline import config as config_mod
from pipeline.io import PipelineError
from pipeline.verbs import arg, verb


@verb("config", "print the resolved configuration")
def cmd_config(args: argparse.Namespace) -> None:
    """Defaults -> preset -> user config, as every verb receives it."""
    print(config_mod.dumps(config_mod.load(args.config)))


@verb(
    "doctor",
    "can this node run the configured experiment? one ok/FAIL line per check",
    config='{"scale": "paper"}',  # by default the experiment that GPU nodes are for
)
def cmd_doctor(args: argparse.Namespace) -> None:
    """Checks of pipeline/doctor.py; any FAIL is an error."""
    from pipeline import doctor

    if not doctor.run(config_mod.load(args.config), args.config):
        raise PipelineError("doctor: this node cannot run the configured experiment (the FAIL lines above)")


@verb(
    "with-gpus",
    "run a command on N GPUs no other job of this machine holds",
    arg("n", type=int, help="GPUs the command needs"),
    arg("command", nargs=argparse.REMAINDER, help="-- command and its arguments"),
)
def cmd_with_gpus(args: argparse.Namespace) -> None:
    """A command on GPUs of its own on a machine whose jobs share several (pipeline/gpus.py)."""
    from pipeline import gpus

    sys.exit(gpus.run_with(args.n, args.command))
