"""The workflow's helpers (pipeline/workflow.py, imported by rules/common.smk): pure functions of the configuration.
`pytest tests/test_workflow_helpers.py -q`"""

import json

from pipeline import config
from pipeline.workflow import config_values


def test_config_values_are_the_rule_keys_and_the_scale():
    resolved = config.resolve({"train": {"steps": 7}}).to_dict()
    values = json.loads(config_values(resolved, ["train.steps", "env", "largest_n"], "tiny", {"largest_n": 5}))
    assert values == {"scale": "tiny", "train": {"steps": 7}, "env": resolved["env"], "largest_n": 5}
    # a key inside another one the rule names adds nothing; the text does not depend on the keys' order
    both = config_values(resolved, ["env.prompt_template", "env", "train.steps"], "tiny", {})
    assert both == config_values(resolved, ["train.steps", "env", "env.prompt_template"], "tiny", {})
    assert json.loads(both)["env"] == resolved["env"]
    other = config.resolve({"train": {"steps": 8}}).to_dict()
    assert config_values(other, ["env"], "tiny", {}) == config_values(resolved, ["env"], "tiny", {})
    assert config_values(other, ["train.steps"], "tiny", {}) != config_values(resolved, ["train.steps"], "tiny", {})
