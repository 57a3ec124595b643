"""The PPO / GRPO mathematics, as pure tensor functions (no models, no I/O).

Layout: a batch of dialogues is right-padded to (B, L) token ids. Every per-token quantity here lives on the
B x (L-1) *prediction positions*: position i predicts token i+1, so `mask[:, i]` says whether token i+1 was
sampled by the policy, `logp[:, i]` is that token's log-probability and `values[:, i]` the critic's value of the
state after tokens 0..i. Prompt, feedback and padding positions have mask 0: they carry no advantage, no return,
and are left out of every loss and of the advantage statistics (paper code: the `sys2_mask`).

Credit passes through feedback with gamma = lambda = 1 (spec §4.1). That makes feedback transparent: GAE over
the whole sequence equals GAE over the policy tokens alone, each followed by the *next policy token* (the values
on feedback tokens telescope out). `gae` computes it that way, which is also cheaper.

Try it: `pytest tests/test_ppo.py -q`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-level mean over the True entries (0 when there are none)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def terminal_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) dialogue rewards -> (B, T) per-token rewards: each reward on its dialogue's last policy token."""
    out = torch.zeros(mask.shape, dtype=torch.float32)
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    last = torch.where(mask, positions, -1).max(dim=1).values
    rows = torch.nonzero(last >= 0).flatten()
    out[rows, last[rows]] = rewards[rows].float()
    return out


def gae(
    token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over policy tokens only; returns (advantages, returns), 0 off the mask.

    For policy token t with next policy token t' (none after the last): delta_t = r_t + gamma V_t' - V_t and
    A_t = delta_t + gamma lambda A_t'. Returns are A_t + V_t, the critic's regression target.
    """
    # Pack each row's policy tokens to the left: column j of `packed` is the row's j-th policy token.
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    n = mask.sum(dim=1)
    width = int(n.max()) if mask.numel() else 0
    order = order[:, :width]
    live = torch.arange(width)[None, :] < n[:, None]
    r = token_rewards.float().gather(1, order) * live
    v = values.float().gather(1, order) * live
    next_v = torch.cat([v[:, 1:], v.new_zeros(v.shape[0], 1)], dim=1)
    delta = (r + gamma * next_v - v) * live
    packed = torch.zeros_like(v)
    running = v.new_zeros(v.shape[0])
    for t in range(width - 1, -1, -1):
        running = delta[:, t] + gamma * lam * running
        packed[:, t] = running
    adv = torch.zeros(mask.shape, dtype=torch.float32)
    adv.scatter_(1, order, packed * live)
    adv = adv * mask
    returns = (adv + values.float()) * mask
    return adv, returns


def group_advantages(rewards: torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    """GRPO's critic-free baseline: each dialogue's reward minus the mean reward of its question's group.

    Not divided by the group's standard deviation (that up-weights questions the policy already always solves
    or always fails); the whole-buffer normalisation in `whiten` sets the scale instead.
    """
    groups_t = torch.as_tensor(list(groups))
    out = torch.empty_like(rewards, dtype=torch.float32)
    for g in groups_t.unique():
        members = groups_t == g
        out[members] = rewards[members].float() - rewards[members].float().mean()
    return out


def whiten(x: torch.Tensor, mask: torch.Tensor, stats: tuple[float, float, float] | None = None) -> torch.Tensor:
    """(x - mean) / std over the masked entries, 0 elsewhere. `stats` = (sum, sum of squares, count) over the
    whole rollout buffer, possibly summed across data-parallel ranks; computed from `x` when not given."""
    if stats is None:
        m = mask.float()
        stats = (float((x * m).sum()), float((x * x * m).sum()), float(m.sum()))
    total, squares, count = stats
    count = max(count, 1.0)
    mean = total / count
    var = max(squares / count - mean * mean, 0.0)
    return (x - mean) / (var**0.5 + 1e-8) * mask


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference) per sampled token: exp(-d) - 1 + d, d = logp - ref.

    Unbiased, never negative, and its gradient pushes logp towards ref (spec §4: added to the actor loss).
    """
    d = logp - ref_logp
    return torch.exp(-d) - 1.0 + d


def mismatch_weights(
    behaviour_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor, mode: str, cap: float
) -> torch.Tensor:
    """Per-token importance weights for the rollout engine sampling from other probabilities than the trainer's
    behaviour policy (bf16 kernels, another engine): w = p_behaviour / p_rollout of the sampled token, truncated
    at `cap` ("tis") or set to 0 above it ("mis", the token leaves the loss); "none": 1. Tokens off the mask
    (prompt, feedback, padding) get 1, and the loss leaves them out anyway."""
    if mode == "none":
        return torch.ones_like(behaviour_logp)
    ratio = torch.exp(behaviour_logp - rollout_logp)
    weights = ratio.clamp(max=cap) if mode == "tis" else torch.where(ratio <= cap, ratio, torch.zeros_like(ratio))
    return torch.where(mask, weights, torch.ones_like(weights))


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, token-level mean over the mask (each token's term times its `weights`, the
    `mismatch_weights`, when given), and its diagnostics: the clipped fraction and the k3 estimate of
    KL(old || new) (how far this update has moved the policy from the rollout's)."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    surrogate = -torch.minimum(unclipped, clipped)
    loss = masked_mean(surrogate if weights is None else surrogate * weights, mask)
    with torch.no_grad():
        stats = {
            "ppo/clip_frac": masked_mean((clipped < unclipped).float(), mask),
            "ppo/approx_kl": masked_mean(kl_k3(old_logp, logp), mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 max((V - R)^2, (V_clipped - R)^2), V_clipped within `clip` of the rollout's V;
    and the critic's explained variance, 1 - Var(R - V) / Var(R) over the mask (NaN when Var(R) is 0)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    loss = 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)
    with torch.no_grad():
        var_r = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
        resid = returns - values
        var_e = masked_mean((resid - masked_mean(resid, mask)) ** 2, mask)
        explained = 1.0 - var_e / var_r if var_r > 0 else var_r.new_tensor(float("nan"))
    return loss, {"ppo/explained_variance": explained}


class _TokenLogprobs(torch.autograd.Function):
    """log softmax(h W^T / T)[target] row by row, without ever holding the (rows x vocab) logits for backward.

    At the paper's shapes a micro-batch has ~20K policy tokens and the vocabulary 151,936 entries: the full
    float32 logits would be 12 GB, kept by autograd for backward. Here forward keeps only the hidden states and
    each row's log-normaliser, and backward recomputes the logits one chunk at a time. Gradients are the exact
    ones (tests/test_ppo.py compares with autograd in float64); the weight's gradient accumulates in float32.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, rows):
        n = hidden.shape[0]
        logp = hidden.new_empty(n, dtype=torch.float32)
        entropy, norm = torch.empty_like(logp), torch.empty_like(logp)
        for s in range(0, n, rows):
            z = (hidden[s : s + rows] @ weight.T).float() / temperature
            norm[s : s + rows] = lse = torch.logsumexp(z, dim=-1)
            logp[s : s + rows] = z.gather(-1, targets[s : s + rows, None]).squeeze(-1) - lse
            entropy[s : s + rows] = lse - (torch.softmax(z, dim=-1) * z).sum(-1)
        ctx.save_for_backward(hidden, weight, targets, norm)
        ctx.temperature, ctx.rows = temperature, rows
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, targets, norm = ctx.saved_tensors
        t, rows = ctx.temperature, ctx.rows
        want_h, want_w = ctx.needs_input_grad[:2]
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        for s in range(0, hidden.shape[0], rows):
            h, g = hidden[s : s + rows], grad_logp[s : s + rows]
            z = (h @ weight.T).float() / t
            # d logp / d z = onehot(target) - softmax(z); the chain through z = logits / T divides by T
            dz = torch.exp(z - norm[s : s + rows, None]).mul_(-g[:, None])
            dz.scatter_add_(-1, targets[s : s + rows, None], g[:, None].float())
            dz = dz.div_(t).to(hidden.dtype)
            if want_h:
                grad_h[s : s + rows] = dz @ weight
            if want_w:
                grad_w += dz.T @ h
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None


def token_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float, chunk_bytes: int = 2**28
) -> tuple[torch.Tensor, torch.Tensor]:
    """log softmax(hidden @ weight.T / T) of the target tokens (float32, differentiable) and the distributions'
    entropies (no gradient), for `hidden` (n, H) of the policy positions only and the LM head's `weight` (V, H).

    Logits are made in chunks of about `chunk_bytes` of float32 and never kept: see `_TokenLogprobs`.
    """
    rows = max(1, chunk_bytes // (4 * weight.shape[0]))
    return _TokenLogprobs.apply(hidden, weight, targets, temperature, rows)
