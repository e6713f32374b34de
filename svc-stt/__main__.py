"""`aiworker-stt` / `python -m svc_stt`: serve speech-to-text."""

from __future__ import annotations

import os
from collections.abc import Sequence

from svc_runtime.cli import settings_from_cli
from svc_runtime.server import serve
from svc_stt.settings import SttSettings


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_cli(SttSettings, argv, prog="aiworker-stt")
    if not settings.allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub lookups, even from a library default
    from svc_stt.servicer import SttServicer  # faster-whisper and PyAV load after --help

    serve(settings, SttServicer)


if __name__ == "__main__":
    main()
