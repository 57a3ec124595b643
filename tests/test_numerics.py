"""Same numbers on every machine (pipeline.numerics): a committed fingerprint of a short SFT and two PPO steps,
checked as this machine runs it, as an AVX2-only CPU would run it, and with 1 or 2 threads; and the pins themselves.

The fingerprint (tests/data/numerics_fingerprint.json) names the CPU it was made on. If it fails on another CPU
while the code, the pinned packages and the configuration are unchanged, the two CPUs compute differently: a
defect of the pins to find, not a number to update. A change meant to alter the numbers (training code, a package
version) rewrites it with `python tests/test_numerics.py` and says so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import numerics, sft
from pipeline.report.departures import models_numerics
from pipeline.report.markdown import _numerics_lines

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "numerics_fingerprint.json"
# A short SFT (one greedy check at its end) and two PPO steps (actor, critic, GAE, sampled rollouts) from it.
CONFIG = {
    "scale": "tiny",
    "seeds": [0],
    "data": {"synthetic": {"n_train": 2000, "n_heldout": 40}},
    "model": {
        "sft": {
            "max_steps": 60,
            "batch_size": 32,
            "warmup_steps": 5,
            "eval_every": 60,
            "eval_questions": 10,
            "target_accuracy": 0.0,
            "retry_accuracy_target": 0.0,
        }
    },
    "train": {
        "algorithm": "ppo",
        "steps": 2,
        "rollout_batch": 8,
        "samples_per_prompt": 2,
        "train_batch": 16,
        "micro_batch": 8,
        "eval_every": 2,
        "save_every": 100,
        "eval_questions": 10,
    },
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# name: (environment, --threads): as this machine runs it; as a CPU with AVX2 and no AVX-512 would (ATen's and
# MKL's own switches); with one thread instead of two.
RUNS = {
    "as_is": ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, 2),
    "avx2_only": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, 2),
    "one_thread": ({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, 1),
}


def _env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the pins and thread counts (a fresh shell's), plus `extra`."""
    drop = {*numerics.PINS, *THREAD_VARIABLES}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _pipeline(env: dict[str, str], *argv: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(folder: Path, extra_env: dict[str, str], threads: int) -> dict:
    """The data, a short SFT and two PPO steps through the CLI, as the rules run them: the weights' and
    tokenizer's sha256, the SFT's loss and check, and the PPO steps' logged figures (timings aside)."""
    env = _env(extra_env)
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    train, heldout = folder / "train.jsonl", folder / "heldout.jsonl"
    _pipeline(env, "prepare-synthetic", "--config", str(cfg), "--train", str(train), "--heldout", str(heldout))
    base, trained = folder / "base", folder / "trained"
    common = ["--config", str(cfg), "--threads", str(threads)]
    _pipeline(env, "build-base", *common, "--train", str(train), "--heldout", str(heldout), "--out", str(base))
    _pipeline(
        env,
        "train",
        *common,
        *("--variant", "multi_attempt", "--seed", "0", "--base", str(base), "--train-data", str(train)),
        *("--heldout", str(heldout), "--run-dir", str(folder / "run"), "--out", str(trained)),
    )
    sft = json.loads((base / "sft_summary.json").read_text())["history"]
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    return {
        "base": {
            "model.safetensors": _sha256(base / "model.safetensors"),
            "tokenizer.json": _sha256(base / "tokenizer.json"),
            "sft": sft,
        },
        "trained": {
            "model.safetensors": _sha256(trained / "model.safetensors"),
            "train_log": [{k: v for k, v in step.items() if not k.startswith("perf/")} for step in log],
        },
        "numerics": json.loads((trained / "provenance.json").read_text())["numerics"],
    }


def _versions() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("torch", "transformers", "tokenizers")}


def _first_difference(got: dict, want: dict) -> str:
    """Where two fingerprints part: the SFT (weights, tokenizer, loss) or PPO, and the first differing step."""
    for part in ("base", "trained"):
        for key, value in want[part].items():
            if got[part][key] != value:
                if key == "train_log":
                    step = next(i for i, (a, b) in enumerate(zip(got[part][key], value)) if a != b)
                    return f"trained: train_log step {step}: {got[part][key][step]} != {value[step]}"
                return f"{part}: {key}: {got[part][key]} != {value}"
    return "none"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("run", list(RUNS))
def test_a_short_sft_and_two_ppo_steps_give_the_committed_fingerprint(run, golden, tmp_path):
    """Bit for bit the numbers of the CPU that made the fingerprint — on this CPU as it is, as an AVX2-only CPU
    would run them, and with one thread or two."""
    if not numerics.is_x86_64() or not numerics.cpu()["avx2"]:
        pytest.skip(f"the pins cover x86-64 CPUs with AVX2; this is {numerics.cpu_line()}")
    assert golden["versions"] == _versions(), (
        "the pinned packages changed since the fingerprint was made: if on purpose, rewrite it with "
        "`python tests/test_numerics.py`"
    )
    env, threads = RUNS[run]
    got = fingerprint(tmp_path, env, threads)
    assert got["numerics"]["portable"], got["numerics"]
    assert got["numerics"]["torch_threads"] == 1 and got["numerics"]["aten_capability"] == "AVX2"
    want = {k: golden[k] for k in ("base", "trained")}
    assert {k: got[k] for k in ("base", "trained")} == want, (
        f"{run}: this machine ({numerics.cpu_line()}) computes other numbers than the one that made the "
        f"fingerprint ({golden['made_on']}); first difference: {_first_difference(got, golden)}. Unless this "
        "commit changed the numbers on purpose (then `python tests/test_numerics.py`), that is a defect of "
        "pipeline.numerics: find what picks different code here."
    )


def test_mkl_runs_its_compatible_branch_on_fixed_threads_and_onednn_never_runs(tmp_path):
    """What the pins rest on, measured on every machine that runs the tests: each MKL call of SFT steps and a
    greedy check is on the COMPATIBLE branch with SFT's fixed thread count whatever the job asked for, and no
    oneDNN primitive runs (oneDNN is not pinned)."""
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    cfg = json.dumps({"data": {"synthetic": {"n_train": 200, "n_heldout": 4}}})
    env = _env({"MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"})
    _pipeline(env, "prepare-synthetic", "--config", cfg, "--train", str(train), "--heldout", str(heldout))
    short = {"max_steps": 2, "batch_size": 8, "warmup_steps": 1, "eval_every": 2, "eval_questions": 4}
    cfg = json.dumps({"model": {"sft": {**short, "target_accuracy": 0.0, "retry_accuracy_target": 0.0}}})
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "build-base", "--config", cfg, "--threads", "1"]
        + ["--train", str(train), "--heldout", str(heldout), "--out", str(tmp_path / "base")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    calls = [line for line in out.splitlines() if line.startswith("MKL_VERBOSE ") and "CNR:" in line]
    assert len(calls) > 100, out[-2000:]  # every matrix product of the forward, backward and greedy decoding
    threads = f"NThr:{sft.CPU_THREADS}"
    assert all("CNR:COMPATIBLE " in c and threads in c for c in calls), next(
        c for c in calls if "CNR:COMPATIBLE " not in c or threads not in c
    )
    assert not [line for line in out.splitlines() if line.startswith("onednn_verbose") and ",exec," in line]


def _state_in_a_fresh_process(code: str, env: dict[str, str]) -> tuple[dict, str]:
    script = f"{code}\nimport json\nfrom pipeline import numerics\nprint(json.dumps(numerics.state()))"
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env(env), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


@pytest.mark.skipif(not numerics.is_x86_64(), reason="the pins apply to x86-64 CPUs")
def test_importing_pipeline_pins_the_kernels_and_set_threads_pins_one_thread():
    state, _ = _state_in_a_fresh_process("import pipeline\npipeline.numerics.set_threads(4)", {})
    assert state["variables"] == numerics.PINS and state["torch_threads"] == 1 and state["device"] == "cpu"
    assert state["aten_capability"] == ("AVX2" if numerics.cpu()["avx2"] else state["aten_capability"])
    assert state["portable"] == bool(numerics.cpu()["avx2"]), state


@pytest.mark.skipif(not numerics.is_x86_64(), reason="the pins apply to x86-64 CPUs")
def test_a_users_own_setting_is_kept_with_a_warning_and_recorded():
    state, err = _state_in_a_fresh_process(
        "import pipeline\npipeline.numerics.set_threads(1)", {"ATEN_CPU_CAPABILITY": "default"}
    )
    assert state["variables"]["ATEN_CPU_CAPABILITY"] == "default" and state["aten_capability"] == "DEFAULT"
    assert not state["portable"]
    assert "ATEN_CPU_CAPABILITY=default set by the user (pinned: avx2)" in state["not_portable_because"]
    assert "ATEN_CPU_CAPABILITY=default is set: the CPU numbers of this run are not portable" in err


@pytest.mark.skipif(
    not (numerics.is_x86_64() and numerics.cpu()["avx512"]), reason="needs a CPU whose ATen default is not AVX2"
)
def test_torch_imported_before_pipeline_is_recorded_as_not_portable():
    state, _ = _state_in_a_fresh_process(
        "import torch\ntorch.ones(3).sum()\nimport pipeline\npipeline.numerics.set_threads(1)", {}
    )
    assert not state["portable"] and state["aten_capability"] != "AVX2"
    assert any("torch had chosen them before pipeline was imported" in r for r in state["not_portable_because"])


def test_more_threads_are_not_portable_and_the_report_says_which_models():
    portable = {"portable": True, "cpu": {"model": "CPU A"}, "not_portable_because": []}
    threads = {"portable": False, "cpu": {"model": "CPU B"}, "not_portable_because": ["2 torch threads"]}
    summary = models_numerics({"base": {"numerics": portable}, "m_s0": {"numerics": threads}, "old": None})
    assert summary == {
        "portable": None,
        "cpus": ["CPU A", "CPU B"],
        "not_portable": {"m_s0": ["2 torch threads"]},
        "unrecorded": ["old"],
    }
    assert models_numerics({"base": {"numerics": portable}})["portable"] is True
    assert (
        "the same numbers on any x86-64 CPU with AVX2"
        in _numerics_lines(models_numerics({"base": {"numerics": portable}}))[0]
    )
    assert "m_s0: 2 torch threads" in _numerics_lines(summary)[0]


def test_the_cpu_is_named_with_the_instruction_sets_that_pick_kernels():
    c = numerics.cpu()
    assert c["model"] and set(c) == {"model", "vendor", "avx2", "avx512", "amx"}
    line = numerics.cpu_line()
    assert line.startswith(c["model"]) and ("AVX2" in line) == bool(c["avx2"])


def main() -> None:
    """Rewrite the fingerprint on this machine (a change meant to alter the numbers)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        got = fingerprint(Path(tmp), *RUNS["as_is"])
    assert got["numerics"]["portable"], got["numerics"]
    out = {"made_on": numerics.cpu_line(), "versions": _versions(), "base": got["base"], "trained": got["trained"]}
    GOLDEN.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{GOLDEN} written on {numerics.cpu_line()}")


if __name__ == "__main__":
    main()
