"""The report step on hand-made evaluation runs: summary.json values, tables, figures, report.md, the paper's numbers.

Runs are built so every accuracy is a simple count: question i of a benchmark is solved at attempt 1 when
i < first[model], at attempt 2 when first <= i < first + second, never otherwise.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline import audit, config, layout, metrics, provenance, report
from pipeline.__main__ import main
from pipeline.io import DataError, write_json, write_jsonl
from tests.conftest import ROOT

SIZES = {"alpha": 40, "beta": 20}
FIRST = {"base": 10, "multi_attempt_s0": 16, "multi_attempt_s1": 18, "baseline_s0": 20, "baseline_s1": 22}
SECOND = {"base": 4, "multi_attempt_s0": 12, "multi_attempt_s1": 10, "baseline_s0": 2, "baseline_s1": 4}
MAX_K = 3
NO_PROVENANCE = "baseline_s1"  # a model folder written before models recorded their provenance


def _trace(bench: str, i: int, k: int, solve_at: int | None) -> dict:
    attempts, solved = [], None
    for j in range(1, k + 1):
        right = solve_at == j
        attempts.append({"text": f"\\boxed{{{j}}}", "answer": "42" if right else str(j), "correct": right})
        if right:
            solved = j
            break
    return {
        "id": f"{bench}-{i}",
        "benchmark": bench,
        "N": k,
        "attempts": attempts,
        "solved_at": solved,
        "stop_reason": "correct" if solved else "attempts_exhausted",
    }


def _solve_at(model: str, bench: str, i: int) -> int | None:
    first = FIRST[model] * SIZES[bench] // 40
    second = SECOND[model] * SIZES[bench] // 40
    return 1 if i < first else 2 if i < first + second else None


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """An out_dir with eval/<model>/<benchmark>/{k*.jsonl, metrics.json}, models/<run>/train_log.jsonl and
    models/<model>/provenance.json."""
    root = tmp_path_factory.mktemp("results")
    metrics_files, logs = [], []
    for model in FIRST:
        for bench, n in SIZES.items():
            folder = root / "eval" / model / bench
            runs = {}
            for k in range(1, MAX_K + 1):
                write_jsonl(folder / f"k{k}.jsonl", [_trace(bench, i, k, _solve_at(model, bench, i)) for i in range(n)])
                runs[k] = metrics.read_traces(folder / f"k{k}.jsonl")
            write_json(folder / "metrics.json", metrics.metrics_for(model, runs))
            metrics_files.append(str(folder / "metrics.json"))
            # the grader audit: the gold of question 0 of alpha is 43, which the traces' flags (Math-Verify's
            # stand-in) still call right, so the second grader disagrees on it in every run
            golds = [
                {"id": f"{bench}-{i}", "question": "q", "answer": "43" if (bench, i) == ("alpha", 0) else "42"}
                for i in range(n)
            ]
            audit.write_audit(
                folder / "grader_audit.jsonl",
                folder / "grader_audit.json",
                *audit.audit(model, golds, list(runs.values())),
            )
            # the controls (pipeline.probes' outputs): the dialogue's accuracy, parallel pass@k, a flip rate
            seq = {
                str(k): {"accuracy": _expected_accuracy([model], k), "accuracy_ci95": [0, 1], "mean_tokens": 8.0 * k}
                for k in range(1, MAX_K + 1)
            }
            par = {
                str(k): {
                    "pass_at_k": 0.3 + 0.1 * k,
                    "pass_at_k_ci95": [0, 1],
                    "majority_at_k": 0.3,
                    "majority_at_k_ci95": [0, 1],
                    "mean_tokens": 8.0 * k,
                }
                for k in range(1, MAX_K + 1)
            }
            write_json(folder / "parallel.json", {"model": model, "benchmark": bench, "sequential": seq, "by_k": par})
            flips = 2 if model.startswith("multi") else 6
            write_json(
                folder / "flip_probe.json",
                {
                    "model": model,
                    "benchmark": bench,
                    "n_probed": 10,
                    "n_flipped": flips,
                    "flip_rate": flips / 10,
                    "flip_rate_ci95": [0.0, 0.7],
                    "repeat_rate": 0.5,
                },
            )
        if model != NO_PROVENANCE:
            provenance.write(root / "models" / model, provenance.record(config.resolve({"seeds": [len(model)]})))
        if model != "base":
            log = [
                {"step": s, "train/reward": s / 20 + FIRST[model] / 100, "train/accuracy": 0.5} for s in range(1, 21)
            ]
            log += [{"step": s, "heldout/mean": 0.3 + s / 100} for s in (0, 10, 20)]
            write_jsonl(root / "models" / model / "train_log.jsonl", sorted(log, key=lambda r: r["step"]))
            logs.append(str(root / "models" / model / "train_log.jsonl"))
    return root, metrics_files, logs


def _expected_accuracy(models: list[str], k: int) -> float:
    """Mean over models (seeds) of the mean over benchmarks of solved / n, counted directly."""
    per_model = []
    for m in models:
        per_bench = [
            sum(1 for i in range(n) if (s := _solve_at(m, b, i)) is not None and s <= k) / n for b, n in SIZES.items()
        ]
        per_model.append(sum(per_bench) / len(per_bench))
    return sum(per_model) / len(per_model)


def _given_traces(metrics_files, folder: Path) -> list[str]:
    """Each metrics.json's k=1 and k=2 traces, copied away from it under other names: the report reads the traces
    it is given (--traces, two per metrics.json in their order), never files found beside metrics.json."""
    folder.mkdir(parents=True, exist_ok=True)
    given = []
    for i, m in enumerate(map(Path, metrics_files)):
        for k in (1, 2):
            copy = folder / f"run{i}_first{k}.jsonl"
            shutil.copyfile(m.parent / f"k{k}.jsonl", copy)
            given.append(str(copy))
    return given


def _given_logs(logs, folder: Path) -> list[str]:
    """The training logs copied under names that say nothing of their run: --runs names each run."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, log in enumerate(logs):
        shutil.copyfile(log, folder / f"log{i}.jsonl")
    return [str(folder / f"log{i}.jsonl") for i in range(len(logs))]


def _run_report(results, out, scale="tiny", **config):
    _, metrics_files, logs = results
    cfg = json.dumps({"scale": scale, **config})
    root = Path(logs[0]).parents[2]
    assert (
        main(
            [
                "aggregate",
                "--config",
                cfg,
                "--metrics",
                *metrics_files,
                "--train-logs",
                *_given_logs(logs, out / "given_logs"),
                "--runs",
                *(Path(log).parent.name for log in logs),
                "--models",
                *(str(root / "models" / m) for m in FIRST),
                "--audits",
                *map(str, sorted(root.glob("eval/*/*/grader_audit.json"))),
                "--parallel",
                *map(str, sorted(root.glob("eval/*/*/parallel.json"))),
                "--flip",
                *map(str, sorted(root.glob("eval/*/*/flip_probe.json"))),
                "--traces",
                *_given_traces(metrics_files, out / "given_traces"),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert main(["figures", "--config", cfg, "--tables", str(out), "--out-dir", str(out / "figures")]) == 0
    assert main(["report", "--tables", str(out), "--out", str(out / "report.md")]) == 0
    return json.loads((out / "summary.json").read_text()), (out / "report.md").read_text()


def test_summary_values_and_schema(results, tmp_path):
    summary, _ = _run_report(results, tmp_path)
    assert summary["scale"] == "tiny" and summary["benchmarks"] == ["alpha", "beta"] and summary["k"] == [1, 2, 3]
    assert set(summary["variants"]) == {"multi_attempt", "baseline"} and "paper" not in summary
    for variant in ("multi_attempt", "baseline"):
        v = summary["variants"][variant]
        seeds = [f"{variant}_s0", f"{variant}_s1"]
        for k in (1, 2, 3):
            assert v["accuracy_at_k"][str(k)] == pytest.approx(_expected_accuracy(seeds, k))
            lo, hi = v["accuracy_at_k_range"][str(k)]
            assert lo == pytest.approx(min(_expected_accuracy([s], k) for s in seeds))
            assert hi == pytest.approx(max(_expected_accuracy([s], k) for s in seeds))
        assert set(v["seeds"]) == {"0", "1"}
        for seed in ("0", "1"):
            s = v["seeds"][seed]
            model = f"{variant}_s{seed}"
            assert s["accuracy_at_k"]["2"] == pytest.approx(_expected_accuracy([model], 2))
            assert s["per_benchmark"]["beta"]["1"] == pytest.approx(FIRST[model] / 2 // 1 / 20)
            gain = _expected_accuracy([model], 2) - _expected_accuracy([model], 1)
            assert s["gain_k1_to_k2"]["gain"] == pytest.approx(gain)
            assert s["gain_k1_to_k2"]["ci95"][0] <= gain <= s["gain_k1_to_k2"]["ci95"][1]
            assert s["training"]["steps"] == 20 and s["training"]["heldout_accuracy_end"] == pytest.approx(0.5)
        gain = v["accuracy_at_k"]["2"] - v["accuracy_at_k"]["1"]
        assert v["gain_k1_to_k2"]["gain"] == pytest.approx(gain)
        # every retry in these runs is attempt 2 or 3; a wrong answer never repeats ("1", "2", ...)
        assert v["retry_max_k"]["repeat_rate"] == 0.0 and 0 < v["retry_max_k"]["wrong_to_right_rate"] < 1
    assert summary["base"]["accuracy_at_k"]["1"] == pytest.approx(_expected_accuracy(["base"], 1))
    assert (
        summary["variants"]["multi_attempt"]["gain_k1_to_k2"]["gain"]
        > summary["variants"]["baseline"]["gain_k1_to_k2"]["gain"]
    )
    root = Path(results[2][0]).parents[2]
    assert set(summary["provenance"]) == set(FIRST) and summary["provenance"][NO_PROVENANCE] is None
    for model in set(FIRST) - {NO_PROVENANCE}:
        written = json.loads((root / "models" / model / "provenance.json").read_text())
        assert summary["provenance"][model] == written and written["config"]["seeds"] == [len(model)]


def test_summary_carries_the_headline_difference_departures_audit_and_provenance(results, tmp_path):
    summary, text = _run_report(results, tmp_path)
    d = summary["gain_difference"]
    gains = {
        v: _expected_accuracy([f"{v}_s0", f"{v}_s1"], 2) - _expected_accuracy([f"{v}_s0", f"{v}_s1"], 1)
        for v in ("multi_attempt", "baseline")
    }
    assert d["variants"] == ["multi_attempt", "baseline"]
    assert d["difference"] == pytest.approx(gains["multi_attempt"] - gains["baseline"])
    assert d["ci95"][0] <= d["difference"] <= d["ci95"][1] and d["ci95"][0] > 0  # 20 points apart on 60 questions
    assert d["ratio"] == pytest.approx(gains["multi_attempt"] / gains["baseline"])
    for s in ("0", "1"):
        one = {v: _expected_accuracy([f"{v}_s{s}"], 2) - _expected_accuracy([f"{v}_s{s}"], 1) for v in gains}
        assert d["per_seed"][s] == pytest.approx(one["multi_attempt"] - one["baseline"])
    assert "**Headline:**" in text and f"a difference of {100 * d['difference']:.1f} points" in text
    # departures: generated from the configuration against the paper preset
    assert any(line.startswith("`model`: model.source 'build'") for line in summary["departures"])
    assert any("variant `baseline` trains differently" in line for line in summary["departures"])
    assert "## Departures from the paper" in text and "1. `data`:" in text
    # the grader audit: one disagreement per model and run, on alpha's question 0
    a = summary["grader_audit"]
    assert a["headline_grader"] == "math_verify" and set(a["models"]) == set(FIRST)
    for m in a["models"].values():
        assert (m["n_disagreements"], m["primary_only"], m["second_only"]) == (MAX_K, MAX_K, 0)
        assert m["primary"]["1"] - m["second"]["1"] == pytest.approx(1 / 40 / 2)  # one of 40, half the macro
    assert a["variants"]["multi_attempt"]["primary"]["2"] == pytest.approx(
        _expected_accuracy(["multi_attempt_s0", "multi_attempt_s1"], 2)
    )
    assert "## Grader audit" in text and f"disagree on {len(FIRST) * MAX_K} of" in text
    # sequential vs parallel: the macro over benchmarks, mean over seeds; the flip probe pooled per variant
    c = summary["controls"]["multi_attempt"]
    assert c["pass"]["2"] == {"accuracy": pytest.approx(0.5), "tokens": 16.0}
    assert c["sequential"]["2"]["accuracy"] == pytest.approx(
        _expected_accuracy(["multi_attempt_s0", "multi_attempt_s1"], 2)
    )
    assert summary["flip_probe"]["variants"]["multi_attempt"] == {"n_probed": 40, "flip_rate": pytest.approx(0.2)}
    assert "## Learning from failure, or sampling more?" in text and "### Told a right answer is wrong" in text
    assert (tmp_path / "figures" / "sequential_vs_parallel.png").read_bytes()[:4] == b"\x89PNG"
    # retry intervals per model, and the provenance block
    rows = {(r["model"], r["benchmark"]): r for r in summary["retry_intervals"]}
    r = rows[("multi_attempt_s0", "alpha")]
    assert r["wrong_to_right_rate_ci95"][0] <= r["wrong_to_right_rate"] <= r["wrong_to_right_rate_ci95"][1]
    # the share of retries with a new answer (the grader-judged repeat rate's complement), with its interval
    (line,) = [
        line for line in text.splitlines() if line.startswith(f"| multi_attempt_s0 | alpha | {r['n_retries']} |")
    ]
    assert "| new answer |" in text
    if r.get("repeat_rate_equiv") is None:  # these fixture runs grade no pair of answers
        assert line.endswith("| – | – |"), line
    else:
        lo, hi = r["repeat_rate_equiv_ci95"]
        assert line.endswith(
            f"| {100 * (1 - r['repeat_rate_equiv']):.1f} [{100 * (1 - hi):.1f}, {100 * (1 - lo):.1f}] |"
        )
    run = summary["run"]
    assert len(run["config_hash"]) == 16 and run["versions"]["torch"] and "## Provenance" in text
    assert run["config_hash"] == provenance.config_hash(config.resolve({"scale": "tiny"}).to_dict())


def test_k_attempt_curves_from_the_actors_of_kept_steps(results, tmp_path):
    """eval.curve_steps: each run's kept actor is evaluated like a model (its metrics.json names the step); the
    report draws accuracy@1 and @2 over training, the base at step 0 and the final model at train.steps."""
    root, metrics_files, _ = results
    curve_files = []
    for model in ("multi_attempt_s0", "multi_attempt_s1", "baseline_s0", "baseline_s1"):
        for bench in SIZES:
            runs = {k: metrics.read_traces(root / "eval" / "base" / bench / f"k{k}.jsonl") for k in range(1, MAX_K + 1)}
            path = tmp_path / "eval" / f"{model}_step10" / bench / "metrics.json"
            write_json(path, metrics.metrics_for(f"{model}_step10", runs))  # the base's answers, kept at step 10
            curve_files.append(str(path))
    assert json.loads(Path(curve_files[0]).read_text())["step"] == 10
    acc = report.accuracy_table(metrics_files)
    curves = report.k_attempt_curves(curve_files, acc, final_step=20)
    summary = report.curves_summary(curves)
    base = {k: _expected_accuracy(["base"], k) for k in (1, 2)}
    for v in ("multi_attempt", "baseline"):
        assert sorted(summary[v], key=int) == ["0", "10", "20"]
        assert summary[v]["0"]["1"] == pytest.approx(base[1]) and summary[v]["10"]["2"] == pytest.approx(base[2])
        assert summary[v]["20"]["2"] == pytest.approx(_expected_accuracy([f"{v}_s0", f"{v}_s1"], 2))
    assert report.k_attempt_curves([], acc, 20).empty


@pytest.mark.parametrize("rule", ["last", "all"])
def test_report_states_the_multi_box_rule(results, tmp_path, rule):
    summary, text = _run_report(results, tmp_path, grading={"multi_box": rule})
    assert summary["grading"] == {"multi_box": rule}
    assert f"Grading: `grading.multi_box: {rule}`" in text


def test_tables_figures_and_markdown(results, tmp_path):
    summary, text = _run_report(results, tmp_path)
    acc = report.read_csv(tmp_path / "accuracy.csv")
    assert len(acc) == len(FIRST) * len(SIZES) * MAX_K
    curves = report.read_csv(tmp_path / "learning_curves.csv")
    assert len(curves) == 4 * 21 and curves["heldout_accuracy"].notna().sum() == 4 * 3
    retries = report.read_csv(tmp_path / "retries.csv")
    assert set(retries["retry"]) == {2, 3}
    for name in report.FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    m = summary["variants"]["multi_attempt"]
    row = re.search(r"^\| multi-attempt RL \| (.*) \|$", text, re.M).group(1).split(" | ")
    assert row[0].startswith(f"{100 * m['accuracy_at_k']['1']:.1f} (")
    assert f"gains {100 * m['gain_k1_to_k2']['gain']:.1f} points" in text and "gains more" in text
    assert "| multi_attempt_s1 | beta |" in text and "![Accuracy vs attempts](figures/accuracy_vs_k.png)" in text
    assert "paper:" not in text


def test_paper_scale_draws_and_lists_the_papers_numbers(results, tmp_path):
    summary, text = _run_report(results, tmp_path, scale="paper")
    assert summary["paper"]["accuracy_at_k"]["multi_attempt"]["2"] == pytest.approx(0.525)
    assert "| paper: multi-attempt RL | 45.6 | 52.5 | 51.7 |" in text  # 51.75 as a binary fraction: 51.7499...
    assert "| paper: single-attempt RL (baseline) | 42.4 | 43.2 | 44.2 |" in text


def test_the_gain_needs_the_traces_it_is_given(results, tmp_path, capsys):
    """Without the k=1 and k=2 traces of each metrics.json (rules/report.smk lists them), no gain is guessed from
    files beside metrics.json: the step stops and says what it needs."""
    _, metrics_files, logs = results
    given = _given_traces(metrics_files, tmp_path / "given")
    for traces in ([], given[:-1]):
        code = main(
            ["aggregate", "--config", "{}", "--metrics", *metrics_files, "--train-logs", *logs, "--runs"]
            + [Path(log).parent.name for log in logs]
            + ["--traces", *traces, "--out-dir", str(tmp_path / "r")]
        )
        assert code == 2
        assert f"{len(metrics_files)} metrics.json, {len(traces)} traces" in capsys.readouterr().err
    assert not (tmp_path / "r" / "summary.json").exists()
    # the runs' names come from the rule, one per training log
    runs = ["--train-logs", *logs, "--runs", "x_s0", "--out-dir", str(tmp_path / "r")]
    code = main(["aggregate", "--config", "{}", "--metrics", *metrics_files, *runs])
    assert code == 2 and f"--runs names 1 models for {len(logs)} --train-logs files" in capsys.readouterr().err


def test_bad_inputs_are_named(results, tmp_path):
    _, metrics_files, _ = results
    with pytest.raises(DataError, match="model name 'qwen_final'"):
        layout.parse_model("qwen_final")
    with pytest.raises(DataError, match="missing.json: file not found"):
        report.accuracy_table([str(tmp_path / "eval" / "base" / "x" / "missing.json")])
    bad = tmp_path / "eval" / "base" / "x" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="metrics.json: malformed JSON"):
        report.accuracy_table([str(bad)])
    assert main(["aggregate", "--config", "{}", "--metrics", str(bad), "--out-dir", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r" / "summary.json").exists()


def _spec_rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1].split("\n###", 1)[0]
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_paper_numbers_match_the_spec():
    spec = ROOT.parent / "shared" / "docs" / "paper-spec.md"
    if not spec.is_file():
        pytest.skip(f"{spec} is absent (it exists only beside the development checkout)")
    text = spec.read_text()
    header, multi, base = _spec_rows(text, "### 8.2")
    assert [float(x.strip("*")) for x in multi[1:]] == report.PAPER_AVERAGE["multi_attempt"]
    assert [float(x.strip("*")) for x in base[1:]] == report.PAPER_AVERAGE["baseline"]
    header, *rows = _spec_rows(text, "### 8.3")
    names = {
        "AIME24": "aime24",
        "MATH500": "math500",
        "AMC23": "amc23",
        "Minerva": "minerva_math",
        "OlympiadBench": "olympiadbench",
    }
    for col, title in enumerate(header[1:], start=1):
        bench = report.PAPER_PER_BENCHMARK[names[title]]
        assert [float(r[col].split("/")[0]) for r in rows] == bench["multi_attempt"], title
        assert [float(r[col].split("/")[1]) for r in rows] == bench["baseline"], title
