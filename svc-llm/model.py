"""A causal LM behind a chat interface (transformers). Knows nothing of gRPC:
validates requests and raises domain errors, streams text deltas, loads and
unloads the model on demand, and runs one generation at a time."""

from __future__ import annotations

import gc
import inspect
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterator, Sequence

import torch

from svc_llm.decoding import TextStream, next_token
from svc_llm.settings import LlmSettings
from svc_llm.turn import GenerationTurn
from svc_runtime.errors import InvalidArgument, Unavailable
from svc_runtime.logs import get_logger

log = get_logger(__name__)

ROLES = ("system", "user", "assistant")
_WARM_MESSAGES = [{"role": "user", "content": "Hi"}]


class ModelState(str, Enum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"


class FinishReason(str, Enum):
    EOS = "eos"
    LENGTH = "length"
    STOP_SEQUENCE = "stop_sequence"
    INTERRUPTED = "interrupted"  # should_stop() said so (client gone, deadline passed)


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass
class GenerationParams:
    max_new_tokens: int = 0  # 0 = the service default
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.0  # 0 = 1.0 (no nucleus filtering)
    stop: Sequence[str] = ()
    seed: int | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class GenerationEnd:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int  # tokens the model produced, the one that ended the turn included
    max_new_tokens: int
    first_token_seconds: float | None  # from the start of decoding (queueing excluded)
    decode_seconds: float


@dataclass(frozen=True)
class EngineStatus:
    state: ModelState
    model: str
    device: str
    context_length: int  # 0 until the model was loaded once


@dataclass(frozen=True)
class PreloadResult:
    model: str
    load_seconds: float
    already_loaded: bool


@dataclass
class _Loaded:
    model: Any
    keeps_last_logits: bool  # forward() takes logits_to_keep (no full-prompt logits at prefill)
    eos_ids: frozenset[int] = field(default_factory=frozenset)


class LlmEngine:
    def __init__(self, settings: LlmSettings, device: str) -> None:
        self.settings = settings
        self.name = settings.display_name
        self.device = device
        self.dtype = _dtype(settings.torch_dtype, device)
        self._turn = GenerationTurn(settings.max_queued_requests)
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._state = ModelState.UNLOADED
        self._loaded: _Loaded | None = None
        # Kept across Unload: a few MB, and a reload skips parsing them again (seconds for a GGUF).
        self._tokenizer: Any = None
        self._config: Any = None
        self._context_length = 0
        if settings.num_threads:
            torch.set_num_threads(settings.num_threads)

    # -- model control -----------------------------------------------------

    def status(self) -> EngineStatus:
        return EngineStatus(self._state, self.name, self.device, self._context_length)

    def load(self) -> PreloadResult:
        with self._load_lock:
            if self._loaded is not None:
                return PreloadResult(self.name, 0.0, True)
            self._state = ModelState.LOADING
            started = time.perf_counter()
            log.info("model_loading", model=self.name, source=self.settings.model, device=self.device,
                     dtype=str(self.dtype).removeprefix("torch."))
            try:
                self._loaded = self._load()
            except Exception as exc:
                self._state = ModelState.UNLOADED
                log.error("model_load_failed", model=self.name, error=str(exc))
                raise Unavailable(f"model {self.name} could not be loaded: {exc}") from exc
            self._state = ModelState.LOADED
            seconds = time.perf_counter() - started
            log.info("model_loaded", model=self.name, seconds=round(seconds, 2),
                     context_length=self._context_length)
            return PreloadResult(self.name, seconds, False)

    def preload(self) -> PreloadResult:
        """Loads if needed and warms with a tiny generation."""
        started = time.perf_counter()
        result = self.load()
        if not result.already_loaded:
            self._turn.acquire(bounded=False)
            try:
                self.load()  # an Unload may have run in between
                for _ in self._generate_in_turn(self._prompt_ids(_WARM_MESSAGES, 2), _params(2), 2, lambda: False):
                    pass
            finally:
                self._turn.release()
        seconds = 0.0 if result.already_loaded else time.perf_counter() - started
        log.info("preload_successful", message=f"{self.name}: Preload successful", model=self.name,
                 seconds=round(seconds, 3), already_loaded=result.already_loaded)
        return PreloadResult(self.name, seconds, result.already_loaded)

    def unload(self) -> bool:
        """Frees the weights (after the running generation ends). True if they were loaded."""
        self._turn.acquire(bounded=False)
        try:
            with self._load_lock:
                if self._loaded is None:
                    return False
                self._loaded = None
                self._state = ModelState.UNLOADED
                gc.collect()
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                log.info("model_unloaded", model=self.name)
                return True
        finally:
            self._turn.release()

    def _load(self) -> _Loaded:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # bars would break the JSON log lines
        source = self.settings.model
        options: dict[str, Any] = {"local_files_only": self.settings.offline or os.path.isdir(source)}
        if self.settings.gguf_file:
            options["gguf_file"] = self.settings.gguf_file
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(source, **options)
        if self._config is None:
            self._config = AutoConfig.from_pretrained(source, **options)
        model = AutoModelForCausalLM.from_pretrained(source, config=self._config, dtype=self.dtype, **options)
        model.to(self.device).eval()
        self._context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        return _Loaded(
            model=model,
            keeps_last_logits="logits_to_keep" in inspect.signature(model.forward).parameters,
            eos_ids=frozenset(self._eos_ids(model)),
        )

    def _eos_ids(self, model: Any) -> set[int]:
        ids: set[int] = set()
        for value in (getattr(model.generation_config, "eos_token_id", None), self._tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(value)
        return ids

    # -- generation --------------------------------------------------------

    def generate(
        self, messages: Sequence[ChatMessage], params: GenerationParams, should_stop: Callable[[], bool]
    ) -> Iterator[TextDelta | GenerationEnd]:
        """Text deltas, then one GenerationEnd. Blocking: run it off the event
        loop. should_stop() is looked at between tokens (and while queued)."""
        max_new_tokens = self._check_params(messages, params)
        self.load()  # lazy mode, or after an Unload
        prompt = [{"role": m.role, "content": m.content} for m in messages]
        prompt_ids = self._prompt_ids(prompt, max_new_tokens)
        if not self._turn.acquire(should_stop):
            yield GenerationEnd(FinishReason.INTERRUPTED, prompt_ids.shape[1], 0, max_new_tokens, None, 0.0)
            return
        try:
            self.load()  # an Unload may have run while this call waited
            yield from self._generate_in_turn(prompt_ids, params, max_new_tokens, should_stop)
        finally:
            self._turn.release()

    def _check_params(self, messages: Sequence[ChatMessage], params: GenerationParams) -> int:
        if not messages:
            raise InvalidArgument("messages is empty: send at least one chat message")
        for index, message in enumerate(messages):
            if message.role not in ROLES:
                raise InvalidArgument(
                    f"messages[{index}].role is {message.role!r}; allowed roles: {', '.join(ROLES)}"
                )
        limit = self.settings.max_new_tokens_limit
        if params.max_new_tokens > limit:
            raise InvalidArgument(f"max_new_tokens is {params.max_new_tokens}, over the limit of {limit}")
        if not math.isfinite(params.temperature) or params.temperature < 0:
            raise InvalidArgument(
                f"temperature is {params.temperature}; it must be a finite number >= 0 (0 = greedy decoding)"
            )
        if not math.isfinite(params.top_p) or not 0 <= params.top_p <= 1:
            raise InvalidArgument(f"top_p is {params.top_p}; it must be within [0, 1] (0 = 1.0, no filtering)")
        if len(params.stop) > self.settings.max_stop_sequences:
            raise InvalidArgument(
                f"{len(params.stop)} stop sequences; at most {self.settings.max_stop_sequences} are accepted"
            )
        for index, stop in enumerate(params.stop):
            if not stop:
                raise InvalidArgument(f"stop[{index}] is an empty string")
        return params.max_new_tokens or self.settings.default_max_new_tokens

    def _prompt_ids(self, messages: list[dict[str, str]], max_new_tokens: int) -> torch.Tensor:
        with self._tokenizer_lock:  # fast tokenizers refuse concurrent use ("Already borrowed")
            if getattr(self._tokenizer, "chat_template", None):
                encoded = self._tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
                ids = encoded["input_ids"]
            else:  # a base model without a template: plain "role: content" lines
                text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
                ids = self._tokenizer(text, return_tensors="pt")["input_ids"]
        prompt_tokens = ids.shape[1]
        context = self._context_length
        if context and prompt_tokens + max_new_tokens > context:
            raise InvalidArgument(
                f"prompt is {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}: "
                f"{prompt_tokens + max_new_tokens} in all, over the model's context of {context} tokens"
            )
        return ids

    @torch.inference_mode()
    def _generate_in_turn(
        self, prompt_ids: torch.Tensor, params: GenerationParams, max_new_tokens: int,
        should_stop: Callable[[], bool],
    ) -> Iterator[TextDelta | GenerationEnd]:
        from transformers import DynamicCache

        loaded = self._loaded
        assert loaded is not None
        started = time.perf_counter()
        first_token_seconds: float | None = None
        stream = TextStream(lambda ids: self._tokenizer.decode(ids, skip_special_tokens=True), params.stop)
        generator = self._generator(params)
        cache = DynamicCache()
        extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
        input_ids = prompt_ids.to(self.device)
        produced = 0
        while True:
            if should_stop():
                reason = FinishReason.INTERRUPTED
                break
            logits = loaded.model(input_ids=input_ids, past_key_values=cache, use_cache=True, **extra).logits
            token = next_token(logits[0, -1], params.temperature, params.top_p or 1.0, generator)
            produced += 1
            if first_token_seconds is None:
                first_token_seconds = time.perf_counter() - started
            if token in loaded.eos_ids:
                reason = FinishReason.EOS
                break
            delta = stream.push(token)
            if delta:
                yield TextDelta(delta)
            if stream.stopped:
                reason = FinishReason.STOP_SEQUENCE
                break
            if produced >= max_new_tokens:
                reason = FinishReason.LENGTH
                break
            input_ids = torch.tensor([[token]], device=self.device)
        if reason in (FinishReason.EOS, FinishReason.LENGTH):
            tail = stream.flush()
            if tail:
                yield TextDelta(tail)
        yield GenerationEnd(reason, prompt_ids.shape[1], produced, max_new_tokens, first_token_seconds,
                            time.perf_counter() - started)

    def _generator(self, params: GenerationParams) -> torch.Generator | None:
        if params.temperature == 0:
            return None
        seed = params.seed if params.seed is not None else random.SystemRandom().getrandbits(63)
        return torch.Generator(device=self.device).manual_seed(seed)


def _params(max_new_tokens: int) -> GenerationParams:
    return GenerationParams(max_new_tokens=max_new_tokens)


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)
