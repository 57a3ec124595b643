"""The multi-attempt environment: N distribution, templates, termination, reward. `pytest tests/test_env.py -q`"""

import collections
import itertools
import random
import re

import pytest

from pipeline import config as C
from pipeline.dialogue import Role
from pipeline.env import MultiAttemptEnv, render_feedback, render_prompt
from pipeline.grading import Grader
from tests.conftest import ROOT

# The exact ChatML strings of the released code (spec §1.2), {input} -> question, {N}/{n} -> attempts.
SPEC_PROMPT = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}. "
    "You have {N} attempts to answer the questions, and you should provide the full reasoning steps in each "
    "attempt.<|im_end|>\n<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
)
SPEC_FEEDBACK = (
    "<|im_end|>\n<|im_start|>system\nYour answer is incorrect. You have {n} attempts left. "
    "Try an alternative.<|im_end|>\n<|im_start|>assistant\n"
)
# The released baseline's prompt (spec §3, SimpleRL's file: no attempts sentence, no trailing newline) and its
# training-time evaluation prompt, qwen-boxed (spec §5.3).
SPEC_BASELINE_PROMPT = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
    "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant"
)
SPEC_QWEN_BOXED = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{q}\nPlease reason step by "
    "step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
)
SPEC_PATH = ROOT.parent / "shared" / "docs" / "paper-spec.md"

TINY = C.resolve({})
PAPER = C.resolve({"scale": "paper"})
GRADER = Grader.from_config(TINY.grading)  # its workers start on first use (these tests need none)


def make_env(cfg=TINY, variant="multi_attempt"):
    return MultiAttemptEnv(cfg.env, cfg.attempt_range(variant), GRADER)


def test_spec_strings_match_the_spec_document():
    """Guard the copies above against the spec itself (its blocks write newlines as the two characters \\n)."""
    if not SPEC_PATH.is_file():
        pytest.skip("../shared/docs/paper-spec.md is absent")
    blocks = re.findall(r"```\n(.*?)\n```", SPEC_PATH.read_text(), flags=re.S)
    as_text = [b.replace("\\n", "\n") for b in blocks]
    assert SPEC_PROMPT in as_text
    assert SPEC_FEEDBACK in as_text


def test_paper_templates_character_by_character():
    question = "What is $1+1$?"
    for n in (1, 2, 5):
        assert render_prompt(PAPER.env.prompt_template, question, n) == SPEC_PROMPT.replace("{N}", str(n)).replace(
            "{input}", question
        )
    # n counts the attempts left after the decrement, so "1 attempts" is literal (spec §1.2).
    assert render_feedback(PAPER.env.feedback_template, 1, "<|im_end|>", False) == SPEC_FEEDBACK.replace("{n}", "1")
    assert "You have 1 attempts left." in render_feedback(PAPER.env.feedback_template, 1, "<|im_end|>", False)


def test_baseline_strings_match_the_spec_document():
    """The spec writes these inline (`...`), newlines as the two characters \\n."""
    if not SPEC_PATH.is_file():
        pytest.skip("../shared/docs/paper-spec.md is absent")
    inline = [b.replace("\\n", "\n") for b in re.findall(r"`([^`\n]+)`", SPEC_PATH.read_text())]
    assert SPEC_BASELINE_PROMPT in inline and SPEC_QWEN_BOXED in inline


def test_paper_baseline_is_the_released_single_turn_task():
    """The paper preset's baseline trains on SimpleRL's prompt, character by character (no trailing newline), to
    the end of the turn, with the released reward; its held-out checks use qwen-boxed; it is evaluated at k
    attempts in the multi-attempt env like every model."""
    question = "What is $1+1$?"
    env = PAPER.variant_env("baseline")
    assert render_prompt(env.prompt_template, question, 1) == SPEC_BASELINE_PROMPT.replace("{question}", question)
    assert not env.prompt_template.endswith("\n")
    assert env.stop_at_box is False and env.reward.rule == "released_baseline"
    assert render_prompt(PAPER.heldout_env("baseline").prompt_template, question, 1) == SPEC_QWEN_BOXED.replace(
        "{q}", question
    )
    assert PAPER.attempt_range("baseline") == C.AttemptRange(1, 1)
    assert PAPER.variant_env("multi_attempt") == PAPER.env  # the multi-attempt run trains in the evaluation env
    assert "single_attempt_env" in PAPER.variants and "single_attempt_env" not in PAPER.trained_variants
    assert PAPER.variant_env("single_attempt_env") == PAPER.env


@pytest.mark.parametrize(
    "text, reward",
    [
        (r"so \boxed{2}", 1.0),
        ("The answer is 2.", 1.0),  # no box: the released extractor falls back to the phrase
        ("1 + 1 makes 2", 1.0),  # ... or to the last number
        (r"\boxed{3}", -0.5),
        ("I would have boxed it: 3", -0.5),  # the substring "boxed" is the format test
        ("no idea", -1.0),
        ("it is 3", -1.0),
    ],
)
def test_released_baseline_reward(text, reward):
    env = MultiAttemptEnv(PAPER.variant_env("baseline"), PAPER.attempt_range("baseline"), GRADER)
    d = env.reset("q", "1+1?", "2", 1)
    assert env.step([d], [text], [5], [True]) == [None]
    assert d.done and d.reward == reward


def test_variant_env_overrides_are_checked_like_env():
    with pytest.raises(C.ConfigError) as e:
        C.resolve({"variants": {"baseline": {"env": {"stop_at_box": "maybe", "feedbak_template": "x"}}}})
    assert "variants.baseline.env.stop_at_box: 'maybe' is not of type 'boolean'" in str(e.value)
    assert "variants.baseline.env.feedbak_template: unknown key" in str(e.value)
    with pytest.raises(C.ConfigError, match=r"variants.two.env.feedback_template: must state the attempts left"):
        C.resolve(
            {"variants": {"two": {"min_attempts": 1, "max_attempts": 2, "env": {"feedback_template": "<|im_end|>"}}}}
        )
    with pytest.raises(C.ConfigError, match="variants: no variant is enabled"):
        C.resolve({"variants": {"multi_attempt": {"enabled": False}, "baseline": {"enabled": False}}})
    # a single-attempt variant needs no {N}; a new variant takes the schema's defaults for what it omits
    cfg = C.resolve(
        {"variants": {"plain": {"min_attempts": 1, "max_attempts": 1, "env": {"prompt_template": "Q: {question}"}}}}
    )
    assert cfg.trained_variants == ["multi_attempt", "baseline", "plain"] and cfg.variant("plain").description == ""
    assert cfg.variant_env("plain").prompt_template == "Q: {question}" and cfg.env.prompt_template != "Q: {question}"
    assert C.resolve(cfg.to_dict()).to_dict() == cfg.to_dict()  # resolving a resolved config gives it back


def test_prompt_rendering_keeps_braces_in_question():
    # str.format would choke on \boxed{} and on braces inside a question; plain replacement must not.
    out = render_prompt(PAPER.env.prompt_template, "Find $\\{x\\}$ with {N} in it", 3)
    assert "You have 3 attempts" in out and "Find $\\{x\\}$ with {N} in it" in out


def test_feedback_drops_its_end_of_turn_when_the_policy_closed_the_turn():
    fb = render_feedback(TINY.env.feedback_template, 2, "<|im_end|>", policy_ended_turn=True)
    assert not fb.startswith("<|im_end|>") and fb.startswith("\n<|im_start|>system")


def test_n_is_uniform_over_the_range_and_seeded():
    env = make_env()
    draws = [env.sample_n(random.Random(7)) for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same draw
    rng = random.Random(0)
    counts = collections.Counter(env.sample_n(rng) for _ in range(10_000))
    assert set(counts) == {1, 2, 3, 4, 5}
    # Each value expects 2000; 4 sigma of a binomial(10000, 0.2) is 160.
    assert all(abs(c - 2000) < 160 for c in counts.values()), counts


def test_baseline_is_the_same_environment_with_one_attempt():
    env = make_env(variant="baseline")
    rng = random.Random(0)
    assert {env.sample_n(rng) for _ in range(100)} == {1}
    d = env.reset("q", "1+1", "2", n_allowed=1)
    assert "You have 1 attempts." in d.text
    assert env.step([d], ["\\boxed{3}"], [3], [False]) == [None]
    assert d.done and d.stop_reason == "attempts_exhausted" and d.reward == -0.5


def test_dialogue_until_correct():
    env = make_env()
    d = env.reset("q1", "2+2", "4", n_allowed=3)
    fb = env.step([d], ["I think \\boxed{5}"], [4], [False])[0]
    assert fb == render_feedback(TINY.env.feedback_template, 2, "<|im_end|>", False)
    assert not d.done
    assert env.step([d], ["\\boxed{4}"], [3], [True]) == [None]
    assert d.done and d.stop_reason == "correct" and d.solved_at == 2 and d.reward == 1.0
    roles = [(Role.PROMPT, 0), (Role.POLICY, 0), (Role.FEEDBACK, 1), (Role.POLICY, 1)]
    assert [(s.role, s.attempt) for s in d.segments] == roles
    assert [(a.answer, a.formatted, a.correct, a.n_tokens) for a in d.attempts] == [
        ("5", True, False, 4),
        ("4", True, True, 3),
    ]
    with pytest.raises(ValueError, match="already over"):
        env.step([d], ["\\boxed{4}"], [1], [False])


@pytest.mark.parametrize(
    "responses, reward, reason",
    [
        (["\\boxed{1}", "\\boxed{2}"], -0.5, "attempts_exhausted"),  # boxed but wrong in every attempt
        (["no box", "\\boxed{2}"], -0.5, "attempts_exhausted"),  # one formatted attempt is enough for -0.5
        (["no box", "still none"], -1.0, "attempts_exhausted"),  # never formatted
        (["\\boxed{7}"], 1.0, "correct"),  # right at once
        (["\\boxed{7"], None, None),  # unclosed box: not formatted, dialogue goes on
    ],
)
def test_reward_table(responses, reward, reason):
    env = make_env()
    d = env.reset("q", "3+4", "7", n_allowed=2)
    for text in responses:
        env.step([d], [text], [2], [False])
    assert d.reward == reward and d.stop_reason == reason


def test_attempt_discount():
    cfg = C.resolve({"env": {"reward": {"attempt_discount": 0.5}}})
    env = make_env(cfg)
    d = env.reset("q", "3+4", "7", n_allowed=3)
    env.step([d], ["\\boxed{1}"], [2], [False])
    env.step([d], ["\\boxed{2}"], [2], [False])
    env.step([d], ["\\boxed{7}"], [2], [False])
    assert d.reward == pytest.approx(0.25)  # success at attempt 3: 1 * 0.5**2


def test_token_budget_ends_the_dialogue():
    cfg = C.resolve({"env": {"max_attempt_tokens": 10, "max_total_tokens": 15}})
    env = make_env(cfg)
    d = env.reset("q", "3+4", "7", n_allowed=5)
    assert env.attempt_budget(d) == 10
    env.step([d], ["\\boxed{1}"], [10], [False])
    assert env.attempt_budget(d) == 5  # total budget now binds
    env.step([d], ["\\boxed{2}"], [5], [False])
    assert d.done and d.stop_reason == "token_budget" and d.reward == -0.5


def test_batch_step_grades_each_dialogue_independently():
    env = make_env()
    ds = [env.reset(f"q{i}", "x", str(i), n_allowed=2) for i in range(4)]
    out = env.step(ds, ["\\boxed{0}", "\\boxed{0}", "no", "\\boxed{3}"], [1, 1, 1, 1], [False] * 4)
    assert [o is None for o in out] == [True, False, False, True]
    assert [d.reward for d in ds] == [1.0, None, None, 1.0]


def test_an_empty_box_is_not_a_formatted_answer():
    env = make_env(C.resolve({}))
    d = env.reset("q", "3+4", "7", n_allowed=1)
    env.step([d], ["the answer is \\boxed{}"], [5], [False])
    assert d.attempts[0].formatted is False and d.reward == -1.0


# Retries can never pay (issue 29, item 5): every dialogue of up to five attempts, under both reward rules.
RIGHT = "\\boxed{7}"
WRONG = {"boxed": "\\boxed{4}", "unboxed number": "so 4", "no answer": "no idea"}


def _reward(env, texts: list[str]) -> float:
    """The reward of a dialogue that writes `texts` (it ends at the first right one, or after the last)."""
    d = env.reset("q", "3+4", "7", n_allowed=len(texts))
    for text in texts:
        if env.step([d], [text], [2], [True])[0] is None:
            break
    assert d.done
    return d.reward


def _dialogues(max_attempts: int = 5):
    """Every sequence of wrong attempts (of each kind), with or without a right one at the end."""
    for n_wrong in range(max_attempts + 1):
        for wrongs in itertools.product(WRONG.values(), repeat=n_wrong):
            if wrongs:
                yield list(wrongs)
            if n_wrong < max_attempts:
                yield [*wrongs, RIGHT]


@pytest.mark.parametrize("rule", ["boxed", "released_baseline"])
@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_a_later_success_never_earns_more_and_wrong_attempts_add_nothing_once_one_boxed(rule, discount):
    """The reward is one number per dialogue, never a sum over its attempts, so retrying cannot be farmed:
    - a wrong attempt of any kind inserted before the first right one never raises the reward (with the paper's
      discount 1 it leaves it equal; below 1 it lowers it);
    - every solved dialogue earns more than every unsolved one;
    - an unsolved dialogue earns what its best-formatted attempt earns: more wrong attempts add nothing once one
      attempt was formatted. The exception, the paper's rule as released: a retry that boxes a wrong answer after
      unboxed attempts lifts the dialogue from `unformatted` (-1) to `wrong_formatted` (-0.5)."""
    env = make_env(C.resolve({"env": {"reward": {"rule": rule, "attempt_discount": discount}}}))
    table = env.cfg.reward
    formatted = (lambda t: "boxed" in t) if rule == "released_baseline" else (lambda t: t.startswith("\\boxed{"))
    rewards = {tuple(texts): _reward(env, texts) for texts in _dialogues()}
    solved = {k: r for k, r in rewards.items() if k[-1] == RIGHT}
    unsolved = {k: r for k, r in rewards.items() if k[-1] != RIGHT}
    for texts, reward in solved.items():
        assert reward == pytest.approx(table.correct * discount ** (len(texts) - 1))
        for wrong in WRONG.values():
            for at in range(len(texts)):
                later = texts[:at] + (wrong,) + texts[at:]
                if later in rewards:  # (five attempts at most)
                    assert rewards[later] == reward if discount == 1 else rewards[later] < reward
    assert min(solved.values()) > max(unsolved.values())
    for texts, reward in unsolved.items():
        expected = table.wrong_formatted if any(formatted(t) for t in texts) else table.unformatted
        assert reward == expected, texts
    assert rewards[(WRONG["no answer"], WRONG["boxed"])] > rewards[(WRONG["no answer"],)]  # the exception, as released
    assert len(rewards) == sum(3**n for n in range(1, 6)) + sum(3**n for n in range(5))  # 363 + 121 dialogues


@pytest.mark.parametrize(("truncated", "reward"), [("graded", -1.0), ("formatted", -0.5)])
def test_a_length_cut_is_a_format_failure_only_as_released(truncated, reward):
    """env.reward.truncated (issue 29, item 4): a dialogue whose attempts were all cut by their budget before any
    box earns `unformatted` as released (graded: the cut text has no box), `wrong_formatted` with "formatted"
    (the "don't punish length" ablation); an attempt that ended itself is graded alike under both."""
    env = make_env(C.resolve({"env": {"reward": {"truncated": truncated}}}))
    d = env.reset("q", "3+4", "7", n_allowed=2)
    env.step([d], ["so the sum of three and"], [10], [False], truncated=[True])
    env.step([d], ["first three, then"], [10], [False], truncated=[True])
    assert [a.truncated for a in d.attempts] == [True, True] and d.reward == reward
    d = env.reset("q", "3+4", "7", n_allowed=1)
    env.step([d], ["I do not know."], [4], [True], truncated=[False])
    assert not d.attempts[0].truncated and d.reward == -1.0
