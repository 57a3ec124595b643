"""Datasets: record schema, synthetic task, benchmark and MATH loaders, record files. `pytest tests/test_data.py -q`

The shared benchmark copies (../shared/data/benchmarks, via the `benchmarks_dir` fixture) are the reference for the
meval column names. The Hugging Face hub branch cannot reach the network here: it is exercised only through a
stand-in `datasets` module (the call it makes, config parsing, row ids), so the real hub datasets' column names
are untested offline.
"""

import json
import os
import sys
import types

import pytest

from pipeline import data
from pipeline.io import DataError
from tests.conftest import ROOT

SIZES = {"math500": 500, "aime24": 30, "amc23": 40, "minerva_math": 272, "olympiadbench": 675, "gsm8k": 1319}


def good_record(**changes):
    record = {"id": "q1", "question": "1+1=", "answer": "2", "source": "test", "meta": {}}
    record.update(changes)
    return record


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ schema


def test_valid_record_passes():
    assert data.validate_record(good_record(), "x") == good_record()


@pytest.mark.parametrize(
    "record, field",
    [
        ({k: v for k, v in good_record().items() if k != "answer"}, "answer"),
        (good_record(id=3), "id"),
        (good_record(question="  "), "question"),
        (good_record(meta=[]), "meta"),
        (good_record(extra=1), "extra"),
    ],
)
def test_invalid_record_names_place_and_field(record, field):
    with pytest.raises(DataError, match=rf"file\.jsonl:12: .*'{field}'"):
        data.validate_record(record, "file.jsonl:12")


def test_non_dict_record_is_rejected():
    with pytest.raises(DataError, match="where: expected a record"):
        data.validate_record(["not", "a", "dict"], "where")


# ------------------------------------------------------------------------------------------ synthetic task


def test_synthetic_is_deterministic_per_seed():
    assert data.synthetic_splits(7, 50, 20, 3) == data.synthetic_splits(7, 50, 20, 3)
    assert data.synthetic_splits(7, 50, 20, 3) != data.synthetic_splits(8, 50, 20, 3)


def test_synthetic_does_not_use_global_random_state():
    import random

    random.seed(1)
    first = data.synthetic_splits(3, 10, 5, 3)
    random.seed(2)
    assert data.synthetic_splits(3, 10, 5, 3) == first


def test_synthetic_splits_are_disjoint_and_correct():
    train, heldout = data.synthetic_splits(0, 3000, 500, digits=2)
    assert (len(train), len(heldout)) == (3000, 500)
    pairs = lambda rs: {(r["meta"]["a"], r["meta"]["b"]) for r in rs}  # noqa: E731
    assert len(pairs(train)) == 3000 and len(pairs(heldout)) == 500
    assert not pairs(train) & pairs(heldout)
    for r in train + heldout:
        data.validate_record(r, "synthetic")
        a, b = r["meta"]["a"], r["meta"]["b"]
        assert int(r["answer"]) == a + b and r["source"] == "synthetic"
    assert len({r["id"] for r in train + heldout}) == 3500


@pytest.mark.parametrize("digits", [1, 3, 5])
def test_synthetic_widths_are_fixed(digits):
    train, heldout = data.synthetic_splits(1, 60, 40, digits=digits)
    assert {len(r["question"]) for r in train + heldout} == {2 * digits + 2}
    assert {len(r["answer"]) for r in train + heldout} == {digits + 1}
    assert all(set(r["question"] + r["answer"]) <= set("0123456789+=") for r in train + heldout)


def test_synthetic_format_example():
    assert data.synthetic_qa(123, 456, 3) == ("123+456=", "0579")
    assert data.synthetic_qa(5, 7, 3) == ("005+007=", "0012")
    assert data.synthetic_qa(999, 999, 3) == ("999+999=", "1998")


def test_synthetic_can_use_every_pair_but_no_more():
    train, heldout = data.synthetic_splits(0, 90, 10, digits=1)
    assert len({r["question"] for r in train + heldout}) == 100
    with pytest.raises(ValueError, match="exceeds the 100 distinct pairs"):
        data.synthetic_splits(0, 91, 10, digits=1)


# -------------------------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("name", sorted(SIZES))
def test_shared_benchmarks_load(benchmarks_dir, name):
    records = data.load_benchmark(name, benchmarks_dir / name / "test.jsonl", "test")
    assert len(records) == SIZES[name]
    assert len({r["id"] for r in records}) == SIZES[name]
    for r in records:
        data.validate_record(r, name)
        assert r["source"] == name and r["question"].strip() and r["answer"].strip()
    if name == "olympiadbench":
        assert not any("$" in r["answer"] for r in records)  # math delimiters are removed


def test_known_answers(benchmarks_dir):
    first = {name: data.load_benchmark(name, benchmarks_dir / name, "test") for name in SIZES}  # directory sources
    assert first["amc23"][0]["answer"] == "27"
    assert first["gsm8k"][0]["answer"] == "18"
    assert first["aime24"][0]["answer"] == "204"
    assert first["aime24"][7]["answer"] == "025"  # leading zeros are kept as the data gives them
    assert first["math500"][0]["answer"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert first["math500"][0]["id"] == "test/precalculus/807.json"
    assert first["minerva_math"][0]["answer"] == "1.6"
    # box contents are kept verbatim, quirks included (a stray "$ $" inside one minerva box)
    assert sum("$ $" in r["answer"] for r in first["minerva_math"]) == 1
    assert first["olympiadbench"][0]["answer"] == "2"
    assert first["olympiadbench"][0]["meta"]["raw_answer"] == ["2"]
    by_raw = {r["meta"]["raw_answer"][0]: r["answer"] for r in first["olympiadbench"]}
    assert by_raw["$69$,$84$"] == "69,84"
    assert by_raw["$221,$8$"] == "221,8"  # a stray-dollar typo in the source
    gsm = {r["answer"] for r in first["gsm8k"]}
    assert "1450000" in gsm and not any("," in a for a in gsm)


def test_json_list_file(tmp_path):
    rows = [{"problem": "What is 2+2?", "answer": 4.0, "id": 0}, {"question": "And 3+3?", "answer": "6", "id": 1}]
    path = tmp_path / "amc.json"
    path.write_text(json.dumps(rows))
    records = data.load_benchmark("amc23", path, "test")
    assert [(r["question"], r["answer"]) for r in records] == [("What is 2+2?", "4"), ("And 3+3?", "6")]


def test_directory_uses_the_split_file(tmp_path):
    write_lines(tmp_path / "dev.jsonl", [json.dumps({"question": "q", "answer": "Work.\n#### 1,234"})])
    assert data.load_benchmark("gsm8k", tmp_path, split="dev")[0]["answer"] == "1234"
    with pytest.raises(DataError, match="no test.jsonl"):
        data.load_benchmark("gsm8k", tmp_path, "test")


def test_hub_column_spellings(tmp_path):
    """Capitalised AIME columns, a final_answer list with several items, minerva with an answer column."""
    aime = write_lines(tmp_path / "aime.jsonl", [json.dumps({"ID": "2024-I-1", "Problem": "p", "Answer": 204})])
    assert data.load_benchmark("aime24", aime, "test")[0] == {
        "id": "2024-I-1",
        "question": "p",
        "answer": "204",
        "source": "aime24",
        "meta": {},
    }
    olym = write_lines(tmp_path / "olym.jsonl", [json.dumps({"question": "q", "final_answer": ["$1$", "$-2$"]})])
    assert data.load_benchmark("olympiadbench", olym, "test")[0]["answer"] == "1, -2"
    minerva = write_lines(tmp_path / "m.jsonl", [json.dumps({"question": "q", "answer": "3e8"})])
    assert data.load_benchmark("minerva_math", minerva, "test")[0]["answer"] == "3e8"


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "file.jsonl", [json.dumps({"problem": "p", "answer": "1"}), "{not json"])
    with pytest.raises(DataError, match=r"file\.jsonl:2: malformed JSON"):
        data.load_benchmark("math500", path, "test")


def test_malformed_json_file_names_line(tmp_path):
    path = tmp_path / "file.json"
    path.write_text('[\n{"problem": "p", "answer": "1"},\n{oops}\n]')
    with pytest.raises(DataError, match=r"file\.json: malformed JSON .* at line 3\)"):
        data.load_benchmark("math500", path, "test")


@pytest.mark.parametrize(
    "name, row, field",
    [
        ("math500", {"problem": "p"}, "answer"),
        ("math500", {"answer": "1"}, "question"),
        ("gsm8k", {"question": "q"}, "answer"),
        ("olympiadbench", {"question": "q", "final_answer": []}, "final_answer"),
        ("minerva_math", {"problem": "p", "solution": "no box here"}, "boxed"),
    ],
)
def test_missing_field_names_field_and_line(tmp_path, name, row, field):
    path = write_lines(
        tmp_path / "file.jsonl",
        [
            json.dumps(
                {"problem": "ok", "question": "ok", "answer": "1", "final_answer": ["1"], "solution": "\\boxed{1}"}
            ),
            "",
            json.dumps(row),
        ],
    )
    with pytest.raises(DataError, match=rf"file\.jsonl:3: .*{field}"):
        data.load_benchmark(name, path, "test")


def test_duplicate_ids_are_rejected(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [json.dumps({"id": 1, "problem": "p", "answer": "1"})] * 2)
    with pytest.raises(DataError, match="duplicate id '1'"):
        data.load_benchmark("aime24", path, "test")


def test_unknown_benchmark_lists_known_names():
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'.*math500.*gsm8k"):
        data.load_benchmark("mmlu", "whatever", "test")


def test_missing_local_path_is_named(tmp_path):
    for source in [tmp_path / "nope.jsonl", "data/nope.jsonl", "./nope"]:
        with pytest.raises(DataError, match="no such file or directory"):
            data.load_benchmark("math500", source, "test")


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        data.load_benchmark("math500", path, "test")


@pytest.fixture
def fake_hub(monkeypatch):
    """A stand-in `datasets` module: records load_dataset calls (repo, config, split, revision), serves rows per
    (repo, config, split)."""
    calls, tables = [], {}

    def load_dataset(repo, config=None, *, split, revision=None):
        calls.append((repo, config, split, revision))
        return iter(tables[(repo, config, split)])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls, tables


def test_hub_branch_plumbing(fake_hub):
    calls, tables = fake_hub
    tables[("openai/gsm8k", "main", "test")] = [
        {"question": "q1", "answer": "x\n#### 5"},
        {"question": "q2", "answer": "y\n#### -7"},
    ]
    records = data.load_benchmark("gsm8k", "openai/gsm8k:main", "test")
    assert calls == [("openai/gsm8k", "main", "test", None)]  # no revision: the default branch
    assert [(r["id"], r["answer"]) for r in records] == [("0", "5"), ("1", "-7")]
    tables[("HuggingFaceH4/MATH-500", None, "test")] = [{"problem": "p"}]
    with pytest.raises(DataError, match=r"HuggingFaceH4/MATH-500\[test\]#0: .*answer"):
        data.load_benchmark("math500", "HuggingFaceH4/MATH-500", "test")


# -------------------------------------------------------------------------------------------- MATH train


def math_rows():
    return [
        {"problem": "L3 problem", "level": "Level 3", "type": "Algebra", "solution": "So $x=\\boxed{\\frac{1}{2}}$."},
        {"problem": "L1 problem", "level": "Level 1", "type": "Algebra", "solution": "$\\boxed{1}$"},
        {
            "problem": "L5 problem",
            "level": "Level 5",
            "type": "Geometry",
            "solution": "First \\boxed{3}, then the set $\\boxed{\\{1, 2\\}}$ .",
        },
        {"problem": "L4 fbox", "level": "Level 4", "type": "Prealgebra", "solution": "$\\fbox{7}$"},
        {"problem": "Unknown level", "level": "Level ?", "type": "Geometry", "solution": "\\boxed{9}"},
        {"problem": "L4 unboxed", "level": "Level 4", "type": "Algebra", "solution": "The answer is 4."},
        {"problem": "  In   MATH500 ", "level": "Level 3", "type": "Algebra", "solution": "\\boxed{5}"},
    ]


def test_math_train_filters_levels_and_extracts_boxes(tmp_path, caplog):
    path = write_lines(tmp_path / "math.jsonl", [json.dumps(r) for r in math_rows()])
    records = data.load_math_train(path, levels=[3, 4, 5], splits=["train"], exclude_questions=["In MATH500"])
    assert [(r["question"], r["answer"], r["meta"]["level"]) for r in records] == [
        ("L3 problem", "\\frac{1}{2}", 3),
        ("L5 problem", "\\{1, 2\\}", 5),
        ("L4 fbox", "7", 4),
    ]
    assert all(r["source"] == "math" for r in records)
    assert "no \\boxed{} answer" in caplog.text
    assert len(data.load_math_train(path, levels=[3], splits=["train"])) == 2  # not excluded this time


def test_math_train_directory_reads_each_split(tmp_path):
    rows = math_rows()
    write_lines(tmp_path / "train.jsonl", [json.dumps(rows[0])])
    (tmp_path / "test.json").write_text(json.dumps([rows[2], {**rows[0], "level": 3}]))
    records = data.load_math_train(tmp_path, levels=[3, 5], splits=["train", "test"])
    assert [(r["id"], r["meta"]["split"]) for r in records] == [
        ("train-0", "train"),
        ("test-0", "test"),
        ("test-1", "test"),
    ]


def test_math_train_hub_concatenates_configs(fake_hub):
    calls, tables = fake_hub
    rows = math_rows()
    tables[("EleutherAI/hendrycks_math", "algebra", "train")] = [rows[0]]
    tables[("EleutherAI/hendrycks_math", "geometry", "train")] = [rows[2]]
    records = data.load_math_train("EleutherAI/hendrycks_math:algebra,geometry", levels=[3, 5], splits=["train"])
    assert [r["id"] for r in records] == ["train-0", "train-1"]
    assert [c[1] for c in calls] == ["algebra", "geometry"]


def test_hub_datasets_are_read_at_the_configured_revision(fake_hub):
    calls, tables = fake_hub
    tables[("openai/gsm8k", "main", "test")] = [{"question": "q1", "answer": "x\n#### 5"}]
    data.load_benchmark("gsm8k", "openai/gsm8k:main", "test", revision="v1")
    tables[("EleutherAI/hendrycks_math", "algebra", "train")] = [math_rows()[0]]
    tables[("EleutherAI/hendrycks_math", "algebra", "test")] = [math_rows()[2]]
    data.load_math_train("EleutherAI/hendrycks_math:algebra", [3, 5], ["train", "test"], revision="c" * 40)
    assert [(c[0], c[3]) for c in calls] == [
        ("openai/gsm8k", "v1"),
        ("EleutherAI/hendrycks_math", "c" * 40),
        ("EleutherAI/hendrycks_math", "c" * 40),
    ]


def test_math_train_no_match_is_an_error(tmp_path):
    path = write_lines(tmp_path / "math.jsonl", [json.dumps(math_rows()[1])])
    with pytest.raises(DataError, match="no MATH problems of levels"):
        data.load_math_train(path, levels=[5], splits=["train"])


@pytest.mark.parametrize(
    "text, boxed",
    [
        ("no box", None),
        ("\\boxed{1} and \\boxed{\\frac{a}{b}}", "\\frac{a}{b}"),
        ("$\\boxed 5$.", "5"),  # hendrycks MATH's bare form
        ("so \\fbox 12 is it", "12"),
        ("\\boxed{unbalanced", None),
        ("\\boxed{1} and \\boxed{2", "1"),  # the last complete box
        ("\\boxed{\\left\\{ x \\right.}", "\\left\\{ x \\right."),
    ],
)
def test_gold_of_a_solution_is_graded_by_the_same_extractor(tmp_path, text, boxed):
    """MATH and Minerva golds come from `grading.extract_answer`, the extractor of the model's answers: the two
    can no longer disagree (a second extractor in this module once read `\\boxed 5` where grading did not)."""
    from pipeline.grading import extract

    assert not hasattr(data, "_last_boxed")
    assert extract.extract_answer(text) == boxed
    row = {"problem": "p", "level": "Level 3", "type": "Algebra", "solution": text}
    unboxed = {"problem": "q", "level": "Level 3", "type": "Algebra", "solution": "\\boxed{7}"}
    path = write_lines(tmp_path / "math.jsonl", [json.dumps(row), json.dumps(unboxed)])
    records = data.load_math_train(path, levels=[3], splits=["train"])
    assert [r["answer"] for r in records] == ([boxed] if boxed else []) + ["7"]
    minerva = write_lines(tmp_path / "minerva.jsonl", [json.dumps({"problem": "p", "solution": text})])
    if boxed:
        assert data.load_benchmark("minerva_math", minerva, "test")[0]["answer"] == boxed
    else:
        with pytest.raises(DataError, match="boxed"):
            data.load_benchmark("minerva_math", minerva, "test")


# ------------------------------------------------------------------------------------------- record files


def test_write_and_read_round_trip(tmp_path):
    train, _ = data.synthetic_splits(0, 20, 1, 3)
    path = tmp_path / "sub" / "train.jsonl"
    assert data.write_records(path, train) == 20
    assert data.read_records(path) == train


def test_write_is_atomic_when_a_generator_fails(tmp_path):
    def records():
        yield good_record(id="a")
        raise RuntimeError("upstream failure")

    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        data.write_records(path, records())
    assert os.listdir(tmp_path) == []


def test_write_rejects_bad_and_duplicate_records_leaving_no_file(tmp_path):
    path = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match="record 1: .*'answer'"):
        data.write_records(path, [good_record(), good_record(id="b", answer="")])
    with pytest.raises(DataError, match="record 1: duplicate id 'q1'"):
        data.write_records(path, [good_record(), good_record()])
    assert os.listdir(tmp_path) == []


def test_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.jsonl"
    data.write_records(path, [good_record()])
    with pytest.raises(DataError):
        data.write_records(path, [good_record(id=5)])
    assert data.read_records(path) == [good_record()]
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_read_records_names_line(tmp_path):
    path = write_lines(tmp_path / "file.jsonl", [json.dumps(good_record()), json.dumps(good_record(id="b", meta=1))])
    with pytest.raises(DataError, match=r"file\.jsonl:2: field 'meta'"):
        data.read_records(path)
    write_lines(path, [json.dumps(good_record())] * 2)
    with pytest.raises(DataError, match=r"file\.jsonl:2: duplicate id 'q1' \(first on line 1\)"):
        data.read_records(path)


def test_prepare_math_drops_questions_whose_prompt_exceeds_max_prompt_tokens(tmp_path):
    """The paper's prompt_max_len 1024 at toy size: prompts are counted in the model's own tokenizer (a folder, as
    on an offline node), with the prompt template at the largest N; longer questions are dropped and counted."""
    import subprocess

    from pipeline import config, env, models

    tokenizer = models.build_tokenizer([f"question {i} about numbers" for i in range(200)], 300)
    cfg0 = config.resolve({})
    models.save(models.build_model(cfg0.model.tiny, tokenizer), tokenizer, tmp_path / "model")
    short, long = "What is 1 + 1?", "What is " + " + ".join(str(i) for i in range(60)) + "?"
    rows = [
        {"problem": q, "level": "Level 3", "type": "Algebra", "solution": f"\\boxed{{{i}}}"}
        for i, q in enumerate([short, long, short + " "])
    ]
    source = write_lines(tmp_path / "math.jsonl", [json.dumps(r) for r in rows])
    n_short = len(
        tokenizer(env.render_prompt(cfg0.env.prompt_template, short, 5), add_special_tokens=False)["input_ids"]
    )
    limit = n_short + 2
    user = {
        "data": {"train_set": "math", "max_prompt_tokens": limit, "math": {"source": str(source)}},
        "model": {"source": str(tmp_path / "model")},
    }
    out = tmp_path / "math_train.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "prepare-math", "--config", json.dumps(user), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["question"] for r in data.read_records(out)] == [short, short + " "]
    assert f"dropped 1 questions whose prompt exceeds data.max_prompt_tokens = {limit} tokens" in proc.stderr


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"data": {"max_prompt_tokens": 1024}}, "applies to the MATH training set"),
        ({"data": {"max_prompt_tokens": 1024, "train_set": "math"}}, "model.source build only makes"),
    ],
)
def test_max_prompt_tokens_needs_the_math_set_and_a_model_tokenizer(user, message):
    from pipeline import config

    with pytest.raises(config.ConfigError, match=message):
        config.resolve(user)
