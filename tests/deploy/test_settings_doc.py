"""The generated reference pages: docs/reference/settings.md (from the settings
classes) and docs/reference/pipelines.md (from the registry). These fail when
either changed without regenerating them (`python -m aiworker_local.settings_doc
--write`, `python -m aiworker_local.pipelines_doc --write`)."""

import subprocess
import sys

from aiworker_local import pipelines_doc, settings_doc
from aiworker_local.settings_doc import current_block, render
from orchestrator.pipelines.registry import PIPELINES


def test_settings_reference_is_current():
    current = current_block(settings_doc.BEGIN, settings_doc.END, settings_doc.PAGE)
    assert current, f"{settings_doc.PAGE} has lost its generated block's markers"
    assert current == render(), "docs/reference/settings.md is stale: python -m aiworker_local.settings_doc --write"


def test_every_component_is_documented():
    for prefix in (
        "AIWORKER_PARSER_",
        "AIWORKER_EMBEDDER_",
        "AIWORKER_LLM_",
        "AIWORKER_STT_",
        "AIWORKER_GATEWAY_",
        "AIWORKER_EXPORTER_",
        "AIWORKER_BROKER_URL",
        "AIWORKER_TRACKING_ENABLED",
    ):
        assert f"`{prefix}" in render()


def test_pipeline_reference_is_current():
    current = current_block(pipelines_doc.BEGIN, pipelines_doc.END, pipelines_doc.PAGE)
    assert current, f"{pipelines_doc.PAGE} has lost its generated block's markers"
    assert current == pipelines_doc.render(), "stale: python -m aiworker_local.pipelines_doc --write"


def test_every_registered_pipeline_and_stage_is_in_the_table():
    table = pipelines_doc.render()
    for spec in PIPELINES.values():
        if spec.stages[0].run.__module__.startswith("orchestrator."):
            assert f"| `{spec.name}` |" in table
            assert all(f"`{stage.name}`" in table for stage in spec.stages)


def test_check_mode_says_stale_and_write_mends_it(tmp_path):
    """`--check` exits 1 on a page whose block differs, `--write` makes it current."""
    page = tmp_path / "settings.md"
    page.write_text(f"# Settings\n\nintro\n\n{settings_doc.BEGIN}\nold\n{settings_doc.END}\n\nafter\n")
    args = (settings_doc.BEGIN, settings_doc.END, render(), page)
    assert settings_doc.main(["--check"], *args) == 1
    assert settings_doc.main(["--write"], *args) == 0
    assert settings_doc.main(["--check"], *args) == 0
    text = page.read_text()
    assert text.startswith("# Settings\n\nintro\n\n") and text.endswith("\n\nafter\n")


def test_the_modules_run_in_check_mode():
    for module in ("aiworker_local.settings_doc", "aiworker_local.pipelines_doc"):
        result = subprocess.run([sys.executable, "-m", module, "--check"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
