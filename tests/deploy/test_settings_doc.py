"""The README's generated tables: the settings (from the settings classes) and
the pipelines (from the registry). These fail when either changed without
regenerating them (`python -m aiworker_local.settings_doc --write`,
`python -m aiworker_local.pipelines_doc --write`)."""

from pathlib import Path

from aiworker_local import pipelines_doc
from aiworker_local.settings_doc import BEGIN, END, render
from orchestrator.pipelines.registry import PIPELINES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_tables_are_current():
    text = README.read_text()
    assert BEGIN in text and END in text
    current = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert current == render(), "README settings are stale: regenerate with python -m aiworker_local.settings_doc"


def test_every_component_is_documented():
    for prefix in (
        "AIWORKER_PARSER_",
        "AIWORKER_EMBEDDER_",
        "AIWORKER_LLM_",
        "AIWORKER_STT_",
        "AIWORKER_GATEWAY_",
        "AIWORKER_BROKER_URL",
        "AIWORKER_TRACKING_ENABLED",
    ):
        assert f"`{prefix}" in render()


def test_readme_pipeline_table_is_current():
    text = README.read_text()
    begin, end = pipelines_doc.BEGIN, pipelines_doc.END
    assert begin in text and end in text
    current = text[text.index(begin) : text.index(end) + len(end)]
    assert current == pipelines_doc.render(), "stale: regenerate with python -m aiworker_local.pipelines_doc --write"


def test_every_registered_pipeline_and_stage_is_in_the_table():
    table = pipelines_doc.render()
    for spec in PIPELINES.values():
        if spec.stages[0].run.__module__.startswith("orchestrator."):
            assert f"| `{spec.name}` |" in table
            assert all(f"`{stage.name}`" in table for stage in spec.stages)
