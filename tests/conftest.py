"""Shared fixtures. `benchmarks_dir` points at ../shared/data/benchmarks and skips cleanly when it is absent."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"


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
