"""The multi-attempt environment (paper §2; spec §1-2): pure Python, no torch, no tokenizer.

A `Dialogue` (`pipeline.dialogue`) holds the question, the gold answer, the allowed attempts N, and the
transcript as text segments labelled with a `Role` (prompt / policy / feedback), each with its attempt index
(0-based: the prompt opens attempt 0, the feedback after attempt i opens attempt i+1). `MultiAttemptEnv` draws
N, renders the first prompt, grades each attempt, inserts the feedback (`pipeline.feedback`: the provider
`env.feedback.provider`), decides termination and computes the one terminal reward.

Scoring (`Dialogue.scored_on`): "any" (every provider but `none`, the paper's rule) stops at the first right
attempt and rewards the dialogue if some attempt was right; "last" (provider `none`, whose feedback does not say
whether the answer was right) runs all N attempts and scores the dialogue on its last attempt alone: reward,
`solved_at` and stop reason "correct" all refer to that last answer, so accuracy@k is the share of dialogues
whose last answer is right.

Every trained variant is this environment with its attempt range and its overrides of `env` (config
`variants`): multi-attempt N in [1, 5]; the paper's baseline N = 1 with the released single-turn prompt, no stop at
the box and the `released_baseline` reward rule. Evaluation at k attempts fixes N = k in the top-level `env`.

The environment knows nothing of tokens: the rollout engine counts them and tells it whether the policy ended its
turn itself (then the feedback's leading end-of-turn marker is dropped, so the marker appears once).

Try it: `pytest tests/test_env.py -q`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import Future

from pipeline.config import AttemptRange, EnvConfig, RewardConfig
from pipeline.dialogue import Attempt, Dialogue, Role, Segment
from pipeline.feedback import drop_end_of_turn, fill, make_provider
from pipeline.grading import Grade, Grader


def render_prompt(template: str, question: str, n_allowed: int) -> str:
    """Fill the first prompt. Plain replacement, not str.format: templates hold literal braces (\\boxed{})."""
    return template.replace("{N}", str(n_allowed)).replace("{question}", question)


def render_feedback(template: str, n_left: int, end_of_turn: str, policy_ended_turn: bool) -> str:
    """The fixed feedback after a wrong attempt; n_left >= 1 ("1 attempts" is the paper's literal wording)."""
    return drop_end_of_turn(fill(template, n_left), end_of_turn, policy_ended_turn)


def terminal_reward(attempts: Sequence[Attempt], table: RewardConfig) -> float:
    """One reward per dialogue (spec §2): correct in any attempt > some attempt formatted > otherwise. Under the
    `boxed` rule an attempt is formatted when it gave a complete non-empty box, under `released_baseline` when its
    text contains "boxed" (`MultiAttemptEnv._record`).

    A success at attempt j (1-based) earns `correct * attempt_discount**(j-1)`; the paper's discount is 1.
    """
    for j, a in enumerate(attempts, start=1):
        if a.correct:
            return table.correct * table.attempt_discount ** (j - 1)
    if any(a.formatted for a in attempts):
        return table.wrong_formatted
    return table.unformatted


class MultiAttemptEnv:
    """Draws N, renders prompts and feedback, grades attempts in batches, ends dialogues, assigns rewards."""

    def __init__(self, cfg: EnvConfig, attempts: AttemptRange, grader: Grader):
        self.cfg = cfg
        self.attempts = attempts
        self.grader = grader
        self.feedback = make_provider(cfg)  # a custom provider is imported here, once

    def sample_n(self, rng: random.Random) -> int:
        """N ~ Uniform{min_attempts..max_attempts} (paper: 1..5; baseline: always 1)."""
        return rng.randint(self.attempts.min_attempts, self.attempts.max_attempts)

    def reset(self, id: str, question: str, gold: str, n_allowed: int) -> Dialogue:
        d = Dialogue(id=id, question=question, gold=gold, n_allowed=n_allowed, scored_on=self.feedback.scored_on)
        d.segments.append(Segment(Role.PROMPT, render_prompt(self.cfg.prompt_template, question, n_allowed), 0))
        return d

    def attempt_budget(self, d: Dialogue) -> int:
        """Most policy tokens the current attempt may still use (per-attempt and per-dialogue budgets)."""
        return max(0, min(self.cfg.max_attempt_tokens, self.cfg.max_total_tokens - d.policy_tokens))

    def step(
        self,
        dialogues: Sequence[Dialogue],
        texts: Sequence[str],
        n_tokens: Sequence[int],
        ended_turn: Sequence[bool],
        truncated: Sequence[bool] | None = None,
    ) -> list[str | None]:
        """Record one finished attempt per dialogue; return each one's feedback text, or None once it is over.
        `truncated`: which attempts their budget or the context cut (None: none).

        All attempts are graded in one batch (worker processes with a hard timeout; a timeout counts as wrong).
        """
        grades = self.grade(dialogues, texts).result()
        return self.record(dialogues, texts, n_tokens, ended_turn, grades, truncated)

    def grade(self, dialogues: Sequence[Dialogue], texts: Sequence[str]) -> Future[list[Grade]]:
        """`step`'s first half, which may wait on Math-Verify: the grades of one finished attempt per dialogue,
        as a future (`Grader.submit`), so that a rollout keeps generating meanwhile."""
        if len(dialogues) != len(texts):
            raise ValueError("grade: dialogues and texts must have the same length")
        released = self.cfg.reward.rule == "released_baseline"
        return self.grader.submit(list(texts), [d.gold for d in dialogues], fallback=released)

    def record(
        self,
        dialogues: Sequence[Dialogue],
        texts: Sequence[str],
        n_tokens: Sequence[int],
        ended_turn: Sequence[bool],
        grades: Sequence[Grade],
        truncated: Sequence[bool] | None = None,
    ) -> list[str | None]:
        """`step`'s second half: record the graded attempts; each dialogue's feedback, or None once it is over."""
        truncated = [False] * len(dialogues) if truncated is None else truncated
        if not (len(dialogues) == len(texts) == len(n_tokens) == len(ended_turn) == len(grades) == len(truncated)):
            raise ValueError("step: dialogues, texts, n_tokens, ended_turn, grades and truncated must have one length")
        if any(d.done for d in dialogues):
            raise ValueError("step: a dialogue that is already over got another attempt")
        return [
            self._record(d, text, n, ended, grade, cut)
            for d, text, n, ended, grade, cut in zip(dialogues, texts, n_tokens, ended_turn, grades, truncated)
        ]

    def _record(self, d: Dialogue, text: str, n: int, ended: bool, grade: Grade, cut: bool) -> str | None:
        i = d.attempt_index
        d.segments.append(Segment(Role.POLICY, text, i))
        if self.cfg.reward.rule == "released_baseline":
            formatted = "boxed" in text  # the released baseline's substring test (spec §2)
        else:
            formatted = bool(grade.answer)  # an empty \boxed{} is no answer (grading.extract.is_formatted)
        if cut and self.cfg.reward.truncated == "formatted":  # a length cut is no format failure
            formatted = True
        d.attempts.append(Attempt(text, grade.answer, formatted, grade.correct, n, grade.timed_out, cut))
        if grade.correct and d.scored_on == "any":
            d.stop_reason = "correct"
        elif len(d.attempts) >= d.n_allowed:
            d.stop_reason = "attempts_exhausted"
        elif d.policy_tokens >= self.cfg.max_total_tokens:
            d.stop_reason = "token_budget"
        if d.stop_reason is not None:
            self._finish(d, d.stop_reason)
            return None
        feedback = drop_end_of_turn(self.feedback.render(d.attempts[-1], d), self.cfg.end_of_turn, ended)
        d.segments.append(Segment(Role.FEEDBACK, feedback, i + 1))
        return feedback

    def _finish(self, d: Dialogue, reason: str) -> None:
        """End a dialogue and reward it. Scored on the last attempt, "correct" names a right last answer whatever
        ended the dialogue, so that stop reason and solved_at agree as under the paper's rule."""
        d.stop_reason = "correct" if d.solved_at is not None else reason
        d.done = True
        d.reward = terminal_reward(d.scored_attempts, self.cfg.reward)

    def end_for_context(self, d: Dialogue) -> None:
        """End a dialogue that no longer fits in the model's context (the rollout counts the tokens): the
        feedback just offered is withdrawn, and the reward is that of the attempts made."""
        if d.segments[-1].role == Role.FEEDBACK:
            d.segments.pop()
        self._finish(d, "context")
