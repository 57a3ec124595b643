"""pipeline.codehash: which code each verb's hash covers (the rules rerun when it changes; the workflow-level
behaviour is tests/test_workflow.py::test_code_is_an_input)."""

import pytest

from pipeline import codehash


def test_a_verb_covers_the_definitions_it_reaches_and_no_others():
    train, metrics_json = codehash.definitions("train"), codehash.definitions("eval-metrics")
    assert {"pipeline.train:Trainer", "pipeline.ppo:gae", "pipeline.rollout:rollout"} <= set(train)
    assert "pipeline.evaluate:evaluate" in train  # the held-out checks
    assert not any(k.startswith("pipeline.metrics:") for k in train)  # evaluate.py's metrics json is not run
    assert "pipeline.metrics:summarize" in metrics_json and "pipeline.train:Trainer" not in metrics_json
    # the grader (a package): its class, what its modules define, and the worker processes' code, which they
    # run as `from pipeline.grading.pool import _worker_main` given in a string
    assert {
        "pipeline.grading:Grader",
        "pipeline.grading.fast:cheap_verdict",
        "pipeline.grading.extract:BoxWatch",
        "pipeline.grading.math_verify:math_verify_equal",
        "pipeline.grading.pool:_worker_main",
    } <= set(train)
    assert not any(k.startswith("pipeline.config") for k in train)  # configuration reaches rules as values
    # only the verb's function and what it calls, not the other verbs or the command line
    assert {k for k in train if ":cmd_" in k} == {"pipeline.verbs.train:cmd_train"}
    assert not any(k.startswith(("pipeline.__main__", "pipeline.verbs:parser")) for k in train)


def test_registered_figures_and_data_files_count_for_the_verbs_that_import_them():
    """The figure functions reach FIGURES through a decorator (`@figure("name")`), not through a name, and the
    paper's numbers are pipeline/paper_numbers.yaml: editing either reruns the figures and the report, and
    nothing else."""
    figures, report, train = (codehash.definitions(v) for v in ("figures", "report", "train"))
    for reached in (figures, report):
        assert "pipeline.report:_accuracy_vs_k" in reached or any("_accuracy_vs_k" in d for d in reached.values())
        assert reached["data:paper_numbers.yaml"] == (codehash.PACKAGE / "paper_numbers.yaml").read_text()
    assert not any("_accuracy_vs_k" in d for d in train.values()) and "data:paper_numbers.yaml" not in train


def test_hashes_differ_between_verbs_and_stay_put():
    verbs = ("prepare-synthetic", "build-base", "train", "evaluate", "eval-metrics", "aggregate", "figures", "report")
    hashes = {verb: codehash.verb_hash(verb) for verb in verbs}
    assert len(set(hashes.values())) == len(verbs)
    assert hashes == {verb: codehash.verb_hash(verb) for verb in verbs}


def test_unknown_verb():
    with pytest.raises(KeyError, match="no verb 'tran'"):
        codehash.definitions("tran")


SUBPACKAGE = {
    "verbs/steps.py": "from pipeline import sub\nfrom pipeline.sub import Thing\n\n\n"
    "def cmd_go(args):\n    return Thing(), sub.leaf.deep(), sub.again()\n",
    "sub/__init__.py": "from pipeline.sub.leaf import again\n\n\n"
    "class Thing:\n    BOOT = 'from pipeline.sub.worker import main; main()'\n",
    "sub/leaf.py": "def deep():\n    return 1\n\n\ndef again():\n    return 2\n\n\ndef unused():\n    return 3\n",
    "sub/worker.py": "def main():\n    pass\n",
}


def test_names_are_followed_into_a_subpackage(tmp_path, monkeypatch):
    """A name from a package (`from pipeline.sub import Thing`), one its `__init__.py` imports (`sub.again`), an
    attribute path through the package (`sub.leaf.deep`) and an import in a string (worker code) are all followed."""
    for name, text in SUBPACKAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(codehash, "PACKAGE", tmp_path)
    codehash._load.cache_clear()
    try:
        assert set(codehash.definitions("go")) == {
            "pipeline.verbs.steps:cmd_go",
            "pipeline.sub:Thing",
            "pipeline.sub.leaf:deep",
            "pipeline.sub.leaf:again",
            "pipeline.sub.worker:main",
        }
    finally:
        codehash._load.cache_clear()  # the real package's modules again
