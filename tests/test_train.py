"""RL training, run for real on a tiny Qwen2: the CLI's outputs and provenance, resume after SIGKILL (same weights
as an uninterrupted run), checkpoints that are never deleted for a change of configuration and never run code,
raising train.steps, the paper preset's §4 values, variant equivalence, and a 2-process DeepSpeed ZeRO-2 run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from pipeline import config, data, distributed, models
from pipeline import train as train_mod
from pipeline.distributed import Optimized, deepspeed_checkpoint_classes
from pipeline.grading import Grader
from pipeline.io import DataError, load_tensors
from pipeline.time_limit import TimeLimit, TimeLimitReached
from tests import tensorboard_events
from tests.conftest import ROOT
from tests.test_bad_input import assert_clean
from tests.test_workflow import snakemake

VARIANTS = ("multi_attempt", "baseline")

SPEC = ROOT.parent / "shared" / "docs" / "paper-spec.md"

# A few dialogues per step; PPO, so the critic and its checkpoints are exercised too, and an untrained model
# (every reward -1) still gets non-zero advantages from its critic.
SMALL = {
    "train": {
        "algorithm": "ppo",
        "steps": 6,
        "rollout_batch": 8,
        "samples_per_prompt": 2,
        "train_batch": 16,
        "micro_batch": 8,
        "save_every": 2,
        "eval_every": 3,
        "eval_questions": 16,
        "actor_lr": 1e-3,
        "critic_lr": 1e-3,
    },
    "eval": {"batch_size": 16},
}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("task")
    train, heldout = data.synthetic_splits(0, 200, 16, 3)
    data.write_records(folder / "train.jsonl", train)
    data.write_records(folder / "heldout.jsonl", heldout)
    return folder


def train_cmd(task: Path, base: Path, run: Path, out: Path, cfg: dict, variant: str = "multi_attempt") -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "--config",
        json.dumps(cfg),
        "--variant",
        variant,
        "--seed",
        "0",
        "--base",
        str(base),
        "--train-data",
        str(task / "train.jsonl"),
        "--heldout",
        str(task / "heldout.jsonl"),
        "--run-dir",
        str(run),
        "--out",
        str(out),
        "--threads",
        "1",
    ]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def fails(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) by relative path -> sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def scheduled_lrs(cfg: dict, total: int) -> list[float]:
    """The learning rate after each of `total` optimizer steps, by transformers' schedule as the trainer builds it."""
    t = config.resolve(cfg).train
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=t.actor_lr)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, math.ceil(t.warmup_ratio * total), total, min_lr_rate=t.min_lr_ratio
    )
    out = []
    for _ in range(total):
        optimizer.step()
        schedule.step()
        out.append(optimizer.param_groups[0]["lr"])
    return out


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def log_lines(path: Path) -> list[dict]:
    """The log without wall-clock figures, which differ between runs."""
    timing = {"perf/rollout_s", "perf/step_s", "perf/tokens_per_s"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in path.read_text().splitlines()]


def kill_after_checkpoints(cmd: list[str], run_dir: Path, out: Path, times: int, seed: int = 0) -> int:
    """Start `cmd` up to `times` times; each time, SIGKILL it and every process under it a random moment after it
    wrote a new checkpoint, as a job's end kills them all. Returns how often it was killed before it finished.
    (torchrun starts each worker in a session of its own: killing its process group alone left the workers
    training, and writing checkpoints beside the rerun.)"""
    rng, kills = random.Random(seed), 0
    while kills < times and not out.exists():
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        before = {p.name for p in (run_dir / "checkpoints").glob("step_*")}
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if {p.name for p in (run_dir / "checkpoints").glob("step_*")} - before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is None:
            tree = psutil.Process(proc.pid).children(recursive=True)
            os.killpg(proc.pid, signal.SIGKILL)
            for child in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            psutil.wait_procs(tree, timeout=30)
            kills += 1
        proc.wait()
    return kills


def test_train_cli_writes_model_log_and_tensorboard(task, tiny_model_dir, tmp_path):
    cfg = {**SMALL, "train": {**SMALL["train"], "algorithm": "grpo", "steps": 3}}
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model", cfg))
    model, _ = models.load(tmp_path / "model")  # the folder evaluation loads
    assert models.n_params(model) > 0
    log = [json.loads(line) for line in (tmp_path / "model" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3]
    assert "heldout/mean" in log[0] and "heldout/mean" in log[-1]
    for key in (
        "train/reward",
        "train/accuracy",
        "train/attempts_on_success",
        "train/attempts_on_failure",
        "ppo/kl",
        "ppo/entropy",
        "ppo/policy_loss",
        "ppo/clip_frac",
        "ppo/approx_kl",
        "train/response_tokens",
        "perf/tokens_per_s",
        "train/lr",
        "train/token_mismatch_rate",
    ):
        assert key in log[1], key
    assert all(r["train/token_mismatch_rate"] == 0 for r in log[1:])
    assert "ppo/value_loss" not in log[1] and "ppo/explained_variance" not in log[1]  # grpo has no critic
    # TensorBoard: the log's keys as tags, the resolved configuration as hyper-parameters and text, and sample
    # training dialogues (turn by turn, with their roles) at each held-out evaluation
    board = tmp_path / "run" / "tensorboard"
    found = tensorboard_events.tags(board)
    assert {"train/reward", "ppo/clip_frac", "perf/tokens_per_s", "heldout/mean"} <= set(found["scalars"]), found
    assert {"train.actor_lr", "env.feedback_template", "variants.multi_attempt.max_attempts"} <= set(found["hparams"])
    assert (
        json.loads(tensorboard_events.text(board, "config")[0].replace("\n    ", "\n")) == config.resolve(cfg).to_dict()
    )
    dialogues = tensorboard_events.text(board, "train/dialogues")
    assert dialogues and "**prompt** (attempt 1)" in dialogues[0] and "**policy**" in dialogues[0]
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["variant"] == "multi_attempt"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000002", "step_000003"]
    for folder in (tmp_path / "model", tmp_path / "run" / "checkpoints" / "step_000003"):
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["config"] == config.resolve(cfg).to_dict(), folder
        assert "commit" in prov["code"] and "dirty" in prov["code"]
        assert prov["versions"]["torch"] == torch.__version__
        assert prov["command"][1:3] == ["train", "--config"] and prov["host"] and prov["time_utc"]


@pytest.fixture(scope="module")
def full(task, tiny_model_dir, tmp_path_factory) -> Path:
    """An uninterrupted run of SMALL: its run folder and model under the returned folder."""
    full = tmp_path_factory.mktemp("full")
    run(train_cmd(task, tiny_model_dir, full / "run", full / "model", SMALL))
    assert not torch.equal(weights(full / "model")["model.norm.weight"], weights(tiny_model_dir)["model.norm.weight"])
    return full


def test_resume_after_sigkill_ends_with_the_same_weights(task, tiny_model_dir, full, tmp_path):
    """Kill the run (SIGKILL) at random moments, several times, rerun until done: same weights, same log."""

    killed = tmp_path / "killed"
    cmd = train_cmd(task, tiny_model_dir, killed / "run", killed / "model", SMALL)
    assert kill_after_checkpoints(cmd, killed / "run", killed / "model", times=2) >= 1
    run(cmd)
    a, b = weights(full / "model"), weights(killed / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert log_lines(full / "model" / "train_log.jsonl") == log_lines(killed / "model" / "train_log.jsonl")
    # the run's own log, appended step by step, lost the lines of the killed steps when it resumed
    assert log_lines(killed / "run" / "train_log.jsonl") == log_lines(killed / "model" / "train_log.jsonl")
    # the critic was checkpointed and resumed too
    assert (killed / "run" / "checkpoints" / "step_000006" / "critic" / models.VALUE_HEAD).is_file()


def test_a_run_stops_with_a_checkpoint_before_its_time_limit_and_resumes_to_the_same_weights(
    task, tiny_model_dir, full, tmp_path
):
    """A job whose time limit leaves no room for another step stops after the step it is in, with a checkpoint of
    that step although save_every (2) would not have written one, and says so; the next run resumes from it and
    ends where the uninterrupted run ends. tests/test_slurm.py runs this through SLURM and Snakemake's retry."""
    cfg = config.resolve(SMALL)
    records = data.read_records(task / "train.jsonl")
    heldout = {"heldout": data.read_records(task / "heldout.jsonl")}
    ending = TimeLimit(ends_at=time.monotonic() + 3600, margin_s=3600 - 1e-3)  # no room after any step
    with Grader.from_config(cfg.grading) as grader:
        trainer = train_mod.Trainer(cfg, "multi_attempt", 0, tiny_model_dir, records, heldout, tmp_path / "run", grader)
        with pytest.raises(TimeLimitReached, match=r"stopped at step 1 of 6, with a checkpoint"):
            train_mod.train(trainer, tmp_path / "model", progress=False, limit=ending)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000001"]
    assert not (tmp_path / "model").exists()
    proc = run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model", SMALL))
    assert re.search(r"resumed from \S+step_000001 \(step 1\)", proc.stderr)
    a, b = weights(full / "model"), weights(tmp_path / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert log_lines(full / "model" / "train_log.jsonl") == log_lines(tmp_path / "model" / "train_log.jsonl")


def test_best_heldout_evaluates_the_actor_best_on_a_validation_split(task, tiny_model_dir, tmp_path):
    """eval.checkpoint best_heldout: validation questions leave the training set, are checked with the held-out
    sets, and the model is the actor of the best check (the first of equals), not the last step's."""
    cfg = {
        **SMALL,
        "train": {**SMALL["train"], "algorithm": "grpo", "steps": 4, "eval_every": 1, "save_every": 4},
        "eval": {"checkpoint": "best_heldout", "validation_questions": 24},
    }
    proc = run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model", cfg))
    assert "choosing again" not in proc.stderr  # a fresh run has no earlier choice to doubt
    log = log_lines(tmp_path / "model" / "train_log.jsonl")
    checks = [(r["step"], r["validation/accuracy"]) for r in log if "validation/accuracy" in r]
    assert [s for s, _ in checks] == [0, 1, 2, 3, 4]
    best_step = max(checks, key=lambda c: (c[1], -c[0]))[0]
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert summary["checkpoint"] == {
        "rule": "best_heldout",
        "step": best_step,
        "validation_accuracy": dict(checks)[best_step],
    }
    best = weights(tmp_path / "run" / "best")
    chosen = weights(tmp_path / "model")
    assert all(torch.equal(best[k], chosen[k]) for k in best)
    if best_step == 0:  # the base itself was best: the model is the base's weights
        assert all(torch.equal(chosen[k], v) for k, v in weights(tiny_model_dir).items())
    # the validation split is drawn from the training data, the same for every run, and never trained on
    records = data.read_records(task / "train.jsonl")
    validation, rest = data.validation_split(records, 24)
    assert len(validation) == 24 and len(rest) == len(records) - 24
    assert not {r["id"] for r in validation} & {r["id"] for r in rest}
    assert data.validation_split(records, 24) == (validation, rest)
    with Grader.from_config(config.resolve(cfg).grading) as grader:
        trainer = train_mod.Trainer(
            config.resolve(cfg), "multi_attempt", 0, tiny_model_dir, records, {}, tmp_path / "r2", grader
        )
    assert trainer.validation == validation and trainer.order.records == rest


def test_curve_steps_keep_their_actors_in_the_model_folder(task, tiny_model_dir, tmp_path):
    """eval.curve_steps: the actor of each listed step is kept and shipped in the model folder (steps/), a model
    folder of its own; a resumed run that passed a step before it was asked for says so."""
    cfg = {
        **SMALL,
        "train": {**SMALL["train"], "algorithm": "grpo", "steps": 3, "eval_every": 0},
        "eval": {"curve_steps": [2]},
    }
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model", cfg))
    kept = tmp_path / "model" / "steps" / "step_000002"
    assert models.n_params(models.load(kept)[0]) > 0
    final, step2 = weights(tmp_path / "model"), weights(kept)
    assert not torch.equal(final["model.norm.weight"], step2["model.norm.weight"])
    more = {**cfg, "train": {**cfg["train"], "steps": 4}, "eval": {"curve_steps": [1, 2]}}  # step 1 was passed
    proc = fails(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model2", more))
    assert "eval.curve_steps: no actor of step 1" in proc.stderr and not (tmp_path / "model2").exists()


def test_a_variant_with_its_own_environment_trains(task, tiny_model_dir, tmp_path):
    """A released-baseline-like variant on the tiny model: its own prompt (no attempts sentence, no trailing
    newline), generation to the end of the turn, the released reward, its own held-out prompt."""
    own = {
        "min_attempts": 1,
        "max_attempts": 1,
        "env": {
            "prompt_template": "<|im_start|>system\nAnswer.<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
            "<|im_start|>assistant",
            "stop_at_box": False,
            "reward": {"rule": "released_baseline"},
        },
        "heldout_prompt_template": "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n",
    }
    cfg = {
        **SMALL,
        "train": {**SMALL["train"], "algorithm": "grpo", "steps": 2, "eval_every": 2},
        "variants": {"released": own},
    }
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model", cfg, variant="released"))
    log = log_lines(tmp_path / "model" / "train_log.jsonl")
    assert [r["step"] for r in log] == [0, 1, 2] and "heldout/mean" in log[-1]
    assert all(-1.0 <= r["train/reward"] <= 1.0 and r["train/attempts_allowed"] == 1 for r in log[1:])
    assert json.loads((tmp_path / "model" / "train_summary.json").read_text())["variant"] == "released"


def test_a_checkpoint_of_another_configuration_is_refused_and_kept(task, tiny_model_dir, tmp_path):
    cfg = {**SMALL, "train": {**SMALL["train"], "steps": 2, "eval_every": 0}}
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "a", cfg))
    before = digests(tmp_path / "run" / "checkpoints")
    other = {**cfg, "train": {**cfg["train"], "actor_lr": 2e-3, "clip": 0.3}}
    proc = fails(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "b", other))
    assert_clean(
        proc,
        "step_000002 was written under another configuration",
        "train.actor_lr: 0.001 -> 0.002",
        "train.clip: 0.2 -> 0.3",
        "Nothing was deleted",
        "new run directory",
        "train.resume: never",
    )
    assert "train.steps" not in proc.stderr.split("error: ")[1]  # only what differs is named
    assert digests(tmp_path / "run" / "checkpoints") == before and not (tmp_path / "b").exists()


def test_raising_steps_continues_from_the_last_checkpoint_on_the_stretched_schedule(task, tiny_model_dir, tmp_path):
    """2 steps, then the same run with 4: steps 3-4 are trained from checkpoint 2 (not retrained) with the
    cosine schedule of 4 steps; then 3 steps, below the last checkpoint, is refused."""
    short = {**SMALL, "train": {**SMALL["train"], "steps": 2}}
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "a", short))
    longer = {**SMALL, "train": {**SMALL["train"], "steps": 4}}
    proc = run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "b", longer))
    assert re.search(r"resumed from \S+step_000002 \(step 2\)", proc.stderr)
    a = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in b] == [0, 1, 2, 3, 4]  # the held-out record of step 0 once
    assert b[:3] == a  # steps 1-2 as the first session logged them, timings included: not trained again
    per_step = config.resolve(longer).train.episodes // config.resolve(longer).train.train_batch  # optimizer steps
    new, old = scheduled_lrs(longer, 4 * per_step), scheduled_lrs(short, 2 * per_step)
    assert [r["train/lr"] for r in b[3:]] == pytest.approx([new[3 * per_step - 1], new[4 * per_step - 1]])
    assert b[3]["train/lr"] != pytest.approx(old[-1])  # the 2-step schedule had ended at its floor
    proc = fails(
        train_cmd(
            task, tiny_model_dir, tmp_path / "run", tmp_path / "c", {**SMALL, "train": {**SMALL["train"], "steps": 3}}
        )
    )
    assert_clean(proc, "train.steps: 3 is below the step of the last checkpoint", "step_000004 (step 4)")


def test_a_restored_schedule_follows_the_new_total():
    """The first update after raising train.steps already uses the new schedule's rate, not the saved one."""
    t = config.resolve(SMALL).train
    lrs = {total: scheduled_lrs(SMALL, total) for total in (2, 4)}
    short = Optimized(torch.nn.Linear(2, 1), t.actor_lr, t, 2, 1)
    for _ in range(2):
        short.micro_step(short.module(torch.ones(1, 2)).sum())
    assert short.lr == pytest.approx(lrs[2][1])
    longer = Optimized(torch.nn.Linear(2, 1), t.actor_lr, t, 4, 1)
    longer.load_state_dict(short.state_dict())
    assert longer.lr == pytest.approx(lrs[4][1]) and lrs[4][1] != pytest.approx(lrs[2][1])


def test_starting_over_keeps_the_earlier_checkpoints_until_its_first(task, tiny_model_dir, tmp_path):
    """resume: never after a change of configuration: while the new run has no checkpoint (here its first one
    cannot be written), the earlier run's are intact; its first checkpoint replaces them all."""
    checkpoints = tmp_path / "run" / "checkpoints"
    first = {**SMALL, "train": {**SMALL["train"], "steps": 4, "eval_every": 0}}
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "a", first))
    earlier = digests(checkpoints)
    assert sorted({name.split("/")[0] for name in earlier}) == ["step_000002", "step_000004"]
    again = {**first, "train": {**first["train"], "steps": 2, "actor_lr": 2e-3, "resume": "never"}}
    blocker = checkpoints / ".step_000002.tmp"
    blocker.write_text("in the way")
    proc = fails(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "b", again))
    assert proc.returncode == 1 and "step_000002 could not be written" in proc.stderr, proc.stderr[-3000:]
    assert "the 2 checkpoints in" in proc.stderr and "stay until this run writes its first" in proc.stderr
    blocker.unlink()
    assert digests(checkpoints) == earlier
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "b", again))
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_000002"]
    state = load_tensors(checkpoints / "step_000002" / "trainer_state.pt")
    assert state["fingerprint"]["train"]["actor_lr"] == 2e-3
    assert [r["step"] for r in log_lines(tmp_path / "b" / "train_log.jsonl")] == [1, 2]


class RunsCode:
    """Unpickling this runs a shell command: what a tampered checkpoint could hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused(task, tiny_model_dir, tmp_path):
    cfg = {**SMALL, "train": {**SMALL["train"], "steps": 1, "save_every": 1, "eval_every": 0}}
    run(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "a", cfg))
    state_file = tmp_path / "run" / "checkpoints" / "step_000001" / "trainer_state.pt"
    state = load_tensors(state_file)
    marker = tmp_path / "code-ran"
    torch.save({**state, "rng": {**state["rng"], "python": RunsCode(marker)}}, state_file)
    proc = fails(train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "b", cfg))
    assert_clean(
        proc,
        f"{state_file}: refused to load: it asks for posix.system, which could run code",
        "step_000001 cannot be resumed",
    )
    assert not marker.exists()
    torch.load(state_file, weights_only=False)  # what loading it as before would have done
    assert marker.exists()


def test_grpo_needs_several_samples_per_question():
    with pytest.raises(config.ConfigError, match="train.samples_per_prompt"):
        config.resolve({"train": {"algorithm": "grpo", "samples_per_prompt": 1}})
    with pytest.raises(config.ConfigError, match="train.micro_batch: must divide train_batch"):
        config.resolve({"train": {"micro_batch": 100}})


def test_each_variant_trains_with_its_own_environment(tmp_path):
    """The runs the rules launch: one command per variant x seed, the same configuration file for all, the name
    picking variants.<name>. Tiny: the two differ only in their attempt range. Paper (dry run): the baseline's
    command trains the released single-turn task, its prompt character by character as spec §3 writes it."""
    from tests.test_env import SPEC_BASELINE_PROMPT

    out = snakemake(tmp_path, "-n", "-p", "--forceall").stdout
    commands = {v: next(line for line in out.splitlines() if f"--variant {v} --seed 0" in line) for v in VARIANTS}
    assert commands["multi_attempt"].replace("multi_attempt", "baseline") == commands["baseline"]
    path = re.search(r" train --config (\S+) --variant", commands["baseline"]).group(1)
    tiny = config.load(tmp_path / path)
    assert [tiny.attempt_range(v) for v in VARIANTS] == [config.AttemptRange(1, 5), config.AttemptRange(1, 1)]
    assert tiny.variant_env("baseline") == tiny.variant_env("multi_attempt") == tiny.env

    out = snakemake(tmp_path, "-n", "-p", "--forceall", "--config", "scale=paper").stdout
    line = next(line for line in out.splitlines() if "--variant baseline --seed 42" in line)
    paper = config.load(tmp_path / re.search(r" train --config (\S+) --variant", line).group(1))
    assert paper.variant_env("baseline").prompt_template == SPEC_BASELINE_PROMPT
    assert paper.variant_env("multi_attempt").prompt_template == paper.env.prompt_template
    assert "--variant single_attempt_env" not in out  # declared, not enabled


def test_paper_preset_training_values():
    t = config.resolve({"scale": "paper"}).train
    assert (t.algorithm, t.gamma, t.lam, t.kl_coef, t.clip, t.value_clip) == ("ppo", 1.0, 0.99, 0.01, 0.2, 0.2)
    assert (t.actor_lr, t.critic_lr, t.min_lr_ratio, t.warmup_ratio) == (5e-7, 1e-5, 0.1, 0.03)
    assert (t.adam_betas, t.weight_decay, t.grad_clip) == ([0.9, 0.95], 0.0, 1.0)
    assert (t.rollout_batch, t.samples_per_prompt, t.temperature, t.top_p) == (1024, 1, 1.0, 1.0)
    assert (t.train_batch, t.micro_batch, t.epochs, t.steps) == (128, 8, 1, 1280)
    assert t.episodes // t.train_batch == 8  # optimizer steps per rollout step
    assert (t.eval_every, t.save_every) == (8, 8)
    ds = t.deepspeed
    assert (ds.zero_stage, ds.bf16, ds.offload_optimizer, ds.gradient_checkpointing) == (3, True, True, True)


def test_paper_preset_training_values_as_written_in_the_spec():
    if not SPEC.is_file():
        pytest.skip("../shared/docs/paper-spec.md is not here")
    spec = SPEC.read_text()
    section = spec[spec.index("## 4. Training setup") : spec.index("## 5. Evaluation")]
    t = config.resolve({"scale": "paper"}).train
    gamma, lam = map(float, re.search(r"\*\*([\d.]+) / ([\d.]+)\*\*", section).groups())
    actor_lr, critic_lr = map(
        float, re.search(r"LR actor / critic \| \*\*([\de.-]+) / ([\de.-]+)\*\*", section).groups()
    )
    assert (t.gamma, t.lam, t.actor_lr, t.critic_lr) == (gamma, lam, actor_lr, critic_lr)
    assert f"coefficient **{t.kl_coef}**" in section
    assert f"**{t.rollout_batch} prompts per step**" in section and f"temperature **{t.temperature}**" in section
    assert f"global **{t.train_batch}**" in section and f"micro {t.micro_batch} per GPU" in section
    assert f"`max_epochs {t.epochs}`" in section and f"**{t.steps} rollout steps**" in section
    assert f"ZeRO-**{t.deepspeed.zero_stage}**" in section
    assert "PPO clip / value clip | 0.2 / 0.2" in section and (t.clip, t.value_clip) == (0.2, 0.2)
    assert "min_lr = 0.1×LR" in section and "ceil(3% of max_steps)" in section
    assert "betas (0.9, 0.95), weight decay 0, grad-norm clip 1.0" in section


@pytest.mark.slow
def test_deepspeed_zero2_on_two_cpu_processes(task, tiny_model_dir, tmp_path):
    """torchrun, 2 processes, gloo, ZeRO-2: the critic's loss goes down, the checkpoint loads back into the
    single-process trainer, and the engines resume from it (their files checked to hold nothing that could run
    code). (The first run on a machine JIT-builds DeepSpeed's CPU shared-memory op, ~1 min.)"""
    cfg = {
        **SMALL,
        "train": {**SMALL["train"], "steps": 8, "save_every": 4, "eval_every": 4, "deepspeed": {"zero_stage": 2}},
    }
    cmd = train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model", cfg, variant="baseline")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    run([*launcher, *cmd[1:]], timeout=600)
    log = [json.loads(line) for line in (tmp_path / "model" / "train_log.jsonl").read_text().splitlines()]
    value_loss = [r["ppo/value_loss"] for r in log if "ppo/value_loss" in r]
    assert len(value_loss) == 8
    assert sum(value_loss[-3:]) < sum(value_loss[:3]), value_loss
    checkpoint = tmp_path / "run" / "checkpoints" / "step_000008"
    assert (checkpoint / "actor_engine").is_dir() and (checkpoint / "critic" / models.VALUE_HEAD).is_file()
    # The HF-format actor is what the DeepSpeed engines held: same weights as the final model folder.
    a, b = weights(checkpoint / "actor"), weights(tmp_path / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... and the single-process trainer takes it as its starting point.
    single = {**SMALL, "train": {**SMALL["train"], "steps": 1, "eval_every": 0}}
    run(train_cmd(task, checkpoint / "actor", tmp_path / "run1", tmp_path / "model1", single, variant="baseline"))
    assert (tmp_path / "model1" / "model.safetensors").is_file()
    # The engine files hold DeepSpeed classes besides tensors: loaded under the allowlist, refused without it.
    engine_files = sorted(checkpoint.glob("*_engine/**/*.pt"))
    assert engine_files and all(isinstance(load_tensors(p, deepspeed_checkpoint_classes()), dict) for p in engine_files)
    with pytest.raises(DataError, match="refused to load: it asks for deepspeed"):
        for p in engine_files:
            load_tensors(p)
    # Two more steps on the same run folder: both engines resume from step 8.
    more = {**cfg, "train": {**cfg["train"], "steps": 10}}
    proc = run(
        [
            *launcher,
            *train_cmd(task, tiny_model_dir, tmp_path / "run", tmp_path / "model2", more, variant="baseline")[1:],
        ],
        timeout=600,
    )
    assert "resumed from" in proc.stderr and "(step 8)" in proc.stderr
    log = [json.loads(line) for line in (tmp_path / "model2" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "train/reward" in r] == list(range(1, 11))


def test_behaviour_logprobs_from_the_actor_match_the_rollout_on_cpu(task, tiny_model_dir, tmp_path):
    """train.behaviour_logprobs: actor recomputes PPO's old log-probs with the trainer's actor (the released
    code's way) and logs the rollout/trainer mismatch. In fp32 on CPU they equal the rollout's to < 1e-4 (no
    token's probability ratio outside [0.9, 1.1]), so both settings, and the truncated importance-sampling
    correction on top, make the same update."""
    cfg = {**SMALL, "train": {**SMALL["train"], "steps": 3, "eval_every": 0}}
    updates = {}
    for name, settings in {
        "rollout": {"behaviour_logprobs": "rollout"},
        "actor": {"behaviour_logprobs": "actor"},
        "tis": {"behaviour_logprobs": "actor", "is_correction": "tis"},
    }.items():
        out = tmp_path / name
        c = {**cfg, "train": {**cfg["train"], **settings}}
        run(train_cmd(task, tiny_model_dir, out / "run", out / "model", c))
        base, new = weights(tiny_model_dir), weights(out / "model")
        updates[name] = torch.cat([(new[k] - base[k]).flatten() for k in sorted(base)])
    log = [json.loads(line) for line in (tmp_path / "actor" / "model" / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "train/reward" in r]
    assert len(steps) == 3 and all(0 <= r["ppo/logprob_gap_mean"] <= r["ppo/logprob_gap_max"] < 1e-4 for r in steps)
    assert all(abs(r["ppo/mismatch_ratio_mean"] - 1) < 1e-4 and r["ppo/mismatch_outside_10pct"] == 0 for r in steps)
    assert "ppo/logprob_gap_mean" not in (tmp_path / "rollout" / "model" / "train_log.jsonl").read_text()
    a, b, c = updates["actor"], updates["rollout"], updates["tis"]
    assert b.norm() > 0 and float((a - b).norm() / b.norm()) < 1e-3 and float((c - a).norm() / a.norm()) < 1e-3


def test_no_grad_forwards_are_grouped_by_padded_tokens():
    lengths = torch.tensor([10, 100, 12, 11, 90, 95])
    groups = train_mod.token_groups(lengths, budget=200)
    assert [g.tolist() for g in groups] == [[0, 3, 2], [4, 5], [1]]  # short rows share, long ones fill 200
    assert all(len(g) * int(lengths[g].max()) <= 200 for g in groups if len(g) > 1)
    # another rank needs more forwards: halve the largest groups until the counts agree (ZeRO-3 collectives)
    more = train_mod.token_groups(lengths, budget=200, count=5)
    assert len(more) == 5 and sorted(torch.cat(more).tolist()) == list(range(6))
    with pytest.raises(ValueError):
        train_mod.token_groups(lengths, budget=200, count=7)


def test_each_rank_gets_its_share_of_the_jobs_threads():
    assert distributed.rank_threads(threads=48, ranks=8, grader_workers=16) == 4
    assert distributed.rank_threads(threads=1, ranks=1, grader_workers=2) == 1  # never below one
    assert distributed.rank_threads(threads=4, ranks=2, grader_workers=0) == 2


def test_bf16_engines_accumulate_gradients_in_fp32():
    """The engine DeepSpeed builds from our config (one gloo process, ZeRO-3, bf16): float32 accumulation."""
    script = """
import os, torch, torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29551", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
dist.init_process_group("gloo")
from pipeline import config, distributed
cfg = config.resolve({"train": {"deepspeed": {"zero_stage": 3, "bf16": True}}}).train
opt = distributed.Optimized(torch.nn.Linear(4, 4), 1e-3, cfg, total_steps=10, accumulation=2)
print(opt.engine.get_data_types())
"""
    out = run([sys.executable, "-c", script]).stdout
    assert "(torch.bfloat16, torch.float32)" in out
