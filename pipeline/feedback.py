r"""Feedback providers: what the environment says after an attempt (issue 17; `env.feedback` in the config).

A provider is a function `(attempt, dialogue) -> str` called after an attempt has been recorded
(`dialogue.attempts[-1] is attempt`). Its text is environment text: role FEEDBACK, never trained on, tokenized
once by the rollout like today's template. It must start with `env.end_of_turn`, which the environment drops
when the policy ended its turn itself (`drop_end_of_turn`). Every built-in provider's wording is a config
template, so each preset phrases it in its own style; `{n}` is the number of attempts left, `{answer}` the
attempt's extracted answer. Templates are filled in one pass: a quoted answer holding "{n}" stays as written.

    fixed      env.feedback_template: the paper's one sentence ("... incorrect. You have {n} attempts left ...").
    echo       quotes the attempt's extracted answer (echo_template), or says that no boxed answer was found
               (echo_no_answer_template). It is only asked after a wrong attempt, so it quotes a WRONG answer;
               an attempt whose grading timed out (it may be right) gets the fixed sentence instead.
    direction  when the answer and the gold both read as real numbers (`grading.fast.real_value`, the grader's
               own number parsing), says too high / too low (direction_high_template / direction_low_template);
               otherwise the fixed sentence. It says nothing else about the gold.
    none       a retry turn that does not say whether the answer was right (none_template; SCoRe-style
               intrinsic self-correction). Such a dialogue is scored on its LAST answer (`scored_on = "last"`):
               it runs all N attempts (or until a token budget or the context ends it), and its reward and
               `solved_at` are those of its last attempt alone. Accuracy@k under `none` is therefore the share
               of questions whose k-th (last) answer is right, not the share right within k attempts; a
               right answer later revised to a wrong one counts as a failure.
    custom     custom_function = "module:function", imported once when the environment is built; the function
               gets (attempt, dialogue) after a WRONG attempt and returns the whole feedback text, starting with
               env.end_of_turn. It must be deterministic given the dialogue, as the built-ins are.

Try it: `pytest tests/test_feedback.py -q`.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.config import ConfigError, EnvConfig
from pipeline.grading.fast import real_value

if TYPE_CHECKING:
    from pipeline.dialogue import Attempt, Dialogue

PROVIDERS = ("fixed", "echo", "direction", "none", "custom")
SCORED_ON = ("any", "last")  # any: right if some attempt is, stops at the first right one; last: the last answer
CUSTOM_KEY = "env.feedback.custom_function"

FeedbackFn = Callable[["Attempt", "Dialogue"], str]

_PLACEHOLDER = re.compile(r"\{(n|answer)\}")


@dataclass(frozen=True)
class Provider:
    name: str
    render: FeedbackFn  # the whole feedback text, starting with env.end_of_turn
    scored_on: str  # one of SCORED_ON


def fill(template: str, n_left: int, answer: str | None = None) -> str:
    """Fill {n} (and {answer} when given) in one pass; other text, literal braces included, stays as written."""
    values = {"n": str(n_left)} if answer is None else {"n": str(n_left), "answer": answer}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def drop_end_of_turn(text: str, end_of_turn: str, policy_ended_turn: bool) -> str:
    """The feedback as inserted: without its leading end-of-turn marker when the policy already wrote one."""
    return text[len(end_of_turn) :] if policy_ended_turn else text


def attempts_left(d: Dialogue) -> int:
    return d.n_allowed - len(d.attempts)


def direction(answer: str | None, gold: str) -> str | None:
    """'high' / 'low' when both read as real numbers and differ, else None (equal, or not plain numbers)."""
    a = real_value(answer) if answer else None
    g = real_value(gold) if a is not None else None
    if a is None or g is None or a == g:
        return None
    return "high" if a > g else "low"


def make_provider(env: EnvConfig) -> Provider:
    """The provider `env.feedback.provider` names, with its templates; a custom one is imported here, once."""
    fb, fixed_template = env.feedback, env.feedback_template

    def fixed(attempt: Attempt, d: Dialogue) -> str:
        return fill(fixed_template, attempts_left(d))

    def echo(attempt: Attempt, d: Dialogue) -> str:
        if attempt.timed_out:  # the grader gave up: the answer may be right, so it is not quoted
            return fixed(attempt, d)
        if not attempt.answer:
            return fill(fb.echo_no_answer_template, attempts_left(d))
        return fill(fb.echo_template, attempts_left(d), attempt.answer)

    def toward(attempt: Attempt, d: Dialogue) -> str:
        side = direction(attempt.answer, d.gold)
        template = {"high": fb.direction_high_template, "low": fb.direction_low_template}.get(side, fixed_template)
        return fill(template, attempts_left(d))

    def neutral(attempt: Attempt, d: Dialogue) -> str:
        return fill(fb.none_template, attempts_left(d))

    builtins = {"fixed": fixed, "echo": echo, "direction": toward, "none": neutral}
    if fb.provider in builtins:
        return Provider(fb.provider, builtins[fb.provider], "last" if fb.provider == "none" else "any")
    if fb.provider == "custom":
        return Provider("custom", _checked(import_function(fb.custom_function), env.end_of_turn), "any")
    raise ConfigError(f"env.feedback.provider: unknown provider {fb.provider!r}; known: {', '.join(PROVIDERS)}")


def with_provider(env: EnvConfig, name: str) -> EnvConfig:
    """The environment with another provider, same templates (SFT's mix, `model.sft.feedback_providers`)."""
    return dataclasses.replace(env, feedback=dataclasses.replace(env.feedback, provider=name))


def import_function(spec: str) -> FeedbackFn:
    """`module:function` -> the function; a ConfigError naming env.feedback.custom_function otherwise."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{CUSTOM_KEY}: {spec!r} is not of the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or whatever the module raises while it is imported
        raise ConfigError(f"{CUSTOM_KEY}: cannot import module {module_name!r}: {type(e).__name__}: {e}") from e
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"{CUSTOM_KEY}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ConfigError(f"{CUSTOM_KEY}: {spec!r} is not callable (it is a {type(fn).__name__})")
    return fn


def _checked(fn: FeedbackFn, end_of_turn: str) -> FeedbackFn:
    """A custom function's text must be a str that starts with end_of_turn, as every feedback does."""

    def render(attempt: Attempt, d: Dialogue) -> str:
        text = fn(attempt, d)
        if not isinstance(text, str) or not text.startswith(end_of_turn):
            raise ValueError(
                f"{CUSTOM_KEY}: the function returned {text!r:.80} for dialogue {d.id}; feedback must be a str "
                f"that starts with env.end_of_turn ({end_of_turn!r})"
            )
        return text

    return render
