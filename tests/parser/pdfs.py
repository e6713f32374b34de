"""PDFs the tests generate: text, scanned-like (image only), encrypted, broken."""

from __future__ import annotations

import pymupdf

from svc_parser.model import sample_pdf

__all__ = ["sample_pdf", "image_only_pdf", "encrypted_pdf", "owner_locked_pdf"]


def image_only_pdf() -> bytes:
    """Like a scan: a page holding a picture, no text layer."""
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    pix.clear_with(200)
    doc = pymupdf.open()
    doc.new_page().insert_image(pymupdf.Rect(72, 72, 272, 272), pixmap=pix)
    data = doc.tobytes()
    doc.close()
    return data


def encrypted_pdf(user_password: str = "u") -> bytes:
    doc = pymupdf.open(stream=sample_pdf(["confidential text"]), filetype="pdf")
    data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=user_password, owner_pw="owner")
    doc.close()
    return data


def owner_locked_pdf() -> bytes:
    """Encrypted with an owner password only: opens without a password."""
    return encrypted_pdf(user_password="")
