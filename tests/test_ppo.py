"""The PPO / GRPO mathematics: GAE with feedback masks (by hand and against the paper's token-level rule),
the k3 KL estimator, clipping, group baselines and whitening."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline import ppo

# One dialogue on prediction positions: [prompt->p1, p1->p2, p2->f1, f1->f2, f2->p3] — i.e. two policy tokens of
# attempt 1, two feedback tokens, one policy token of attempt 2. mask = "the predicted token is the policy's".
MASK = torch.tensor([[True, True, False, False, True]])


def test_gae_by_hand_skips_feedback():
    values = torch.tensor([[0.5, 0.2, 9.0, -7.0, -0.1]])  # feedback values must not matter
    rewards = ppo.terminal_rewards(torch.tensor([1.0]), MASK)
    assert rewards.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]
    adv, ret = ppo.gae(rewards, values, MASK, gamma=1.0, lam=0.5)
    # A3 = 1 - (-0.1) = 1.1; A2 = (-0.1 - 0.2) + 0.5 * 1.1 = 0.25; A1 = (0.2 - 0.5) + 0.5 * 0.25 = -0.175
    assert adv[0].tolist() == pytest.approx([-0.175, 0.25, 0.0, 0.0, 1.1])
    assert ret[0].tolist() == pytest.approx([0.325, 0.45, 0.0, 0.0, 1.0])


def paper_gae(rewards, values, mask, gamma, lam):
    """The released code's rule, token by token over the response: feedback tokens are ordinary steps with
    reward 0, but a transition whose next token is feedback uses gamma = lambda = 1."""
    n = mask.shape[1]
    first = int(torch.nonzero(mask[0])[0])
    adv, running = [0.0] * n, 0.0
    for t in range(n - 1, first - 1, -1):
        nxt_feedback = t + 1 < n and not mask[0, t + 1]
        g, lam_t = (1.0, 1.0) if nxt_feedback else (gamma, lam)
        next_v = float(values[0, t + 1]) if t + 1 < n else 0.0
        delta = float(rewards[0, t]) + g * next_v - float(values[0, t])
        running = delta + g * lam_t * running
        adv[t] = running
    return torch.tensor(adv) * mask[0]


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.99), (0.9, 0.7), (1.0, 1.0)])
def test_gae_equals_the_paper_token_level_rule(gamma, lam):
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, True, True, False, False, False, True, True, False, False, True]])
    values = torch.randn(mask.shape, generator=g)
    rewards = ppo.terminal_rewards(torch.tensor([-0.5]), mask)
    ours, _ = ppo.gae(rewards, values, mask, gamma, lam)
    assert ours[0].tolist() == pytest.approx(paper_gae(rewards, values, mask, gamma, lam).tolist(), abs=1e-6)


F, P = False, True  # prompt/feedback/padding position, policy position


@pytest.mark.parametrize(
    ("mask", "values", "reward", "advantages"),
    [
        pytest.param([F, P, P, P], [9, 0.2, 0.4, 0.8], 1.0, [0, 0.0125, 0.05, 0.2], id="one attempt"),
        pytest.param(
            [F, P, P, F, F, P, P],
            [9, 0.2, 0.4, 5, -5, 0.6, 0.8],
            -0.5,
            [0, -0.0578125, -0.23125, 0, 0, -0.525, -1.3],
            id="feedback between attempts",
        ),
        pytest.param(
            [F, P, P, F, F, F, F, F, P, P],
            [9, 0.2, 0.4, 5, -5, 3, 3, 3, 0.6, 0.8],
            -0.5,
            [0, -0.0578125, -0.23125, 0, 0, 0, 0, 0, -0.525, -1.3],
            id="a longer feedback block changes nothing",
        ),
        pytest.param(
            [F, P, P, F, F], [9, 0.2, 0.4, 7, 7], -1.0, [0, -0.35, -1.4, 0, 0], id="cut by the context, padded"
        ),
    ],
)
def test_gae_table_by_hand(mask, values, reward, advantages):
    """GAE across feedback blocks (issue 29, item 6), gamma = lambda = 0.5 so every step shows, each row worked by
    hand: the dialogue's one reward sits on its last policy token (never on feedback or padding); each transition
    from a policy token to the next policy token is one gamma-lambda step, however many feedback tokens lie
    between (OpenRLHF's GAE, as we read it, decays through every masked environment token instead); feedback
    values never enter. Hand computation for "feedback between attempts", policy values 0.2, 0.4, 0.6, 0.8:
    A4 = -0.5 - 0.8 = -1.3; A3 = (0.5 * 0.8 - 0.6) + 0.25 * -1.3 = -0.525; A2 = (0.5 * 0.6 - 0.4) + 0.25 * -0.525
    = -0.23125; A1 = (0.5 * 0.4 - 0.2) + 0.25 * -0.23125 = -0.0578125."""
    mask, values = torch.tensor([mask]), torch.tensor([values])
    rewards = ppo.terminal_rewards(torch.tensor([reward]), mask)
    last = int(torch.nonzero(mask[0])[-1])
    assert rewards[0].tolist() == [reward if j == last else 0.0 for j in range(mask.shape[1])]
    adv, ret = ppo.gae(rewards, values, mask, gamma=0.5, lam=0.5)
    assert adv[0].tolist() == pytest.approx(advantages)
    on_mask = mask[0].tolist()
    assert ret[0].tolist() == pytest.approx([(a + v) * m for a, v, m in zip(advantages, values[0].tolist(), on_mask)])


def test_mismatch_weights_by_hand():
    """train.is_correction (issue 29, item 1): w = p_behaviour / p_rollout per policy token, truncated at the cap
    (tis) or zeroed above it (mis); prompt, feedback and padding positions get 1 whatever their log-probs, and
    leave the loss alone."""
    mask = torch.tensor([[False, True, True, False, True, True, False]])  # prompt, 2 policy, feedback, 2 policy, pad
    ratios = [7.0, 0.5, 1.0, 9.0, 1.5, 3.0, 0.1]  # off the mask: whatever the engine or padding left there
    rollout = torch.full(mask.shape, -2.0)
    behaviour = rollout + torch.tensor([ratios]).log()
    w = {
        mode: ppo.mismatch_weights(behaviour, rollout, mask, mode, cap=2.0)[0].tolist()
        for mode in ("none", "tis", "mis")
    }
    assert w["none"] == [1.0] * 7
    assert w["tis"] == pytest.approx([1.0, 0.5, 1.0, 1.0, 1.5, 2.0, 1.0])
    assert w["mis"] == pytest.approx([1.0, 0.5, 1.0, 1.0, 1.5, 0.0, 1.0])
    # the weighted loss, by hand: at the behaviour policy (ratio 1) each policy token's term is -w * A
    adv = torch.tensor([[5.0, 1.0, -1.0, 5.0, 2.0, 4.0, 5.0]])
    weights = ppo.mismatch_weights(behaviour, rollout, mask, "tis", cap=2.0)
    loss, _ = ppo.policy_loss(behaviour, behaviour, adv, mask, clip=0.2, weights=weights)
    assert float(loss) == pytest.approx(-(0.5 * 1 + 1.0 * -1 + 1.5 * 2 + 2.0 * 4) / 4)
    garbage = torch.where(mask, weights, torch.full_like(weights, 1e6))  # off-mask weights never count
    assert float(ppo.policy_loss(behaviour, behaviour, adv, mask, 0.2, garbage)[0]) == pytest.approx(float(loss))


def test_gae_batches_rows_independently():
    mask = torch.tensor([[True, True, False, True], [False, True, True, False]])
    values = torch.tensor([[0.1, 0.2, 5.0, 0.3], [7.0, -0.2, 0.4, 3.0]])
    rewards = ppo.terminal_rewards(torch.tensor([1.0, -1.0]), mask)
    adv, _ = ppo.gae(rewards, values, mask, 1.0, 0.9)
    for b in range(2):
        alone, _ = ppo.gae(rewards[b : b + 1], values[b : b + 1], mask[b : b + 1], 1.0, 0.9)
        assert adv[b].tolist() == pytest.approx(alone[0].tolist())
    assert adv[~mask].abs().sum() == 0


def test_k3_is_zero_at_equality_nonnegative_and_unbiased():
    logp = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    assert ppo.kl_k3(logp, logp).abs().max() == 0
    ref = torch.log(torch.tensor([0.4, 0.4, 0.2]))
    assert (ppo.kl_k3(logp, ref) >= 0).all()
    # d = log 0.5 - log 0.4: exp(-d) - 1 + d by hand
    d = math.log(0.5) - math.log(0.4)
    assert float(ppo.kl_k3(logp[1:2], ref[1:2])) == pytest.approx(math.exp(-d) - 1 + d)
    # Its mean over samples from the policy estimates KL(policy || reference).
    p = logp.exp()
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = float(ppo.kl_k3(logp[samples], ref[samples]).mean())
    exact = float((p * (logp - ref)).sum())
    assert estimate == pytest.approx(exact, rel=0.03)


def test_policy_loss_clips_the_ratio():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 1.1, 0.5]])).requires_grad_()
    adv = torch.tensor([[1.0, 1.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, stats = ppo.policy_loss(logp, old, adv, mask, clip=0.2)
    clip_frac = stats["ppo/clip_frac"]
    # ratios 1.5 (clipped to 1.2), 1.1 (inside), 0.5 (below, but min keeps the unclipped 0.5 for A > 0)
    assert float(loss.detach()) == pytest.approx(-(1.2 + 1.1 + 0.5) / 3)
    assert float(clip_frac) == pytest.approx(1 / 3)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] != 0 and logp.grad[0, 2] != 0


def test_losses_ignore_masked_tokens():
    logp, old = torch.tensor([[0.1, 50.0]]), torch.zeros(1, 2)
    adv = torch.tensor([[2.0, -100.0]])
    mask = torch.tensor([[True, False]])
    loss, _ = ppo.policy_loss(logp, old, adv, mask, clip=0.2)
    assert float(loss) == pytest.approx(-min(math.exp(0.1), 1.2) * 2.0)
    v, _ = ppo.value_loss(torch.tensor([[0.0, 9.0]]), torch.zeros(1, 2), torch.tensor([[1.0, -9.0]]), mask, clip=0.2)
    assert float(v) == pytest.approx(0.5)


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    old, ret = torch.zeros(1, 1), torch.ones(1, 1)
    mask = torch.ones(1, 1, dtype=torch.bool)
    # V moved 0 -> 0.9 towards R = 1: clipped V is 0.2, (0.2 - 1)^2 = 0.64 > (0.9 - 1)^2 = 0.01.
    assert float(ppo.value_loss(torch.tensor([[0.9]]), old, ret, mask, 0.2)[0]) == pytest.approx(0.5 * 0.64)


def test_losses_report_their_diagnostics_over_the_mask():
    mask = torch.tensor([[True, True, True, False]])
    old = torch.zeros(1, 4)
    logp = torch.tensor([[0.1, -0.2, 0.0, 30.0]])
    _, stats = ppo.policy_loss(logp, old, torch.ones(1, 4), mask, clip=0.2)
    # approx_kl: the mean of ratio - 1 - log(ratio) over the masked tokens (k3 of KL(old || new))
    by_hand = sum(math.exp(x) - 1 - x for x in (0.1, -0.2, 0.0)) / 3
    assert float(stats["ppo/approx_kl"]) == pytest.approx(by_hand, rel=1e-5) and float(stats["ppo/clip_frac"]) == 0
    returns = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    _, stats = ppo.value_loss(returns - 0.5, returns - 0.5, returns, mask, clip=0.2)  # constant error: all explained
    assert float(stats["ppo/explained_variance"]) == pytest.approx(1.0)
    _, stats = ppo.value_loss(torch.full((1, 4), 2.0), torch.zeros(1, 4), returns, mask, clip=0.2)  # the mean
    assert float(stats["ppo/explained_variance"]) == pytest.approx(0.0, abs=1e-6)


def test_group_advantages_subtract_the_group_mean():
    rewards = torch.tensor([1.0, -0.5, -0.5, 1.0, 1.0, 1.0])
    adv = ppo.group_advantages(rewards, [0, 0, 0, 7, 7, 7])
    assert adv.tolist() == pytest.approx([1.0, -0.5, -0.5, 0.0, 0.0, 0.0])


def test_whiten_uses_only_masked_entries():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    w = ppo.whiten(x, mask)
    assert w[0, :2].tolist() == pytest.approx([-1.0, 1.0], abs=1e-6) and w[0, 2] == 0


def reference_logprobs(hidden, weight, targets, temperature):
    logp = torch.log_softmax(hidden @ weight.T / temperature, -1)
    return logp[torch.arange(len(targets)), targets], -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk_rows", [1, 3, 100])
def test_token_logprobs_and_gradients_equal_autograd_through_full_logits(chunk_rows):
    """Chunked, recomputed in backward: the same values and exact gradients as log_softmax over full logits."""
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (7,), generator=g)
    logp, ent = ppo.token_logprobs(hidden, weight, targets, 0.6, chunk_bytes=chunk_rows * 4 * 11)
    ref_logp, ref_ent = reference_logprobs(hidden, weight, targets, 0.6)
    assert torch.allclose(logp.double(), ref_logp, atol=1e-6) and torch.allclose(ent.double(), ref_ent, atol=1e-5)
    assert not ent.requires_grad
    upstream = torch.randn(7, generator=g, dtype=torch.float64)
    ours = torch.autograd.grad((logp.double() * upstream).sum(), (hidden, weight))
    ref = torch.autograd.grad((ref_logp * upstream).sum(), (hidden, weight))
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_token_logprobs_passes_gradcheck():
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 5, 2, 2])
    # float64 end to end (the op computes in float32 by design, so compare at that precision)
    assert torch.autograd.gradcheck(
        lambda h, w: ppo.token_logprobs(h, w, targets, 1.3, chunk_bytes=48)[0],
        (hidden, weight),
        eps=1e-3,
        atol=1e-3,
        rtol=1e-3,
    )
