"""Checks of uploaded files before they enter the blob store: size, declared
content type against what the bytes are, and a safe display filename."""

from __future__ import annotations

import os
import re
import unicodedata

from svc_runtime.errors import InvalidArgument, TooLarge

PDF_TYPES = {"application/pdf"}
TEXT_TYPES = {"text/plain", "text/markdown"}
AUDIO_TYPES = {
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/flac",
    "audio/x-flac", "audio/ogg", "audio/opus", "audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac",
    "audio/webm", "video/webm", "application/octet-stream",
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


def check_size(data: bytes, limit: int, what: str) -> None:
    if not data:
        raise InvalidArgument(f"{what}: the file is empty")
    if len(data) > limit:
        raise TooLarge(f"{what}: {len(data)} bytes, over the {limit}-byte upload limit")


def check_pdf(data: bytes, content_type: str | None, limit: int) -> str:
    check_size(data, limit, "PDF")
    declared = _base_type(content_type)
    if declared not in PDF_TYPES | {"", "application/octet-stream"}:
        raise InvalidArgument(f"PDF expected, got content type {declared!r}")
    if b"%PDF-" not in data[:1024]:
        raise InvalidArgument("not a PDF: no %PDF- header in the first 1024 bytes")
    return "application/pdf"


def check_document(data: bytes, content_type: str | None, limit: int) -> str:
    """A PDF or UTF-8 text; returns the content type the pipeline gets."""
    check_size(data, limit, "document")
    declared = _base_type(content_type)
    if declared in TEXT_TYPES:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"text document is not UTF-8 (invalid byte at offset {exc.start})") from None
        return declared
    if declared in PDF_TYPES | {"", "application/octet-stream"}:
        return check_pdf(data, "application/pdf", limit)
    raise InvalidArgument(f"unsupported document type {declared!r}: send application/pdf, text/plain or text/markdown")


def check_audio(data: bytes, content_type: str | None, limit: int) -> None:
    check_size(data, limit, "audio")
    declared = _base_type(content_type)
    if declared and declared not in AUDIO_TYPES:
        raise InvalidArgument(f"audio expected, got content type {declared!r}")
