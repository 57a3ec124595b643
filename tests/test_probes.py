"""The controls of pipeline/probes.py: pass@k, majority@k and the flip rate on hand-made cases, and the two verbs
(parallel-eval, flip-probe) run for real on the tiny untrained model."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from math import comb

import pytest

from pipeline import config, evaluate, probes
from pipeline.config import AttemptRange
from pipeline.env import MultiAttemptEnv
from pipeline.grading import Grader
from pipeline.io import DataError, read_json, read_jsonl, write_jsonl
from tests.conftest import ROOT

GRADER = Grader.from_config(config.resolve({}).grading)
SMALL = {"eval": {"max_k": 3, "batch_size": 8, "max_attempt_tokens": 6, "max_total_tokens": 30}}
RECORDS = [{"id": f"q{i}", "question": f"{i:03d}+100=", "answer": f"{i + 100:04d}"} for i in range(7)]


def record(qid: str, answer: str | None, correct: bool, n_tokens: int = 4, sample: int | None = None) -> dict:
    """A one-attempt trace record."""
    r = {
        "id": qid,
        "benchmark": "b",
        "N": 1,
        "attempts": [{"text": f"\\boxed{{{answer}}}", "answer": answer, "correct": correct, "n_tokens": n_tokens}],
        "solved_at": 1 if correct else None,
        "stop_reason": "correct" if correct else "attempts_exhausted",
    }
    return r if sample is None else {**r, "sample": sample}


def samples(records: list[dict]) -> list[probes.Sample]:
    return [probes.sample_of(r, f"record {i}") for i, r in enumerate(records)]


# ----------------------------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize(("k", "expected"), [(1, 2 / 5), (2, 1 - 3 / 10), (3, 1 - 1 / 10), (4, 1.0), (5, 1.0)])
def test_pass_at_k_by_hand_n5_c2(k, expected):
    assert probes.pass_at_k(5, 2, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_none_and_all_right():
    assert [probes.pass_at_k(4, 0, k) for k in range(1, 5)] == [0.0] * 4
    assert [probes.pass_at_k(4, 4, k) for k in range(1, 5)] == [1.0] * 4


def test_pass_at_k_equals_the_binomial_formula_and_stays_finite_for_large_n():
    for n in range(1, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - comb(n - c, k) / comb(n, k)
                assert probes.pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12), (n, c, k)
    assert probes.pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)
    assert probes.pass_at_k(2000, 3, 500) == pytest.approx(1 - comb(1997, 500) / comb(2000, 500))


def test_pass_at_k_refuses_impossible_counts():
    for n, c, k in [(5, 6, 1), (5, 2, 0), (5, 2, 6), (5, -1, 1)]:
        with pytest.raises(ValueError, match="pass_at_k needs"):
            probes.pass_at_k(n, c, k)


# ----------------------------------------------------------------------------------------------- majority@k


def test_majority_vote_by_hand():
    votes = [record("q", "3", False), record("q", "4", True), record("q", " 4", True), record("q", "3 ", False)]
    traces = [s.trace for s in samples(votes)]
    assert probes.majority_vote(traces[:1]) is False  # "3" alone
    assert probes.majority_vote(traces[:2]) is False  # tie 3 vs 4: the first given, "3"
    assert probes.majority_vote(traces[:3]) is True  # "4" twice (" 4" is the same answer)
    assert probes.majority_vote(traces[:4]) is False  # tie again, "3" came first
    silent = [s.trace for s in samples([record("q", None, False), record("q", "", False), record("q", "4", True)])]
    assert probes.majority_vote(silent[:2]) is False  # nobody answered
    assert probes.majority_vote(silent) is True  # no answer never votes: "4" alone wins


# ----------------------------------------------------------------------------------------------- parallel.json


def test_parallel_summary_by_hand():
    par = [  # q0: 1 right of 3 (tokens 2, 4, 6); q1: 3 of 3 (tokens 4 each)
        record("q0", "1", True, 2, sample=0),
        record("q0", "2", False, 4, sample=1),
        record("q0", "2", False, 6, sample=2),
        record("q1", "5", True, 4, sample=0),
        record("q1", "5", True, 4, sample=1),
        record("q1", "5", True, 4, sample=2),
    ]
    seq = {1: samples([record("q0", "2", False, 3), record("q1", "5", True, 5)])}
    out = probes.parallel_summary(samples(par), seq, n_boot=200)
    assert out["n_questions"] == 2 and out["n_samples"] == 3
    assert out["by_k"]["1"]["pass_at_k"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["by_k"]["2"]["pass_at_k"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["by_k"]["3"]["pass_at_k"] == 1.0
    assert [out["by_k"][k]["majority_at_k"] for k in "123"] == [1.0, 1.0, 0.5]  # q0: 1, tie -> 1, then 2 wins
    assert [out["by_k"][k]["mean_tokens"] for k in "123"] == pytest.approx([4.0, 8.0, 12.0])
    assert out["sequential"]["1"]["accuracy"] == 0.5 and out["sequential"]["1"]["mean_tokens"] == 4.0
    lo, hi = out["by_k"]["1"]["pass_at_k_ci95"]
    assert lo <= out["by_k"]["1"]["pass_at_k"] <= hi


def test_parallel_summary_names_bad_input():
    par = samples([record("q0", "1", True, sample=0), record("q0", "1", True, sample=2)])
    with pytest.raises(DataError, match=r"record 0 \(id 'q0'\): question 'q0' has samples \[0, 2\]"):
        probes.parallel_summary(par, {})
    par = samples([record("q0", "1", True, sample=0), record("q1", "1", True, sample=0)])
    with pytest.raises(DataError, match="the k=1 traces do not cover"):
        probes.parallel_summary(par, {1: samples([record("q0", "1", True)])})
    bad = record("q0", "1", True)
    del bad["attempts"][0]["n_tokens"]
    with pytest.raises(DataError, match=r"x.jsonl:3 \(id 'q0'\): every attempt needs n_tokens"):
        probes.sample_of(bad, "x.jsonl:3")


# ----------------------------------------------------------------------------------------------- flip probe


def probe_record(qid: str, first: tuple[str | None, bool], second: tuple[str | None, bool] | None) -> dict:
    attempts = [{"text": "", "answer": a, "correct": c, "n_tokens": 4} for a, c in [first, second] if (a, c)]
    return {"id": qid, "attempts": attempts, "probed": second is not None and first[1], "token_exact": True}


def test_flip_stats_by_hand():
    records = [
        probe_record("a", ("3", True), ("3 ", True)),  # kept, repeated (whitespace ignored)
        probe_record("b", ("3", True), ("4", False)),  # flipped
        probe_record("c", ("3", True), (None, False)),  # flipped (no answer)
        probe_record("d", ("3", True), ("3.0", True)),  # kept, not the same string
        probe_record("e", ("5", False), ("3", True)),  # not probed: first attempt wrong
    ]
    records.append({"id": "f", "attempts": [{"text": "", "answer": "3", "correct": True}], "probed": False})
    out = probes.flip_stats(records, n_boot=200)
    assert (out["n_questions"], out["n_first_correct"], out["n_probed"]) == (6, 5, 4)
    assert (out["n_flipped"], out["flip_rate"]) == (2, 0.5)
    assert (out["n_repeated"], out["repeat_rate"]) == (1, 0.25)
    assert out["flip_rate_ci95"][0] <= 0.5 <= out["flip_rate_ci95"][1]
    nothing = probes.flip_stats([probe_record("e", ("5", False), ("3", True))])
    assert nothing["n_probed"] == 0 and nothing["flip_rate"] is None and nothing["flip_rate_ci95"] is None


def test_a_right_first_answer_gets_the_feedback():
    """SaysWrong keeps the real grader's answer and makes every verdict wrong, so the environment goes on."""
    cfg = config.resolve({})
    env = MultiAttemptEnv(cfg.env, AttemptRange(2, 2), probes.SaysWrong(GRADER))
    d = env.reset("q", "1+2=", "3", 2)
    (feedback,) = env.step([d], ["\\boxed{3}"], [4], [False])
    assert GRADER.is_correct("\\boxed{3}", "3")
    assert feedback is not None and "Incorrect. 1 attempts left." in feedback
    assert d.attempts[0].answer == "3" and not d.done


# ----------------------------------------------------------------------------------------------- real runs


def test_parallel_samples_are_independent_of_batching(tiny_model_dir):
    cfg = config.resolve(SMALL)
    backend, tokenizer = evaluate.open_backend(cfg, tiny_model_dir)
    out = probes.parallel_samples(backend, tokenizer, cfg, RECORDS, "synthetic", GRADER, progress=False)
    assert [(r["id"], r["sample"]) for r in out] == [(q["id"], j) for q in RECORDS for j in range(3)]
    assert all(r["N"] == 1 and r["token_exact"] for r in out)
    assert len({r["attempts"][0]["text"] for r in out}) > 1  # sampled, not greedy
    other = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, batch_size=2))
    assert probes.parallel_samples(backend, tokenizer, other, RECORDS, "synthetic", GRADER, progress=False) == out
    probes.parallel_summary(samples(out), {})  # a valid set of samples


def test_flip_probe_first_attempt_is_the_k2_evaluations(tiny_model_dir):
    cfg = config.resolve(SMALL)
    backend, tokenizer = evaluate.open_backend(cfg, tiny_model_dir)
    out = probes.flip_probe(backend, tokenizer, cfg, RECORDS, "synthetic", GRADER, progress=False)
    k2 = evaluate.evaluate(backend, tokenizer, cfg, RECORDS, "synthetic", 2, GRADER, progress=False)
    assert [r["attempts"][0] for r in out] == [t["attempts"][0] for t in k2]
    assert all(len(r["attempts"]) == 2 and r["token_exact"] for r in out)  # every first attempt told wrong


def run_verb(*args: str) -> None:
    cmd = [sys.executable, "-m", "pipeline", *args, "--config", json.dumps(SMALL)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_verbs_write_what_the_functions_give(tiny_model_dir, tmp_path):
    """Each verb once, in its own process: its traces are those of the same call here (same config, same seed),
    and its json has the documented keys."""
    cfg = config.resolve(SMALL)
    backend, tokenizer = evaluate.open_backend(cfg, tiny_model_dir)
    data = tmp_path / "q.jsonl"
    write_jsonl(data, [{**r, "source": "t", "meta": {}} for r in RECORDS])
    seq = [tmp_path / f"k{k}.jsonl" for k in (1, 2, 3)]
    for k, path in enumerate(seq, start=1):
        write_jsonl(path, evaluate.evaluate(backend, tokenizer, cfg, RECORDS, "synthetic", k, GRADER, progress=False))
    common = ["--model", str(tiny_model_dir), "--data", str(data), "--benchmark", "synthetic", "--name", "base"]
    run_verb("parallel-eval", *common, "--sequential", *map(str, seq), "--out", str(tmp_path / "parallel.jsonl"),
             "--summary", str(tmp_path / "parallel.json"))  # fmt: skip
    run_verb("flip-probe", *common, "--out", str(tmp_path / "flip_probe.jsonl"),
             "--summary", str(tmp_path / "flip_probe.json"))  # fmt: skip
    here = probes.parallel_samples(backend, tokenizer, cfg, RECORDS, "synthetic", GRADER, progress=False)
    assert [r for _, r in read_jsonl(tmp_path / "parallel.jsonl")] == here
    here = probes.flip_probe(backend, tokenizer, cfg, RECORDS, "synthetic", GRADER, progress=False)
    assert [r for _, r in read_jsonl(tmp_path / "flip_probe.jsonl")] == here
    par = read_json(tmp_path / "parallel.json")
    assert (par["model"], par["benchmark"], par["n_questions"], par["n_samples"]) == ("base", "synthetic", 7, 3)
    assert set(par["by_k"]) == {"1", "2", "3"} == set(par["sequential"])
    assert set(par["by_k"]["2"]) == {
        "pass_at_k",
        "pass_at_k_ci95",
        "majority_at_k",
        "majority_at_k_ci95",
        "mean_tokens",
    }
    assert set(par["sequential"]["2"]) == {"accuracy", "accuracy_ci95", "mean_tokens"}
    assert par["temperature"] == cfg.train.temperature and par["token_mismatches"] == 0
    flip = read_json(tmp_path / "flip_probe.json")
    assert (flip["model"], flip["n_questions"], flip["token_mismatches"]) == ("base", 7, 0)
    assert {"flip_rate", "flip_rate_ci95", "repeat_rate", "n_probed", "n_first_correct"} <= set(flip)
