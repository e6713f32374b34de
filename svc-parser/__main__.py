"""`aiworker-parser` / `python -m svc_parser`: serve the PDF parser."""

from __future__ import annotations

from collections.abc import Sequence

from svc_parser.settings import ParserSettings
from svc_runtime.cli import settings_from_cli
from svc_runtime.server import serve


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_cli(ParserSettings, argv, prog="aiworker-parser")
    from svc_parser.servicer import ParserServicer  # PyMuPDF loads after --help

    serve(settings, ParserServicer)


if __name__ == "__main__":
    main()
