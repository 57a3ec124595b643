"""What the Snakemake workflow's rules are given, computed from the resolved configuration: the config values a rule
depends on, the file every step reads, the jobs' scheduler requests, environments and launch lines.

Pure functions, imported by rules/common.smk (which holds the wiring: paths, inputs, targets) and tested in
tests/test_workflow_helpers.py. No verb imports this module, so editing it reruns no rule (pipeline.codehash).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


def config_values(resolved: Mapping, keys: Sequence[str], scale: str, derived: Mapping[str, object]) -> str:
    """The values of the dotted config `keys` in `resolved` (a name of `derived` for a value computed from several
    keys), and the scale, as JSON: a rule's `config_keys` param, which changes exactly when one of its keys does.
    """
    subset: dict = {"scale": scale}
    for key in keys:
        if key in derived:
            subset[key] = derived[key]
            continue
        src, dst = resolved, subset
        *parents, leaf = key.split(".")
        for part in parents:
            src = src[part]
            dst = dst.setdefault(part, {})
        dst[leaf] = src[leaf]
    return json.dumps(subset, sort_keys=True)
