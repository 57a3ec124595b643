"""Feedback providers (pipeline/feedback.py): wording, what they may reveal, determinism, the `none` provider's
scoring, custom providers, and token-exact rollouts with them. `pytest tests/test_feedback.py -q`"""

from __future__ import annotations

import random
import re
import time
from fractions import Fraction

import pytest

from pipeline import config as C
from pipeline import metrics
from pipeline.dialogue import Attempt, Dialogue, Role
from pipeline.env import MultiAttemptEnv, render_feedback
from pipeline.evaluate import trace
from pipeline.feedback import direction, fill, make_provider
from pipeline.grading import Grader
from pipeline.rollout import Transcript

TINY = C.resolve({})
PAPER = C.resolve({"scale": "paper"})
GRADER = Grader.from_config(TINY.grading)
BUILT_IN = ("fixed", "echo", "direction", "none")
EOT = "<|im_end|>"


def cfg_with(provider: str, base: dict | None = None, **feedback) -> C.Config:
    return C.resolve(C.deep_merge(base or {}, {"env": {"feedback": {"provider": provider, **feedback}}}))


def make_env(cfg: C.Config) -> MultiAttemptEnv:
    return MultiAttemptEnv(cfg.env, cfg.attempt_range("multi_attempt"), GRADER)


def boxed(s: str) -> str:
    return "\\boxed{" + s + "}"


# ----------------------------------------------------------------------------------------------- wording


@pytest.mark.parametrize("cfg", [TINY, PAPER], ids=["tiny", "paper"])
def test_fixed_is_the_feedback_template_byte_for_byte(cfg):
    """The default provider is today's template: the default run's dialogues do not change."""
    assert cfg.env.feedback.provider == "fixed"
    env = make_env(cfg)
    for ended in (False, True):
        d = env.reset("q", "3+4", "7", n_allowed=4)
        fb = env.step([d], ["\\boxed{1}"], [3], [ended])[0]
        expected = cfg.env.feedback_template.replace("{n}", "3")
        assert fb == (expected[len(EOT) :] if ended else expected)
        assert fb == render_feedback(cfg.env.feedback_template, 3, EOT, ended)


def test_each_preset_phrases_the_providers_in_its_own_style():
    d = Dialogue("q", "3+4", "7", n_allowed=3)
    d.attempts.append(Attempt("\\boxed{9}", "9", True, False, 3))
    said = {
        name: {p: make_provider(cfg_with(p, {"scale": name}).env).render(d.attempts[-1], d) for p in BUILT_IN}
        for name in ("tiny", "paper")
    }
    assert (
        said["tiny"]["echo"]
        == f"{EOT}\n<|im_start|>system\nIncorrect: 9. 2 attempts left.{EOT}\n<|im_start|>assistant\n"
    )
    assert "Incorrect: too high. 2 attempts left." in said["tiny"]["direction"]
    assert "Your answer 9 is incorrect. You have 2 attempts left. Try an alternative." in said["paper"]["echo"]
    assert "Your answer is incorrect: it is too high. You have 2 attempts left." in said["paper"]["direction"]
    for style in said.values():
        assert all(text.startswith(EOT) for text in style.values())
        assert "ncorrect" not in style["none"] and "2 attempts left" in style["none"]


def test_echo_quotes_the_answer_verbatim_or_says_there_was_none():
    provider = make_provider(cfg_with("echo").env)
    d = Dialogue("q", "x", "7", n_allowed=5)
    for text, answer, quoted in [
        ("\\boxed{{n}-1}", "{n}-1", "Incorrect: {n}-1. 4 attempts left."),  # one-pass fill: "{n}" stays as written
        ("no box at all", None, "Incorrect: no boxed answer. 3 attempts left."),
        ("\\boxed{}", "", "Incorrect: no boxed answer. 2 attempts left."),
    ]:
        d.attempts.append(Attempt(text, answer, bool(answer), False, 2))
        assert quoted in provider.render(d.attempts[-1], d)


def test_echo_does_not_quote_an_answer_whose_grading_timed_out():
    """A timed-out check counts as wrong, but the answer may be right: echo then says only the fixed sentence."""
    cfg = cfg_with("echo")
    d = Dialogue("q", "x", "7", n_allowed=3)
    d.attempts.append(Attempt("\\boxed{7}", "7", True, False, 2, timed_out=True))
    assert make_provider(cfg.env).render(d.attempts[-1], d) == fill(cfg.env.feedback_template, 2)


@pytest.mark.parametrize(
    "answer, gold, side",
    [
        ("0580", "0579", "high"),
        ("0578", "0579", "low"),
        ("\\frac{1}{2}", "0.4", "high"),
        ("-3", "-2", "low"),
        ("1,000", "999", "high"),
        ("0.5", "\\frac12", None),  # equal values: nothing to say
        ("\\sqrt{2}", "1", None),  # not a plain number
        ("50\\%", "49", None),  # a percent: the grader leaves it to Math-Verify, so does direction
        ("7", "x+1", None),
        (None, "7", None),
    ],
)
def test_direction_reads_numbers_as_the_grader_does(answer, gold, side):
    assert direction(answer, gold) == side


def test_direction_falls_back_to_the_fixed_sentence():
    cfg = cfg_with("direction")
    env = make_env(cfg)
    ds = [env.reset(f"q{i}", "x", gold, n_allowed=2) for i, gold in enumerate(["0579", "0579", "\\pi", "0579"])]
    out = env.step(ds, ["\\boxed{0600}", "\\boxed{0012}", "\\boxed{3}", "no box"], [1] * 4, [False] * 4)
    fb = cfg.env.feedback
    assert out == [
        fill(fb.direction_high_template, 1),
        fill(fb.direction_low_template, 1),
        fill(cfg.env.feedback_template, 1),
        fill(cfg.env.feedback_template, 1),
    ]


def test_hostile_answers_run_nothing_and_take_no_time(tmp_path):
    """Model output is untrusted: echo quotes it as text and direction parses it with the grader's bounded fast
    path; over the hostile generator's answers (injections, towers, megabyte strings...) nothing is executed and
    the feedback comes back at once."""
    from pipeline.grading.extract import answer_of
    from tests.hostile import hostile_answers

    marker = tmp_path / "pwned"
    providers = [make_provider(cfg_with(p).env) for p in ("echo", "direction")]
    t0 = time.perf_counter()
    for response, gold in hostile_answers(300, marker, seed=3):
        d = Dialogue("h", "q", gold, n_allowed=3)
        answer = answer_of(response, "last")
        d.attempts.append(Attempt(response, answer, bool(answer), False, 1))
        assert all(p.render(d.attempts[-1], d).startswith(EOT) for p in providers)
    assert time.perf_counter() - t0 < 30
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------- property test

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LATEX = [
    "\\sqrt{2}", "2\\sqrt{3}", "\\pi", "\\frac{\\sqrt{3}}{2}", "x^2+1", "(1, 2)", "\\{1, 2\\}", "[0, 1)",
    "\\text{yes}", "e^{2}", "\\frac{3\\pi}{4}", "\\infty", "-\\frac{1}{3}", "2x+3", "\\dfrac{7}{2}", "10\\%",
]  # fmt: skip


def _gold(rng: random.Random) -> tuple[str, Fraction | None]:
    kind = rng.randrange(5)
    if kind == 0:
        v = rng.randrange(2000)
        return f"{v:04d}", Fraction(v)  # the tiny task's fixed-width answers
    if kind == 1:
        v = rng.randrange(-300, 300)
        return str(v), Fraction(v)
    if kind == 2:
        v = Fraction(rng.randrange(-999, 999), 100)
        return f"{float(v):.2f}", v
    if kind == 3:
        a, b = rng.randrange(1, 30), rng.randrange(2, 12)
        return f"\\frac{{{a}}}{{{b}}}", Fraction(a, b)
    return rng.choice(_LATEX), None


def _answer(rng: random.Random, gold: str, value: Fraction | None) -> str:
    """An attempt's text: near misses, equivalent spellings (right), other LaTeX, no box, an empty box."""
    kind = rng.randrange(7)
    if value is not None and kind <= 2:
        v = value + rng.choice([-10, -1, Fraction(-1, 2), Fraction(1, 2), 1, 10, 0])
        spelled = f"{v.numerator}" if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
        return boxed(rng.choice([spelled, f"{float(v):g}"]))
    if kind == 3:
        return boxed(gold)  # right: the dialogue ends (scored on the last: it goes on, feedback `none` only)
    if kind == 4:
        return "I am not sure, maybe " + gold  # no box: not an answer, whatever it says
    if kind == 5:
        return "\\boxed{}"
    return boxed(rng.choice(_LATEX))


def _constant_texts(cfg: C.Config, n_left: int) -> list[str]:
    """Every template filled with the attempts left: the words any provider says whatever the gold."""
    fb = cfg.env.feedback
    templates = [cfg.env.feedback_template] + [getattr(fb, k) for k in sum(C.FEEDBACK_TEMPLATES.values(), ())]
    return [fill(t, n_left) for t in templates]


def _step_all(cfg: C.Config, cases: list[tuple[str, str]], n_allowed: int) -> tuple[list, list[str | None]]:
    env = make_env(cfg)
    ds = [env.reset(f"q{i}", "question", gold, n_allowed) for i, (gold, _) in enumerate(cases)]
    return ds, env.step(ds, [text for _, text in cases], [5] * len(cases), [False] * len(cases))


@pytest.mark.parametrize("provider", BUILT_IN)
@pytest.mark.parametrize("scale", ["tiny", "paper"])
def test_no_built_in_provider_reveals_the_gold(provider, scale):
    """Over many generated numeric and LaTeX golds and answers (seeded): (1) the feedback is a function of the
    dialogue (a second environment says the same); (2) it depends on the gold only through whether the answer
    was right and, for `direction`, its side of the gold: with another gold that leaves both alike, the text is
    the same; (3) apart from the quoted (wrong) answer and the attempts-left count, nothing in it is the gold
    or grades as right against it, neither any number in it nor the whole message; (4) echo quotes only
    answers graded wrong, not timed out."""
    rng = random.Random(17)
    cfg = cfg_with(provider, {"scale": scale})
    n_allowed, n_left = 7, 6
    golds = [_gold(rng) for _ in range(150)]
    cases = [(g, _answer(rng, g, v)) for g, v in golds]
    alt_golds = [rng.choice(golds)[0] for _ in cases]
    ds, said = _step_all(cfg, cases, n_allowed)
    assert _step_all(cfg, cases, n_allowed)[1] == said  # (1)
    alt_ds, alt_said = _step_all(cfg, [(g2, text) for g2, (_, text) in zip(alt_golds, cases)], n_allowed)
    compared = 0
    for d, fb, alt_d, alt_fb in zip(ds, said, alt_ds, alt_said):
        if provider == "none" or (
            not d.attempts[-1].correct
            and not alt_d.attempts[-1].correct
            and direction(d.attempts[-1].answer, d.gold) == direction(d.attempts[-1].answer, alt_d.gold)
        ):
            assert fb == alt_fb, (d.gold, alt_d.gold, d.attempts[-1].text)  # (2)
            compared += 1
    assert compared >= 50
    candidates, owners = [], []
    for d, fb in zip(ds, said):
        a = d.attempts[-1]
        if fb is None:
            assert a.correct and provider != "none"
            continue
        own = fb
        if provider == "echo" and a.answer and not a.timed_out:
            assert not a.correct and fb == fill(cfg.env.feedback.echo_template, n_left, a.answer)  # (4)
            own = fill(cfg.env.feedback.echo_template, n_left, " ")  # the quote blanked out
        own = re.sub(rf"(?<![\d.]){n_left}(?![\d.])", "N", own)
        message = own.split("system\n", 1)[1].split(EOT, 1)[0]
        if not any(d.gold in text for text in _constant_texts(cfg, n_left)):
            assert d.gold not in own, (d.gold, fb)  # (3)
        for c in [message, *_NUMBER.findall(message)]:
            candidates.append(boxed(c))
            owners.append(d)
    grades = GRADER.grade(candidates, [d.gold for d in owners])
    right = [(c, d.gold) for c, d, g in zip(candidates, owners, grades) if g.correct]
    assert not right  # (3)
    assert len(candidates) >= len(cases) // 2  # most attempts were wrong and got feedback


# ------------------------------------------------------------------------------------------ none: scored on the last


def test_none_runs_all_attempts_and_is_scored_on_the_last():
    env = make_env(cfg_with("none"))
    cases = {
        "right, wrong, right": (["\\boxed{7}", "\\boxed{8}", "\\boxed{7}"], "correct", 3, 1.0),
        "right, right, wrong": (["\\boxed{7}", "\\boxed{7}", "\\boxed{8}"], "attempts_exhausted", None, -0.5),
        "right, right, no box": (["\\boxed{7}", "\\boxed{7}", "so"], "attempts_exhausted", None, -1.0),
        "wrong, wrong, right": (["\\boxed{1}", "\\boxed{2}", "\\boxed{7}"], "correct", 3, 1.0),
    }
    for name, (texts, reason, solved_at, reward) in cases.items():
        d = env.reset(name, "3+4", "7", n_allowed=3)
        out = [env.step([d], [t], [2], [False])[0] for t in texts]
        assert out[-1] is None and all(fb is not None for fb in out[:-1]), name  # feedback after right answers too
        assert (d.stop_reason, d.solved_at, d.reward, len(d.attempts)) == (reason, solved_at, reward, 3), name
        assert [s.role for s in d.segments].count(Role.FEEDBACK) == 2
        record = trace(Transcript(d), "b")
        assert record["scored_on"] == "last"
        (checked,) = metrics.traces_from([record], name)
        assert metrics.accuracy([checked]) == (solved_at is not None)


def test_none_scores_the_last_answer_when_a_budget_or_the_context_ends_the_dialogue():
    env = make_env(cfg_with("none", {"env": {"max_attempt_tokens": 10, "max_total_tokens": 15}}))
    d = env.reset("q", "3+4", "7", n_allowed=5)
    env.step([d], ["\\boxed{1}"], [10], [False])
    env.step([d], ["\\boxed{7}"], [5], [False])
    assert (d.stop_reason, d.solved_at, d.reward) == ("correct", 2, 1.0)
    d = env.reset("q", "3+4", "7", n_allowed=5)
    env.step([d], ["\\boxed{7}"], [2], [False])
    env.end_for_context(d)
    assert (d.stop_reason, d.solved_at, d.reward) == ("correct", 1, 1.0)
    assert d.segments[-1].role == Role.POLICY  # the feedback that no longer fitted was withdrawn
    d = env.reset("q", "3+4", "7", n_allowed=5)
    env.step([d], ["\\boxed{9}"], [2], [False])
    env.end_for_context(d)
    assert (d.stop_reason, d.solved_at, d.reward) == ("context", None, -0.5)


def test_a_trace_that_goes_on_after_a_right_answer_needs_scored_on_last():
    env = make_env(cfg_with("none"))
    d = env.reset("q", "3+4", "7", n_allowed=2)
    for text in ["\\boxed{7}", "\\boxed{7}"]:
        env.step([d], [text], [2], [False])
    record = trace(Transcript(d), "b")
    assert metrics.traces_from([record], "t")[0].scored_on == "last"
    with pytest.raises(metrics.DataError, match="attempt 1 is correct but the dialogue went on"):
        metrics.traces_from([{k: v for k, v in record.items() if k != "scored_on"}], "t")
    with pytest.raises(metrics.DataError, match=re.escape("scored_on must be one of ('any', 'last'), got 'first'")):
        metrics.traces_from([{**record, "scored_on": "first"}], "t")


def test_the_paper_rule_is_unchanged_for_the_other_providers():
    for provider in ("fixed", "echo", "direction"):
        env = make_env(cfg_with(provider))
        d = env.reset("q", "3+4", "7", n_allowed=3)
        env.step([d], ["\\boxed{7}"], [2], [False])
        assert (d.done, d.stop_reason, d.solved_at, d.reward) == (True, "correct", 1, 1.0)
        assert "scored_on" not in trace(Transcript(d), "b")  # default traces are byte-identical to before


# ----------------------------------------------------------------------------------------------- custom providers


def test_a_custom_provider_is_called_with_the_attempt_and_the_dialogue():
    env = make_env(cfg_with("custom", custom_function="tests.custom_feedback:count_boxes"))
    d = env.reset("q", "3+4", "7", n_allowed=3)
    assert env.step([d], ["\\boxed{1}"], [2], [False])[0].startswith(f"{EOT}\n<|im_start|>system\nWrong. 1 boxed")
    assert env.step([d], ["no box"], [2], [True])[0] == "\n<|im_start|>system\nWrong. 1 boxed so far, 1 left." + (
        f"{EOT}\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tests.no_such_module:f", "env.feedback.custom_function: cannot import module 'tests.no_such_module'"),
        ("tests.custom_feedback:missing", "env.feedback.custom_function: module 'tests.custom_feedback' has no"),
        ("tests.custom_feedback:NOT_A_FUNCTION", "env.feedback.custom_function: .* is not callable"),
        ("fb_raises_on_import:f", "cannot import module 'fb_raises_on_import': RuntimeError: boom"),
    ],
)
def test_custom_provider_import_errors_name_the_key(spec, message, tmp_path, monkeypatch):
    (tmp_path / "fb_raises_on_import.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = cfg_with("custom", custom_function=spec)
    with pytest.raises(C.ConfigError, match=message):
        make_env(cfg)


def test_custom_feedback_must_close_the_turn():
    env = make_env(cfg_with("custom", custom_function="tests.custom_feedback:no_end_of_turn"))
    d = env.reset("q", "3+4", "7", n_allowed=3)
    with pytest.raises(ValueError, match="env.feedback.custom_function: .* must be a str that starts with"):
        env.step([d], ["\\boxed{1}"], [2], [False])


@pytest.mark.parametrize(
    "feedback, message",
    [
        ({"provider": "custom"}, "env.feedback.custom_function: provider custom needs 'module:function', got ''"),
        ({"provider": "custom", "custom_function": "a.b"}, "env.feedback.custom_function: provider custom needs"),
        ({"provider": "echo", "echo_template": f"{EOT}{{n}} left"}, "env.feedback.echo_template: must quote"),
        ({"provider": "none", "none_template": "{n} left"}, "env.feedback.none_template: must start with"),
        ({"provider": "direction", "direction_low_template": EOT}, "env.feedback.direction_low_template: must state"),
        ({"provider": "hint"}, "env.feedback.provider: 'hint' is not one of"),
        ({"echo_templat": ""}, "env.feedback.echo_templat: unknown key"),
    ],
)
def test_bad_feedback_config_names_the_key(feedback, message):
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        C.resolve({"env": {"feedback": feedback}})


def test_only_the_chosen_providers_templates_are_checked():
    """Changing end_of_turn for the fixed sentence does not force rewriting templates that are never used."""
    cfg = C.resolve({"env": {"end_of_turn": "<eot>", "feedback_template": "<eot>Wrong, {n} left."}})
    assert cfg.env.feedback.provider == "fixed"


# ----------------------------------------------------------------------------------------------- SFT and rollouts


def test_sft_transcripts_use_the_configured_provider():
    from pipeline.sft import example_segments

    records = [{"id": f"r{i}", "question": f"{i:03d}+000=", "answer": f"{i:04d}"} for i in range(50)]
    for provider in BUILT_IN:
        cfg = cfg_with(provider)
        rng = random.Random(0)
        seen = 0
        for _ in range(40):
            segments = [text for text, _ in example_segments(records, cfg, rng, 5, multi_fraction=1.0)]
            n_allowed = int(re.search(r"You have (\d) attempts", segments[0]).group(1))
            for j in range(1, len(segments) - 1, 2):  # [prompt, (wrong answer, feedback)*, right answer]
                wrong, fb, left = segments[j][len("\\boxed{") : -1], segments[j + 1], n_allowed - (j + 1) // 2
                if provider == "direction":  # other questions' answers differ from the gold: always a side
                    assert fb in (
                        fill(cfg.env.feedback.direction_high_template, left),
                        fill(cfg.env.feedback.direction_low_template, left),
                    )
                else:
                    template = {"fixed": cfg.env.feedback_template, "echo": cfg.env.feedback.echo_template}
                    assert fb == fill(template.get(provider, cfg.env.feedback.none_template), left, wrong)
                seen += 1
        assert seen >= 20


def test_sft_can_mix_providers_for_a_base_that_serves_an_ablation():
    from pipeline.sft import example_segments

    records = [{"id": f"r{i}", "question": f"{i:03d}+000=", "answer": f"{i:04d}"} for i in range(50)]
    cfg = C.resolve({"model": {"sft": {"feedback_providers": ["fixed", "echo", "none"]}}})
    rng = random.Random(0)
    said = [text for _ in range(60) for text, _ in example_segments(records, cfg, rng, 5, multi_fraction=1.0)]
    assert any(t.startswith(f"{EOT}\n<|im_start|>system\nIncorrect. ") for t in said)  # fixed
    assert any(t.startswith(f"{EOT}\n<|im_start|>system\nIncorrect: 0") for t in said)  # echo of an answer
    assert any(t.startswith(f"{EOT}\n<|im_start|>system\n") and "Check your answer" in t for t in said)  # none
    with pytest.raises(C.ConfigError, match=re.escape("(echo is listed in model.sft.feedback_providers)")):
        C.resolve({"model": {"sft": {"feedback_providers": ["echo"]}}, "env": {"feedback": {"echo_template": EOT}}})


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    import torch

    from pipeline import models

    torch.manual_seed(0)
    return models.load(tiny_model_dir)


@pytest.mark.parametrize("provider", ["echo", "direction", "none"])
def test_rollouts_with_a_provider_are_token_exact(tiny, provider):
    """A real tiny Qwen2: the feedback turns are the provider's text, tokenized once, role FEEDBACK, and the ids
    the model saw are the transcript's (rollout's check raises otherwise)."""
    from pipeline.hf_backend import HFBackend
    from pipeline.rollout import Question, SamplingParams, encode, rollout

    model, tokenizer = tiny
    cfg = cfg_with(provider, {"env": {"max_attempt_tokens": 6, "max_total_tokens": 40}})
    env = make_env(cfg)
    backend = HFBackend(model, tokenizer, cfg.env.end_of_turn, True)
    questions = [Question(f"q{i}", f"{100 + i}+{200 + 3 * i}=", f"{300 + 4 * i:04d}", 3) for i in range(6)]
    params = SamplingParams(temperature=0.8, top_p=0.95, greedy=False, seed=7)
    transcripts = rollout(backend, tokenizer, env, questions, params, 3, check=True)
    n_feedback = 0
    for t in transcripts:
        assert t.token_exact
        d = t.dialogue
        for seg in (s for s in d.segments if s.role == Role.FEEDBACK):
            ids = [i for i, r, a in zip(t.token_ids, t.roles, t.attempts) if r == Role.FEEDBACK and a == seg.attempt]
            assert ids == encode(tokenizer, seg.text)
            n_feedback += 1
        if provider == "none":
            assert len(d.attempts) == 3 or d.stop_reason in ("token_budget", "context")
    assert n_feedback >= 6
    again = rollout(backend, tokenizer, make_env(cfg), questions, params, 3, check=True)
    assert [t.token_ids for t in again] == [t.token_ids for t in transcripts]  # deterministic given the seed


def test_a_variant_chooses_its_provider_through_its_env_overrides():
    """`variants.<name>.env.feedback` overrides the provider for that variant only; errors name its key path."""
    cfg = C.resolve({"variants": {"multi_attempt": {"env": {"feedback": {"provider": "echo"}}}}})
    assert cfg.variant_env("multi_attempt").feedback.provider == "echo" and cfg.env.feedback.provider == "fixed"
    assert make_provider(cfg.variant_env("multi_attempt")).name == "echo"
    bad = {"variants": {"multi_attempt": {"env": {"feedback": {"provider": "echo", "echo_template": f"{EOT}{{n}}"}}}}}
    with pytest.raises(C.ConfigError, match=re.escape("variants.multi_attempt.env.feedback.echo_template: must quote")):
        C.resolve(bad)


def test_the_sft_stop_needs_the_retry_target_under_every_mixed_provider(tiny_model_dir, monkeypatch):
    """A base for the feedback ablation must retry after each format it will meet: greedy_check reports the lowest
    after-feedback accuracy over model.sft.feedback_providers (measured: a base checked under `fixed` alone
    retried 0% after echo or direction feedback)."""
    from pipeline import data, models, sft
    from pipeline.grading import Grader

    seen = []

    def retry_accuracy(backend, tokenizer, cfg, records, train, grader, provider):
        seen.append(provider.name)
        return {"fixed": 0.5, "echo": 0.1, "direction": 0.3}[provider.name]

    monkeypatch.setattr(sft, "_retry_accuracy", retry_accuracy)
    train, heldout = data.synthetic_splits(0, 50, 8, 3)
    model, tokenizer = models.load(tiny_model_dir)
    mixed = C.resolve({"model": {"sft": {"feedback_providers": ["fixed", "echo", "direction"]}}})
    with Grader.from_config(mixed.grading) as grader:
        assert sft.greedy_check(model, tokenizer, mixed, heldout, train, grader)["retry_accuracy"] == 0.1
        assert seen == ["fixed", "echo", "direction"]
        assert sft.greedy_check(model, tokenizer, C.resolve({}), heldout, train, grader)["retry_accuracy"] == 0.5
    assert seen[3:] == ["fixed"]  # the default: its own provider only
