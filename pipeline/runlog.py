"""TensorBoard views of a training run (RL and SFT): scalars under the names they are logged with (`train/`,
`ppo/`, `perf/`, `heldout/`, `sft/`), the resolved configuration as hyper-parameters and as text, and a few
sample dialogues as text, so a run can be read without opening its files.

`tensorboard --logdir results/<experiment>` shows every run of an experiment (RL runs under `runs/`, the SFT of
the tiny base model inside its model folder).

Beside TensorBoard, an RL run can log its scalars to the trackers of config `trackers` (wandb, trackio; none by
default) through accelerate's tracker classes (`open_trackers`): project = the experiment, run = <variant>_s<seed>,
the flattened configuration as the run's config. They are configured by their own environment variables
(WANDB_MODE=offline writes the run under the run folder's wandb/ for a later `wandb sync`; WANDB_API_KEY,
TRACKIO_DIR, ...). Neither package is a core dependency: `pip install -e '.[tracking]'`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.dialogue import Dialogue
from pipeline.io import PipelineError


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


def open_trackers(names: Sequence[str], run_dir: Path, project: str, run: str, config: Mapping[str, Any]) -> list:
    """Started accelerate trackers (`accelerate.tracking.GeneralTracker`) for `names` (config `trackers`), each
    given the flattened `config`. wandb writes under `run_dir` and resumes the run of the same id, so a resumed
    training run continues its wandb run (steps it logs again are dropped by wandb as already seen)."""
    if not names:
        return []
    check_trackers(names)
    from accelerate import PartialState
    from accelerate.tracking import TrackioTracker, WandBTracker

    # accelerate's trackers log through its logger, which needs its process state; made from the environment
    # (torchrun's RANK, WORLD_SIZE), after pipeline.distributed has joined the process group, on rank 0 alone
    PartialState()
    flat, started = flatten(config), []
    for name in names:
        if name == "wandb":  # wandb.init(project=..., **kwargs)
            run_id = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{project}-{run}")[:64]
            tracker = WandBTracker(project, name=run, id=run_id, resume="allow", dir=str(run_dir), config=flat)
        else:  # trackio.init(project=..., **kwargs)
            tracker = TrackioTracker(project, name=run, resume="allow", config=flat)
        tracker.start()
        started.append(tracker)
    return started


def check_trackers(names: Sequence[str]) -> None:
    """Config `trackers` names packages of the optional `tracking` extra: a clear error, before any work, when one
    (or accelerate, which drives them) is not installed."""
    import importlib.util

    missing = [m for m in ("accelerate", *names) if names and importlib.util.find_spec(m) is None]
    if missing:
        raise PipelineError(
            f"trackers {list(names)}: {', '.join(missing)} not installed; pip install -e '.[tracking]', or remove "
            "them from trackers"
        )


def track(trackers: Sequence, record: Mapping[str, Any]) -> None:
    """One log record ({"step": s, "train/reward": ...}) to each tracker, its numbers at its step."""
    values = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
    for tracker in trackers:
        tracker.log(values, step=record["step"])


def finish(trackers: Sequence) -> None:
    """End the trackers' runs (wandb: the run file is complete once the process exits)."""
    for tracker in trackers:
        tracker.finish()


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
