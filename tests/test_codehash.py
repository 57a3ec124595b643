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
    # the grader's worker processes run `from pipeline.grading import _worker_main` given as a string
    assert "pipeline.grading:_worker_main" in train
    assert not any(k.startswith("pipeline.config") for k in train)  # configuration reaches rules as values
    # from __main__.py only the verb's function and what it calls, not the other verbs or the argument parser
    assert {k for k in train if k.startswith("pipeline.__main__:cmd_")} == {"pipeline.__main__:cmd_train"}
    assert "pipeline.__main__:build_parser" not in train


def test_hashes_differ_between_verbs_and_stay_put():
    verbs = ("prepare-synthetic", "build-base", "train", "evaluate", "eval-metrics", "aggregate", "figures", "report")
    hashes = {verb: codehash.verb_hash(verb) for verb in verbs}
    assert len(set(hashes.values())) == len(verbs)
    assert hashes == {verb: codehash.verb_hash(verb) for verb in verbs}


def test_unknown_verb():
    with pytest.raises(KeyError, match="no verb 'tran'"):
        codehash.definitions("tran")
