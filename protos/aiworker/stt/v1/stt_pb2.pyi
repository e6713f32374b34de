from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeRequest(_message.Message):
    __slots__ = ("audio", "language", "context")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    language: str
    context: SpeechContext
    def __init__(self, audio: _Optional[bytes] = ..., language: _Optional[str] = ..., context: _Optional[_Union[SpeechContext, _Mapping]] = ...) -> None: ...

class SpeechContext(_message.Message):
    __slots__ = ("prompt", "hotwords")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    hotwords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompt: _Optional[str] = ..., hotwords: _Optional[_Iterable[str]] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("start", "end", "text")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    text: str
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("text", "segments", "language", "duration_s", "model", "context_used")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_USED_FIELD_NUMBER: _ClassVar[int]
    text: str
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    language: str
    duration_s: float
    model: str
    context_used: bool
    def __init__(self, text: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., language: _Optional[str] = ..., duration_s: _Optional[float] = ..., model: _Optional[str] = ..., context_used: _Optional[bool] = ...) -> None: ...

class SegmentDone(_message.Message):
    __slots__ = ("segment", "duration_s")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    duration_s: float
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ..., duration_s: _Optional[float] = ...) -> None: ...

class RecognizeStreamResponse(_message.Message):
    __slots__ = ("segment", "done")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    segment: SegmentDone
    done: RecognizeResponse
    def __init__(self, segment: _Optional[_Union[SegmentDone, _Mapping]] = ..., done: _Optional[_Union[RecognizeResponse, _Mapping]] = ...) -> None: ...
