"""Checkpoints of a training run: written atomically, resumed only under the settings they were written with.

`run_dir/checkpoints/step_NNNNNN/` holds actor/ (+ critic/) in `save_pretrained` format, actor_engine/
(+ critic_engine/) with what `distributed.Optimized.save` writes (optimizer and schedule; on several processes
DeepSpeed's sharded checkpoint, weights included), trainer_state.pt (step, fingerprint, RNG states),
train_log.jsonl (the log so far) and provenance.json. A checkpoint appears under its final name only complete.

Checkpoints are never deleted to make way for a change of configuration: one written under other settings is
refused with the differing keys named (`resume: never` starts over, and the earlier checkpoints go only once the
new run has written its first). `steps` alone may change (see `NOT_IN_FINGERPRINT`): raised, training continues
from the last checkpoint; lowered below it, it is refused.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline import distributed as dist
from pipeline import hub, models, provenance
from pipeline.config import Config
from pipeline.io import DataError, OutputError, load_tensors, read_jsonl, write_jsonl

log = logging.getLogger(__name__)

# Settings that do not change the weights of the steps a checkpoint holds: one written under other values still
# resumes. (`steps` only sets how far training goes on, and so the length of the schedule from here.)
NOT_IN_FINGERPRINT = ("steps", "eval_every", "eval_questions", "save_every", "keep_checkpoints", "resume")


def step_name(step: int) -> str:
    """The folder of a step's checkpoint (and of a curve actor, eval.curve_steps): step_000040."""
    return f"step_{step:06d}"


def fingerprint(cfg: Config, variant: str, seed: int, base: str, processes: int) -> dict:
    """What a checkpoint must share with this run to be resumed, keyed like the config where it is config."""
    c = cfg.to_dict()
    return {
        "variant": variant,
        "seed": seed,
        "base": str(base),
        # the hub revision of a hub base (model.revision); absent when none is set, as in fingerprints before it
        **({"base_revision": rev} if (rev := hub.model_revision(cfg, base)) else {}),
        "processes": processes,
        "env": c["env"],
        "variants": {variant: c["variants"][variant]},
        "rollout": {"backend": cfg.rollout.backend, "max_model_len": cfg.rollout.max_model_len},
        "train": {k: v for k, v in c["train"].items() if k not in NOT_IN_FINGERPRINT},
        # questions held out of training for eval.checkpoint best_heldout (0: none)
        "validation": cfg.eval.validation_questions if cfg.eval.checkpoint == "best_heldout" else 0,
    }


class Checkpoints:
    """The checkpoints of one run (`run_dir/checkpoints`), for a run of the given fingerprint; each holds the
    run's tokenizer and provenance beside the models."""

    def __init__(self, run_dir: str | Path, fingerprint: dict, keep: int, tokenizer, prov: Mapping):
        self.folder, self.fingerprint, self.keep = Path(run_dir) / "checkpoints", fingerprint, keep
        self.tokenizer, self.provenance = tokenizer, prov
        self.earlier: list[Path] = []  # checkpoints of an earlier run this one replaces (resume: never)

    def latest(self) -> Path | None:
        done = sorted(p for p in self.folder.glob("step_*") if (p / "trainer_state.pt").is_file())
        return done[-1] if done else None

    def start_over(self) -> None:
        """Train from step 0 (`resume: never`); checkpoints already here stay until this run's first replaces
        them, so a run that stops before that has lost nothing."""
        self.earlier = sorted(p for p in self.folder.glob("step_*") if p.is_dir())
        if self.earlier:
            log.warning(
                "train.resume is never: starting over; the %d checkpoints in %s stay until this run writes its first",
                len(self.earlier),
                self.folder,
            )

    def save(self, step: int, actor: dist.Optimized, critic: dist.Optimized | None, records: Sequence[Mapping]) -> Path:
        """step_NNNNNN/ for `step`, with the log so far (`records`); atomic rename (collective: every rank calls).

        A checkpoint that cannot be written (disk full, unwritable folder) leaves nothing behind and raises
        OutputError; the checkpoints written before are untouched, so a rerun resumes from the last of them.
        The first checkpoint of a run that started over (`resume: never`) replaces the earlier run's.
        """
        final = self.folder / step_name(step)
        tmp = self.folder / f".{step_name(step)}.tmp"
        try:
            self._write(tmp, step, actor, critic, records)
            if dist.is_main():
                if final in self.earlier:  # the earlier run's checkpoint of this step: this one replaces it
                    shutil.rmtree(final)
                tmp.rename(final)  # complete checkpoints only ever appear under their final name
        except Exception as e:
            if dist.is_main():
                shutil.rmtree(tmp, ignore_errors=True)
            last = self.latest()
            kept = f"the last complete checkpoint, {last}, is intact" if last else "there is no earlier checkpoint"
            raise OutputError(f"checkpoint {final} could not be written ({type(e).__name__}: {e}); {kept}") from e
        if dist.is_main():
            for old in self.earlier:
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
            kept = sorted(p for p in self.folder.glob("step_*") if p.is_dir())
            for old in kept[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.earlier = []
        dist.barrier()
        return final

    def _write(self, tmp: Path, step: int, actor: dist.Optimized, critic: dist.Optimized | None, records) -> None:
        if dist.is_main():
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        with actor.full_parameters() as policy:
            if dist.is_main():
                models.save(policy.lm, self.tokenizer, tmp / "actor")
        if critic is not None:
            with critic.full_parameters() as module:
                if dist.is_main():
                    module.save_pretrained(tmp / "critic")
        actor.save(tmp / "actor_engine")
        if critic is not None:
            critic.save(tmp / "critic_engine")
        dist.barrier()
        if dist.is_main():
            write_jsonl(tmp / "train_log.jsonl", records)
            provenance.write(tmp, self.provenance)
            state = {
                "step": step,
                "fingerprint": self.fingerprint,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            }
            torch.save(state, tmp / "trainer_state.pt")

    def resume(self, actor: dist.Optimized, critic: dist.Optimized | None, steps: int) -> tuple[int, list[dict]]:
        """Continue from the last complete checkpoint: restore the models, optimizers and RNG states; returns its
        step and log ((0, []) when there is none to continue).

        Refused, with nothing deleted: a checkpoint written under another configuration, or one past `steps`
        (resuming cannot take steps back).
        """
        path = self.latest()
        if path is None:
            return 0, []
        try:
            state = load_tensors(path / "trainer_state.pt")
            missing = {"fingerprint", "step", "rng"} - set(state)
            if missing:
                raise KeyError(f"trainer_state.pt lacks {sorted(missing)}")
            if not isinstance(state["fingerprint"], dict):
                raise TypeError("trainer_state.pt was written by an earlier version of the pipeline")
            records = [r for _, r in read_jsonl(path / "train_log.jsonl")]
        except Exception as e:
            raise _unusable(path, e) from e
        changed = differences(state["fingerprint"], self.fingerprint)
        if changed:
            raise DataError(
                f"checkpoint {path} was written under another configuration, so it is not resumed:\n  "
                + "\n  ".join(changed)
                + "\n  Nothing was deleted. Train into a new run directory to keep it, or "
                "set train.resume: never to start over in this one"
            )
        if state["step"] > steps:
            raise DataError(
                f"train.steps: {steps} is below the step of the last checkpoint, {path} (step {state['step']}), "
                f"and resuming cannot undo steps; set train.steps to at least {state['step']}, train into a new run "
                "directory, or set train.resume: never to start over"
            )
        try:
            actor.load(path / "actor_engine", lambda: models.Policy(models.load(path / "actor")[0]).state_dict())
            if critic is not None:
                critic.load(path / "critic_engine", lambda: models.Critic.from_pretrained(path / "critic").state_dict())
        except Exception as e:
            raise _unusable(path, e) from e
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        log.info("resumed from %s (step %d)", path, state["step"])
        return state["step"], records


def differences(old: Any, new: Any, key: str = "") -> list[str]:
    """`key.path: old -> new` for every value that differs between two nested mappings (lists compare whole)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return [
            line
            for k in sorted(set(old) | set(new))
            for line in differences(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{key}.{k}" if key else k)
        ]
    return [] if old == new else [f"{key}: {_shown(old)} -> {_shown(new)}"]


_ABSENT = object()


def _shown(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


def _unusable(path: Path, e: Exception) -> DataError:
    return DataError(
        f"checkpoint {path} cannot be resumed ({type(e).__name__}: {e}); delete that folder to resume "
        "from the checkpoint before it, or set train.resume: never to start over"
    )
