"""Bodies of the OpenAI-compatible routes, in OpenAI's field names. A request
field OpenAI has and this server cannot honour is declared loosely (`Any`) so
that its value parses and the route refuses it with a 400 that names it (a
neutral value, such as `n: 1` or `tools: []`, is accepted); a field OpenAI does
not have is refused as unrecognised."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

_UNSUPPORTED = "not supported by this server: only its neutral value (null, false, 0, [] or the default) is accepted"
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit of texts per embeddings request
_NULL = {"type": "null"}
_EMPTY_LIST = {"type": ["array", "null"], "maxItems": 0}


def _neutral(accepted: dict[str, Any]) -> Any:
    """A field OpenAI has and this server cannot honour: any value parses, so that the route
    refuses a value other than the neutral one with a 400 that names the field; the schema
    documents the values accepted."""
    return Field(None, description=_UNSUPPORTED, json_schema_extra=accepted)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- models ---------------------------------------------------------------------


class ModelObject(BaseModel):
    id: str = Field(description="the name to send as `model`")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time this gateway first saw the model served")
    owned_by: str = "aiworker"
    service: str = Field(description="the model service serving it: embedder, llm or stt")
    device: str | None = Field(description="where it runs (cpu, cuda:0, …), from the service's health check")
    state: str = Field(
        description="loaded; or, for the LLM, unloaded or loading (it is served all the same: the first "
        "request loads it)"
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


# -- embeddings -----------------------------------------------------------------


class EmbeddingRequest(_Request):
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description=f"a text or a list of texts (at most {MAX_EMBEDDING_INPUTS}); token arrays are refused (400): this "
        "embedder's tokenizer is not OpenAI's",
        # Token arrays parse, so that the route refuses them by name; the schema documents texts.
        json_schema_extra={
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_EMBEDDING_INPUTS},
            ]
        },
    )
    model: str = Field(description="the served embedding model's name (GET /v1/models)")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: each vector's little-endian float32 bytes"
    )
    dimensions: int | None = Field(None, ge=1, description="accepted only when equal to the model's")
    user: str | None = Field(None, description="accepted and ignored")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="L2-normalised; base64 of float32 LE when asked for")
    truncated: bool = Field(
        False, description="true: the text was longer than the model's token window; only its beginning was embedded"
    )


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    estimated: bool = Field(
        description="true: an approximation of the embedder's own tokenizer (the service does not report token "
        "counts yet); exact for truncated texts (the model's window)"
    )


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# -- chat -----------------------------------------------------------------------


class ContentPart(BaseModel):
    # Any part parses, so that the route names the one it refuses; the schema documents text parts.
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    type: str = Field(description="only text parts are accepted", json_schema_extra={"enum": ["text"]})
    text: str = ""


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"] = Field(
        description="system (developer is taken as system), user or assistant; tool and function are refused",
        json_schema_extra={"enum": ["system", "developer", "user", "assistant"]},
    )
    content: str | list[ContentPart] = Field(description="a string, or text parts (joined)")
    name: str | None = Field(None, description="accepted and ignored")
    # What clients send back with an assistant message they received: accepted when empty.
    tool_calls: Any = _neutral(_EMPTY_LIST)
    tool_call_id: Any = _neutral(_NULL)
    function_call: Any = _neutral(_NULL)
    audio: Any = _neutral(_NULL)
    refusal: str | None = Field(None, description="accepted and ignored")
    annotations: list[Any] | None = Field(None, description="accepted and ignored")


class StreamOptions(_Request):
    include_usage: bool | None = Field(None, description="a last chunk with the usage and no choices")
    include_obfuscation: bool | None = Field(None, description="accepted and ignored (no obfuscation is added)")


class ChatCompletionRequest(_Request):
    model: str = Field(description="the served LLM's name (GET /v1/models)")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="tokens to generate at most (the service's default: 256)")
    max_completion_tokens: int | None = Field(None, ge=1, description="the same; wins over max_tokens")
    temperature: float | None = Field(None, ge=0, le=2, description="default 1 as OpenAI's; 0 = greedy decoding")
    top_p: float | None = Field(None, ge=0, le=1, description="nucleus sampling; default 1 (none); 0 = greedy")
    stop: str | Annotated[list[str], Field(max_length=4)] | None = Field(
        None, description="up to 4 strings; the text ends before any of them"
    )
    seed: int | None = Field(None, description="for reproducible sampling")
    n: Any = _neutral({"enum": [1, None]})
    stream: bool | None = Field(None, description="true: Server-Sent Events of chat.completion.chunk, then [DONE]")
    stream_options: StreamOptions | None = Field(None, description="only with stream: true")
    user: str | None = Field(None, description="accepted and ignored")
    metadata: dict[str, str] | None = Field(None, description="accepted and ignored")
    service_tier: str | None = Field(None, description="accepted and ignored")
    prompt_cache_key: str | None = Field(None, description="accepted and ignored")
    safety_identifier: str | None = Field(None, description="accepted and ignored")
    store: Any = _neutral({"enum": [False, None]})
    frequency_penalty: Any = _neutral({"enum": [0, None]})
    presence_penalty: Any = _neutral({"enum": [0, None]})
    logit_bias: Any = _neutral({"type": ["object", "null"], "maxProperties": 0})
    logprobs: Any = _neutral({"enum": [False, None]})
    top_logprobs: Any = _neutral({"enum": [0, None]})
    tools: Any = _neutral(_EMPTY_LIST)
    tool_choice: Any = _neutral({"enum": ["none", "auto", None]})
    parallel_tool_calls: bool | None = Field(None, description="accepted and ignored (no tools are)")
    functions: Any = _neutral(_EMPTY_LIST)
    function_call: Any = _neutral({"enum": ["none", "auto", None]})
    response_format: Any = _neutral(
        {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"type": {"const": "text"}},
                    "required": ["type"],
                    "additionalProperties": False,
                },
                _NULL,
            ]
        }
    )
    modalities: Any = _neutral(
        {"anyOf": [{"type": "array", "items": {"const": "text"}, "minItems": 1, "maxItems": 1}, _NULL]}
    )
    audio: Any = _neutral(_NULL)
    prediction: Any = _neutral(_NULL)
    reasoning_effort: Any = _neutral(_NULL)
    verbosity: Any = _neutral(_NULL)
    web_search_options: Any = _neutral(_NULL)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length"]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage


# -- audio ----------------------------------------------------------------------


class TranscriptionForm(_Request):
    file: UploadFile = Field(description="the audio: any container FFmpeg decodes (wav, mp3, flac, ogg, m4a, …)")
    model: str = Field(description="the served STT model's name (GET /v1/models)")
    language: str = Field("", description="ISO 639-1 hint, e.g. en; empty = detect")
    prompt: str = Field(
        "",
        description="text the audio continues, as it should be spelled (names, terms): Whisper reads it as if "
        "it had been said just before the audio",
    )
    response_format: Literal["json", "text", "verbose_json", "srt", "vtt"] = "json"
    temperature: float = Field(0.0, ge=0, le=0, description="only 0 (the STT decodes with beam search)")
    timestamp_granularities: list[Literal["segment"]] | None = Field(
        None, alias="timestamp_granularities[]", description="only segment (in verbose_json)"
    )


class Transcription(BaseModel):
    text: str


class TranscriptionSegment(BaseModel):
    id: int
    start: float = Field(description="seconds")
    end: float
    text: str


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str = Field(description="the ISO 639-1 code (OpenAI's reply spells the name out)")
    duration: float = Field(description="seconds of audio")
    text: str
    segments: list[TranscriptionSegment]
