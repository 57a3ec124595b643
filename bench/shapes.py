"""Real model shapes with random weights, and synthetic multi-attempt dialogues: the inputs of the memory and GPU
benchmarks (bench/memory.py, bench/gpu_check.py).

Memory and speed depend on a model's shape (vocabulary, width, depth), not on its weights, so the models are
built from a config with random weights and nothing is downloaded. The folder holds a small tokenizer trained
here with pipeline.models.build_tokenizer (chat template and `<|im_end|>`, which models.load requires); the
model's vocabulary is larger than the tokenizer's, and the synthetic dialogues use the whole of it.
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402, F401, I001  (first: it pins the CPU kernels torch uses, pipeline.numerics)
import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from pipeline import models  # noqa: E402
from pipeline.dialogue import Dialogue, Role  # noqa: E402
from pipeline.rollout import Transcript  # noqa: E402

TOKENIZER_VOCAB = 512


@dataclass(frozen=True)
class Shape:
    name: str
    family: str  # "llama" | "qwen2"
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    max_positions: int
    rope_theta: float

    def smoke(self) -> Shape:
        """The same family at a size that builds and trains in seconds on a CPU: 2 layers, vocabulary 4096, a quarter
        of the width (same heads)."""
        return replace(
            self,
            name=f"{self.name}, smoke size (2 layers, vocab 4096, width / 4)",
            vocab=4096,
            layers=2,
            hidden=self.hidden // 4,
            intermediate=self.intermediate // 4,
        )


SMOLLM2_135M = Shape("SmolLM2-135M-shaped Llama", "llama", 49_152, 576, 1536, 30, 9, 3, 2048, 100_000.0)
QWEN25_MATH_15B = Shape("Qwen2.5-Math-1.5B-shaped Qwen2", "qwen2", 151_936, 1536, 8960, 28, 12, 2, 4096, 10_000.0)


def build(shape: Shape, folder: Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Path:
    """Save a randomly initialised model of `shape` (seed 0) with a tokenizer that models.load accepts."""
    rng = random.Random(0)
    corpus = [
        f"<|im_start|>user\n{rng.randrange(1000)}+{rng.randrange(1000)}=<|im_end|>\n"
        f"<|im_start|>assistant\n\\boxed{{{rng.randrange(2000)}}}<|im_end|>"
        for _ in range(200)
    ]
    tokenizer = models.build_tokenizer(corpus, TOKENIZER_VOCAB)
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[
        shape.family
    ]
    config = config_class(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_positions,
        rope_theta=shape.rope_theta,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):  # on a GPU, initialising there takes seconds instead of a minute
        model = model_class(config).to(dtype)
    models.save(model, tokenizer, folder)
    return folder


def uniform_logprob(vocab: int) -> float:
    """The log-probability of one token under a uniform guess: what a randomly initialised model gives every
    token, so PPO's ratio to the behaviour policy stays near 1 (the surrogate is neither clipped nor zero)."""
    return -math.log(vocab)


def transcripts(
    n: int, vocab: int, prompt_tokens: int, policy_tokens: int, feedback_tokens: int = 30, seed: int = 0
) -> list[Transcript]:
    """`n` finished multi-attempt dialogues of random token ids, laid out like real ones: a prompt (length within
    +-20%), then 2-3 attempts sharing about `policy_tokens` policy tokens, separated by feedback spans. Rewards
    alternate +1 / -1, so advantages are non-zero under PPO and GRPO (groups of two) alike."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        attempts = rng.choice([2, 3])
        dialogue = Dialogue(
            id=f"synthetic-{i}", question="", gold="", n_allowed=attempts, reward=1.0 if i % 2 == 0 else -1.0
        )
        t = Transcript(dialogue)
        t.extend(_ids(rng, vocab, round(prompt_tokens * rng.uniform(0.8, 1.2))), Role.PROMPT, 0)
        total = round(policy_tokens * rng.uniform(0.9, 1.1))
        for a in range(attempts):
            if a:
                t.extend(_ids(rng, vocab, feedback_tokens), Role.FEEDBACK, a)
            k = total // attempts + (a < total % attempts)
            t.extend(_ids(rng, vocab, k), Role.POLICY, a, [uniform_logprob(vocab)] * k)
        out.append(t)
    return out


def _ids(rng: random.Random, vocab: int, k: int) -> list[int]:
    return [rng.randrange(vocab) for _ in range(k)]
