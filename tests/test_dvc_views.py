"""pipeline.dvc_views on a hand-made report: the headline metrics per model and the wide plot tables."""

import json

import pandas as pd
import pytest

from pipeline import config, dvc_views


def entry(acc1, acc2, gain=None):
    e = {"accuracy_at_k": {"1": acc1, "2": acc2, "3": acc2 + 0.01}}
    if gain is not None:
        e["gain_k1_to_k2"] = {"gain": gain, "ci95": [gain - 0.02, gain + 0.02]}
    return e


SUMMARY = {
    "scale": "tiny",
    "benchmarks": ["synthetic"],
    "k": [1, 2, 3],
    "variants": {"multi_attempt": entry(0.785, 0.889, 0.104), "baseline": entry(0.793, 0.837, 0.044)},
    "base": entry(0.6, 0.7, 0.1),
}
CURVES = pd.DataFrame(
    [
        {
            "variant": v,
            "seed": s,
            "step": step,
            "reward": 0.1 * step + s,
            "train_accuracy": 0.5,
            "heldout_accuracy": (0.5 + 0.1 * s if step % 2 == 0 else None),
        }
        for v in ("multi_attempt", "baseline")
        for s in (0, 1)
        for step in (1, 2, 3, 4)
    ]
)
RETRIES = pd.DataFrame(
    [
        {
            "model": f"{v}_s0",
            "variant": v,
            "seed": 0,
            "benchmark": b,
            "k": 3,
            "retry": j,
            "reached": n,
            "wrong_to_right_rate": r,
            "repeat_rate": 0.0,
        }
        for v in ("multi_attempt", "baseline", "base")
        for j in (2, 3)
        for b, n, r in (("a", 10, 0.5), ("b", 30, 0.1))
    ]
)


def test_metrics_are_the_headline_of_each_model():
    m = dvc_views.metrics(SUMMARY)
    assert list(m) == ["multi_attempt", "baseline", "base"]
    assert m["multi_attempt"] == {
        "acc@1": 0.785,
        "acc@2": 0.889,
        "gain": 0.104,
        "gain_lo": pytest.approx(0.084),
        "gain_hi": pytest.approx(0.124),
    }
    no_gain = {**SUMMARY, "variants": {"multi_attempt": {"accuracy_at_k": {"1": 0.5}}}}
    no_gain.pop("base")
    assert dvc_views.metrics(no_gain) == {"multi_attempt": {"acc@1": 0.5}}  # max_k = 1


def test_plot_tables_have_one_column_per_model(tmp_path):
    tables = dvc_views.plot_tables(SUMMARY, CURVES, RETRIES)
    assert set(tables) == set(dvc_views.PLOTS)
    acc = tables["accuracy_vs_k"]
    assert list(acc.columns) == ["k", "multi_attempt", "baseline", "base"] and list(acc["k"]) == [1, 2, 3]
    assert acc.loc[acc["k"] == 2, "baseline"].item() == 0.837
    held = tables["heldout_accuracy"]
    assert list(held.columns) == ["step", "multi_attempt", "baseline"]
    assert list(held["step"]) == [2, 4] and held["multi_attempt"].tolist() == pytest.approx([0.55, 0.55])  # seeds
    assert tables["reward"]["baseline"].tolist() == pytest.approx([0.6, 0.7, 0.8, 0.9])
    fixed = tables["wrong_to_right"]
    assert list(fixed.columns) == ["retry", "multi_attempt", "baseline", "base"]
    assert fixed["base"].tolist() == pytest.approx([(5 + 3) / 40] * 2)  # weighted by the questions reaching it

    without_base = dvc_views.plot_tables(SUMMARY, CURVES, RETRIES[RETRIES["variant"] != "base"])["wrong_to_right"]
    assert list(without_base.columns) == list(fixed.columns) and without_base["base"].isna().all()

    dvc_views.write(SUMMARY, CURVES, RETRIES, tmp_path)
    assert json.loads((tmp_path / "metrics" / "base.json").read_text())["acc@1"] == 0.6
    assert pd.read_csv(tmp_path / "plots" / "accuracy_vs_k.csv").equals(acc)


def test_dvc_yaml_plots_the_columns_of_the_tables():
    import yaml

    from tests.conftest import ROOT

    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    named = {path: columns for plot in plots for spec in plot.values() for path, columns in spec["y"].items()}
    columns = dvc_views.plot_columns(config.resolve().trained_variants)  # the default experiment's
    assert named == {f"reports/plots/{name}.csv": cols for name, cols in columns.items()}
