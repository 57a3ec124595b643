"""Rollouts: batched multi-attempt dialogues, token in, token out.

The contract (what training and evaluation receive), one `Transcript` per dialogue:
- `token_ids`: exactly the ids the model conditioned on and sampled — prompt and feedback ids as the
  environment's text was encoded once, policy ids as sampled. Nothing is ever decoded and re-encoded
  (the paper's code re-tokenizes the dialogue text and finds its masks by string matching).
- `roles`: the `dialogue.Role` of each token (PROMPT 0, POLICY 1, FEEDBACK 2); the policy-loss mask is
  `roles == Role.POLICY`.
- `attempts`: the attempt index per token (the prompt opens attempt 0, feedback after attempt i opens i+1).
- `logprobs`: per token, the log-probability under the sampling distribution softmax(logits / T) for policy
  tokens (T = 1 when greedy; top-p truncation not applied), 0.0 elsewhere.

`rollout()` drives the environment and knows nothing of how tokens are produced; a backend does that behind the
small `Backend`/`Session` interface (`hf_backend.HFBackend` for transformers, `vllm_backend.VLLMBackend` for vLLM),
built by `backends.make_backend` from the configuration. The schedule: on vLLM each dialogue moves at its own pace
(its next attempt starts the engine step after its last one ended, graded meanwhile); the HF backend plays rounds.
Both stop an attempt as `AttemptStop` says: at end of turn, after the first complete `\\boxed{}` (if configured),
or at its token budget.

Try it: `pytest tests/test_rollout.py -q`.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from pipeline.dialogue import Dialogue, Role
from pipeline.env import MultiAttemptEnv
from pipeline.grading.extract import BoxWatch
from pipeline.io import DataError
from pipeline.progress import progress_bar
from pipeline.seeds import derive_seed


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    greedy: bool
    seed: int


@dataclass
class Transcript:
    dialogue: Dialogue
    token_ids: list[int] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    # the ids the model conditioned on are exactly `token_ids` (checked for every dialogue by `rollout`)
    token_exact: bool = True

    def extend(self, ids: Sequence[int], role: Role, attempt: int, logprobs: Sequence[float] | None = None) -> None:
        self.token_ids.extend(ids)
        self.roles.extend([role] * len(ids))
        self.attempts.extend([attempt] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    @property
    def policy_mask(self) -> list[bool]:
        return [r == Role.POLICY for r in self.roles]

    @property
    def reward(self) -> float:
        assert self.dialogue.reward is not None, "reward read before the dialogue ended"
        return self.dialogue.reward


@dataclass
class Sampled:
    """One attempt as a backend produced it."""

    ids: list[int]
    logprobs: list[float]
    reason: str  # "eot" (the policy ended its turn) | "box" (first complete \boxed{}) | "budget"


class Session(Protocol):
    """Generation state of dialogues 0..n-1. `rollout()` feeds a row's environment tokens, submits its next
    attempt, and steps the session until attempts end; a row that is never submitted again is finished."""

    def feed(self, rows: Sequence[int], ids: Sequence[Sequence[int]]) -> None:
        """Queue environment tokens (prompt, feedback) for rows; the row's next attempt conditions on them."""

    def submit(self, row: int, budget: int) -> None:
        """Start the row's next attempt (on its queued tokens), to end within `budget` tokens."""

    def step(self) -> list[tuple[int, Sampled]]:
        """Generate; return the attempts that ended, with their rows. vLLM: one engine step (every attempt in
        flight gains a token); transformers: every submitted attempt to its end (a round)."""

    @property
    def busy(self) -> bool:
        """Some attempt is in flight."""

    def close(self) -> None:
        """Stop the attempts in flight (an error mid-rollout leaves the engine empty for whoever comes next)."""

    def fed_ids(self, row: int) -> list[int]:
        """Every token the model has conditioned on or produced for a row, in order (for checks)."""


class Backend(Protocol):
    """Generation for `rollout()`; built by `backends.make_backend`. Training keeps it on the current policy with `sync`
    before each use and `release`s it after."""

    max_model_len: int  # the context every dialogue must fit in, tokens
    # True: a session's attempts advance together (one KV cache for the batch, one random stream per batch), so
    # `rollout()` plays it in rounds, one session per batch; False: each dialogue moves on as its attempt ends
    lockstep: bool

    def open(self, n_rows: int, params: SamplingParams, streams: Sequence[Stream] | None = None) -> Session:
        """A session of `n_rows` dialogues. `streams`: one sampling stream per row, attempt a of row r drawn with
        seed `derive_seed(*streams[r], a)`, so a row's samples do not depend on the rows batched with it; None:
        the batch's stream from `params.seed` (transformers: one generator; vLLM: per row, as (seed, "request",
        row))."""

    def score(self, token_ids: Sequence[Sequence[int]], temperature: float) -> list[torch.Tensor]:
        """Teacher-forced log-probs of whole sequences, recomputed without a cache (the rollout check)."""

    def sync(self, model: torch.nn.Module, version: int) -> None:
        """Generate with `model`'s weights from now on. `version` names them (the trainer's step): a backend
        that holds a copy (vLLM) reloads only when it changed; transformers generates on `model` itself."""

    def release(self) -> None:
        """Free the memory generation holds until the next `sync` (vLLM's sleep mode; else nothing to do)."""

    def close(self) -> None:
        """Stop generating for good. A vLLM engine in a torchrun job must stop before the job's process group
        is destroyed: its own exit handler would destroy its groups after them, and fail."""


Stream = tuple[int | str, ...]  # the first parts of `derive_seed` for a row's attempts


def sample_once(session: Session, rows: Sequence[int], budgets: Sequence[int]) -> list[Sampled]:
    """One attempt for each of `rows` (their tokens fed already), in the order of `rows`."""
    out: dict[int, Sampled] = {}
    try:
        for r, budget in zip(rows, budgets):
            session.submit(r, budget)
        while session.busy:
            out.update(session.step())
    finally:
        session.close()
    return [out[r] for r in rows]


def end_token_ids(tokenizer, end_of_turn: str) -> list[int]:
    """Ids that end the policy's turn: the end-of-turn marker and the tokenizer's EOS."""
    ids = {tokenizer.convert_tokens_to_ids(end_of_turn)}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


class AttemptStop:
    """When an attempt is over: at an end-of-turn token, or (optionally) right after its first complete box.

    Sessions take one `watch()` per attempt and pass it each sampled token.
    """

    def __init__(self, tokenizer, end_ids: Sequence[int], stop_at_box: bool):
        self.tokenizer = tokenizer
        self.end_ids = set(end_ids)
        self.stop_at_box = stop_at_box
        # A fast tokenizer's Rust decoder called directly: transformers' `decode` wrapper costs ~10 us a call, the
        # decoding itself ~1 us, and a vLLM step decodes for every attempt in flight. Same text unless the
        # tokenizer cleans up spaces, which only its wrapper does.
        self.decode = tokenizer.decode
        if getattr(tokenizer, "is_fast", False) and not tokenizer.clean_up_tokenization_spaces:
            rust = tokenizer.backend_tokenizer
            self.decode = lambda ids: rust.decode(ids, skip_special_tokens=False)
        # Only a token whose text holds `}`, `$` or whitespace can complete a box (a brace box ends at its `}`, a
        # bare `\boxed 5` at the whitespace or `$` after it); the attempt's text is decoded at those tokens only.
        # Each token's text is read after a plain one, so a leading space shows (SentencePiece drops it alone).
        self.may_close = [False] * len(tokenizer)
        if stop_at_box:
            plain = tokenizer("a", add_special_tokens=False)["input_ids"][-1:]
            skip = len(tokenizer.decode(plain))
            texts = tokenizer.batch_decode([plain + [i] for i in range(len(tokenizer))])
            self.may_close = [any(c in "}$" or c.isspace() for c in t[skip:]) for t in texts]

    def watch(self) -> AttemptWatch:
        return AttemptWatch(self)


class AttemptWatch:
    """One attempt's stop state: its text decoded incrementally and its box scan (`BoxWatch`), so each
    token costs about the same however long the attempt already is."""

    def __init__(self, stop: AttemptStop):
        self.stop = stop
        self.ids: list[int] = []
        self.prefix = self.read = 0  # ids[prefix:read] were decoded last; ids[read:] not yet (as vLLM detokenizes)
        self.box = BoxWatch()

    def __call__(self, token: int) -> str | None:
        """Record the next sampled token; "eot", "box" or None (the attempt goes on)."""
        self.ids.append(token)
        if token in self.stop.end_ids:
            return "eot"
        if not (self.stop.stop_at_box and token < len(self.stop.may_close) and self.stop.may_close[token]):
            return None
        decode = self.stop.decode
        before, text = decode(self.ids[self.prefix : self.read]), decode(self.ids[self.prefix :])
        if text.endswith("\ufffd"):  # a character split across tokens: wait for its last byte
            return None
        self.prefix, self.read = self.read, len(self.ids)
        return "box" if self.box.feed(text[len(before) :]) is not None else None


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold: str
    n_allowed: int
    # the seed of this dialogue's own sampling stream (independent samples of one question, whatever the
    # batching: pipeline.probes); None: the batch's stream. A batch mixes no seeded with unseeded questions.
    seed: int | None = None


def encode(tokenizer, text: str) -> list[int]:
    """Environment text -> ids, once (no BOS/EOS added). The only place prompt and feedback are tokenized."""
    return encode_batch(tokenizer, [text])[0]


def encode_batch(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """`encode` for many texts in one call of the (Rust) tokenizer."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def check_template(tokenizer, env: MultiAttemptEnv, model: str) -> None:
    """Refuse a tokenizer that encodes a dialogue otherwise than the rollout builds it, before any step runs.

    The rollout encodes the prompt and each feedback on their own and joins them with the sampled ids (`encode`):
    what the model is trained on must be what the same conversation reads as one text, or the policy learns
    on token sequences it never meets when the dialogue is tokenized whole (a chat client, another evaluator).
    A tokenizer that adds a prefix space to every text (SentencePiece's, or byte-level BPE's `add_prefix_space`)
    or merges across the seam of two turns fails here. A sample dialogue: prompt, a wrong attempt ending its
    turn, the environment's feedback.
    """
    d = env.reset("template-check", "What is 1 + 1?", "2", 2)
    attempt = "One and one make \\boxed{3}." + env.cfg.end_of_turn
    feedback = env.step([d], [attempt], [1], [True])[0]
    pieces = [d.segments[0].text, attempt, feedback]
    joined = [i for ids in encode_batch(tokenizer, pieces) for i in ids]
    whole = encode(tokenizer, "".join(pieces))
    if joined == whole:
        return
    at = next((j for j, (a, b) in enumerate(zip(joined, whole)) if a != b), min(len(joined), len(whole)))

    def token(ids: list[int]) -> str:
        return f"{tokenizer.convert_ids_to_tokens(ids[at])!r} (id {ids[at]})" if at < len(ids) else "the end"

    raise DataError(
        f"model {model}: its tokenizer encodes a dialogue (prompt, attempt, feedback) otherwise as one text than "
        f"as the pieces the rollout joins: token {at} is {token(whole)} in the whole text, {token(joined)} in the "
        f"joined pieces (near {tokenizer.decode(whole[max(0, at - 3) : at + 3])!r}). Training on it would teach "
        "token sequences a whole-text conversation never has: use a tokenizer that adds no prefix space to each "
        "text, or change env.prompt_template / the feedback so that turns meet at special tokens."
    )


def rollout(
    backend: Backend,
    tokenizer,
    env: MultiAttemptEnv,
    questions: Sequence[Question],
    params: SamplingParams,
    batch_size: int,
    check: bool = False,
    progress: bool = False,
    barrier: bool = False,
) -> list[Transcript]:
    """Play every question's dialogue to the end, at most `batch_size` at a time; one Transcript each.

    The schedule: on a backend that is not `lockstep` (vLLM) every dialogue moves at its own pace. When its
    attempt ends, the attempt is graded (without waiting: `MultiAttemptEnv.grade`) and its next attempt starts on
    the engine's next step, and when a dialogue ends the next question starts, so the engine stays full. A lockstep
    backend (transformers), or `barrier` (the schedule before 2026-12, which bench/rollout.py and the tests compare
    with), plays `batch_size` questions at a time in rounds: attempt r+1 of each waits for attempt r of all. The
    schedule changes no transcript: every attempt is sampled from its row's own seeded stream (`streams`).

    Every dialogue stays within the backend's context: an attempt's budget is clamped to the room left, and a
    dialogue whose next feedback plus one token would not fit ends there (`MultiAttemptEnv.end_for_context`).

    Every transcript records whether the ids the model conditioned on are exactly its `token_ids`
    (`token_exact`; training logs and evaluation metrics count the misses). With `check` (tests, debugging), a
    miss raises, and the stored log-probs of the policy tokens must match a from-scratch recomputation within
    `LOGPROB_TOLERANCE`.
    """
    seeded = [q.seed is not None for q in questions]
    if any(seeded) and not all(seeded):
        raise ValueError("rollout: questions mix with and without their own seed")
    bar = progress_bar(total=len(questions), desc="rollout", unit="dlg", disable=not progress, leave=False)
    starts = range(0, len(questions), batch_size)
    batch_seeds = [derive_seed(params.seed, "batch", start) for start in starts]  # a stream per batch

    def streams(qs: Sequence[Question], start: int) -> list[Stream] | None:
        """The rows' own streams: the question's seed, or the batch's, per row (vLLM's, lockstep or not)."""
        if qs and qs[0].seed is not None:
            return [(q.seed, "attempt") for q in qs]
        if backend.lockstep:
            return None  # one generator for the batch
        return [(batch_seeds[(start + j) // batch_size], "request", (start + j) % batch_size) for j in range(len(qs))]

    transcripts: list[Transcript] = []
    if backend.lockstep or barrier:
        for start, seed in zip(starts, batch_seeds):
            group = questions[start : start + batch_size]
            session = backend.open(len(group), replace(params, seed=seed), streams(group, start))
            transcripts += _play(session, backend, tokenizer, env, group, len(group), True, bar)
    else:
        session = backend.open(len(questions), params, streams(questions, 0))
        transcripts = _play(session, backend, tokenizer, env, questions, batch_size, False, bar)
    bar.close()
    if check:
        for start in starts:
            _check(backend, transcripts[start : start + batch_size], 1.0 if params.greedy else params.temperature)
    return transcripts


class _Table:
    """What `_play` keeps of the dialogues at play: which wait to start, which are ready for their next attempt (its
    prompt or feedback fed), which attempts have ended and are being graded."""

    def __init__(self, session: Session, backend: Backend, tokenizer, env: MultiAttemptEnv, questions, window, bar):
        self.session, self.tokenizer, self.env, self.questions = session, tokenizer, env, questions
        self.window, self.bar = window, bar
        self.limit = backend.max_model_len
        self.turn_end = tokenizer.convert_tokens_to_ids(env.cfg.end_of_turn)
        self.transcripts: list[Transcript] = [None] * len(questions)  # type: ignore[list-item]
        self.waiting = collections.deque(range(len(questions)))  # rows not started
        self.ready: list[int] = []  # rows whose next attempt can start
        self.grading: list[tuple[Future, list[tuple[int, Sampled]], list[str]]] = []  # attempts ended, being graded
        self.live = 0  # dialogues started and not over

    def over(self) -> None:
        self.live -= 1
        self.bar.update(1)

    def start_questions(self) -> None:
        rows = [self.waiting.popleft() for _ in range(min(self.window - self.live, len(self.waiting)))]
        self.live += len(rows)
        for i in rows:
            q = self.questions[i]
            self.transcripts[i] = Transcript(self.env.reset(q.id, q.question, q.gold, q.n_allowed))
        texts = [self.transcripts[i].dialogue.segments[0].text for i in rows]
        for i, ids in zip(rows, encode_batch(self.tokenizer, texts) if rows else []):
            self.transcripts[i].extend(ids, Role.PROMPT, 0)
            self.session.feed([i], [ids])
            if len(ids) < self.limit:
                self.ready.append(i)
            else:  # a prompt that fills the context: no attempt at all
                self.env.end_for_context(self.transcripts[i].dialogue)
                self.over()

    def submit_ready(self) -> None:
        for i in sorted(self.ready):
            t = self.transcripts[i]
            self.session.submit(i, min(self.env.attempt_budget(t.dialogue), self.limit - len(t.token_ids)))
        self.ready.clear()

    def sample(self) -> None:
        """One step of the session; the attempts it ended go to the grader."""
        ended = self.session.step()
        if ended:
            texts = [self.tokenizer.decode(s.ids) for _, s in ended]  # for grading; the ids are what we keep
            future = self.env.grade([self.transcripts[i].dialogue for i, _ in ended], texts)
            self.grading.append((future, ended, texts))

    def collect(self) -> None:
        """Every graded attempt into its dialogue; the others keep waiting for their grades."""
        still = []
        for future, ended, texts in self.grading:
            if future.done():
                self.graded(ended, texts, future.result())
            else:
                still.append((future, ended, texts))
        self.grading = still

    def graded(self, ended: list[tuple[int, Sampled]], texts: list[str], grades) -> None:
        # the feedback drops its own end-of-turn marker only when the policy wrote that marker (not another EOS)
        feedback = self.env.record(
            [self.transcripts[i].dialogue for i, _ in ended],
            texts,
            [len(s.ids) for _, s in ended],
            [s.ids[-1] == self.turn_end for _, s in ended],
            grades,
            [s.reason == "budget" for _, s in ended],  # cut by its budget, or by the room the context left
        )
        for (i, s), fb in zip(ended, feedback):
            t = self.transcripts[i]
            t.extend(s.ids, Role.POLICY, t.dialogue.attempt_index - 1, s.logprobs)
            if fb is None:
                self.over()
                continue
            ids = encode(self.tokenizer, fb)
            if len(t.token_ids) + len(ids) >= self.limit:
                self.env.end_for_context(t.dialogue)
                self.over()
                continue
            t.extend(ids, Role.FEEDBACK, t.dialogue.attempt_index)
            self.session.feed([i], [ids])
            self.ready.append(i)


def _play(
    session: Session,
    backend: Backend,
    tokenizer,
    env: MultiAttemptEnv,
    questions: Sequence[Question],
    window: int,
    rounds: bool,
    bar,
) -> list[Transcript]:
    """Play `questions` on `session`, at most `window` dialogues at once. `rounds`: new questions start only when
    every dialogue has ended, and next attempts only when every attempt in flight has ended and been graded."""
    table = _Table(session, backend, tokenizer, env, questions, window, bar)
    try:
        while table.waiting or table.ready or session.busy or table.grading:
            if not (rounds and table.live):
                table.start_questions()
            if table.ready and not (rounds and (session.busy or table.grading)):
                table.submit_ready()
            if session.busy:
                table.sample()
            elif table.grading:
                wait([future for future, _, _ in table.grading], return_when=FIRST_COMPLETED)
            table.collect()
    finally:
        session.close()
    for i, t in enumerate(table.transcripts):  # cheap, so always: a mismatch would train on tokens the model never saw
        t.token_exact = session.fed_ids(i) == t.token_ids
    return table.transcripts


LOGPROB_TOLERANCE = 1e-3  # float32 on CPU agrees to ~1e-6; the margin is for GPU kernels and bf16


def _check(backend: Backend, batch: Sequence[Transcript], temperature: float) -> None:
    scored = backend.score([t.token_ids for t in batch], temperature)
    for t, ref in zip(batch, scored):
        if not t.token_exact:
            raise AssertionError(
                f"rollout check: dialogue {t.dialogue.id}: stored ids differ from the ids the model saw"
            )
        policy = [j for j, r in enumerate(t.roles) if r == Role.POLICY]
        diff = max((abs(float(ref[j]) - t.logprobs[j]) for j in policy), default=0.0)
        if diff > LOGPROB_TOLERANCE:
            raise AssertionError(
                f"rollout check: dialogue {t.dialogue.id}: stored log-probs differ from a recomputation by {diff:.2e}"
                f" (tolerance {LOGPROB_TOLERANCE})"
            )
