"""The feedback ablation (issue 17): its config, its DAG beside the default one, evaluation under another provider,
and its report. `pytest tests/test_ablation.py -q`"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from pipeline import config, evaluate, metrics
from pipeline.dialogue import Role
from pipeline.env import MultiAttemptEnv
from pipeline.feedback import with_provider
from pipeline.grading import Grader
from pipeline.report import ablation
from pipeline.rollout import Question, rollout
from tests.conftest import ROOT
from tests.test_workflow import snakemake

GRADER = Grader.from_config(config.resolve({}).grading)


# ----------------------------------------------------------------------------------------------- config


def test_the_ablation_is_declared_variants_and_a_declared_base():
    cfg = config.resolve({})
    assert cfg.feedback_ablation.variants == ["fb_fixed", "fb_echo", "fb_direction"]
    for p in ("fixed", "echo", "direction"):
        v = cfg.variant(f"fb_{p}")
        assert (v.enabled, v.base, v.extends) == (False, "base_fb", "multi_attempt")
        assert cfg.attempt_range(f"fb_{p}") == cfg.attempt_range("multi_attempt")
        assert cfg.variant_env(f"fb_{p}").feedback.provider == p
        assert cfg.variant_env(f"fb_{p}").prompt_template == cfg.variant_env("multi_attempt").prompt_template
    # the ablation base's SFT meets every compared provider; the default run's base and variants are untouched
    assert cfg.for_base("base_fb").model.sft.feedback_providers == ["fixed", "echo", "direction"]
    assert cfg.for_base("base_fb").model.sft.max_steps == cfg.model.sft.max_steps
    assert cfg.for_base("base") is cfg and cfg.model.sft.feedback_providers == []
    assert cfg.trained_variants == ["multi_attempt", "baseline"]
    assert cfg.most_attempts("base_fb") == cfg.most_attempts("base") == 5


def test_a_variant_extends_another_and_a_base_has_its_own_sft():
    cfg = config.resolve(
        {
            "variants": {"multi_attempt": {"max_attempts": 3}, "fb_echo": {"min_attempts": 2}},
            "bases": {"base_fb": {"sft": {"feedback_providers": ["fixed", "echo"], "max_steps": 5000}}},
        }
    )
    assert cfg.attempt_range("fb_echo") == config.AttemptRange(2, 3)  # its own key wins, the rest follows
    assert cfg.attempt_range("fb_fixed") == config.AttemptRange(1, 3)
    assert cfg.variant("fb_echo").description.endswith("(feedback ablation)")  # not multi_attempt's
    sft = cfg.for_base("base_fb").model.sft
    assert (sft.feedback_providers, sft.max_steps) == (["fixed", "echo"], 5000)
    assert cfg.model.sft.max_steps == 3000  # `base` keeps model.sft
    assert config.resolve(cfg.to_dict()).to_dict() == cfg.to_dict()  # resolved, it resolves to itself


@pytest.mark.parametrize(
    "override, message",
    [
        ({"feedback_ablation": {"variants": ["nope"]}}, "feedback_ablation.variants: 'nope' is not a declared variant"),
        ({"feedback_ablation": {"variants": []}}, "feedback_ablation.variants"),
        ({"variants": {"fb_echo": {"base": "nope"}}}, "variants.fb_echo.base: 'nope' is neither 'base' nor declared"),
        ({"variants": {"fb_echo": {"base": "base"}}}, "feedback_ablation.variants: the compared variants must train"),
        ({"variants": {"fb_echo": {"extends": "nope"}}}, "variants.fb_echo.extends: 'nope' is not a declared variant"),
        ({"variants": {"multi_attempt": {"extends": "fb_echo"}}}, "extends 'multi_attempt' in turn (a circle)"),
        ({"bases": {"base_fb": {"sft": {"max_steps": -1}}}}, "bases.base_fb.sft.max_steps: -1 is less than"),
        ({"bases": {"base_fb": {"sft": {"lr": "fast"}}}}, "bases.base_fb.sft.lr: 'fast' is not of type 'number'"),
        ({"bases": {"base": {"sft": {}}}}, "bases: 'base' should not be valid"),
        ({"eval": {"models": {"base_fb": "/tmp"}}}, "eval.models.base_fb: the name of a model the workflow makes"),
        ({"eval": {"models": {"fb_echo_s3": "/tmp"}}}, "eval.models.fb_echo_s3: the name of a model the workflow"),
    ],
)
def test_bad_ablation_config_names_the_key(override, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.resolve(override)


def test_a_run_without_the_ablation_is_not_stopped_by_it():
    """A disabled variant's templates and a base's SFT feedback are checked when a job uses them: another
    end_of_turn need not rewrite echo's templates for the default run, and stops the ablation's jobs."""
    cfg = config.resolve({"env": {"end_of_turn": "<eot>", "feedback_template": "<eot>Wrong, {n} left."}})
    errors = config.use_errors(cfg, cfg.feedback_ablation.variants)
    assert any(
        e.startswith("variants.fb_echo.env.feedback.echo_template: must start with env.end_of_turn") for e in errors
    )
    echo = "env.feedback.echo_template: must start with env.end_of_turn ('<eot>'), which closes the attempt"
    assert echo in config.base_errors(cfg, "base_fb")  # its SFT transcripts draw echo's feedback
    assert echo in config.use_errors(cfg, [], ["echo"])  # an evaluation under echo, in the top-level env
    assert config.use_errors(cfg, cfg.trained_variants) == []


def test_a_custom_provider_variant_needs_its_function():
    custom = {
        "extends": "multi_attempt",
        "base": "base_fb",
        "enabled": False,
        "env": {"feedback": {"provider": "custom"}},
    }
    cfg = config.resolve({"variants": {"fb_custom": custom}, "feedback_ablation": {"variants": ["fb_custom"]}})
    (error,) = config.use_errors(cfg, ["fb_custom"])
    assert error.startswith("variants.fb_custom.env.feedback.custom_function: provider custom needs 'module:function'")


# ----------------------------------------------------------------------------------------------- workflow


def _job_counts(out: str) -> dict[str, int]:
    """The dry run's job table: rule -> count."""
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_dry_run_trains_one_job_per_provider_and_seed(tmp_path):
    """The ablation runs the ordinary rules: build_base for base_fb, train for each fb_<provider> x seed, evaluate
    (all k in one job) under a provider given by the {feedback} wildcard, eval_metrics, then its report."""
    out = snakemake(tmp_path, "-n", "-p", "feedback_ablation").stdout
    counts = _job_counts(out)
    cfg = config.resolve({})
    providers, seeds, max_k = ["fixed", "echo", "direction"], cfg.seeds, cfg.eval.max_k
    assert counts["train"] == len(providers) * len(seeds) == 6
    assert counts["build_base"] == 1 and "build-base --config" in out and "--base base_fb " in out
    trained = {m[1] for m in re.finditer(r"--variant (fb_\w+) --seed (\d+)", out)}
    assert trained == {f"fb_{p}" for p in providers}
    assert (
        len(re.findall(r"train --config \S+ --variant fb_\w+ --seed \d+ --base results/tiny/models/base_fb ", out)) == 6
    )
    # evaluation: base_fb with each provider; each run with its own provider and with fixed (fb_fixed: once)
    evaluations = len(providers) + sum(len(seeds) * (1 if p == "fixed" else 2) for p in providers)
    assert counts["evaluate"] == counts["eval_metrics"] == evaluations
    for p in providers:
        assert f"results/tiny/eval/base_fb/synthetic/feedback_{p}/k{max_k}.jsonl" in out
        assert f"results/tiny/eval/fb_{p}_s1/synthetic/feedback_fixed/k1.jsonl" in out
        assert f"results/tiny/eval/fb_{p}_s0/synthetic/feedback_{p}/k1.jsonl" in out
    ks = " ".join(map(str, range(1, max_k + 1)))
    assert re.search(
        rf"evaluate .*--k {ks} --feedback echo --out results/tiny/eval/fb_echo_s0/synthetic/feedback_echo/k1", out
    )
    # the default run's base and variants do not run here: the ablation has its own base
    assert "models/base " not in out and "--variant multi_attempt" not in out
    assert "reports/feedback_ablation.md" in out and "reports/figures/feedback_ablation.png" in out
    assert re.search(r"feedback-ablation-report .*--evaluated-with fixed echo direction fixed fixed echo ", out)


def test_default_run_has_no_ablation_jobs(tmp_path):
    out = snakemake(tmp_path, "-n", "-p").stdout
    assert not re.search(r"fb_|base_fb|feedback_ablation|--feedback", out)
    counts = _job_counts(out)
    assert counts["train"] == 4 and counts["build_base"] == 1


def test_bad_ablation_config_stops_its_target_only(tmp_path):
    """Templates the ablation's variants need, broken by another end_of_turn: its target stops before any job
    and names the key; the default run goes on."""
    bad = tmp_path / "eot.yaml"
    bad.write_text('env: {end_of_turn: "<eot>", feedback_template: "<eot>Wrong, {n} left."}\n')
    proc = snakemake(tmp_path, "-n", "feedback_ablation", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "variants.fb_echo.env.feedback.echo_template: must start with env.end_of_turn" in proc.stdout + proc.stderr
    assert "fb_" not in snakemake(tmp_path, "-n", "--configfile", str(bad)).stdout


# ----------------------------------------------------------------------------------------------- evaluation


RECORDS = [{"id": f"q{i}", "question": f"{i:03d}+100=", "answer": f"{i + 100:04d}"} for i in range(4)]
SMALL_EVAL = {"eval": {"max_attempt_tokens": 4, "max_total_tokens": 40, "batch_size": 4}}


def _transcripts(cfg, model_dir, k):
    backend, tokenizer = evaluate.open_backend(cfg, model_dir)
    env = MultiAttemptEnv(evaluate.eval_env(cfg), config.AttemptRange(k, k), GRADER)
    questions = [Question(r["id"], r["question"], r["answer"], k) for r in RECORDS]
    return rollout(backend, tokenizer, env, questions, evaluate.GREEDY, 4, progress=False), tokenizer


def test_evaluate_verb_uses_the_given_provider(tiny_model_dir, tmp_path):
    """`evaluate --feedback echo` writes the traces of dialogues whose feedback turns are echo's text, token-exact;
    they differ from the top-level provider's (fixed) traces."""
    cfg = config.resolve(SMALL_EVAL)
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({**r, "source": "t", "meta": {}}) + "\n" for r in RECORDS))
    out = tmp_path / "k3.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "evaluate",
        "--config",
        json.dumps(SMALL_EVAL),
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--benchmark",
        "synthetic",
        "--k",
        "3",
        "--feedback",
        "echo",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    written = [json.loads(line) for line in out.read_text().splitlines()]

    echo_cfg = dataclasses.replace(cfg, env=with_provider(cfg.env, "echo"))
    transcripts, tokenizer = _transcripts(echo_cfg, tiny_model_dir, 3)
    assert written == [evaluate.trace(t, "synthetic") for t in transcripts]
    fb = echo_cfg.env.feedback
    for t in transcripts:
        assert t.token_exact and len(t.dialogue.attempts) == 3  # the untrained model never answers right
        for j, attempt in enumerate(t.dialogue.attempts[:-1], start=1):
            ids = [i for i, r, a in zip(t.token_ids, t.roles, t.attempts) if r == Role.FEEDBACK and a == j]
            text = tokenizer.decode(ids)
            n_left = 3 - j
            expected = (
                fb.echo_template.replace("{answer}", attempt.answer).replace("{n}", str(n_left))
                if attempt.answer
                else fb.echo_no_answer_template.replace("{n}", str(n_left))
            )
            assert expected.endswith(text) and len(text) >= len(expected) - len(cfg.env.end_of_turn)
            assert tokenizer.encode(text, add_special_tokens=False) == ids  # token-exact

    # the flag reaches the environment: a provider that breaks the feedback rules stops this run, not one without it
    broken = {**SMALL_EVAL, "env": {"feedback": {"custom_function": "tests.custom_feedback:no_end_of_turn"}}}
    base = cmd[: cmd.index("--feedback")] + ["--out", str(tmp_path / "fixed.jsonl")]
    base[base.index("--config") + 1] = json.dumps(broken)
    assert subprocess.run(base, capture_output=True, cwd=ROOT).returncode == 0
    custom = [*base[:-2], "--feedback", "custom", "--out", str(tmp_path / "custom.jsonl")]
    proc = subprocess.run(custom, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "env.feedback.custom_function" in proc.stderr
    assert not (tmp_path / "custom.jsonl").exists()


# ----------------------------------------------------------------------------------------------- report


def _fake_evaluation(root, model, provider, solved):
    """eval/<model>/synthetic/feedback_<provider>/ with k1, k2 traces and metrics.json (question i solved at
    solved[i], None: never)."""
    folder = root / model / "synthetic" / f"feedback_{provider}"
    folder.mkdir(parents=True)
    runs = {}
    for k in (1, 2):
        traces = []
        for i, at in enumerate(solved):
            n = k if at is None or at > k else at
            attempts = [
                {
                    "text": "x",
                    "answer": "1" if j + 1 < n or at is None or at > k else "2",
                    "correct": at is not None and j + 1 == at and at <= k,
                    "n_tokens": 1,
                    "timed_out": False,
                }
                for j in range(n)
            ]
            traces.append(
                {
                    "id": f"q{i}",
                    "benchmark": "synthetic",
                    "N": k,
                    "attempts": attempts,
                    "solved_at": at if at is not None and at <= k else None,
                    "stop_reason": "correct" if at is not None and at <= k else "attempts_exhausted",
                    "token_exact": True,
                }
            )
        (folder / f"k{k}.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
        runs[k] = metrics.read_traces(folder / f"k{k}.jsonl")
    (folder / "metrics.json").write_text(json.dumps(metrics.metrics_for(model, runs, others=["base_fb"])))
    return folder / "metrics.json"


def _evaluations(files, providers):
    """What the rule gives the report: the metrics.json files, their providers and their k=1, k=2 traces."""
    traces = [str(f.parent / f"k{k}.jsonl") for f in files for k in (1, 2)]
    return ablation.Evaluations(files, providers, traces)


def test_report_rows_per_model_and_provider(tmp_path):
    cfg = config.resolve({"feedback_ablation": {"variants": ["fb_fixed", "fb_echo"]}})
    evaluated = [
        ("base_fb", "fixed", [1, None, None, None]),
        ("base_fb", "echo", [1, 2, None, None]),
        ("fb_echo_s0", "echo", [1, 2, 2, None]),
        ("fb_echo_s1", "echo", [1, 1, 2, None]),
        ("fb_echo_s0", "fixed", [1, None, None, None]),
        ("fb_echo_s1", "fixed", [1, 1, None, None]),
        ("fb_fixed_s0", "fixed", [1, 2, None, None]),
        ("fb_fixed_s1", "fixed", [1, 2, None, None]),
    ]
    files = [_fake_evaluation(tmp_path, *e) for e in evaluated]
    summary = ablation.summarize(cfg, _evaluations(files, [p for _, p, _ in evaluated]), n_boot=200)
    assert (summary["providers"], summary["variant"], summary["base_model"]) == (
        ["fixed", "echo"],
        "multi_attempt",
        "base_fb",
    )
    keys = [(r["model"], r["evaluated_with"]) for r in summary["rows"]]
    assert keys == [
        ("base_fb", "fixed"),
        ("base_fb", "echo"),
        ("fb_fixed", "fixed"),
        ("fb_echo", "echo"),
        ("fb_echo", "fixed"),
    ]
    row = dict(zip(keys, summary["rows"]))[("fb_echo", "echo")]
    assert row["trained_with"] == "echo" and row["own_feedback"] and row["seeds"] == [0, 1]
    assert row["accuracy"]["1"] == {"mean": 0.375, "min": 0.25, "max": 0.5}
    assert row["accuracy"]["2"] == {"mean": 0.75, "min": 0.75, "max": 0.75}
    assert row["gain_k1_to_k2"]["gain"] == pytest.approx(0.375)
    lo, hi = row["gain_k1_to_k2"]["ci95"]
    assert lo <= 0.375 <= hi
    # retries at k=2: s0 has 3 wrong first answers, 2 corrected; s1 has 2, 1 corrected
    assert row["retry"]["n_retries"] == 5
    assert row["retry"]["wrong_to_right_rate"] == {"mean": pytest.approx(7 / 12), "min": 0.5, "max": 2 / 3}
    assert not dict(zip(keys, summary["rows"]))[("fb_echo", "fixed")]["own_feedback"]
    text = ablation.markdown(summary)
    assert "| `fb_echo` | `echo` | 37.5 (25.0–50.0) | 75.0 | +37.5 [" in text
    assert "| `fb_echo` | `fixed` (not its own) |" in text


def test_report_reads_the_inputs_it_is_given(tmp_path):
    """The provider of each evaluation and its traces come from the rule's lists, not from folder names: the same
    numbers from files moved elsewhere; a list that does not match the files is refused."""
    cfg = config.resolve({"feedback_ablation": {"variants": ["fb_echo"]}})
    evaluated = [
        ("base_fb", "echo", [1, 2, None]),
        ("fb_echo_s0", "echo", [1, 2, 2]),
        ("fb_echo_s0", "fixed", [2, 2, None]),
    ]
    files = [_fake_evaluation(tmp_path / "eval", *e) for e in evaluated]
    providers = [p for _, p, _ in evaluated]
    moved, traces = [], []
    for i, f in enumerate(files):  # a flat folder, no feedback_<provider> in any name
        moved.append(tmp_path / "flat" / f"m{i}.json")
        moved[-1].parent.mkdir(exist_ok=True)
        moved[-1].write_text(f.read_text())
        for k in (1, 2):
            traces.append(tmp_path / "flat" / f"t{i}_{k}.jsonl")
            traces[-1].write_text((f.parent / f"k{k}.jsonl").read_text())
    here = ablation.summarize(cfg, _evaluations(files, providers), n_boot=200)
    assert ablation.summarize(cfg, ablation.Evaluations(moved, providers, traces), n_boot=200) == here
    with pytest.raises(ablation.DataError, match="3 metrics.json, 2 providers"):
        ablation.Evaluations(files, providers[:2])
    with pytest.raises(ablation.DataError, match="3 metrics.json, 5 traces"):
        ablation.summarize(cfg, ablation.Evaluations(files, providers, traces[:5]))
