"""Seeds of a run's random streams, all derived one way from the run's seed.

`derive_seed(run_seed, "rollout", step, rank)` names a stream by its parts; different parts give unrelated
streams, and the same parts the same seed in every process and Python run (a hash of the parts' text: never
Python's `hash()`, which is salted per process).
"""

from __future__ import annotations

import hashlib


def derive_seed(run_seed: int, *parts: int | str) -> int:
    """The seed of the stream named by `parts` in the run seeded `run_seed`, in [0, 2**31) (vLLM's request seeds
    and torch generators accept it)."""
    text = "/".join(str(p) for p in (run_seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 2**31
