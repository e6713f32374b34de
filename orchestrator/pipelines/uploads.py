"""Checks of uploaded files before they enter the blob store: size, declared
content type against what the bytes are, and a safe display filename."""

from __future__ import annotations

import codecs
import io
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from svc_runtime.errors import InvalidArgument, TooLarge

PDF_TYPES = {"application/pdf"}
TEXT_TYPES = {"text/plain", "text/markdown"}
AUDIO_TYPES = {
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/mpeg",
    "audio/mp3",
    "audio/flac",
    "audio/x-flac",
    "audio/ogg",
    "audio/opus",
    "audio/mp4",
    "audio/x-m4a",
    "audio/m4a",
    "audio/aac",
    "audio/webm",
    "video/webm",
    "application/octet-stream",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*\\]")


def safe_filename(name: str | None) -> str:
    """The last path component, without control or shell-special characters,
    at most 255 characters ("../../etc/passwd" → "passwd")."""
    name = unicodedata.normalize("NFC", name or "")
    name = os.path.basename(name.replace("\\", "/"))
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:255] or "upload"


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@dataclass
class IncomingFile:
    """An uploaded file as the checks and the blob store read it: a seekable file
    (a spooled temporary file for REST uploads), never required whole in memory."""

    file: BinaryIO
    size: int
    filename: str = ""
    content_type: str = ""

    @classmethod
    def from_bytes(cls, data: bytes, filename: str = "", content_type: str = "") -> IncomingFile:
        return cls(io.BytesIO(data), len(data), filename, content_type)

    def head(self, size: int = 1024) -> bytes:
        self.file.seek(0)
        data = self.file.read(size)
        self.file.seek(0)
        return data

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        self.file.seek(0)
        yield from iter(lambda: self.file.read(size), b"")
        self.file.seek(0)


def check_size(upload: IncomingFile, limit: int, what: str) -> None:
    if not upload.size:
        raise InvalidArgument(f"{what}: the file is empty")
    if upload.size > limit:
        raise TooLarge(f"{what}: {upload.size} bytes, over the {limit}-byte upload limit")


def check_pdf(upload: IncomingFile, limit: int) -> str:
    check_size(upload, limit, "PDF")
    declared = _base_type(upload.content_type)
    if declared not in PDF_TYPES | {"", "application/octet-stream"}:
        raise InvalidArgument(f"PDF expected, got content type {declared!r}")
    _pdf_header(upload)
    return "application/pdf"


def _pdf_header(upload: IncomingFile) -> None:
    if b"%PDF-" not in upload.head(1024):
        raise InvalidArgument("not a PDF: no %PDF- header in the first 1024 bytes")


def check_document(upload: IncomingFile, limit: int) -> str:
    """A PDF or UTF-8 text; returns the content type the pipeline gets."""
    check_size(upload, limit, "document")
    declared = _base_type(upload.content_type)
    if declared in TEXT_TYPES:
        decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
        try:
            for chunk in upload.chunks():
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            at = offset + exc.start
            raise InvalidArgument(f"text document is not UTF-8 (invalid byte at offset {at})") from None
        return declared
    if declared in PDF_TYPES | {"", "application/octet-stream"}:
        _pdf_header(upload)
        return "application/pdf"
    raise InvalidArgument(f"unsupported document type {declared!r}: send application/pdf, text/plain or text/markdown")


def check_audio(upload: IncomingFile, limit: int) -> str:
    check_size(upload, limit, "audio")
    declared = _base_type(upload.content_type)
    if declared and declared not in AUDIO_TYPES:
        raise InvalidArgument(f"audio expected, got content type {declared!r}")
    return declared or "application/octet-stream"
