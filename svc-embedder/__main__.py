"""`aiworker-embedder` / `python -m svc_embedder`: serve the text embedder."""

from __future__ import annotations

from collections.abc import Sequence

from svc_embedder.settings import EmbedderSettings
from svc_runtime.cli import settings_from_cli
from svc_runtime.server import serve


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_cli(EmbedderSettings, argv, prog="aiworker-embedder")
    from svc_embedder.servicer import EmbedderServicer  # torch loads after --help

    serve(settings, EmbedderServicer)


if __name__ == "__main__":
    main()
