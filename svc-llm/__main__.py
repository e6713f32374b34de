"""`aiworker-llm` / `python -m svc_llm`: serve the chat LLM."""

from __future__ import annotations

import os
from collections.abc import Sequence

from svc_llm.settings import LlmSettings
from svc_runtime.cli import settings_from_cli
from svc_runtime.server import serve


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_cli(LlmSettings, argv, prog="aiworker-llm")
    # Before transformers / huggingface_hub / tqdm are imported: they read these once.
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would break the JSON log lines
    from svc_llm.servicer import LlmServicer  # torch and transformers load after --help

    serve(settings, LlmServicer)


if __name__ == "__main__":
    main()
