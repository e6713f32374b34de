from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParsePdfRequest(_message.Message):
    __slots__ = ("pdf", "max_pages")
    PDF_FIELD_NUMBER: _ClassVar[int]
    MAX_PAGES_FIELD_NUMBER: _ClassVar[int]
    pdf: bytes
    max_pages: int
    def __init__(self, pdf: _Optional[bytes] = ..., max_pages: _Optional[int] = ...) -> None: ...

class Page(_message.Message):
    __slots__ = ("number", "text")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    number: int
    text: str
    def __init__(self, number: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class PdfMetadata(_message.Message):
    __slots__ = ("title", "author", "page_count", "encrypted")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    title: str
    author: str
    page_count: int
    encrypted: bool
    def __init__(self, title: _Optional[str] = ..., author: _Optional[str] = ..., page_count: _Optional[int] = ..., encrypted: _Optional[bool] = ...) -> None: ...

class ParsePdfResponse(_message.Message):
    __slots__ = ("pages", "metadata", "has_text", "truncated")
    PAGES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    HAS_TEXT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    pages: _containers.RepeatedCompositeFieldContainer[Page]
    metadata: PdfMetadata
    has_text: bool
    truncated: bool
    def __init__(self, pages: _Optional[_Iterable[_Union[Page, _Mapping]]] = ..., metadata: _Optional[_Union[PdfMetadata, _Mapping]] = ..., has_text: _Optional[bool] = ..., truncated: _Optional[bool] = ...) -> None: ...
