"""A causal LM behind a chat interface (transformers). Knows nothing of gRPC:
validates requests and raises domain errors, loads and unloads the model on
demand (and after an idle time), and hands generations to the continuous
batching scheduler (svc_llm.scheduler), which streams each its own events."""

from __future__ import annotations

import gc
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from svc_llm.gguf_cache import cached_copy, store_copy
from svc_llm.runner import BatchRunner, UnsupportedModel
from svc_llm.scheduler import BatchLimits, BatchObserver, Scheduler
from svc_llm.sequence import (
    Event,
    FinishReason,
    GenerationEnd,
    GenerationError,
    GenerationParams,
    GenerationSequence,
    TextDelta,
)
from svc_runtime.errors import InvalidArgument, Unavailable

log = logging.getLogger(__name__)

__all__ = [
    "ChatMessage",
    "EngineConfig",
    "EngineStatus",
    "FinishReason",
    "GenerationEnd",
    "GenerationError",
    "GenerationParams",
    "LlmEngine",
    "ModelState",
    "PreloadResult",
    "TextDelta",
]

ROLES = ("system", "user", "assistant")
MAX_CHOICES, MAX_CHOICE_CHARS = 64, 64
_WARM_MESSAGES = [{"role": "user", "content": "Hi"}]


class ModelState(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs of the service's settings, as plain values (the servicer
    builds it from LlmSettings), so this module imports without pydantic."""

    model: str  # a directory or a hub id
    name: str  # reported in replies
    gguf_file: str  # a GGUF file inside `model` ("" = an ordinary checkpoint)
    gguf_cache_dir: str  # where a GGUF file's dequantized copy is kept ("" = no copy)
    offline: bool  # local files and the local cache only
    torch_dtype: str  # auto | float32 | float16 | bfloat16
    num_threads: int  # torch intra-op CPU threads (0 = torch's default)
    default_max_new_tokens: int  # when a request says 0
    max_new_tokens_limit: int
    max_stop_sequences: int
    batch: BatchLimits


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
    runner: BatchRunner
    eos_ids: frozenset[int]


class LlmEngine:
    def __init__(
        self,
        config: EngineConfig,
        device: str,
        observer: BatchObserver | None = None,
        on_state: Callable[[ModelState], None] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.device = device
        self.dtype = _dtype(config.torch_dtype, device)
        self._on_state = on_state or (lambda state: None)
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._state = ModelState.UNLOADED
        self._loaded: _Loaded | None = None
        # Kept across Unload: a few MB, and a reload skips parsing them again (seconds for a GGUF).
        self._tokenizer: Any = None
        self._model_config: Any = None
        self._context_length = 0
        self.scheduler = Scheduler(self, config.batch, observer)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)

    # -- model control -----------------------------------------------------

    def status(self) -> EngineStatus:
        return EngineStatus(self._state, self.name, self.device, self._context_length)

    def load(self) -> PreloadResult:
        """Loads the model (on the scheduler's thread, see svc_llm.scheduler) unless it is loaded."""
        if self._loaded is not None:
            return PreloadResult(self.name, 0.0, True)
        return self.scheduler.call(self._load_here)

    def _load_here(self) -> PreloadResult:
        with self._load_lock:
            if self._loaded is not None:
                return PreloadResult(self.name, 0.0, True)
            self._set_state(ModelState.LOADING)
            started = time.perf_counter()
            log.info(
                "model_loading",
                extra={
                    "model": self.name,
                    "source": self.config.model,
                    "device": self.device,
                    "dtype": str(self.dtype).removeprefix("torch."),
                },
            )
            try:
                self._loaded = self._load()
            except Exception as exc:
                self._set_state(ModelState.UNLOADED)
                log.error("model_load_failed", extra={"model": self.name, "error": str(exc)})
                raise Unavailable(f"model {self.name} could not be loaded: {exc}") from exc
            self._set_state(ModelState.LOADED)
            seconds = time.perf_counter() - started
            log.info(
                "model_loaded",
                extra={"model": self.name, "seconds": round(seconds, 2), "context_length": self._context_length},
            )
            return PreloadResult(self.name, seconds, False)

    def preload(self) -> PreloadResult:
        """Loads if needed and warms with a tiny generation."""
        started = time.perf_counter()
        result = self.load()
        if not result.already_loaded:
            for _ in self.generate(
                [ChatMessage(**m) for m in _WARM_MESSAGES], GenerationParams(max_new_tokens=2), bounded=False
            ):
                pass
        seconds = 0.0 if result.already_loaded else time.perf_counter() - started
        return PreloadResult(self.name, seconds, result.already_loaded)

    def unload(self) -> bool:
        """Frees the weights once the running generations have ended (waiting ones
        wait, then load the model again). True if they were loaded."""
        self.scheduler.pause()
        try:
            return self._free("unload")
        finally:
            self.scheduler.resume()

    def close(self) -> None:
        self.scheduler.close()
        self._free("shutdown")

    # ModelHolder (the scheduler's view of the model)
    def runner(self) -> BatchRunner:
        loaded = self._loaded
        if loaded is None:
            self._load_here()
            loaded = self._loaded
            if loaded is None:  # unloaded again at once (an Unload raced the load)
                raise Unavailable(f"model {self.name} was unloaded while loading; retry")
        return loaded.runner

    def loaded(self) -> bool:
        return self._loaded is not None

    def unload_idle(self) -> None:
        self._free("idle")

    def _free(self, reason: str) -> bool:
        with self._load_lock:
            if self._loaded is None:
                return False
            self._loaded = None
            gc.collect()
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            self._set_state(ModelState.UNLOADED)
            log.info("model_unloaded", extra={"model": self.name, "reason": reason})
            return True

    def _set_state(self, state: ModelState) -> None:
        self._state = state
        self._on_state(state)

    def _load(self) -> _Loaded:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # bars would break the JSON log lines
        source = self.config.model
        options: dict[str, Any] = {"local_files_only": self.config.offline or os.path.isdir(source)}
        copy, have_copy = self._gguf_copy()
        if have_copy:
            source, options["local_files_only"] = str(copy), True
        elif self.config.gguf_file:
            options["gguf_file"] = self.config.gguf_file
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(source, **options)
        if self._model_config is None:
            self._model_config = AutoConfig.from_pretrained(source, **options)
        model = AutoModelForCausalLM.from_pretrained(source, config=self._model_config, dtype=self.dtype, **options)
        if copy is not None and not have_copy and store_copy(copy, model, self._tokenizer):
            log.info("gguf_cache_written", extra={"model": self.name, "folder": str(copy)})
        model.to(self.device).eval()
        self._context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        try:
            runner = BatchRunner(model, self.device)
            runner.self_check(self._encode(_WARM_MESSAGES))
        except UnsupportedModel as exc:
            raise Unavailable(f"{self.name} cannot run with continuous batching: {exc}") from exc
        return _Loaded(runner=runner, eos_ids=frozenset(self._eos_ids(model)))

    def _gguf_copy(self) -> tuple[Path | None, bool]:
        """The dequantized copy of a local GGUF file (gguf_cache.py) and whether it is there
        to load; (None, False) for an ordinary checkpoint, a hub file, or the cache off."""
        gguf = Path(self.config.model) / self.config.gguf_file
        if not (self.config.gguf_file and self.config.gguf_cache_dir and gguf.is_file()):
            return None, False
        return cached_copy(Path(self.config.gguf_cache_dir), gguf)

    def _eos_ids(self, model: Any) -> set[int]:
        ids: set[int] = set()
        for value in (getattr(model.generation_config, "eos_token_id", None), self._tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(value)
        return ids

    # -- generation --------------------------------------------------------

    def submit(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        should_stop: Callable[[], bool],
        emit: Callable[[Event], None],
        bounded: bool = True,
    ) -> None:
        """Validates, then queues the generation; `emit` then gets its text deltas
        and one GenerationEnd (or a GenerationError), from the scheduler's thread.
        Blocking (it may load the model): call it off the event loop. Raises
        InvalidArgument for a bad request, ResourceExhausted when the queue is full."""
        max_new_tokens = self._check_params(messages, params)
        self.scheduler.touch()
        self.load()  # lazy mode, or after an unload: the tokenizer and context length come with it
        loaded = self._loaded
        prompt_ids = self._prompt_ids([{"role": m.role, "content": m.content} for m in messages], max_new_tokens)
        eos_ids = loaded.eos_ids if loaded is not None else frozenset()
        sequence = GenerationSequence(
            prompt_ids, params, max_new_tokens, should_stop, emit, self._decode, eos_ids, self.device
        )
        self.scheduler.submit(sequence, bounded)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        should_stop: Callable[[], bool] = lambda: False,
        bounded: bool = True,
    ) -> Iterator[TextDelta | GenerationEnd]:
        """Text deltas, then one GenerationEnd: submit() as a blocking iterator (for
        scripts, benchmarks and warm-up). Leaving the loop early stops the generation."""
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        left = threading.Event()
        self.submit(messages, params, lambda: left.is_set() or should_stop(), events.put, bounded)
        try:
            while True:
                event = events.get()
                if isinstance(event, GenerationError):
                    raise event.error
                yield event
                if isinstance(event, GenerationEnd):
                    return
        finally:
            left.set()

    def choice_probabilities(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> tuple[list[float], int]:
        """P(the reply begins with each choice), and the prompt's tokens. Runs on the scheduler's
        thread between decode steps (the model is the batch's). Blocking: call it off the event loop."""
        self._check_messages(messages)
        if not 1 <= len(choices) <= MAX_CHOICES:
            raise InvalidArgument(f"{len(choices)} choices; send 1 to {MAX_CHOICES}")
        for index, choice in enumerate(choices):
            if not choice or len(choice) > MAX_CHOICE_CHARS:
                raise InvalidArgument(
                    f"choices[{index}] is {len(choice)} characters; 1 to {MAX_CHOICE_CHARS} are accepted"
                )
        if len(set(choices)) != len(choices):
            raise InvalidArgument("choices repeat: each choice is asked once")
        self.scheduler.touch()
        self.load()
        choice_ids = [self._continuation_ids(choice) for choice in choices]
        prompt_ids = self._prompt_ids(
            [{"role": m.role, "content": m.content} for m in messages], max(len(ids) for ids in choice_ids)
        )
        probabilities = self.scheduler.call(lambda: self.runner().choice_probabilities(prompt_ids, choice_ids))
        return probabilities, int(prompt_ids.shape[1])

    def _continuation_ids(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _check_messages(self, messages: Sequence[ChatMessage]) -> None:
        if not messages:
            raise InvalidArgument("messages is empty: send at least one chat message")
        for index, message in enumerate(messages):
            if message.role not in ROLES:
                raise InvalidArgument(f"messages[{index}].role is {message.role!r}; allowed roles: {', '.join(ROLES)}")

    def _check_params(self, messages: Sequence[ChatMessage], params: GenerationParams) -> int:
        self._check_messages(messages)
        limit = self.config.max_new_tokens_limit
        if params.max_new_tokens > limit:
            raise InvalidArgument(f"max_new_tokens is {params.max_new_tokens}, over the limit of {limit}")
        if not math.isfinite(params.temperature) or params.temperature < 0:
            raise InvalidArgument(
                f"temperature is {params.temperature}; it must be a finite number >= 0 (0 = greedy decoding)"
            )
        if not math.isfinite(params.top_p) or not 0 <= params.top_p <= 1:
            raise InvalidArgument(f"top_p is {params.top_p}; it must be within [0, 1] (0 = 1.0, no filtering)")
        if len(params.stop) > self.config.max_stop_sequences:
            raise InvalidArgument(
                f"{len(params.stop)} stop sequences; at most {self.config.max_stop_sequences} are accepted"
            )
        for index, stop in enumerate(params.stop):
            if not stop:
                raise InvalidArgument(f"stop[{index}] is an empty string")
        return params.max_new_tokens or self.config.default_max_new_tokens

    def _prompt_ids(self, messages: list[dict[str, str]], max_new_tokens: int) -> torch.Tensor:
        ids = self._encode(messages)
        prompt_tokens = ids.shape[1]
        total = prompt_tokens + max_new_tokens
        context = self._context_length
        if context and total > context:
            raise InvalidArgument(
                f"prompt is {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}: "
                f"{total} in all, over the model's context of {context} tokens"
            )
        budget = self.config.batch.max_tokens
        if total > budget:
            raise InvalidArgument(
                f"prompt is {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}: "
                f"{total} in all, over the batch token budget of {budget} (max_batch_tokens)"
            )
        return ids

    def _encode(self, messages: list[dict[str, str]]) -> torch.Tensor:
        with self._tokenizer_lock:  # fast tokenizers refuse concurrent use ("Already borrowed")
            if getattr(self._tokenizer, "chat_template", None):
                encoded = self._tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
                return encoded["input_ids"]
            # A base model without a template: plain "role: content" lines.
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            return self._tokenizer(text, return_tensors="pt")["input_ids"]

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self._tokenizer.decode(ids, skip_special_tokens=True)


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)
