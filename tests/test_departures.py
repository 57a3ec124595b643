"""pipeline/departures.yaml is the one list of departures from the released code: every other place that names
them cites its ids, and agrees with it. `pytest tests/test_departures.py -q`"""

import re
from pathlib import Path

import pytest
import yaml

import pipeline.train
from pipeline import config, departures
from pipeline.report.departures import released_code_departures

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"departure `([a-z0-9-]+)`")  # how the docs cite one: departure `stop-at-box`


def _config_keys() -> set[str]:
    leaves = config.leaves(config.resolve({"scale": "paper"}).to_dict())
    return {".".join(key.split(".")[:i]) for key in leaves for i in range(1, key.count(".") + 2)}


def test_the_file_loads_with_every_field():
    entries = departures.load()
    assert len({d.id for d in entries}) == len(entries) >= 10
    keys = _config_keys()
    for d in entries:
        assert re.fullmatch(r"[a-z0-9-]+", d.id), d.id
        assert all(str(getattr(d, f)).strip() for f in ("title", "released", "ours", "why")), d.id
        assert d.scope == "always" or d.scope in keys, (d.id, d.scope)
        for where in d.where:  # a file or folder of the repository, or a config key
            assert (ROOT / where).exists() if "/" in where else where in keys, (d.id, where)


def test_the_loader_refuses_a_duplicate_id_or_an_unknown_field(tmp_path):
    entry = {"id": "x", "title": "t", "released": "r", "ours": "o", "why": "w", "where": [], "scope": "always"}
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump([entry, entry]))
    with pytest.raises(ValueError, match="duplicate id 'x'"):
        departures.load(path)
    path.write_text(yaml.safe_dump([{**entry, "wher": []}]))
    with pytest.raises(ValueError, match="unknown fields \\['wher'\\]"):
        departures.load(path)


def test_the_trainer_docstring_numbers_every_departure_by_id_and_title():
    listed = re.findall(r"^(\d+)\. `([a-z0-9-]+)`: (.+)\.$", pipeline.train.__doc__, flags=re.M)
    entries = departures.load()
    assert [(int(n), i, t) for n, i, t in listed] == [
        (n, d.id, d.title[0].lower() + d.title[1:] + (f" (`{d.scope}`)" if d.scope != "always" else ""))
        for n, d in enumerate(entries, start=1)
    ]


def test_the_report_prints_the_report_lines_of_the_file():
    """Each `report` line ends in its id; a scoped entry has one per value of its key, and the report prints the
    one the configuration chose, before the lines of every run, in the file's order."""
    entries = departures.load()
    by_id = {d.id: d for d in entries}
    lines = [d.report for d in entries if isinstance(d.report, str)]
    lines += [line for d in entries if isinstance(d.report, dict) for line in d.report.values()]
    for line in lines:
        cited = re.fullmatch(r".+ \[([a-z0-9-]+)\]", line)
        assert cited and cited[1] in by_id, line
    assert by_id["model-checkpoint"].scope == "eval.checkpoint"
    assert set(by_id["model-checkpoint"].report) == {"final", "best_heldout"}
    always = [d.report for d in entries if d.scope == "always" and d.report]
    for checkpoint in ("final", "best_heldout"):
        cfg = config.resolve({"eval": {"checkpoint": checkpoint}})
        assert released_code_departures(cfg) == [by_id["model-checkpoint"].report[checkpoint], *always]


def test_the_docs_list_every_departure_and_cite_only_real_ones():
    ids = [d.id for d in departures.load()]
    design = (ROOT / "docs" / "design.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", design, flags=re.M)
    assert [(i, t.strip()) for i, t in rows] == [(d.id, d.title) for d in departures.load()]
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for cited in CITED.findall(page.read_text()):
            assert cited in ids, f"{page.name} cites departure `{cited}`, which pipeline/departures.yaml lacks"
