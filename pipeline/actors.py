"""The actors a training run keeps besides its checkpoints: the best on the validation split (`eval.checkpoint:
best_heldout`), the actors of the k-attempt learning curves (`eval.curve_steps`), and the final model folder that
the evaluation reads. Each is a save_pretrained folder written atomically by the main rank. `trainer` is always a
`train.Trainer` (not imported here: train.py imports this module)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline import card, models, provenance
from pipeline import distributed as dist
from pipeline.checkpoint import step_name
from pipeline.io import DataError, atomic_path, read_json, write_json, write_jsonl

log = logging.getLogger(__name__)


def save_actor(trainer, folder: Path) -> None:
    """The trainer's actor as a model folder (save_pretrained + tokenizer), written atomically by the main rank."""
    with trainer.actor.full_parameters() as actor:  # collective under ZeRO-3
        if dist.is_main():
            with atomic_path(folder) as tmp:
                models.save(actor.lm, trainer.tokenizer, tmp)
    dist.barrier()


class BestActor:
    """eval.checkpoint best_heldout: the actor with the best validation accuracy so far (the first of equals),
    saved in `folder` with best.json when it is reached. A resumed run takes the best so far from the log it
    resumes; if the folder holds another step's actor (a run killed between a new best and its checkpoint), the
    choice starts again from the resumed step, with a warning."""

    def __init__(self, folder: Path, records: Sequence[Mapping]):
        self.folder, self.accuracy, self.step = folder, -1.0, None
        checks = [(r["validation/accuracy"], -r["step"]) for r in records if "validation/accuracy" in r]
        if checks:
            accuracy, step = max(checks)[0], -max(checks)[1]
            saved = read_json(folder / "best.json") if (folder / "best.json").is_file() else {}
            if saved.get("step") == step:
                self.accuracy, self.step = accuracy, step
            else:
                log.warning(
                    "%s holds step %s, not the best of the resumed log (step %d): choosing again from here",
                    folder,
                    saved.get("step"),
                    step,
                )

    def offer(self, trainer, metrics: Mapping) -> None:
        """Keep the trainer's actor if its validation accuracy in `metrics` beats the best so far."""
        if metrics["validation/accuracy"] <= self.accuracy:
            return
        self.accuracy, self.step = metrics["validation/accuracy"], trainer.step
        save_actor(trainer, self.folder)
        if dist.is_main():
            write_json(self.folder / "best.json", self.chosen())

    def chosen(self) -> dict:
        return {"step": self.step, "validation_accuracy": self.accuracy}


def write_model_folder(
    trainer, actor, out: str | Path, records: list[dict], summary: dict, best: BestActor | None
) -> None:
    """The trained model folder, whole or not at all: the final actor (or the best on the validation split, saved
    when it was reached), the curves' actors under steps/, the log, the summary, provenance and the card."""
    with atomic_path(out) as tmp:
        if best is None:
            models.save(actor.lm, trainer.tokenizer, tmp)
        else:
            shutil.copytree(best.folder, tmp, dirs_exist_ok=True)
        for step in sorted(trainer.cfg.eval.curve_steps):
            kept = trainer.run_dir / "curve" / step_name(step)
            if not (kept / "config.json").is_file():
                raise DataError(
                    f"eval.curve_steps: no actor of step {step} in {kept.parent} (the run had passed that "
                    "step before it was asked for); train again with train.resume: never"
                )
            shutil.copytree(kept, tmp / "steps" / step_name(step))
        write_jsonl(tmp / "train_log.jsonl", records)
        write_json(tmp / "train_summary.json", summary)
        provenance.write(tmp, trainer.provenance)
        best_step = None if best is None else best.step
        card.write(tmp, card.trained(trainer.provenance, Path(out).name, f"`{trainer.base}`", summary, best_step))
