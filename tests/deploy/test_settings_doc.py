"""The README's settings tables are generated from the settings classes; this
fails when a setting was added, renamed or changed without regenerating them
(`python -m aiworker_local.settings_doc`)."""

from pathlib import Path

from aiworker_local.settings_doc import BEGIN, END, render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_tables_are_current():
    text = README.read_text()
    assert BEGIN in text and END in text
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    assert current == render(), "README settings are stale: regenerate with python -m aiworker_local.settings_doc"


def test_every_component_is_documented():
    for prefix in ("AIWORKER_PARSER_", "AIWORKER_EMBEDDER_", "AIWORKER_LLM_", "AIWORKER_STT_", "AIWORKER_GATEWAY_",
                   "AIWORKER_BROKER_URL", "AIWORKER_TRACKING_ENABLED"):
        assert f"`{prefix}" in render()
