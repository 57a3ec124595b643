"""The rollout engine on a real (tiny, untrained) Qwen2 loaded from disk: token bookkeeping, cache, budgets.

An untrained model never writes a correct box, so every dialogue runs through all its attempts and every
feedback turn: the hardest case for the bookkeeping.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from pipeline import config, models
from pipeline.config import AttemptRange
from pipeline.dialogue import Role
from pipeline.env import MultiAttemptEnv, render_feedback
from pipeline.grading import Grader
from pipeline.grading.extract import first_box_end
from pipeline.hf_backend import HFBackend, sequence_logprobs
from pipeline.io import DataError
from pipeline.rollout import AttemptStop, Question, SamplingParams, check_template, encode, rollout
from tests.sampled import Recorder, assert_trained_tokens_were_sampled

GRADER = Grader.from_config(config.resolve({}).grading)


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    cfg = config.resolve({"env": {"max_attempt_tokens": 6, "max_total_tokens": 40}})
    model, tokenizer = models.load(tiny_model_dir)
    torch.manual_seed(0)
    return cfg, model, tokenizer


def run(setup, n_allowed, params, batch_size=4, stop_at_box=True, env_overrides=None, n=6, max_model_len=0):
    cfg, model, tokenizer = setup
    env_cfg = dataclasses.replace(cfg.env, **(env_overrides or {}))
    env = MultiAttemptEnv(env_cfg, AttemptRange(1, 5), GRADER)
    backend = HFBackend(model, tokenizer, env_cfg.end_of_turn, stop_at_box, max_model_len=max_model_len)
    ns = n_allowed if isinstance(n_allowed, list) else [n_allowed] * n
    questions = [Question(f"q{i}", f"{100 + i}+{200 + 3 * i}=", f"{300 + 4 * i:04d}", k) for i, k in enumerate(ns)]
    return rollout(backend, tokenizer, env, questions, params, batch_size, check=True), env_cfg


SAMPLE = SamplingParams(temperature=0.8, top_p=0.95, greedy=False, seed=7)
GREEDY = SamplingParams(temperature=1.0, top_p=1.0, greedy=True, seed=0)


def test_roles_attempts_and_feedback_ids(setup):
    cfg, model, tokenizer = setup
    transcripts, env_cfg = run(setup, 3, SAMPLE)
    for t in transcripts:
        d = t.dialogue
        assert len(t.token_ids) == len(t.roles) == len(t.attempts) == len(t.logprobs)
        assert t.roles[0] == Role.PROMPT and t.roles[-1] == Role.POLICY
        assert t.attempts == sorted(t.attempts)  # attempt index never goes back
        # segments, in order, are exactly the environment's texts encoded once and the sampled attempts
        spans, start = [], 0
        for j in range(1, len(t.roles) + 1):
            if j == len(t.roles) or (t.roles[j], t.attempts[j]) != (t.roles[start], t.attempts[start]):
                spans.append((t.roles[start], t.attempts[start], t.token_ids[start:j]))
                start = j
        assert [(r, a) for r, a, _ in spans] == [(s.role, s.attempt) for s in d.segments]
        for (role, _, ids), segment in zip(spans, d.segments):
            if role == Role.POLICY:
                assert tokenizer.decode(ids) == segment.text  # the text graded is the decoded sampled ids
            else:
                assert ids == encode(tokenizer, segment.text)  # environment text, encoded once
        assert sum(s.role == Role.FEEDBACK for s in d.segments) == len(d.attempts) - 1


def test_feedback_and_prompt_tokens_are_never_in_the_policy_mask(setup):
    transcripts, _ = run(setup, 4, SAMPLE)
    for t in transcripts:
        mask = t.policy_mask
        assert all(not m for m, r in zip(mask, t.roles) if r in (Role.PROMPT, Role.FEEDBACK))
        assert all(m for m, r in zip(mask, t.roles) if r == Role.POLICY)
        assert all(lp == 0.0 for lp, r in zip(t.logprobs, t.roles) if r != Role.POLICY)
        assert sum(mask) == t.dialogue.policy_tokens


def test_cached_logprobs_equal_full_recompute(setup):
    """Continuing with the KV cache (left-padded chunks, holes, rows leaving) gives the log-probs of
    recomputing the whole dialogue from scratch: max |difference| < 1e-4 in float32."""
    cfg, model, tokenizer = setup
    transcripts, _ = run(setup, [1, 3, 2, 4, 5, 3], SAMPLE, batch_size=6)
    ref = sequence_logprobs(model, [t.token_ids for t in transcripts], SAMPLE.temperature, tokenizer.pad_token_id)
    worst = 0.0
    for t, r in zip(transcripts, ref):
        for j, role in enumerate(t.roles):
            if role == Role.POLICY:
                worst = max(worst, abs(float(r[j]) - t.logprobs[j]))
    assert worst < 1e-4


def test_greedy_is_batch_invariant_and_sampling_is_seeded(setup):
    """Rows of different lengths leaving the batch at different times compute what they would alone."""
    ns = [1, 3, 2, 4, 5, 3]
    together, _ = run(setup, ns, GREEDY, batch_size=6)
    alone, _ = run(setup, ns, GREEDY, batch_size=1)
    assert [t.token_ids for t in together] == [t.token_ids for t in alone]
    a, _ = run(setup, 3, SAMPLE)
    b, _ = run(setup, 3, SAMPLE)
    c, _ = run(setup, 3, dataclasses.replace(SAMPLE, seed=8))
    assert [t.token_ids for t in a] == [t.token_ids for t in b]
    assert [t.token_ids for t in a] != [t.token_ids for t in c]


def test_questions_with_their_own_seed_sample_the_same_in_any_batch(setup):
    """Question.seed (pipeline.probes' parallel samples): a row's stream is its own, per attempt, so what it is
    batched with, and how long its neighbours' attempts run, changes nothing; the log-probs are checked."""
    cfg, model, tokenizer = setup
    env = MultiAttemptEnv(cfg.env, AttemptRange(1, 5), GRADER)
    backend = HFBackend(model, tokenizer, cfg.env.end_of_turn, True)
    qs = [Question(f"q{i}", f"{100 + i}+200=", "none", n, seed=1000 + i) for i, n in enumerate([3, 1, 4, 2, 3])]
    together = rollout(backend, tokenizer, env, qs, SAMPLE, 5, check=True)
    apart = rollout(backend, tokenizer, env, qs[::-1], SAMPLE, 2, check=True)[::-1]
    assert [t.token_ids for t in together] == [t.token_ids for t in apart]
    reseeded = rollout(backend, tokenizer, env, [dataclasses.replace(q, seed=q.seed + 1) for q in qs], SAMPLE, 5)
    assert [t.token_ids for t in reseeded] != [t.token_ids for t in together]
    with pytest.raises(ValueError, match="questions mix with and without their own seed"):
        rollout(backend, tokenizer, env, [*qs[:2], dataclasses.replace(qs[2], seed=None)], SAMPLE, 5)


def test_budgets_and_termination(setup):
    transcripts, env_cfg = run(setup, 5, SAMPLE, env_overrides={"max_attempt_tokens": 6, "max_total_tokens": 14})
    for t in transcripts:
        d = t.dialogue
        assert all(a.n_tokens <= 6 for a in d.attempts)
        assert d.policy_tokens <= 14
        assert d.done and d.reward in (-1.0, -0.5)  # an untrained model is never right
        assert d.stop_reason in ("token_budget", "attempts_exhausted")
        if d.stop_reason == "token_budget":
            assert d.policy_tokens == 14 and len(d.attempts) < 5
    transcripts, _ = run(setup, 2, SAMPLE, env_overrides={"max_attempt_tokens": 6, "max_total_tokens": 100})
    assert all(len(t.dialogue.attempts) == 2 and t.dialogue.stop_reason == "attempts_exhausted" for t in transcripts)


def test_attempt_stop_at_eot_and_first_box(setup):
    cfg, model, tokenizer = setup
    eot = tokenizer.convert_tokens_to_ids(cfg.env.end_of_turn)
    stop = AttemptStop(tokenizer, [eot], stop_at_box=True)
    ids = encode(tokenizer, "\\boxed{0579} and more \\boxed{1}")
    watch = stop.watch()
    reasons = [watch(i) for i in ids]
    first = next(j for j, r in enumerate(reasons) if r)
    assert reasons[first] == "box"
    assert tokenizer.decode(ids[: first + 1]).endswith("\\boxed{0579}")
    watch = stop.watch()
    assert [watch(i) for i in encode(tokenizer, "12") + [eot]][-1] == "eot"
    no_box = AttemptStop(tokenizer, [eot], stop_at_box=False).watch()
    assert all(no_box(i) is None for i in ids)


def test_attempt_watch_stops_where_the_decoded_prefix_first_holds_a_box(setup):
    """Token by token, the watch (incremental decoding and box scan) ends the attempt exactly where
    `first_box_end` of the whole decoded attempt first finds a box: at the closing brace of a brace box, at the
    terminator after a bare one, never at an empty box."""
    assert check_attempt_watch(setup[2]) > 50


def check_attempt_watch(tokenizer, n: int = 400) -> int:
    """Random attempts built from box fragments: the watch must stop where the decoded prefix first holds a box.
    Returns how many attempts stopped at a box."""
    import random

    stop = AttemptStop(tokenizer, [], stop_at_box=True)
    pieces = [
        "\\boxed",
        "\\fbox",
        "{",
        "}",
        " ",
        "$",
        "12",
        "x",
        "\\\\",
        "\\{",
        "+",
        "\\frac{1}{2}",
        "é",
        "\\boxed{3",
        "\\boxed 5",
        "\\boxed{}",
    ]
    rng, stops = random.Random(0), 0
    for _ in range(n):
        ids = encode(tokenizer, "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))))
        watch = stop.watch()
        got = next((j for j, i in enumerate(ids) if watch(i) == "box"), None)
        want = next((j for j in range(len(ids)) if first_box_end(tokenizer.decode(ids[: j + 1]))), None)
        assert stop.decode(ids) == tokenizer.decode(ids)  # the watch's own decoder (the Rust one, when it can)
        assert got == want, tokenizer.decode(ids)
        stops += got is not None
    return stops


def test_feedback_after_a_box_stop_closes_the_turn(setup):
    """An attempt cut after its box has not ended its turn, so the feedback opens with the end-of-turn token;
    after an attempt that ended its own turn it does not repeat it."""
    cfg, _, _ = setup
    closed = render_feedback(cfg.env.feedback_template, 2, cfg.env.end_of_turn, policy_ended_turn=False)
    ended = render_feedback(cfg.env.feedback_template, 2, cfg.env.end_of_turn, policy_ended_turn=True)
    assert closed.startswith(cfg.env.end_of_turn) and closed == cfg.env.end_of_turn + ended


def test_without_cache_reuse_the_dialogues_are_the_same(setup):
    """Re-encoding the whole dialogue every attempt (the no-cache baseline of bench/rollout.py) changes cost only."""
    cfg, model, tokenizer = setup
    env = MultiAttemptEnv(cfg.env, AttemptRange(1, 5), GRADER)
    questions = [Question(f"q{i}", f"{i:03d}+1=", "0", n) for i, n in enumerate([1, 3, 5, 2])]
    out = []
    for reuse in (True, False):
        backend = HFBackend(model, tokenizer, cfg.env.end_of_turn, True, reuse_cache=reuse)
        out.append(rollout(backend, tokenizer, env, questions, GREEDY, 4, check=True))
    assert [t.token_ids for t in out[0]] == [t.token_ids for t in out[1]]


def test_a_dialogue_that_fills_the_context_ends_there(setup):
    """A context a little longer than the prompt: attempts are clamped to the room left, the dialogue ends with
    stop reason `context` once the next feedback cannot fit, nothing raises, the rollout check still holds."""
    cfg, model, tokenizer = setup
    prompt = len(
        encode(
            tokenizer,
            MultiAttemptEnv(cfg.env, AttemptRange(1, 5), GRADER).reset("q", "100+200=", "0", 5).segments[0].text,
        )
    )
    limit = prompt + 30  # room for about two 6-token attempts and their feedback, not five
    transcripts, env_cfg = run(setup, 5, SAMPLE, max_model_len=limit, env_overrides={"max_total_tokens": 1000})
    for t in transcripts:
        d = t.dialogue
        assert len(t.token_ids) <= limit
        assert d.stop_reason == "context" and 1 <= len(d.attempts) < 5
        assert t.roles[-1] == Role.POLICY  # the withdrawn feedback is in neither the transcript nor the dialogue
        assert d.segments[-1].role == Role.POLICY
        assert d.reward == (
            env_cfg.reward.wrong_formatted if any(a.formatted for a in d.attempts) else env_cfg.reward.unformatted
        )


def test_a_prompt_longer_than_the_context_gets_no_attempt(setup):
    transcripts, _ = run(setup, 3, GREEDY, max_model_len=10, n=2)
    for t in transcripts:
        assert t.dialogue.stop_reason == "context" and t.dialogue.attempts == [] and t.dialogue.reward == -1.0


def test_the_context_is_never_above_the_models_positions(setup):
    cfg, model, tokenizer = setup
    with pytest.raises(DataError, match="rollout.max_model_len: 100000 exceeds"):
        HFBackend(model, tokenizer, cfg.env.end_of_turn, True, max_model_len=100_000)
    assert HFBackend(model, tokenizer, cfg.env.end_of_turn, True).max_model_len == model.config.max_position_embeddings


def test_feedback_after_another_end_token_keeps_its_end_of_turn_marker(setup, tiny_model_dir):
    """A policy that stops with <|endoftext|> (an EOS, not the end-of-turn marker) has not closed its turn:
    the feedback keeps its leading <|im_end|>."""
    cfg, model, _ = setup
    tokenizer = models.load_tokenizer(tiny_model_dir)
    tokenizer.eos_token = models.PAD  # <|endoftext|> now ends attempts too
    eos = tokenizer.convert_tokens_to_ids(models.PAD)

    def always_eos(module, args, output):
        output.logits[..., :] = -1e9
        output.logits[..., eos] = 0.0

    hook = model.register_forward_hook(always_eos)
    try:
        env = MultiAttemptEnv(cfg.env, AttemptRange(1, 5), GRADER)
        backend = HFBackend(model, tokenizer, cfg.env.end_of_turn, True)
        (t,) = rollout(backend, tokenizer, env, [Question("q", "1+2=", "3", 2)], GREEDY, 1)
    finally:
        hook.remove()
    turn_end = tokenizer.convert_tokens_to_ids(cfg.env.end_of_turn)
    first_feedback = t.roles.index(Role.FEEDBACK)
    assert t.token_ids[first_feedback - 1] == eos and t.token_ids[first_feedback] == turn_end


def test_every_rollout_checks_the_ids_the_model_saw(setup):
    """The cheap check runs without check=True: a session that fed the model other ids is caught."""
    cfg, model, tokenizer = setup

    class Lossy(HFBackend):  # a defective backend: its session reports one token fewer than it fed
        def open(self, n_rows, params, streams=None):
            session = super().open(n_rows, params, streams)
            fed_ids = session.fed_ids
            session.fed_ids = lambda row: fed_ids(row)[1:]
            return session

    env = MultiAttemptEnv(cfg.env, AttemptRange(1, 5), GRADER)
    qs = [Question("q", "1+2=", "3", 2)]
    good = rollout(HFBackend(model, tokenizer, cfg.env.end_of_turn, True), tokenizer, env, qs, GREEDY, 1)
    bad = rollout(Lossy(model, tokenizer, cfg.env.end_of_turn, True), tokenizer, env, qs, GREEDY, 1)
    assert good[0].token_exact and not bad[0].token_exact
    with pytest.raises(AssertionError, match="stored ids differ"):
        rollout(Lossy(model, tokenizer, cfg.env.end_of_turn, True), tokenizer, env, qs, GREEDY, 1, check=True)


def test_derived_seeds_are_the_same_in_every_process_and_differ_by_stream():
    import os
    import subprocess
    import sys

    from pipeline.seeds import derive_seed
    from tests.conftest import ROOT

    code = "from pipeline.seeds import derive_seed; print(derive_seed(42, 'rollout', 7, 1))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": salt},
        ).stdout.strip()
        for salt in ("1", "2")
    }
    assert outs == {str(derive_seed(42, "rollout", 7, 1))}  # Python's salted hash() would differ here
    seeds = {
        derive_seed(s, name, i, j) for s in (0, 1) for name in ("rollout", "order") for i in range(20) for j in range(3)
    }
    assert len(seeds) == 2 * 2 * 20 * 3 and all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize("scale", ["tiny", "paper"])
def test_the_tokenizer_must_encode_a_dialogue_as_the_rollout_joins_it(setup, scale):
    """Checked before training starts (issue 29, item 3): the tiny tokenizer passes under both presets' prompts and
    feedback (SmolLM2's: tests/test_smollm2.py); the same tokenizer with a prefix space added to every text
    (byte-level BPE's `add_prefix_space`, as SentencePiece does) is refused, naming the model and the first token
    that differs."""
    from tokenizers import pre_tokenizers

    cfg = config.resolve({"scale": scale})
    tokenizer = setup[2]
    for variant in cfg.variants:
        env = MultiAttemptEnv(cfg.for_variant(variant).env, cfg.attempt_range(variant), GRADER)
        check_template(tokenizer, env, "tiny")
    prefixed = copy.deepcopy(tokenizer)
    prefixed.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=True)]
    )
    with pytest.raises(
        DataError,
        match=r"model prefixed: .* token \d+ is 'O' \(id \d+\) in the whole text, 'Ġ' \(id \d+\) in the joined",
    ):
        check_template(prefixed, env, "prefixed")


@pytest.mark.parametrize("stop_at_box", [True, False], ids=["box stop (multi-attempt)", "no box stop (baseline)"])
def test_every_trained_token_was_sampled(setup, tiny_model_dir, stop_at_box):
    """Issue 29, item 2, on the transformers backend (vLLM: tests/test_vllm.py): the tokens training puts a loss on
    are exactly the sampled ones with their sampling log-probs, however each attempt ended: end of turn, another
    EOS (<|endoftext|>, made likely here; the feedback then brings the <|im_end|>, without loss weight), the token
    closing the first box, or the budget."""
    cfg, model, _ = setup
    tokenizer = models.load_tokenizer(tiny_model_dir)
    tokenizer.eos_token = models.PAD  # <|endoftext|> ends attempts too
    eos, turn_end = tokenizer.convert_tokens_to_ids([models.PAD, cfg.env.end_of_turn])

    boxes = encode(tokenizer, "\\boxed{1}")

    def likelier_eos_and_boxes(module, args, output):  # an untrained model: make every ending likely enough
        output.logits[..., eos] += 1.0
        output.logits[..., boxes] += 3.0

    env_cfg = dataclasses.replace(cfg.env, max_attempt_tokens=12, max_total_tokens=60)
    env = MultiAttemptEnv(env_cfg, AttemptRange(1, 5), GRADER)
    backend = HFBackend(model, tokenizer, env_cfg.end_of_turn, stop_at_box)
    questions = [Question(f"q{i}", f"{100 + i}+{200 + 3 * i}=", f"{300 + 4 * i:04d}", 4) for i in range(24)]
    hook = model.register_forward_hook(likelier_eos_and_boxes)
    try:
        with Recorder(backend) as recorder:
            transcripts = rollout(backend, tokenizer, env, questions, SAMPLE, 8, check=True)
    finally:
        hook.remove()
    reasons = assert_trained_tokens_were_sampled(transcripts, recorder, tokenizer, backend.stop.end_ids, turn_end)
    ended_by_eos = sum(i == eos and r == Role.POLICY for t in transcripts for i, r in zip(t.token_ids, t.roles))
    assert reasons.get("eot", 0) > ended_by_eos > 0 and reasons.get("budget", 0) > 0
    assert (reasons.get("box", 0) > 0) == stop_at_box
