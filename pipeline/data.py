"""Questions and reference answers: every dataset the pipeline trains or evaluates on, in one record schema.

Owns:
  * the record schema `{"id", "question", "answer", "source", "meta"}` and its validation (`validate_record`);
  * the synthetic n-digit addition task of the CPU experiment (`synthetic_splits`);
  * loaders that map the six evaluation benchmarks (`load_benchmark`) and the paper's MATH training set
    (`load_math_train`) from a local file/directory or a Hugging Face hub id onto that schema;
  * reading and (atomically) writing record files (`read_records`, `write_records`).

Does not know: prompts or chat templates (pipeline.env), how answers are compared (the grading module: an answer
here is the reference string as the data set gives it, minus delimiters such as `$...$`, `#### ` or a float's
`.0`), or which data set a run uses (pipeline.config). The answer in a worked solution (MATH, Minerva) is its last
box, read by `grading.extract.extract_answer` -- the same extractor that reads the model's answers.

Sources. A `source` is a local path -- a `.jsonl` file, a `.json` file holding a list of objects, or a directory
holding `{split}.jsonl` / `{split}.json` -- or, when no such path exists, a hub id `owner/name`, optionally with
configs `owner/name:config` or `owner/name:config1,config2` (loaded in that order and concatenated; e.g.
`openai/gsm8k:main`). Hub ids for the paper run are set in `pipeline/config/presets/paper.yaml`.

Try it:
    python -c "from pipeline import data; print(data.synthetic_splits(0, 3, 2, 3))"
    python -c "from pipeline import data; r = data.load_benchmark('amc23', '../shared/data/benchmarks/amc23', \
'test'); print(len(r), r[0])"
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hub
from pipeline.grading.extract import extract_answer
from pipeline.io import DataError, read_json, read_jsonl, write_jsonl
from pipeline.seeds import derive_seed

if TYPE_CHECKING:
    from pipeline.config import BenchmarkSource, Config

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- schema

FIELDS: dict[str, type] = {"id": str, "question": str, "answer": str, "source": str, "meta": dict}


def validate_record(record: Any, where: str) -> dict[str, Any]:
    """Return `record` unchanged if it has exactly the schema's fields with the right types, else raise DataError.

    Strict on purpose: every later stage (rollouts, grading, aggregation) trusts these five fields blindly.
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a record (JSON object), got {type(record).__name__}")
    for field, kind in FIELDS.items():
        if field not in record:
            raise DataError(f"{where}: record has no field {field!r}")
        value = record[field]
        if not isinstance(value, kind):
            raise DataError(f"{where}: field {field!r} must be {kind.__name__}, got {type(value).__name__}")
        if kind is str and not value.strip():
            raise DataError(f"{where}: field {field!r} is empty")
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        raise DataError(f"{where}: unexpected field(s) {', '.join(map(repr, extra))} (put extras in 'meta')")
    return record


def _check_unique_ids(records: Iterable[dict[str, Any]], where: str) -> None:
    """Ids key results across stages (rollouts, grades, per-question accuracy), so a duplicate is an error."""
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise DataError(f"{where}: duplicate id {record['id']!r}")
        seen.add(record["id"])


def write_records(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Validate every record (schema and unique ids) while writing it; atomic, so a bad record leaves no file."""
    path = Path(path)
    seen: set[str] = set()

    def checked() -> Iterator[dict[str, Any]]:
        for i, record in enumerate(records):
            validate_record(record, f"{path}: record {i}")
            if record["id"] in seen:
                raise DataError(f"{path}: record {i}: duplicate id {record['id']!r}")
            seen.add(record["id"])
            yield record

    return write_jsonl(path, checked())


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a file written by `write_records`; errors name file:line."""
    records, lines = [], {}
    for lineno, record in read_jsonl(path):
        validate_record(record, f"{path}:{lineno}")
        if record["id"] in lines:
            raise DataError(f"{path}:{lineno}: duplicate id {record['id']!r} (first on line {lines[record['id']]})")
        lines[record["id"]] = lineno
        records.append(record)
    return records


# ------------------------------------------------------------------------------------------ synthetic task

SYNTHETIC_QUESTION = "{a}+{b}="  # the whole question: short, for a ~100K-parameter model


def validation_split(records: Sequence[dict[str, Any]], n: int) -> tuple[list[dict], list[dict]]:
    """(validation, rest): n training questions drawn with a fixed seed (the same for every variant and seed), and
    the others in their order. For choosing a checkpoint without looking at the test benchmarks."""
    if n >= len(records):
        raise DataError(f"eval.validation_questions ({n}) must be fewer than the training questions ({len(records)})")
    chosen = set(random.Random(derive_seed(0, "validation")).sample(range(len(records)), n))
    return [r for i, r in enumerate(records) if i in chosen], [r for i, r in enumerate(records) if i not in chosen]


def synthetic_qa(a: int, b: int, digits: int) -> tuple[str, str]:
    """The question and answer for a + b: operands zero-padded to `digits`, the sum to digits + 1 (fixed width).

    Fixed widths make every question the same length and every answer exactly digits + 1 characters, so an
    answer is right or wrong position by position and the length of an attempt carries no information.
    """
    question = SYNTHETIC_QUESTION.format(a=f"{a:0{digits}d}", b=f"{b:0{digits}d}")
    return question, f"{a + b:0{digits + 1}d}"


def synthetic_splits(seed: int, n_train: int, n_heldout: int, digits: int) -> tuple[list[dict], list[dict]]:
    """Train and held-out questions of `digits`-digit addition, disjoint as (a, b) pairs, deterministic in `seed`.

    Pairs are drawn without replacement from all (10**digits)**2 of them, so held-out accuracy measures
    generalisation to unseen pairs, not recall.
    """
    if digits < 1:
        raise ValueError(f"synthetic task: digits must be >= 1, got {digits}")
    if n_train < 0 or n_heldout < 0:
        raise ValueError(f"synthetic task: n_train and n_heldout must be >= 0, got {n_train}, {n_heldout}")
    base = 10**digits
    if n_train + n_heldout > base * base:
        raise ValueError(
            f"synthetic task: n_train + n_heldout = {n_train + n_heldout} exceeds the {base * base} distinct "
            f"pairs of {digits}-digit operands; lower them or raise digits"
        )
    codes = random.Random(seed).sample(range(base * base), n_train + n_heldout)  # range: no list of all pairs

    def record(split: str, i: int, code: int) -> dict[str, Any]:
        a, b = divmod(code, base)
        question, answer = synthetic_qa(a, b, digits)
        return {
            "id": f"{split}-{i}",
            "question": question,
            "answer": answer,
            "source": "synthetic",
            "meta": {"a": a, "b": b},
        }

    train = [record("train", i, c) for i, c in enumerate(codes[:n_train])]
    heldout = [record("heldout", i, c) for i, c in enumerate(codes[n_train:])]
    return train, heldout


# ------------------------------------------------------------------------------------------------ sources


def _read_local_file(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, row); `where` is file:line for jsonl, file[index] for a json list."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for lineno, row in read_jsonl(path):
            yield f"{path}:{lineno}", row
    elif suffix == ".json":
        rows = read_json(path)
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of objects, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"{path}[{i}]: expected a JSON object, got {type(row).__name__}")
            yield f"{path}[{i}]", row
    else:
        raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl or .json)")


def _split_file(directory: Path, split: str) -> Path:
    for name in (f"{split}.jsonl", f"{split}.json"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: directory has no {split}.jsonl or {split}.json (split {split!r})")


def _read_hub(source: str, split: str, revision: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a hub dataset, `owner/name[:config[,config...]]`, at `revision` (None: the default branch; offline,
    `datasets` reads the copy the download built); `datasets` is imported here (slow import)."""
    import datasets

    repo, _, configs = source.partition(":")
    for config in configs.split(",") if configs else [None]:
        ds = datasets.load_dataset(repo, config, split=split, revision=revision)
        label = f"{repo}:{config}" if config else repo
        for i, row in enumerate(ds):
            yield f"{label}[{split}]#{i}", dict(row)


def _read_rows(
    source: str | os.PathLike, split: str, revision: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, raw row) from a local file, a directory's `{split}` file, or a hub dataset's split (at
    `revision`, which a local source ignores)."""
    path = Path(source)
    if path.is_dir():
        yield from _read_local_file(_split_file(path, split))
    elif path.is_file():
        yield from _read_local_file(path)
    elif hub.is_hub_id(str(source).partition(":")[0]):  # owner/name[:configs]
        yield from _read_hub(str(source), split, revision)
    else:
        raise DataError(f"{source}: no such file or directory (and not a hub dataset id of the form owner/name)")


# ----------------------------------------------------------------------------------------- answer helpers


def _number_text(value: Any) -> str:
    """27.0 -> "27", 2.5 -> "2.5", 204 -> "204"; strings pass through stripped (AIME's "025" stays "025")."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not an answer")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return str(value).strip()


_DOLLAR = re.compile(r"(?<!\\)\$")


def _olympiad_answer(value: Any) -> str:
    """["$2$"] -> "2"; ["$69$,$84$"] -> "69,84"; ["a", "b"] -> "a, b". Every unescaped `$` is a math delimiter."""
    items = value if isinstance(value, list) else [value]
    parts = [_DOLLAR.sub("", _number_text(item)).strip() for item in items]
    return ", ".join(p for p in parts if p)


def _gsm8k_answer(value: Any) -> str:
    """Text after the last "####" of the worked solution, without thousands separators ("1,450,000")."""
    text = _number_text(value)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    elif "\n" in text:
        raise ValueError("worked solution has no '#### <answer>' line")
    return text.strip().replace(",", "")


# ----------------------------------------------------------------------------------------- normalisers

QUESTION_KEYS = ("question", "problem", "Question", "Problem")  # meval first, then common hub spellings
ID_KEYS = ("unique_id", "id", "ID", "idx")


class _Missing(Exception):
    """A raw row lacks a field; turned into a DataError that names the row's place."""


def _first(row: dict[str, Any], keys: tuple[str, ...], field: str) -> Any:
    for key in keys:
        value = row.get(key)
        if value is not None and value != "" and value != []:
            return value
    raise _Missing(f"missing {field} (looked for {', '.join(keys)})")


def _meta(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Small JSON-able columns worth keeping (hub rows may carry images and other non-JSON values)."""
    plain = (str, int, float, bool, type(None))
    out = {}
    for key in keys:
        value = row.get(key)
        if key in row and (
            isinstance(value, plain) or (isinstance(value, list) and all(isinstance(v, plain) for v in value))
        ):
            out[key] = value
    return out


def _math500(row):
    return _first(row, ("answer", "Answer"), "answer"), _meta(row, ("subject", "level"))


def _aime24(row):
    return _first(row, ("answer", "Answer"), "answer"), _meta(row, ("url", "year"))


def _amc23(row):
    raw = _first(row, ("answer", "Answer"), "answer")
    return raw, _meta({"url": row.get("url"), "raw_answer": raw}, ("url", "raw_answer"))


def _minerva_math(row):
    if row.get("answer") not in (None, ""):  # hub copies that ship the extracted answer
        return row["answer"], _meta(row, ("type",))
    solution = _first(row, ("solution",), "answer (no 'answer' and no 'solution' field)")
    boxed = extract_answer(str(solution))
    if boxed is None:
        raise _Missing("missing answer: no \\boxed{...} in 'solution'")
    return boxed, _meta(row, ("type",))


def _olympiadbench(row):
    raw = _first(row, ("final_answer", "answer", "Answer"), "final_answer")
    meta = _meta(row, ("subfield", "answer_type", "unit", "is_multiple_answer", "error", "context"))
    meta["raw_answer"] = raw if isinstance(raw, list) else [raw]
    return _olympiad_answer(raw), meta


def _gsm8k(row):
    raw = _first(row, ("answer", "Answer"), "answer")
    return _gsm8k_answer(raw), {}


# name -> raw row -> (answer, meta). The question and id columns are shared (QUESTION_KEYS, ID_KEYS).
_NORMALISERS: dict[str, Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]] = {
    "math500": _math500,
    "aime24": _aime24,
    "amc23": _amc23,
    "minerva_math": _minerva_math,
    "olympiadbench": _olympiadbench,
    "gsm8k": _gsm8k,
}
BENCHMARKS = tuple(_NORMALISERS)


def _to_record(name: str, row: dict[str, Any], index: int, where: str, answer_and_meta) -> dict[str, Any]:
    try:
        question = _first(row, QUESTION_KEYS, "question")
        answer, meta = answer_and_meta(row)
        answer = _number_text(answer)
    except (_Missing, TypeError, ValueError) as e:
        raise DataError(f"{where}: {name}: {e}") from None
    raw_id = next((row[k] for k in ID_KEYS if row.get(k) not in (None, "")), index)
    record = {"id": str(raw_id), "question": str(question), "answer": answer, "source": name, "meta": meta}
    return validate_record(record, where)


def load_benchmark(
    name: str, source: str | os.PathLike, split: str, revision: str | None = None
) -> list[dict[str, Any]]:
    """Normalised records of one evaluation benchmark (meval/Qwen-eval columns or the usual hub columns); a hub
    source at `revision` (config data.benchmarks.<name>.revision; None = the default branch)."""
    if name not in _NORMALISERS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    records = [
        _to_record(name, row, i, where, _NORMALISERS[name])
        for i, (where, row) in enumerate(_read_rows(source, split, revision))
    ]
    if not records:
        raise DataError(f"{source}: benchmark {name} ({split}) has no rows")
    _check_unique_ids(records, f"{source} ({name}, {split})")
    return records


def drop_long_prompts(
    records: Sequence[dict[str, Any]], prompt_tokens: Callable[[str], int], max_tokens: int
) -> tuple[list[dict[str, Any]], int]:
    """(records whose question's prompt has at most `max_tokens` tokens, number dropped).

    `prompt_tokens(question)`: the length of the first prompt of that question in the policy's tokenizer. The
    released code truncates longer prompts to 1,024 tokens, which cuts the question (and the prompt's end) off;
    dropping them keeps every prompt whole.
    """
    kept = [r for r in records if prompt_tokens(r["question"]) <= max_tokens]
    return kept, len(records) - len(kept)


# ------------------------------------------------------------------------------------------- MATH train


# Recommended default (config data.math.source): one config holding all seven subjects, splits train (7,500) and
# test (5,000), columns problem / level ("Level 3") / type / solution. EleutherAI/hendrycks_math has the same
# columns with one config per subject: "EleutherAI/hendrycks_math:algebra,counting_and_probability,geometry,
# intermediate_algebra,number_theory,prealgebra,precalculus".
def _level(value: Any) -> int | None:
    """ "Level 3" / 3 / "3" -> 3; MATH's few "Level ?" rows -> None (never selected)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = re.fullmatch(r"\s*(?:Level\s*)?(\d+)\s*", str(value)) if value is not None else None
    return int(found.group(1)) if found else None


def _normalise_text(text: str) -> str:
    return " ".join(text.split())


def load_math_train(
    source: str | os.PathLike,
    levels: Iterable[int],
    splits: Iterable[str],
    exclude_questions: Iterable[str] = (),
    revision: str | None = None,
) -> list[dict[str, Any]]:
    """MATH problems of the given levels, answer = last box of the solution (or an 'answer' column if no solution).

    `splits` are read in order from a hub id (at `revision`, config data.math.revision) or a directory; a single
    local file is read once, whole.
    `exclude_questions`: question texts to drop (compared whitespace-normalised) -- e.g. MATH500's questions when
    taking train + test, the way SimpleRL-Zero's ~8.5K set avoids overlap with its evaluation set.
    Rows without a level in `levels` are skipped; a selected row without any box is skipped with a warning.
    """
    levels = set(levels)
    splits = list(splits)
    if not levels or not splits:
        raise ValueError("load_math_train: levels and splits must be non-empty")
    excluded = {_normalise_text(q) for q in exclude_questions}
    single_file = Path(source).is_file()
    records: list[dict[str, Any]] = []
    n_excluded = n_unboxed = 0
    for split in splits[:1] if single_file else splits:
        for i, (where, row) in enumerate(_read_rows(source, split, revision)):
            if _level(row.get("level", row.get("Level"))) not in levels:
                continue
            try:
                question = str(_first(row, QUESTION_KEYS, "question"))
                if "solution" in row:
                    answer = extract_answer(str(row["solution"]))
                else:
                    answer = _number_text(_first(row, ("answer", "gt_answer", "ground_truth_answer"), "solution"))
            except _Missing as e:
                raise DataError(f"{where}: MATH: {e}") from None
            if _normalise_text(question) in excluded:
                n_excluded += 1
                continue
            if not answer:
                n_unboxed += 1
                log.warning("%s: no \\boxed{} answer in the solution; skipped", where)
                continue
            raw_id = next((row[k] for k in ID_KEYS if row.get(k) not in (None, "")), None)
            record_id = str(raw_id) if raw_id is not None else (f"{i}" if single_file else f"{split}-{i}")
            meta = {
                "level": _level(row.get("level", row.get("Level"))),
                "subject": row.get("type", row.get("subject")),
                "split": None if single_file else split,
            }
            records.append(
                validate_record(
                    {"id": record_id, "question": question, "answer": answer, "source": "math", "meta": meta}, where
                )
            )
    if n_excluded or n_unboxed:
        log.info("MATH from %s: excluded %d listed questions, skipped %d without a box", source, n_excluded, n_unboxed)
    if not records:
        raise DataError(f"{source}: no MATH problems of levels {sorted(levels)} in splits {splits}")
    _check_unique_ids(records, f"{source} (MATH)")
    return records


# ------------------------------------------------------------------------------------- the prepare steps


def prepare_math(cfg: Config, excluded: Sequence[str]) -> list[dict[str, Any]]:
    """The MATH training set that config `data.math` selects, without the `excluded` questions (the benchmarks')
    and, when `data.max_prompt_tokens` is set, without questions whose longest first prompt exceeds it in the
    policy's tokenizer (each trained variant's prompt at its largest N)."""
    prompt_tokens = None
    if cfg.data.max_prompt_tokens:  # loaded first: a missing tokenizer fails before the dataset is read
        from pipeline import env, models

        tokenizer = models.load_tokenizer(cfg.model.source, cfg.model.revision or None)
        prompts = [(cfg.variant_env(v).prompt_template, cfg.variant(v).max_attempts) for v in cfg.trained_variants]

        def prompt_tokens(question: str) -> int:
            texts = [env.render_prompt(template, question, n) for template, n in prompts]
            return max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])

    math = cfg.data.math
    records = load_math_train(
        math.source, math.levels, math.splits, exclude_questions=excluded, revision=math.revision or None
    )
    if prompt_tokens is not None:
        records, dropped = drop_long_prompts(records, prompt_tokens, cfg.data.max_prompt_tokens)
        log.info(
            "dropped %d questions whose prompt exceeds data.max_prompt_tokens = %d tokens (%s)",
            dropped,
            cfg.data.max_prompt_tokens,
            cfg.model.source,
        )
        if not records:
            raise DataError(
                f"{math.source}: no MATH question fits data.max_prompt_tokens = {cfg.data.max_prompt_tokens}"
            )
    return records


def prepare_benchmark(name: str, src: BenchmarkSource) -> list[dict[str, Any]]:
    """One evaluation set as config `data.benchmarks.<name>` describes it (its first `max_questions`, if set)."""
    records = load_benchmark(name, src.source, split=src.split, revision=src.revision or None)
    return records[: src.max_questions] if src.max_questions else records
