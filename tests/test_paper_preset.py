"""The resolved paper preset equals its committed snapshot, tests/data/paper_preset.yaml: every value, each with
where it comes from (a section of ../shared/docs/paper-spec.md, or `ours` and why). An edit to presets/paper.yaml,
or to a schema default the preset inherits, fails here until the snapshot is regenerated and its notes reviewed.

`python tests/test_paper_preset.py` rewrites the snapshot's values from the resolved preset and keeps the notes;
a new key gets an empty note, which the second test refuses until someone writes it.
"""

from pathlib import Path

import yaml

from pipeline import config

SNAPSHOT = Path(__file__).resolve().parent / "data" / "paper_preset.yaml"
HEADER = """\
# The paper preset as config.resolve({"scale": "paper"}) gives it: one dotted key a line, its value and where the
# value comes from (§N = a section of ../shared/docs/paper-spec.md; `ours` = our choice, and why).
# tests/test_paper_preset.py checks the values; `python tests/test_paper_preset.py` rewrites them, keeping the notes.
"""


class _OneLine(yaml.SafeDumper):
    """Strings with line breaks (the ChatML templates) in double quotes, their breaks escaped: one key a line."""


_OneLine.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"' if "\n" in text else None),
)


def resolved() -> dict:
    return config.leaves(config.resolve({"scale": "paper"}).to_dict())


def read() -> dict:
    return yaml.safe_load(SNAPSHOT.read_text(encoding="utf-8"))


def write(values: dict, notes: dict) -> None:
    entry = {"Dumper": _OneLine, "default_flow_style": True, "width": 1e9, "sort_keys": False, "allow_unicode": True}
    lines = [
        f"{key}: " + yaml.dump({"value": value, "from": notes.get(key, "")}, **entry) for key, value in values.items()
    ]
    SNAPSHOT.write_text(HEADER + "".join(lines), encoding="utf-8")


def test_the_resolved_paper_preset_is_the_snapshot():
    snapshot = {key: entry["value"] for key, entry in read().items()}
    now, absent = resolved(), "(absent)"
    differ = [
        f"  {key}: snapshot {snapshot.get(key, absent)!r}, resolved {now.get(key, absent)!r}"
        for key in [*now, *(k for k in snapshot if k not in now)]
        if key not in snapshot or key not in now or repr(snapshot[key]) != repr(now[key])
    ]
    assert not differ, (
        "the resolved paper preset differs from tests/data/paper_preset.yaml; if the change is meant, run "
        "`python tests/test_paper_preset.py` and note where each new value comes from:\n" + "\n".join(differ)
    )


def test_every_value_says_where_it_comes_from():
    unsaid = [key for key, entry in read().items() if not str(entry["from"]).strip()]
    assert not unsaid, f"tests/data/paper_preset.yaml: no note of where these come from: {', '.join(unsaid)}"


if __name__ == "__main__":
    notes = {key: entry["from"] for key, entry in read().items()} if SNAPSHOT.is_file() else {}
    write(resolved(), notes)
    print(f"{SNAPSHOT}: {len(resolved())} values")
