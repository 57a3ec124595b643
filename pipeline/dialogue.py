"""A dialogue's data: the question, its attempts and the transcript by role. The environment (`pipeline.env`)
writes it, feedback providers (`pipeline.feedback`) read it, the rollout turns it into tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Role(IntEnum):
    """Who wrote a piece of a dialogue; the values are the rollout's per-token role ids."""

    PROMPT = 0
    POLICY = 1
    FEEDBACK = 2


@dataclass
class Segment:
    role: Role
    text: str
    attempt: int


@dataclass
class Attempt:
    text: str
    answer: str | None  # content of the last complete \boxed{}, None when there is none
    formatted: bool  # a complete, non-empty \boxed{} was given
    correct: bool
    n_tokens: int
    timed_out: bool = False  # the grader gave up on it (counted wrong)
    truncated: bool = False  # cut by its token budget or the context, not ended by the policy


@dataclass
class Dialogue:
    id: str
    question: str
    gold: str
    n_allowed: int
    segments: list[Segment] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    done: bool = False
    stop_reason: str | None = None  # "correct" | "attempts_exhausted" | "token_budget" | "context"
    reward: float | None = None
    scored_on: str = "any"  # "any": some attempt right (stops at the first); "last": the last attempt alone

    @property
    def attempt_index(self) -> int:
        """0-based index of the attempt in progress (or of the next one)."""
        return len(self.attempts)

    @property
    def policy_tokens(self) -> int:
        return sum(a.n_tokens for a in self.attempts)

    @property
    def solved_at(self) -> int | None:
        """1-based attempt that was right, None if none was (scored on the last: the last one, if it is right)."""
        if self.scored_on == "last":
            return len(self.attempts) if self.attempts and self.attempts[-1].correct else None
        return next((i + 1 for i, a in enumerate(self.attempts) if a.correct), None)

    @property
    def scored_attempts(self) -> list[Attempt]:
        """The attempts the reward looks at: all of them, or only the last."""
        return self.attempts[-1:] if self.scored_on == "last" else self.attempts

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)
