"""RL training of one variant from the base model: rollout -> experience -> PPO/GRPO update, step after step.

Departures from the released code (OpenRLHF PPO with the chunked rollout of `vllm_mul.py`; spec §1.3, §4), by
their id in pipeline/departures.yaml, which says for each what the released code does, what we do and why:
1. `token-exact`: training transcripts are the sampled tokens.
2. `stop-at-box`: an attempt ends on the token that closes its first box.
3. `stop-tokens`: stop on the end-of-turn marker and the tokenizer's EOS.
4. `token-budgets`: budgets count policy tokens exactly.
5. `context-end`: a dialogue that would overflow the context ends.
6. `long-prompts-dropped`: over-long training prompts are dropped, not cut.
7. `continuous-schedule`: each dialogue's next attempt starts on the next engine step.
8. `request-seeds`: sampling is seeded per request.
9. `lr-schedule`: the cosine schedule spans the optimizer steps taken.
10. `grader`: answers are graded by Math-Verify behind a fast path.
11. `eval-scoring`: evaluation scores the attempts the environment graded.
12. `model-checkpoint`: which actor is a run's model (`eval.checkpoint`).

One step (spec §4):
1. Draw `rollout_batch` training questions (a seeded permutation per epoch) and N for each from the variant's
   attempt range ([1, 5] multi-attempt, [1, 1] baseline), in the variant's environment (`Config.for_variant`:
   the paper's baseline also has its own prompt, stop rule and reward; config `variants`).
   Sample `samples_per_prompt` dialogues per question with the current policy at the training temperature.
   Generation runs on the configured backend (`backends.make_backend`): transformers on the actor itself, or a
   vLLM engine in this process into which the actor's weights are copied whenever they changed (`sync`).
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

Checkpoints every `save_every` steps (`pipeline.checkpoint`): `resume: auto` continues from the last complete
one and ends with the same weights as an uninterrupted run (CPU). Per-step metrics, named by where they are made
(`train/`, `ppo/`, `perf/`, `heldout/`), are appended to `train_log.jsonl` and written to TensorBoard under the
same names; held-out greedy single-attempt accuracy every `eval_every` steps (the learning curves of Fig. 4).

Try it: `python -m pipeline train --config config.yaml --variant multi_attempt --seed 0
--base results/tiny/models/base --train-data results/tiny/data/synthetic_train.jsonl
--heldout results/tiny/data/synthetic_heldout.jsonl --run-dir /tmp/run --out /tmp/model`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline import actors, checkpoint, hub, models, ppo, provenance, runlog
from pipeline import distributed as dist
from pipeline.backends import make_backend
from pipeline.checkpoint import Checkpoints, step_name
from pipeline.config import Config
from pipeline.data import validation_split
from pipeline.env import MultiAttemptEnv
from pipeline.evaluate import evaluate
from pipeline.grading import Grader
from pipeline.io import DataError, append_jsonl, write_jsonl
from pipeline.progress import progress_bar
from pipeline.rollout import Question, SamplingParams, Transcript, check_template, rollout
from pipeline.seeds import derive_seed
from pipeline.time_limit import TimeLimit, TimeLimitReached

log = logging.getLogger(__name__)


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
    is_weights: torch.Tensor  # train.is_correction's per-token weights (1 with none)
    # log(p_actor / p_rollout) per policy token, when the actor recomputed the behaviour log-probs (else None)
    log_ratio: torch.Tensor | None = None

    def select(self, rows: torch.Tensor) -> Experience:
        """Rows of the buffer, trimmed to their longest sequence."""
        width = int(self.attention[rows].sum(1).max())
        per_token = (self.mask, self.old_logp, self.ref_logp, self.values, self.advantages, self.returns)
        return Experience(
            self.ids[rows, :width],
            self.attention[rows, :width],
            *(t[rows, : width - 1] for t in (*per_token, self.is_weights)),
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


class QuestionOrder:
    """The questions of each step, all ranks alike: a seeded permutation of the training set per epoch, walked
    in order; N drawn per question from the variant's attempt range."""

    def __init__(self, records: Sequence[Mapping], env: MultiAttemptEnv, seed: int, per_step: int):
        self.records, self.env, self.seed, self.per_step = list(records), env, seed, per_step
        if not self.records:
            raise DataError("train: no training questions")
        self._epoch, self._order = -1, []  # the permutation of the current epoch

    def questions(self, step: int) -> list[Question]:
        n, r = len(self.records), self.per_step
        out, rng = [], random.Random(derive_seed(self.seed, "questions", step))
        for i in range(step * r, (step + 1) * r):
            epoch, j = divmod(i, n)
            rec = self.records[self.permutation(epoch)[j]]
            out.append(Question(str(rec["id"]), rec["question"], str(rec["answer"]), self.env.sample_n(rng)))
        return out

    def permutation(self, epoch: int) -> list[int]:
        if self._epoch != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
            self._order, self._epoch = torch.randperm(len(self.records), generator=g).tolist(), epoch
        return self._order


def dialogue_stats(transcripts: Sequence[Transcript], stats: Means) -> None:
    """Add the step's dialogue statistics (`train/...`) to `stats`."""
    ds = [t.dialogue for t in transcripts]
    solved = [d for d in ds if d.solved_at is not None]
    failed = [d for d in ds if d.solved_at is None]
    retried = [d for d in ds if len(d.attempts) > 1]
    stats.add("train/reward", sum(d.reward for d in ds), len(ds))
    stats.add("train/accuracy", len(solved), len(ds))
    stats.add("train/attempts_on_success", sum(d.solved_at for d in solved), len(solved))
    stats.add("train/attempts_on_failure", sum(len(d.attempts) for d in failed), len(failed))
    stats.add("train/retry_accuracy", sum(d.solved_at is not None and d.solved_at > 1 for d in retried), len(retried))
    stats.add("train/attempts_allowed", sum(d.n_allowed for d in ds), len(ds))
    stats.add("train/response_tokens", sum(d.policy_tokens for d in ds), len(ds))
    attempts = [a for d in ds for a in d.attempts]
    stats.add("train/truncated_rate", sum(a.truncated for a in attempts), len(attempts))  # cut by budget or context
    # share of dialogues whose stored ids differ from those the model saw (0 expected; see rollout)
    stats.add("train/token_mismatch_rate", sum(not t.token_exact for t in transcripts), len(ds))


class Means:
    """Means of named quantities kept as (total, count), so that ranks sum both before dividing."""

    def __init__(self):
        self.sums: dict[str, tuple[float, float]] = {}

    def add(self, name: str, total: float, count: float = 1.0) -> None:
        s, n = self.sums.get(name, (0.0, 0.0))
        self.sums[name] = (s + total, n + count)

    def add_all(self, values: Mapping[str, torch.Tensor | float]) -> None:
        """One of each (a loss's diagnostics)."""
        for name, value in values.items():
            self.add(name, float(value))

    def mean(self, name: str) -> float:
        """This rank's mean."""
        s, n = self.sums[name]
        return s / n if n else float("nan")

    def reduced(self) -> dict[str, float]:
        """The means over all ranks, by name (NaN where nothing was counted)."""
        keys = sorted(self.sums)
        totals = dist.all_sum([x for k in keys for x in self.sums[k]])
        return {k: totals[2 * i] / totals[2 * i + 1] if totals[2 * i + 1] else float("nan") for i, k in enumerate(keys)}


class Trainer:
    def __init__(
        self,
        cfg: Config,
        variant: str,
        seed: int,
        base: str,
        train_records: Sequence[Mapping],
        heldout: Mapping[str, Sequence[Mapping]],
        run_dir: str | Path,
        grader: Grader,
    ):
        self.cfg, self.t, self.variant, self.seed, self.base = cfg, cfg.train, variant, seed, base
        self.heldout, self.run_dir = heldout, Path(run_dir)
        self.validation: list[Mapping] = []  # eval.checkpoint best_heldout: chosen on these, never trained on
        if cfg.eval.checkpoint == "best_heldout":
            self.validation, train_records = validation_split(train_records, cfg.eval.validation_questions)
        trained = cfg.for_variant(variant)  # the variant's environment (prompt, stop rule, reward)
        self.env = MultiAttemptEnv(trained.env, cfg.attempt_range(variant), grader)
        self.heldout_cfg = dataclasses.replace(cfg, env=cfg.heldout_env(variant))
        self.order = QuestionOrder(train_records, self.env, seed, self.t.rollout_batch)
        self.rank, self.world = dist.rank(), dist.world()
        check_batch_sizes(self.t, self.world)
        per_rank = self.t.train_batch // self.world
        self.device = dist.device()
        dtype = torch.bfloat16 if (self.world > 1 and self.t.deepspeed.bf16) else torch.float32
        torch.manual_seed(seed)
        revision = hub.model_revision(cfg, base)  # model.revision when the base is model.source
        actor, self.tokenizer = models.load(base, dtype=dtype, revision=revision)
        check_template(self.tokenizer, self.env, base)  # before any weights are trained
        if self.t.deepspeed.gradient_checkpointing:
            actor.gradient_checkpointing_enable()
        optimizer_steps = self.t.steps * self.t.epochs * self.t.episodes // self.t.train_batch
        accumulation = per_rank // self.t.micro_batch
        self.actor = dist.Optimized(
            models.Policy(actor.to(self.device)), self.t.actor_lr, self.t, optimizer_steps, accumulation
        )
        self.ref = None
        if self.t.kl_coef > 0:
            self.ref = models.Policy(models.load(base, dtype, revision)[0].to(self.device)).eval().requires_grad_(False)
        self.critic = None
        if self.t.algorithm == "ppo":
            critic = models.Critic.from_pretrained(base, dtype=dtype, seed=seed, revision=revision)
            if self.t.deepspeed.gradient_checkpointing:
                critic.backbone.gradient_checkpointing_enable()
            self.critic = dist.Optimized(
                critic.to(self.device), self.t.critic_lr, self.t, optimizer_steps, accumulation
            )
        # generation on the actor itself, or on a vLLM engine started on the base weights (synced before each use)
        vllm_memory = cfg.rollout.vllm.gpu_memory_utilization  # the engine shares the GPU with training
        self.backend = make_backend(trained, self.tokenizer, actor, base, dtype, self.world > 1, vllm_memory)
        self.step = 0
        self.provenance = provenance.record(cfg, computes=True)
        fingerprint = checkpoint.fingerprint(cfg, variant, seed, base, self.world)
        self.checkpoints = Checkpoints(run_dir, fingerprint, self.t.keep_checkpoints, self.tokenizer, self.provenance)

    # ------------------------------------------------------------------------------------------ one step

    def rollout(self, step: int) -> tuple[list[Transcript], list[int]]:
        """This rank's share of the step's dialogues, and each one's group (its question's index in the step)."""
        g = self.t.samples_per_prompt
        mine = list(range(self.rank, self.t.rollout_batch, self.world))
        questions = self.order.questions(step)
        batch = [questions[i] for i in mine for _ in range(g)]
        groups = [i for i in mine for _ in range(g)]
        params = SamplingParams(
            self.t.temperature, self.t.top_p, False, seed=derive_seed(self.seed, "rollout", step, self.rank)
        )
        with self.actor.full_parameters() as policy:
            policy.eval()
            self.backend.sync(policy.lm, self.step)
            transcripts = rollout(self.backend, self.tokenizer, self.env, batch, params, len(batch))
        self.backend.release()
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
        log_ratio = (actor_logp - rollout_logp)[mask] if recompute else None
        old_logp = actor_logp if recompute else rollout_logp
        weights = ppo.mismatch_weights(old_logp, rollout_logp, mask, self.t.is_correction, self.t.is_cap)
        return Experience(ids, attention, mask, old_logp, ref_logp, values * mask, adv, returns, weights, log_ratio)

    def update(self, exp: Experience, step: int) -> Means:
        """`epochs` passes of micro-batch forward/backward over the buffer; returns the losses' statistics."""
        stats = Means()
        n, per_batch = exp.ids.shape[0], self.t.train_batch // self.world
        lengths = exp.attention.sum(1)
        for epoch in range(self.t.epochs):
            g = torch.Generator().manual_seed(derive_seed(self.seed, "micro_batches", step, epoch))
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
                pg, pg_stats = ppo.policy_loss(
                    logp,
                    mb.old_logp.to(self.device),
                    mb.advantages.to(self.device),
                    mask,
                    self.t.clip,
                    mb.is_weights.to(self.device),  # all 1 with is_correction none: the plain surrogate, bit for bit
                )
                loss = pg
                if self.ref is not None:
                    kl = ppo.masked_mean(ppo.kl_k3(logp, mb.ref_logp.to(self.device)), mask)
                    loss = loss + self.t.kl_coef * kl
                    stats.add("ppo/kl", float(kl.detach()))
                stats.add("ppo/entropy", float(ent))
                stats.add("ppo/policy_loss", float(pg.detach()))
                stats.add_all(pg_stats)
                norm = self.actor.micro_step(loss)
                if norm is not None:
                    stats.add("ppo/grad_norm", norm)
                if self.critic is not None:
                    self.critic.module.train()
                    v = self.critic(x, a)[:, :-1]
                    vl, vl_stats = ppo.value_loss(
                        v, mb.values.to(self.device), mb.returns.to(self.device), mask, self.t.value_clip
                    )
                    self.critic.micro_step(vl)
                    stats.add("ppo/value_loss", float(vl.detach()))
                    stats.add_all(vl_stats)
        return stats

    def train_step(self) -> dict[str, float]:
        step = self.step
        t0 = time.time()
        transcripts, groups = self.rollout(step)
        t_rollout = time.time() - t0
        self.samples = [t.dialogue for t in transcripts[:3]]  # shown in TensorBoard at held-out evaluations
        exp = self.experience(transcripts, groups)
        stats = self.update(exp, step)
        self.step += 1
        return self._metrics(transcripts, stats, exp.log_ratio, t_rollout, time.time() - t0)

    def _metrics(
        self,
        transcripts: Sequence[Transcript],
        stats: Means,
        log_ratio: torch.Tensor | None,
        t_rollout: float,
        t_step: float,
    ) -> dict[str, float]:
        dialogue_stats(transcripts, stats)
        tokens = sum(t.dialogue.policy_tokens for t in transcripts)
        gap = None if log_ratio is None else log_ratio.abs()
        if gap is not None:  # how far the rollout engine's probabilities are from the trainer's
            ratio = log_ratio.exp()
            stats.add("ppo/logprob_gap_mean", float(gap.sum()), gap.numel())
            stats.add("ppo/mismatch_ratio_mean", float(ratio.sum()), ratio.numel())
            stats.add("ppo/mismatch_outside_10pct", float(((ratio < 0.9) | (ratio > 1.1)).sum()), ratio.numel())
        out = {"step": self.step, **stats.reduced()}
        if gap is not None:
            out["ppo/logprob_gap_max"] = dist.all_max([float(gap.max()) if gap.numel() else 0.0])[0]
        out["train/lr"] = self.actor.lr
        out["perf/rollout_s"], out["perf/step_s"] = t_rollout, t_step
        out["perf/tokens_per_s"] = dist.all_sum([tokens])[0] / t_step
        return out

    # ------------------------------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def heldout_accuracy(self) -> dict[str, float]:
        """Greedy single-attempt accuracy per held-out set (`heldout/<set>`; this rank evaluates its shard), and
        their mean (`heldout/mean`), in the variant's environment with its held-out prompt (the released
        baseline's checks use the qwen-boxed prompt, spec §5.3)."""
        out = {}
        with self.actor.full_parameters() as policy:
            policy.eval()
            self.backend.sync(policy.lm, self.step)
            for name, records in self.heldout.items():
                out[f"heldout/{name}"] = self._accuracy(records[: self.t.eval_questions], name)
            out["heldout/mean"] = sum(out.values()) / max(len(out), 1)
            if self.validation:  # the checkpoint choice (eval.checkpoint best_heldout)
                out["validation/accuracy"] = self._accuracy(self.validation, "validation")
        self.backend.release()
        return out

    def _accuracy(self, records: Sequence[Mapping], name: str) -> float:
        """Greedy single-attempt accuracy on `records`, this rank evaluating its shard."""
        shard = list(records)[self.rank :: self.world]
        traces = (
            evaluate(self.backend, self.tokenizer, self.heldout_cfg, shard, name, 1, self.env.grader, progress=False)
            if shard
            else []
        )
        solved, total = dist.all_sum([sum(t["solved_at"] == 1 for t in traces), len(traces)])
        return solved / max(total, 1.0)


def check_batch_sizes(t, world: int) -> None:
    """Each of `world` processes takes an equal share of the rollout batch and whole micro-batches of training."""
    if t.rollout_batch % world or t.train_batch % (world * t.micro_batch):
        raise DataError(
            f"train: with {world} processes, rollout_batch ({t.rollout_batch}) must be a multiple of "
            f"{world} and train_batch ({t.train_batch}) of {world} x micro_batch ({t.micro_batch})"
        )


def _time_is_up(limit: TimeLimit | None, longest_step: float) -> bool:
    """Whether another step would run into the job's time limit. Every rank asks (a collective): one that says
    so stops them all, at the same step."""
    close = limit is not None and limit.too_close(longest_step)
    return dist.all_max([float(close)])[0] > 0


def train(trainer: Trainer, out: str | Path, progress: bool = True, limit: TimeLimit | None = None) -> dict:
    """Train the trainer's variant x seed to `train.steps`, resuming from its checkpoints; the final actor
    (+ logs) in `out`. Raises TimeLimitReached, after a checkpoint, when `limit` leaves no room for another step."""
    run_dir, t = trainer.run_dir, trainer.t
    variant, seed, log_path = trainer.variant, trainer.seed, run_dir / "train_log.jsonl"
    records: list[dict] = []
    if t.resume == "auto":
        trainer.step, records = trainer.checkpoints.resume(trainer.actor, trainer.critic, t.steps)
    else:
        trainer.checkpoints.start_over()
    writer, trackers = _open_logs(trainer, records) if dist.is_main() else (None, [])
    t0 = time.time()

    def record(metrics: dict) -> None:
        records.append(metrics)
        if writer is not None:
            runlog.scalars(writer, metrics)
            runlog.track(trackers, metrics)
            append_jsonl(log_path, [metrics])

    best = actors.BestActor(run_dir / "best", records) if trainer.validation else None  # from the resumed log
    if trainer.step == 0 and t.eval_every:
        record({"step": 0, **trainer.heldout_accuracy()})
        if best is not None:
            best.offer(trainer, records[-1])
    bar = progress_bar(
        total=t.steps,
        initial=trainer.step,
        desc=f"train {variant} s{seed}",
        unit="step",
        disable=not (progress and dist.is_main()),
    )
    longest_step = 0.0
    while trainer.step < t.steps:
        began = time.monotonic()
        metrics = trainer.train_step()
        last = trainer.step == t.steps
        if t.eval_every and (trainer.step % t.eval_every == 0 or last):
            metrics.update(trainer.heldout_accuracy())
            if writer is not None:  # a few of this step's training dialogues, as text
                writer.add_text("train/dialogues", runlog.dialogues_text(trainer.samples), trainer.step)
            if best is not None:
                best.offer(trainer, metrics)
        record(metrics)
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['train/reward']:.3f}", acc=f"{metrics['train/accuracy']:.3f}")
        if trainer.step in trainer.cfg.eval.curve_steps:  # an actor of the k-attempt learning curves
            actors.save_actor(trainer, run_dir / "curve" / step_name(trainer.step))
        saved = trainer.step % t.save_every == 0 or last
        if saved:
            trainer.checkpoints.save(trainer.step, trainer.actor, trainer.critic, records)
        longest_step = max(longest_step, time.monotonic() - began)
        if not last and _time_is_up(limit, longest_step):
            if not saved:
                trainer.checkpoints.save(trainer.step, trainer.actor, trainer.critic, records)
            bar.close()
            if writer is not None:
                writer.close()
            runlog.finish(trackers)  # the next job resumes the tracker's run (wandb: by its id)
            raise TimeLimitReached(
                f"{variant} seed {seed}: stopped at step {trainer.step} of {t.steps}, with a checkpoint, "
                f"{limit.margin_s:.0f} s + one step ({longest_step:.0f} s) before the job's time limit; "
                "the next run of this command resumes (the train rule's retries, resources.train.sessions)"
            )
    bar.close()
    summary = {
        "variant": variant,
        "seed": seed,
        "steps": trainer.step,
        "seconds_this_session": round(time.time() - t0, 1),
        "final": records[-1] if records else {},
        "checkpoint": {"rule": trainer.cfg.eval.checkpoint, **({} if best is None else best.chosen())},
    }
    with trainer.actor.full_parameters() as actor:  # collective under ZeRO-3: every rank enters
        if dist.is_main():
            actors.write_model_folder(trainer, actor, out, records, summary, best)
            writer.close()
            runlog.finish(trackers)
    dist.barrier()
    return summary


def _open_logs(trainer: Trainer, records: list[dict]) -> tuple:
    """(TensorBoard writer, trackers) of the main rank; train_log.jsonl restarted from the resumed `records`."""
    run_dir, cfg = trainer.run_dir, trainer.cfg.to_dict()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(run_dir / "train_log.jsonl", records)  # the log of the checkpoint resumed from: a killed run's go
    writer = runlog.open_writer(run_dir / "tensorboard", cfg, trainer.step)
    name = f"{trainer.variant}_s{trainer.seed}"
    return writer, runlog.open_trackers(cfg["trackers"], run_dir, cfg["experiment"], name, cfg)
