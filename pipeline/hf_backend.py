"""Rollouts with a transformers model on CPU or one GPU: the `rollout.Backend` contract, played in rounds.

The HF session keeps one KV cache for the batch: after feedback it feeds only the new tokens (no re-encoding of
history), finished dialogues leave the batch, and an attempt stops at end of turn, after the first complete
`\\boxed{}` (if configured), or at its token budget. `sequence_logprobs` recomputes a dialogue's log-probs without
a cache: the reference both backends' stored log-probs are checked against (`rollout(check=True)`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from pipeline.io import DataError
from pipeline.rollout import AttemptStop, Sampled, SamplingParams, Stream, end_token_ids
from pipeline.seeds import derive_seed


def _sample_token(
    logits: torch.Tensor, params: SamplingParams, gen: torch.Generator | Sequence[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V) logits -> sampled ids (B,) and their log-probs under softmax(logits / T). `gen`: one generator for
    the batch, or one per row (each row's draw then depends on its own stream only)."""
    logits = logits.float()
    if params.greedy:
        ids = logits.argmax(-1)
        logp = torch.log_softmax(logits, -1)
    else:
        logp = torch.log_softmax(logits / params.temperature, -1)
        probs = logp.exp()
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < params.top_p  # always keeps the most likely token
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        if isinstance(gen, torch.Generator):
            ids = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
        else:
            ids = torch.cat([torch.multinomial(p[None], 1, generator=g)[0] for p, g in zip(probs, gen)])
    return ids, logp.gather(-1, ids[:, None]).squeeze(-1)


class HFSession:
    """One KV cache for a batch. Tokens fed in chunks are left-padded; padding holes are masked out and
    position ids count only real tokens, so every row computes exactly what it would alone."""

    def __init__(
        self,
        model,
        n_rows: int,
        params: SamplingParams,
        stop: AttemptStop,
        pad_id: int,
        reuse_cache: bool = True,
        streams: Sequence[Stream] | None = None,
    ):
        self.model, self.params, self.stop, self.pad_id = model, params, stop, pad_id
        if streams is not None and len(streams) != n_rows:
            raise ValueError(f"open: {len(streams)} row streams for {n_rows} rows")
        self.streams = list(streams) if streams is not None else None
        self.calls = [0] * n_rows  # attempts sampled per row (a row's stream is seeded per attempt)
        self.reuse_cache = reuse_cache  # False: re-encode the whole dialogue every attempt (bench/rollout.py)
        self.device = next(model.parameters()).device
        # on the logits' device: torch.multinomial on CUDA refuses a CPU generator
        self.gen = torch.Generator(device=self.device).manual_seed(params.seed)
        self.live: list[int] = list(range(n_rows))  # cache batch index -> row
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros(n_rows, 0, dtype=torch.long, device=self.device)  # (B, L) real=1, hole=0
        self.pos = torch.zeros(n_rows, dtype=torch.long, device=self.device)  # next position id per row
        self.pending: dict[int, list[int]] = {r: [] for r in range(n_rows)}
        self.history: dict[int, list[int]] = {r: [] for r in range(n_rows)}
        self.submitted: dict[int, int] = {}  # row -> budget of its next attempt (the next round)

    def fed_ids(self, row: int) -> list[int]:
        return self.history[row] + self.pending[row]

    def feed(self, rows: Sequence[int], ids: Sequence[Sequence[int]]) -> None:
        for r, chunk in zip(rows, ids):
            self.pending[r].extend(chunk)

    def submit(self, row: int, budget: int) -> None:
        self.submitted[row] = budget

    @property
    def busy(self) -> bool:
        return bool(self.submitted)

    def step(self) -> list[tuple[int, Sampled]]:
        """One round: every submitted attempt, in row order, to its end."""
        rows = sorted(self.submitted)
        budgets = [self.submitted.pop(r) for r in rows]
        return list(zip(rows, self._round(rows, budgets)))

    def close(self) -> None:
        self.submitted.clear()

    def _keep(self, rows: Sequence[int]) -> None:
        """Drop finished rows from the cache (and put the rest in the order of `rows`)."""
        if list(rows) == self.live:
            return
        index = [self.live.index(r) for r in rows]
        idx = torch.tensor(index, dtype=torch.long, device=self.device)
        if self.cache is not None:
            self.cache.batch_select_indices(idx)
        self.mask, self.pos = self.mask[idx], self.pos[idx]
        self.live = list(rows)

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, chunk_mask: torch.Tensor) -> torch.Tensor:
        """Feed a (B, W) chunk; return the logits after its last column (B, V)."""
        positions = self.pos[:, None] + chunk_mask.cumsum(-1) - 1
        positions = positions.clamp(min=0) * chunk_mask
        self.mask = torch.cat([self.mask, chunk_mask], dim=1)
        if self.cache is None:
            self.cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.pos = self.pos + chunk_mask.sum(-1)
        return out.logits[:, -1, :]

    def _round(self, rows: Sequence[int], budgets: Sequence[int]) -> list[Sampled]:
        """One attempt for each of `rows`, advanced together (rows left out are finished and dropped)."""
        self._keep(rows)
        if not self.reuse_cache and self.cache is not None:
            for r in rows:
                self.pending[r], self.history[r] = self.history[r] + self.pending[r], []
            self.cache = None
            self.mask = self.mask[:, :0]
            self.pos = torch.zeros_like(self.pos)
        chunks = [self.pending[r] for r in rows]
        if any(not c for c in chunks) or any(b < 1 for b in budgets):
            raise ValueError("sample: every row needs queued tokens (prompt or feedback) and a budget >= 1")
        width = max(len(c) for c in chunks)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        chunk_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, c in enumerate(chunks):
            ids[b, width - len(c) :] = torch.tensor(c)
            chunk_mask[b, width - len(c) :] = 1
        for r in rows:
            self.history[r].extend(self.pending[r])
            self.pending[r] = []
        logits = self._forward(ids.to(self.device), chunk_mask.to(self.device))

        gen = self.gen
        if self.streams is not None:  # per row and attempt: what other rows do never moves a row's stream
            gen = [self._row_generator(r) for r in rows]
        out = [Sampled([], [], "") for _ in rows]
        watches = [self.stop.watch() for _ in rows]
        active = torch.ones(len(rows), dtype=torch.bool)
        while True:
            new_ids, new_logp = _sample_token(logits, self.params, gen)
            new_ids, new_logp = new_ids.cpu(), new_logp.cpu()
            for b in torch.nonzero(active).flatten().tolist():
                s = out[b]
                s.ids.append(int(new_ids[b]))
                s.logprobs.append(float(new_logp[b]))
                reason = watches[b](s.ids[-1]) or ("budget" if len(s.ids) >= budgets[b] else None)
                if reason:
                    s.reason = reason
                    active[b] = False
                    self.pending[rows[b]].append(s.ids[-1])  # fed with the row's next chunk, if any
            if not active.any():
                break
            step_ids = torch.where(active, new_ids, torch.full_like(new_ids, self.pad_id))
            for b in torch.nonzero(active).flatten().tolist():
                self.history[rows[b]].append(int(new_ids[b]))
            logits = self._forward(step_ids[:, None].to(self.device), active.long()[:, None].to(self.device))
        return out

    def _row_generator(self, row: int) -> torch.Generator:
        seed = derive_seed(*self.streams[row], self.calls[row])
        self.calls[row] += 1
        return torch.Generator(device=self.device).manual_seed(seed)


def context_length(model_positions: int, configured: int) -> int:
    """The context dialogues must fit in: `rollout.max_model_len` (0 = the model's positions), never more than
    the model has positions."""
    if configured > model_positions:
        raise DataError(f"rollout.max_model_len: {configured} exceeds the model's {model_positions} positions")
    return configured or model_positions


class HFBackend:
    """Generation with a transformers causal LM on CPU or one GPU."""

    lockstep = True

    def __init__(
        self, model, tokenizer, end_of_turn: str, stop_at_box: bool, reuse_cache: bool = True, max_model_len: int = 0
    ):
        self.model, self.tokenizer, self.reuse_cache = model, tokenizer, reuse_cache
        self.stop = AttemptStop(tokenizer, end_token_ids(tokenizer, end_of_turn), stop_at_box)
        self.max_model_len = context_length(model.config.max_position_embeddings, max_model_len)

    def open(self, n_rows: int, params: SamplingParams, streams: Sequence[Stream] | None = None) -> HFSession:
        return HFSession(self.model, n_rows, params, self.stop, self.tokenizer.pad_token_id, self.reuse_cache, streams)

    def score(self, token_ids: Sequence[Sequence[int]], temperature: float) -> list[torch.Tensor]:
        return sequence_logprobs(self.model, token_ids, temperature, self.tokenizer.pad_token_id)

    def sync(self, model: torch.nn.Module, version: int) -> None:
        self.model = model

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


@torch.no_grad()
def sequence_logprobs(
    model, token_ids: Sequence[Sequence[int]], temperature: float = 1.0, pad_id: int = 0
) -> list[torch.Tensor]:
    """Teacher-forced log p(token_t | tokens_<t) under softmax(logits / T) for each sequence (first entry 0).

    Recomputes from scratch, no cache: the reference the cached rollout must agree with.
    """
    device = next(model.parameters()).device
    width = max(len(s) for s in token_ids)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, s in enumerate(token_ids):
        ids[b, : len(s)] = torch.tensor(s)
        mask[b, : len(s)] = 1
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
    logp = torch.log_softmax(logits[:, :-1] / temperature, -1).gather(-1, ids[:, 1:, None].to(device)).squeeze(-1)
    logp = torch.cat([torch.zeros(len(token_ids), 1, device=device), logp], dim=1).cpu()
    return [logp[b, : len(s)] for b, s in enumerate(token_ids)]
