"""The feedback ablation (issue 17): its config, its DAG beside the default one, evaluation under another provider,
and its report. `pytest tests/test_ablation.py -q`"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from pipeline import ablation, config, evaluate, metrics
from pipeline.dialogue import Role
from pipeline.env import MultiAttemptEnv
from pipeline.feedback import with_provider
from pipeline.grading import Grader
from pipeline.rollout import Question, rollout
from tests.conftest import ROOT
from tests.test_workflow import snakemake

GRADER = Grader.from_config(config.resolve({}).grading)


# ----------------------------------------------------------------------------------------------- config


def test_derived_variants_are_multi_attempt_with_each_provider():
    cfg = config.resolve({})
    assert cfg.feedback_ablation.providers == ["fixed", "echo", "direction"]
    ablation_cfg = cfg.for_feedback_ablation()
    assert list(ablation_cfg.variants) == ["fb_fixed", "fb_echo", "fb_direction"]
    for p in cfg.feedback_ablation.providers:
        name = f"fb_{p}"
        assert ablation_cfg.attempt_range(name) == cfg.attempt_range("multi_attempt")
        assert ablation_cfg.variant_env(name).feedback.provider == p
        assert ablation_cfg.variant_env(name).prompt_template == cfg.variant_env("multi_attempt").prompt_template
    # the ablation base's SFT meets every compared provider; the default run's base is untouched
    assert ablation_cfg.model.sft.feedback_providers == ["fixed", "echo", "direction"]
    assert ablation_cfg.model.sft.max_steps == cfg.model.sft.max_steps
    assert cfg.model.sft.feedback_providers == [] and list(cfg.variants) == ["multi_attempt", "baseline"]


def test_sft_settings_of_the_ablation_base():
    cfg = config.resolve(
        {"feedback_ablation": {"providers": ["echo"], "sft_providers": ["fixed", "echo"], "sft_max_steps": 5000}}
    )
    sft = cfg.for_feedback_ablation().model.sft
    assert (sft.feedback_providers, sft.max_steps) == (["fixed", "echo"], 5000)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"feedback_ablation": {"variant": "nope"}}, "feedback_ablation.variant: 'nope' is not a declared variant"),
        ({"feedback_ablation": {"providers": ["loud"]}}, "feedback_ablation.providers.0"),
        ({"feedback_ablation": {"providers": ["echo", "echo"]}}, "feedback_ablation.providers"),
        ({"feedback_ablation": {"providers": []}}, "feedback_ablation.providers"),
        (
            {"feedback_ablation": {"providers": ["custom"]}},
            "env.feedback.custom_function: provider custom needs 'module:function', got '' (custom is listed in "
            "feedback_ablation.providers)",
        ),
        (
            {"variants": {"fb_echo": {"min_attempts": 1, "max_attempts": 2}}},
            "feedback_ablation.providers: 'echo' makes variant 'fb_echo', which variants already declares",
        ),
        ({"eval": {"models": {"base_fb": "/tmp"}}}, "eval.models.base_fb: the name of a model the workflow makes"),
        ({"eval": {"models": {"fb_echo_s3": "/tmp"}}}, "eval.models.fb_echo_s3: the name of a model the workflow"),
        ({"feedback_ablation": {"sft_max_steps": -1}}, "feedback_ablation.sft_max_steps"),
    ],
)
def test_bad_ablation_config_names_the_key(override, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.resolve(override).for_feedback_ablation()


def test_a_run_without_the_ablation_is_not_stopped_by_it():
    """The ablation's templates are checked when it runs: another end_of_turn need not rewrite echo's templates."""
    cfg = config.resolve({"env": {"end_of_turn": "<eot>", "feedback_template": "<eot>Wrong, {n} left."}})
    with pytest.raises(config.ConfigError, match=re.escape("env.feedback.echo_template: must start with env.end_of")):
        cfg.for_feedback_ablation()


# ----------------------------------------------------------------------------------------------- workflow


def _job_counts(out: str) -> dict[str, int]:
    """The dry run's job table: rule -> count."""
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_dry_run_trains_one_job_per_provider_and_seed(tmp_path):
    out = snakemake(tmp_path, "-n", "-p", "feedback_ablation").stdout
    counts = _job_counts(out)
    cfg = config.resolve({})
    providers, seeds, max_k = cfg.feedback_ablation.providers, cfg.seeds, cfg.eval.max_k
    assert counts["train_ablation"] == len(providers) * len(seeds) == 6
    assert counts["build_ablation_base"] == 1
    trained = {m[1] for m in re.finditer(r"--variant (fb_\w+) --seed (\d+)", out)}
    assert trained == {f"fb_{p}" for p in providers}
    assert (
        len(
            re.findall(
                r"train --feedback-ablation .*--variant fb_\w+ --seed \d+ --base results/tiny/models/base_fb", out
            )
        )
        == 6
    )
    # evaluation: base_fb with each provider; each run with its own provider and with fixed (fb_fixed: once)
    evaluations = len(providers) + sum(len(seeds) * (1 if p == "fixed" else 2) for p in providers)
    assert counts["evaluate_feedback"] == evaluations * max_k
    assert counts["eval_metrics_feedback"] == evaluations
    for p in providers:
        assert f"results/tiny/eval/base_fb/synthetic/feedback_{p}/k{max_k}.jsonl" in out
        assert f"results/tiny/eval/fb_{p}_s1/synthetic/feedback_fixed/k1.jsonl" in out
        assert f"results/tiny/eval/fb_{p}_s0/synthetic/feedback_{p}/k1.jsonl" in out
    assert re.search(
        r"evaluate .*--k 2 --feedback echo --out results/tiny/eval/fb_echo_s0/synthetic/feedback_echo/k2", out
    )
    # the default run's rules do not run here: the ablation has its own base
    assert not {"train", "build_base", "evaluate", "eval_metrics"} & counts.keys()
    assert "reports/feedback_ablation.md" in out and "reports/figures/feedback_ablation.png" in out


def test_default_run_has_no_ablation_jobs(tmp_path):
    out = snakemake(tmp_path, "-n", "-p").stdout
    assert not re.search(r"fb_|base_fb|feedback_ablation|--feedback", out)
    counts = _job_counts(out)
    assert counts["train"] == 4 and counts["build_base"] == 1


def test_bad_ablation_config_stops_its_target_only(tmp_path):
    bad = "feedback_ablation={variant: nope}"
    proc = snakemake(tmp_path, "-n", "feedback_ablation", "--config", bad, check=False)
    assert proc.returncode != 0
    assert "feedback_ablation.variant: 'nope' is not a declared variant" in proc.stdout + proc.stderr
    assert "fb_" not in snakemake(tmp_path, "-n", "--config", bad).stdout


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


def test_report_rows_per_model_and_provider(tmp_path):
    cfg = config.resolve({"feedback_ablation": {"providers": ["fixed", "echo"]}})
    files = [
        _fake_evaluation(tmp_path, "base_fb", "fixed", [1, None, None, None]),
        _fake_evaluation(tmp_path, "base_fb", "echo", [1, 2, None, None]),
        _fake_evaluation(tmp_path, "fb_echo_s0", "echo", [1, 2, 2, None]),
        _fake_evaluation(tmp_path, "fb_echo_s1", "echo", [1, 1, 2, None]),
        _fake_evaluation(tmp_path, "fb_echo_s0", "fixed", [1, None, None, None]),
        _fake_evaluation(tmp_path, "fb_echo_s1", "fixed", [1, 1, None, None]),
        _fake_evaluation(tmp_path, "fb_fixed_s0", "fixed", [1, 2, None, None]),
        _fake_evaluation(tmp_path, "fb_fixed_s1", "fixed", [1, 2, None, None]),
    ]
    summary = ablation.summarize(cfg, files, n_boot=200)
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


def test_report_refuses_a_file_outside_a_provider_folder(tmp_path):
    path = _fake_evaluation(tmp_path, "fb_echo_s0", "echo", [1, None])
    moved = tmp_path / "metrics.json"
    moved.write_text(path.read_text())
    with pytest.raises(ablation.DataError, match="not in a feedback_<provider> folder"):
        ablation.summarize(config.resolve({}), [moved])
