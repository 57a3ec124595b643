"""RL training of one variant from the base model: rollout -> experience -> PPO/GRPO update, step after step.

One step (spec §4):
1. Draw `rollout_batch` training questions (a seeded permutation per epoch) and N for each from the variant's
   attempt range ([1, 5] multi-attempt, [1, 1] baseline: the only difference between the two runs).
   Sample `samples_per_prompt` dialogues per question with the current policy at the training temperature.
   Generation runs on the configured backend: transformers on the actor itself, or a vLLM engine in this
   process into which the actor's weights are copied whenever they changed (`Trainer.backend`).
2. Experience, in forward passes without gradients sized by tokens: PPO's old (behaviour) log-probs are the
   rollout's, or recomputed by the actor (`behaviour_logprobs: actor`, the released code's way; in bf16 the
   rollout engine's kernels differ from the trainer's, and the gap is logged); a frozen reference model gives
   the KL anchor, the critic (ppo) the values. Advantages come from GAE over policy tokens (ppo) or reward minus
   the question's group mean (grpo), then are whitened over the whole buffer. Feedback tokens get nothing (see
   `pipeline.ppo`).
3. `epochs` passes over the buffer in `train_batch` optimizer steps of `micro_batch` forward/backward passes:
   clipped surrogate + kl_coef x k3 KL for the actor, clipped value loss for the critic. Every forward of a
   trained model goes through its `dist.Optimized` wrapper, i.e. the DeepSpeed engine on several processes
   (ZeRO-3 keeps its gradient-accumulation bookkeeping there); the actor is a `models.Policy`, whose forward
   returns just the sampled tokens' log-probs, its LM head chunked so no (tokens x vocabulary) logits are kept.

Checkpoints (actor and critic in `save_pretrained` format, optimizer, schedule, RNG, the log so far, provenance)
are written atomically every `save_every` steps; `resume: auto` continues from the last complete one and ends
with the same weights as an uninterrupted run (CPU). Checkpoints are never deleted to make way for a change of
configuration: one written under other settings is refused with the differing keys named (`resume: never`
starts over, and the earlier checkpoints go only once the new run has written its first). `steps` alone may
change: raised on a finished or stopped run, training continues from the last checkpoint with the cosine
schedule stretched to the new total from there on, so the result differs from a run started with the larger
value (whose rates were higher before the checkpoint); lowered below the last checkpoint, it is refused.
Per-step metrics go to `train_log.jsonl` and TensorBoard, and held-out greedy single-attempt accuracy every
`eval_every` steps (the learning curves of the paper's Fig. 4).

Try it: `python -m pipeline train --config config.yaml --variant multi_attempt --seed 0
--base results/tiny/models/base --train-data results/tiny/data/synthetic_train.jsonl
--heldout results/tiny/data/synthetic_heldout.jsonl --run-dir /tmp/run --out /tmp/model`.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from pipeline import distributed as dist
from pipeline import models, ppo, provenance
from pipeline.config import Config
from pipeline.env import MultiAttemptEnv
from pipeline.evaluate import evaluate
from pipeline.io import DataError, OutputError, atomic_path, load_tensors, read_jsonl, write_json
from pipeline.progress import progress_bar
from pipeline.rollout import Backend, HFBackend, Question, SamplingParams, Transcript, rollout

log = logging.getLogger(__name__)

# Settings that do not change the weights of the steps a checkpoint holds: one written under other values still
# resumes. (`steps` only sets how far training goes on, and so the length of the schedule from here.)
_NOT_IN_FINGERPRINT = ("steps", "eval_every", "eval_questions", "save_every", "keep_checkpoints", "resume")


@dataclass
class Experience:
    """One rollout buffer on this rank, right-padded; per-token tensors are on prediction positions (B, L-1)."""

    ids: torch.Tensor  # (B, L) long
    attention: torch.Tensor  # (B, L) long
    mask: torch.Tensor  # (B, L-1) bool: token i+1 was sampled by the policy
    old_logp: torch.Tensor  # behaviour log-probs (train.behaviour_logprobs: the actor's or the rollout's)
    ref_logp: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    # |rollout - actor| behaviour log-prob per policy token, when the actor recomputed them (else None)
    logprob_gap: torch.Tensor | None = None

    def select(self, rows: torch.Tensor) -> "Experience":
        """Rows of the buffer, trimmed to their longest sequence."""
        width = int(self.attention[rows].sum(1).max())
        return Experience(
            self.ids[rows, :width], self.attention[rows, :width],
            *(t[rows, : width - 1] for t in (self.mask, self.old_logp, self.ref_logp, self.values,
                                              self.advantages, self.returns)),
        )


def token_groups(lengths: torch.Tensor, budget: int, count: int | None = None) -> list[torch.Tensor]:
    """Row indices for forward passes without gradients: rows sorted by length, each group as many as fit in
    `budget` padded tokens (rows x the group's longest; a longer row goes alone). With `count`, the largest
    groups are halved until there are that many (ranks must make the same number of ZeRO-3 forwards)."""
    groups: list[list[int]] = [[]]
    for i in torch.argsort(lengths, stable=True).tolist():
        if groups[-1] and (len(groups[-1]) + 1) * int(lengths[i]) > budget:
            groups.append([])
        groups[-1].append(i)
    groups = [g for g in groups if g]
    while count is not None and len(groups) < count:
        j = max(range(len(groups)), key=lambda k: len(groups[k]))
        if len(groups[j]) < 2:
            raise ValueError(f"token_groups: {len(lengths)} rows cannot make {count} groups")
        half = len(groups[j]) // 2
        groups[j : j + 1] = [groups[j][:half], groups[j][half:]]
    return [torch.tensor(g) for g in groups]


def pad(transcripts: Sequence[Transcript], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Transcripts -> ids, attention, policy mask and behaviour log-probs (the latter two shifted by one)."""
    width = max(len(t.token_ids) for t in transcripts)
    ids = torch.full((len(transcripts), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    mask = torch.zeros((len(transcripts), width), dtype=torch.bool)
    logp = torch.zeros((len(transcripts), width))
    for b, t in enumerate(transcripts):
        n = len(t.token_ids)
        ids[b, :n], attention[b, :n] = torch.tensor(t.token_ids), 1
        mask[b, :n] = torch.tensor(t.policy_mask)
        logp[b, :n] = torch.tensor(t.logprobs)
    return ids, attention, mask[:, 1:], logp[:, 1:]


class Trainer:
    def __init__(self, cfg: Config, variant: str, seed: int, base: str, train_records: Sequence[Mapping],
                 heldout: Mapping[str, Sequence[Mapping]], run_dir: str | Path):
        self.cfg, self.t, self.variant, self.seed = cfg, cfg.train, variant, seed
        self.run_dir = Path(run_dir)
        self.records, self.heldout = list(train_records), heldout
        if not self.records:
            raise DataError("train: no training questions")
        self.env = MultiAttemptEnv(cfg.env, cfg.attempt_range(variant), cfg.grading.timeout_s)
        self.rank, self.world = dist.rank(), dist.world()
        per_rank = self.t.train_batch // self.world
        if self.t.rollout_batch % self.world or self.t.train_batch % (self.world * self.t.micro_batch):
            raise DataError(
                f"train: with {self.world} processes, rollout_batch ({self.t.rollout_batch}) must be a multiple of "
                f"{self.world} and train_batch ({self.t.train_batch}) of {self.world} x micro_batch "
                f"({self.t.micro_batch})"
            )
        self.device = dist.device()
        dtype = torch.bfloat16 if (self.world > 1 and self.t.deepspeed.bf16) else torch.float32
        torch.manual_seed(seed)
        actor, self.tokenizer = models.load(base, dtype=dtype)
        if self.t.deepspeed.gradient_checkpointing:
            actor.gradient_checkpointing_enable()
        optimizer_steps = self.t.steps * self.t.epochs * self.t.episodes // self.t.train_batch
        accumulation = per_rank // self.t.micro_batch
        self.actor = dist.Optimized(models.Policy(actor.to(self.device)), self.t.actor_lr, self.t, optimizer_steps,
                                    accumulation)
        self.ref = None
        if self.t.kl_coef > 0:
            self.ref = models.Policy(models.load(base, dtype=dtype)[0].to(self.device)).eval().requires_grad_(False)
        self.critic = None
        if self.t.algorithm == "ppo":
            critic = models.Critic.from_pretrained(base, dtype=dtype, seed=seed)
            if self.t.deepspeed.gradient_checkpointing:
                critic.backbone.gradient_checkpointing_enable()
            self.critic = dist.Optimized(critic.to(self.device), self.t.critic_lr, self.t, optimizer_steps,
                                         accumulation)
        self.engine = None  # vLLM (rollout.backend: vllm), started on the base weights, synced before each use
        if cfg.rollout.backend == "vllm":
            from pipeline.vllm_backend import VLLMBackend

            self.engine = VLLMBackend.start(base, cfg, self.tokenizer, dtype=dtype, distributed=self.world > 1,
                                            gpu_memory_utilization=cfg.rollout.vllm.gpu_memory_utilization)
        self._engine_step: int | None = None  # the step whose weights the engine holds
        self.step = 0
        self._order_epoch, self._order_cache = -1, []  # the permutation of the current epoch (see _order)
        self.earlier: list[Path] = []  # checkpoints of an earlier run this one replaces (resume: never)
        self.provenance = provenance.record(cfg)
        c = cfg.to_dict()
        # What a checkpoint must share with this run to be resumed, keyed like the config where it is config.
        self.fingerprint = {
            "variant": variant, "seed": seed, "base": str(base), "processes": self.world, "env": c["env"],
            "variants": {variant: c["variants"][variant]},
            "rollout": {"backend": cfg.rollout.backend, "max_model_len": cfg.rollout.max_model_len},
            "train": {k: v for k, v in c["train"].items() if k not in _NOT_IN_FINGERPRINT},
        }

    # ------------------------------------------------------------------------------------------ the data order

    def questions(self, step: int) -> list[Question]:
        """The questions of a step, all ranks alike: a seeded permutation of the training set per epoch,
        walked in order; N drawn per question from the variant's attempt range."""
        n, r = len(self.records), self.t.rollout_batch
        out, rng = [], random.Random(f"{self.seed}-{step}")
        for i in range(step * r, (step + 1) * r):
            epoch, j = divmod(i, n)
            order = self._order(epoch)
            rec = self.records[order[j]]
            out.append(Question(str(rec["id"]), rec["question"], str(rec["answer"]), self.env.sample_n(rng)))
        return out

    def _order(self, epoch: int) -> list[int]:
        if self._order_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order_cache, self._order_epoch = torch.randperm(len(self.records), generator=g).tolist(), epoch
        return self._order_cache

    # ------------------------------------------------------------------------------------------ generation

    def backend(self, model) -> Backend:
        """The rollout backend on the current policy weights (`model`: the actor's LM, full parameters)."""
        if self.engine is None:
            return HFBackend(model, self.tokenizer, self.cfg.env.end_of_turn, self.cfg.env.stop_at_box,
                             max_model_len=self.cfg.rollout.max_model_len)
        if self._engine_step != self.step:
            self.engine.load_weights(model.state_dict().items())
            self._engine_step = self.step
        return self.engine

    def release_engine(self) -> None:
        """Hand the GPU memory of the engine to training until the next rollout (vLLM sleep mode)."""
        if self.engine is not None and self.engine.can_sleep:
            self.engine.sleep()
            self._engine_step = None  # sleeping dropped the weights

    # ------------------------------------------------------------------------------------------ one step

    def rollout(self, step: int) -> tuple[list[Transcript], list[int]]:
        """This rank's share of the step's dialogues, and each one's group (its question's index in the step)."""
        g = self.t.samples_per_prompt
        mine = list(range(self.rank, self.t.rollout_batch, self.world))
        questions = self.questions(step)
        batch = [questions[i] for i in mine for _ in range(g)]
        groups = [i for i in mine for _ in range(g)]
        params = SamplingParams(self.t.temperature, self.t.top_p, False, seed=(self.seed * 1_000_003 + step) * 97
                                + self.rank)
        with self.actor.full_parameters() as policy:
            policy.eval()
            transcripts = rollout(self.backend(policy.lm), self.tokenizer, self.env, batch, params, len(batch))
        self.release_engine()
        return transcripts, groups

    @torch.no_grad()
    def experience(self, transcripts: Sequence[Transcript], groups: Sequence[int]) -> Experience:
        ids, attention, mask, rollout_logp = pad(transcripts, self.tokenizer.pad_token_id)
        rewards = torch.tensor([t.reward for t in transcripts])
        actor_logp, ref_logp, values = (torch.zeros_like(rollout_logp) for _ in range(3))
        recompute = self.t.behaviour_logprobs == "actor"
        lengths = attention.sum(1)
        # No gradients here, so no activations to keep: as many tokens per forward as the longest training
        # micro-batch can have. Every rank makes the same number of forwards (ZeRO-3 gathers in each).
        budget = self.t.micro_batch * int(lengths.max())
        forwards = token_groups(lengths, budget)
        forwards = token_groups(lengths, budget, int(dist.all_max([len(forwards)])[0]))
        for rows in forwards:
            width = int(lengths[rows].max())
            x, a = ids[rows, :width].to(self.device), attention[rows, :width].to(self.device)
            m = mask[rows, : width - 1].to(self.device)
            if recompute:
                self.actor.module.eval()
                actor_logp[rows, : width - 1] = self.actor(x, a, m, self.t.temperature)[0].cpu()
            if self.ref is not None:
                ref_logp[rows, : width - 1] = self.ref(x, a, m, self.t.temperature)[0].cpu()
            if self.critic is not None:
                self.critic.module.eval()
                values[rows, : width - 1] = self.critic(x, a)[:, :-1].cpu()
        if self.critic is not None:
            adv, returns = ppo.gae(ppo.terminal_rewards(rewards, mask), values, mask, self.t.gamma, self.t.lam)
        else:
            adv = ppo.group_advantages(rewards, groups)[:, None] * mask
            returns = torch.zeros_like(adv)
        if self.t.normalize_advantages:
            m = mask.float()
            stats = dist.all_sum([float((adv * m).sum()), float((adv * adv * m).sum()), float(m.sum())])
            adv = ppo.whiten(adv, mask, tuple(stats))
        gap = (rollout_logp - actor_logp).abs()[mask] if recompute else None
        old_logp = actor_logp if recompute else rollout_logp
        return Experience(ids, attention, mask, old_logp, ref_logp, values * mask, adv, returns, gap)

    def update(self, exp: Experience, step: int) -> dict[str, float]:
        """`epochs` passes of micro-batch forward/backward over the buffer; returns summed loss statistics."""
        sums: dict[str, float] = {}

        def add(name: str, value: float, weight: float = 1.0) -> None:
            sums[name] = sums.get(name, 0.0) + value * weight
            sums[name + "_n"] = sums.get(name + "_n", 0.0) + weight

        n, per_batch = exp.ids.shape[0], self.t.train_batch // self.world
        lengths = exp.attention.sum(1)
        for epoch in range(self.t.epochs):
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 31 + epoch)
            micro_batches = []
            for batch in torch.randperm(n, generator=g).split(per_batch):
                # Micro-batches of similar length within each optimizer step: far less padding to compute.
                batch = batch[torch.argsort(lengths[batch], stable=True)]
                micro_batches.extend(batch.split(self.t.micro_batch))
            for rows in micro_batches:
                mb = exp.select(rows)
                x, a, mask = mb.ids.to(self.device), mb.attention.to(self.device), mb.mask.to(self.device)
                self.actor.module.train()
                logp, ent = self.actor(x, a, mask, self.t.temperature)
                pg, clip_frac = ppo.policy_loss(logp, mb.old_logp.to(self.device), mb.advantages.to(self.device),
                                                mask, self.t.clip)
                loss = pg
                if self.ref is not None:
                    kl = ppo.masked_mean(ppo.kl_k3(logp, mb.ref_logp.to(self.device)), mask)
                    loss = loss + self.t.kl_coef * kl
                    add("kl", float(kl.detach()))
                add("entropy", float(ent))
                add("policy_loss", float(pg.detach()))
                add("clip_frac", float(clip_frac))
                norm = self.actor.micro_step(loss)
                if norm is not None:
                    add("grad_norm", norm)
                if self.critic is not None:
                    self.critic.module.train()
                    v = self.critic(x, a)[:, :-1]
                    vl = ppo.value_loss(v, mb.values.to(self.device), mb.returns.to(self.device), mask,
                                        self.t.value_clip)
                    self.critic.micro_step(vl)
                    add("value_loss", float(vl.detach()))
        return sums

    def train_step(self) -> dict[str, float]:
        step = self.step
        t0 = time.time()
        transcripts, groups = self.rollout(step)
        t_rollout = time.time() - t0
        exp = self.experience(transcripts, groups)
        losses = self.update(exp, step)
        self.step += 1
        return self._metrics(transcripts, losses, exp.logprob_gap, t_rollout, time.time() - t0)

    def _metrics(self, transcripts: Sequence[Transcript], losses: Mapping[str, float], gap: torch.Tensor | None,
                 t_rollout: float, t_step: float) -> dict[str, float]:
        ds = [t.dialogue for t in transcripts]
        solved = [d for d in ds if d.solved_at is not None]
        failed = [d for d in ds if d.solved_at is None]
        retried = [d for d in ds if len(d.attempts) > 1]
        tokens = sum(d.policy_tokens for d in ds)
        local = {
            "reward": (sum(d.reward for d in ds), len(ds)),
            "accuracy": (len(solved), len(ds)),
            "attempts_on_success": (sum(d.solved_at for d in solved), len(solved)),
            "attempts_on_failure": (sum(len(d.attempts) for d in failed), len(failed)),
            "retry_accuracy": (sum(d.solved_at is not None and d.solved_at > 1 for d in retried), len(retried)),
            "attempts_allowed": (sum(d.n_allowed for d in ds), len(ds)),
            "response_tokens": (tokens, len(ds)),
            # share of dialogues whose stored ids differ from those the model saw (0 expected; see rollout)
            "token_mismatch_rate": (sum(not t.token_exact for t in transcripts), len(ds)),
            **{k: (losses[k], losses[k + "_n"]) for k in losses if not k.endswith("_n")},
        }
        if gap is not None:  # how far the rollout engine's log-probs are from the trainer's (bf16 kernels differ)
            local["logprob_gap_mean"] = (float(gap.sum()), gap.numel())
        keys = sorted(local)
        totals = dist.all_sum([x for k in keys for x in local[k]] + [tokens])
        out = {"step": self.step}
        for i, k in enumerate(keys):
            num, den = totals[2 * i], totals[2 * i + 1]
            out[k] = num / den if den else float("nan")
        if gap is not None:
            out["logprob_gap_max"] = dist.all_max([float(gap.max()) if gap.numel() else 0.0])[0]
        out["lr"] = self.actor.lr
        out["rollout_s"], out["step_s"] = t_rollout, t_step
        out["tokens_per_s"] = totals[-1] / t_step
        return out

    # ------------------------------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def heldout_accuracy(self) -> dict[str, float]:
        """Greedy single-attempt accuracy per held-out set (this rank evaluates its shard), and their mean."""
        out = {}
        with self.actor.full_parameters() as policy:
            policy.eval()
            backend = self.backend(policy.lm)
            for name, records in self.heldout.items():
                shard = list(records[: self.t.eval_questions])[self.rank :: self.world]
                traces = evaluate(backend, self.tokenizer, self.cfg, shard, name, k=1, progress=False) if shard else []
                solved, total = dist.all_sum([sum(t["solved_at"] == 1 for t in traces), len(traces)])
                out[name] = solved / max(total, 1.0)
        self.release_engine()
        out["mean"] = sum(out.values()) / max(len(out), 1)
        return out

    # ------------------------------------------------------------------------------------------ checkpoints

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    def save_checkpoint(self, records: Sequence[Mapping]) -> Path:
        """checkpoints/step_NNNNNN/: actor/ (+ critic/) save_pretrained, trainer_state.pt, train_log.jsonl (the
        log so far, `records`), provenance.json; atomic rename.

        A checkpoint that cannot be written (disk full, unwritable folder) leaves nothing behind and raises
        OutputError; the checkpoints written before are untouched, so a rerun resumes from the last of them.
        The first checkpoint of a run that started over (`resume: never`) replaces the earlier run's.
        """
        final = self.checkpoints / f"step_{self.step:06d}"
        tmp = self.checkpoints / f".step_{self.step:06d}.tmp"
        try:
            self._write_checkpoint(tmp, records)
            if dist.is_main():
                if final in self.earlier:  # the earlier run's checkpoint of this step: this one replaces it
                    shutil.rmtree(final)
                tmp.rename(final)  # complete checkpoints only ever appear under their final name
        except Exception as e:
            if dist.is_main():
                shutil.rmtree(tmp, ignore_errors=True)
            last = self.latest_checkpoint()
            kept = f"the last complete checkpoint, {last}, is intact" if last else "there is no earlier checkpoint"
            raise OutputError(f"checkpoint {final} could not be written ({type(e).__name__}: {e}); {kept}") from e
        if dist.is_main():
            for old in self.earlier:
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
            kept = sorted(p for p in self.checkpoints.glob("step_*") if p.is_dir())
            for old in kept[: -self.t.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.earlier = []
        dist.barrier()
        return final

    def _write_checkpoint(self, tmp: Path, records: Sequence[Mapping]) -> None:
        if dist.is_main():
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        with self.actor.full_parameters() as actor:
            if dist.is_main():
                models.save(actor.lm, self.tokenizer, tmp / "actor")
        if self.critic is not None:
            with self.critic.full_parameters() as critic:
                if dist.is_main():
                    critic.save_pretrained(tmp / "critic")
        state = {
            "step": self.step, "fingerprint": self.fingerprint,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }
        if self.world > 1:
            self.actor.save_engine(tmp / "actor_engine")
            if self.critic is not None:
                self.critic.save_engine(tmp / "critic_engine")
        else:
            state["actor_optim"] = self.actor.state_dict()
            if self.critic is not None:
                state["critic_optim"] = self.critic.state_dict()
        dist.barrier()
        if dist.is_main():
            _write_log(tmp / "train_log.jsonl", records)
            provenance.write(tmp, self.provenance)
            torch.save(state, tmp / "trainer_state.pt")

    def latest_checkpoint(self) -> Path | None:
        done = sorted(p for p in self.checkpoints.glob("step_*") if (p / "trainer_state.pt").is_file())
        return done[-1] if done else None

    def start_over(self) -> None:
        """Train from step 0 (`resume: never`); checkpoints already here stay until this run's first replaces
        them, so a run that stops before that has lost nothing."""
        self.earlier = sorted(p for p in self.checkpoints.glob("step_*") if p.is_dir())
        if self.earlier:
            log.warning("train.resume is never: starting over; the %d checkpoints in %s stay until this run "
                        "writes its first", len(self.earlier), self.checkpoints)

    def resume(self) -> list[dict]:
        """Continue from the last complete checkpoint; returns its log ([] when there is none to continue).

        Refused, with nothing deleted: a checkpoint written under another configuration, or one past
        `train.steps` (resuming cannot take steps back).
        """
        path = self.latest_checkpoint()
        if path is None:
            return []
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
                + "\n  ".join(changed) + "\n  Nothing was deleted. Train into a new run directory to keep it, or "
                "set train.resume: never to start over in this one"
            )
        if state["step"] > self.t.steps:
            raise DataError(
                f"train.steps: {self.t.steps} is below the step of the last checkpoint, {path} (step "
                f"{state['step']}), and resuming cannot undo steps; set train.steps to at least {state['step']}, "
                "train into a new run directory, or set train.resume: never to start over"
            )
        try:
            if self.world > 1:  # DeepSpeed's checkpoint holds the (sharded) weights as well as the optimizer
                self.actor.load_engine(path / "actor_engine")
                if self.critic is not None:
                    self.critic.load_engine(path / "critic_engine")
            else:
                actor, _ = models.load(path / "actor")
                self.actor.module.lm.load_state_dict(actor.state_dict())  # in place: the optimizer keeps its params
                if self.critic is not None:
                    critic = models.Critic.from_pretrained(path / "critic")
                    self.critic.module.load_state_dict(critic.state_dict())
                self.actor.load_state_dict(state["actor_optim"])
                if self.critic is not None:
                    self.critic.load_state_dict(state["critic_optim"])
        except Exception as e:
            raise _unusable(path, e) from e
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        self.step = state["step"]
        log.info("resumed from %s (step %d)", path, self.step)
        return records


def differences(old: Any, new: Any, key: str = "") -> list[str]:
    """`key.path: old -> new` for every value that differs between two nested mappings (lists compare whole)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return [line for k in sorted(set(old) | set(new))
                for line in differences(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{key}.{k}" if key else k)]
    return [] if old == new else [f"{key}: {_shown(old)} -> {_shown(new)}"]


_ABSENT = object()


def _shown(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


def _unusable(path: Path, e: Exception) -> DataError:
    return DataError(f"checkpoint {path} cannot be resumed ({type(e).__name__}: {e}); delete that folder to resume "
                     "from the checkpoint before it, or set train.resume: never to start over")


def _write_log(path: Path, records: Sequence[Mapping]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def train(cfg: Config, variant: str, seed: int, base: str, train_records: Sequence[Mapping],
          heldout: Mapping[str, Sequence[Mapping]], run_dir: str | Path, out: str | Path,
          progress: bool = True) -> dict:
    """Train one variant x seed; checkpoints and logs in `run_dir`, the final actor (+ logs) in `out`."""
    trainer = Trainer(cfg, variant, seed, base, train_records, heldout, run_dir)
    run_dir, t = Path(run_dir), cfg.train
    log_path = run_dir / "train_log.jsonl"
    records: list[dict] = []
    if t.resume == "auto":
        records = trainer.resume()
    else:
        trainer.start_over()
    writer = None
    if dist.is_main():
        from torch.utils.tensorboard import SummaryWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=trainer.step)
    t0 = time.time()

    def record(metrics: dict) -> None:
        records.append(metrics)
        if writer is not None:
            for k, v in metrics.items():
                if k != "step":
                    writer.add_scalar(k.replace("heldout_", "heldout/"), v, metrics["step"])
            _write_log(log_path, records)

    if trainer.step == 0 and t.eval_every:
        record({"step": 0, **{f"heldout_{k}": v for k, v in trainer.heldout_accuracy().items()}})
    bar = progress_bar(total=t.steps, initial=trainer.step, desc=f"train {variant} s{seed}", unit="step",
                      disable=not (progress and dist.is_main()))
    while trainer.step < t.steps:
        metrics = trainer.train_step()
        last = trainer.step == t.steps
        if t.eval_every and (trainer.step % t.eval_every == 0 or last):
            metrics.update({f"heldout_{k}": v for k, v in trainer.heldout_accuracy().items()})
        record(metrics)
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['reward']:.3f}", acc=f"{metrics['accuracy']:.3f}")
        if trainer.step % t.save_every == 0 or last:
            trainer.save_checkpoint(records)
    bar.close()
    summary = {
        "variant": variant, "seed": seed, "steps": trainer.step, "seconds_this_session": round(time.time() - t0, 1),
        "final": records[-1] if records else {},
    }
    with trainer.actor.full_parameters() as actor:  # collective under ZeRO-3: every rank enters
        if dist.is_main():
            with atomic_path(out) as tmp:
                models.save(actor.lm, trainer.tokenizer, tmp)
                _write_log(tmp / "train_log.jsonl", records)
                write_json(tmp / "train_summary.json", summary)
                provenance.write(tmp, trainer.provenance)
                provenance.write_model_card(
                    tmp, trainer.provenance, Path(out).name, base=f"`{base}`",
                    made_by=f"`python -m pipeline train`: {t.algorithm.upper()}, variant `{variant}`, seed {seed}, "
                            f"{trainer.step} steps",
                    results={k: v for k, v in summary["final"].items() if k.startswith("heldout_")})
            writer.close()
    dist.barrier()
    return summary
