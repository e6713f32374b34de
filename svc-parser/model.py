"""PDF parsing with PyMuPDF. Knows nothing of gRPC: raises domain errors with a
message that says what is wrong with the document."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pymupdf

from svc_runtime.errors import InvalidArgument

log = logging.getLogger(__name__)

_HEADER_WINDOW = 1024  # the PDF spec lets %PDF- appear within the first 1 KiB
# Bytes that may follow the last %%EOF: line ends, and the NUL or space padding some
# scanners and mail gateways append.
_PADDING = b" \t\r\n\x00\x0c"


@dataclass
class ParsedPdf:
    pages: list[tuple[int, str]] = field(default_factory=list)
    title: str = ""
    author: str = ""
    page_count: int = 0
    encrypted: bool = False
    has_text: bool = False
    truncated: bool = False


class PdfParser:
    def __init__(self, max_bytes: int, max_pages: int) -> None:
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        # MuPDF contexts are not thread-safe: one document at a time per process.
        self._lock = threading.Lock()

    def parse(self, data: bytes, max_pages: int | None = None) -> ParsedPdf:
        self._check_bytes(data)
        limit = self.max_pages if not max_pages else min(max_pages, self.max_pages)
        with self._lock:
            return self._parse(data, limit)

    def _check_bytes(self, data: bytes) -> None:
        if not data:
            raise InvalidArgument("empty PDF: the request carried no bytes")
        if len(data) > self.max_bytes:
            raise InvalidArgument(f"PDF too large: {len(data)} bytes, the limit is {self.max_bytes} bytes")
        if b"%PDF-" not in data[:_HEADER_WINDOW]:
            raise InvalidArgument("not a PDF: no %PDF- header in the first 1024 bytes")
        if not _ends_with_eof_marker(data):
            raise InvalidArgument("truncated PDF: no %%EOF marker at the end of the file (incomplete upload?)")

    def _parse(self, data: bytes, limit: int) -> ParsedPdf:
        try:
            doc = pymupdf.open(stream=data, filetype="pdf")
        except Exception as exc:
            raise InvalidArgument(f"corrupt PDF: {exc}") from exc
        with doc:
            if doc.needs_pass:
                raise InvalidArgument("encrypted PDF: a password is needed to open it")
            if doc.page_count == 0:
                raise InvalidArgument("corrupt PDF: no readable pages")
            meta = doc.metadata or {}
            result = ParsedPdf(
                title=(meta.get("title") or "").strip(),
                author=(meta.get("author") or "").strip(),
                page_count=doc.page_count,
                encrypted=bool(doc.is_encrypted or meta.get("encryption")),
                truncated=doc.page_count > limit,
            )
            for index in range(min(doc.page_count, limit)):
                try:
                    text = doc.load_page(index).get_text("text")
                except Exception as exc:
                    raise InvalidArgument(f"corrupt PDF: page {index + 1} cannot be read ({exc})") from exc
                result.pages.append((index + 1, text.strip()))
            result.has_text = any(text for _, text in result.pages)
            if doc.is_repaired:
                log.warning("pdf_repaired", extra={"pages": result.page_count})
        return result


def _ends_with_eof_marker(data: bytes) -> bool:
    """The last %%EOF is followed by nothing but padding. MuPDF silently repairs a cut-off
    file and returns part of its text; a cut-off upload must be refused instead."""
    end = data.rfind(b"%%EOF")
    return end >= 0 and not data[end + len(b"%%EOF") :].strip(_PADDING)


def sample_pdf(pages: list[str], title: str = "", author: str = "") -> bytes:
    """A small text PDF (warm-up, tests, samples)."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 770), text, fontsize=11)
    doc.set_metadata({"title": title, "author": author})
    data = doc.tobytes()
    doc.close()
    return data
