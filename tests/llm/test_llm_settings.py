"""Settings: the bundled model by default, env prefix, flags over env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from svc_llm.settings import BUNDLED_GGUF_FILE, LlmSettings


def test_defaults_point_at_the_bundled_gguf(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AIWORKER_LLM_"):
            monkeypatch.delenv(name)
    settings = LlmSettings()
    assert (Path(settings.model) / settings.gguf_file).is_file()
    assert settings.gguf_file == BUNDLED_GGUF_FILE
    assert (settings.port, settings.metrics_port, settings.device, settings.load_mode) == (50053, 9153, "auto", "eager")
    assert settings.display_name == BUNDLED_GGUF_FILE.removesuffix(".gguf")


def test_another_model_by_env_is_an_ordinary_checkpoint(monkeypatch):
    monkeypatch.setenv("AIWORKER_LLM_MODEL", "Qwen/Qwen2.5-0.5B-Instruct")
    monkeypatch.setenv("AIWORKER_LLM_LOAD_MODE", "lazy")
    settings = LlmSettings()
    assert settings.model == "Qwen/Qwen2.5-0.5B-Instruct" and settings.gguf_file == ""
    assert settings.load_mode == "lazy"
    assert settings.display_name == "Qwen/Qwen2.5-0.5B-Instruct"


def test_default_max_new_tokens_may_not_exceed_the_limit():
    with pytest.raises(ValidationError, match="over max_new_tokens_limit"):
        LlmSettings(default_max_new_tokens=500, max_new_tokens_limit=100)
