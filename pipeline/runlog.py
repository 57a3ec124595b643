"""TensorBoard views of a training run (RL and SFT): scalars under the names they are logged with (`train/`,
`ppo/`, `perf/`, `heldout/`, `sft/`), the resolved configuration as hyper-parameters and as text, and a few
sample dialogues as text, so a run can be read without opening its files.

`tensorboard --logdir results/<experiment>` shows every run of an experiment (RL runs under `runs/`, the SFT of
the tiny base model inside its model folder).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.env import Dialogue


def open_writer(folder: Path, config: Mapping[str, Any], step: int = 0):
    """A SummaryWriter on `folder` (events past `step` from an earlier, killed session are dropped), with the
    configuration logged once per session: as hyper-parameters (the HPARAMS tab compares runs) and as text."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    writer = SummaryWriter(str(folder), purge_step=step)
    flat = flatten(config)
    for summary in hparams(flat, {"heldout/mean": 0.0}):  # into this run's folder, not a subfolder per call
        writer.file_writer.add_summary(summary)
    text = json.dumps(config, indent=2, sort_keys=True)
    writer.add_text("config", "    " + text.replace("\n", "\n    "), step)  # indented: markdown code block
    return writer


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """{"train": {"steps": 200}} -> {"train.steps": 200}; lists and empty values as text (hparams takes scalars)."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float, str, bool)):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


def scalars(writer, record: Mapping[str, Any]) -> None:
    """One log record ({"step": s, "train/reward": ...}) as scalars at its step."""
    for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)):
            writer.add_scalar(key, value, record["step"])


def write_history(folder: Path, config: Mapping[str, Any], history: Sequence[Mapping], prefix: str) -> None:
    """A finished run's logged records ({"step": s, "loss": ...}) as scalars named `prefix + key` (SFT: `sft/`)."""
    with open_writer(folder, config) as writer:
        for record in history:
            scalars(writer, {"step": record["step"], **{prefix + k: v for k, v in record.items() if k != "step"}})


def dialogues_text(dialogues: Sequence[Dialogue]) -> str:
    """Dialogues as TensorBoard markdown: each turn's role and text (as code, so LaTeX and markup show as
    written), then how it ended and its reward."""
    blocks = []
    for d in dialogues:
        turns = [
            f"**{s.role.name.lower()}** (attempt {s.attempt + 1})\n\n    " + s.text.replace("\n", "\n    ")
            for s in d.segments
        ]
        blocks.append(
            "\n\n".join(
                [f"### {d.id}: {d.n_allowed} attempts allowed", *turns, f"*{d.stop_reason}, reward {d.reward}*"]
            )
        )
    return "\n\n---\n\n".join(blocks)
