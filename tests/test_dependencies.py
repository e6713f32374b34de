"""Dependencies run one way: services ← runtime; orchestrator core ← tracking ←
gateway. Read from each module's imports (also the ones inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("svc-parser", "svc-embedder", "svc-llm", "svc-stt")
# What assembles core and tracking (not core itself): the orchestrator's entry points, and
# the database migrations (one schema for the pipelines' tables and tracking's).
ENTRY_POINTS = {"orchestrator/worker.py", "orchestrator/celery_entry.py"}
MIGRATIONS = "orchestrator/storage/db/migrations"


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(folders: list[str], forbidden: tuple[str, ...], skip: set[str] = frozenset()) -> dict[str, list[str]]:
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative in skip or relative.startswith(MIGRATIONS):
                continue
            bad = sorted(n for n in imports_of(path) if n.startswith(forbidden))
            if bad:
                found[relative] = bad
    return found


def test_the_core_never_imports_tracking_or_the_gateway():
    core = [p for p in (ROOT / "orchestrator").iterdir() if p.name != "tracking" and (p.is_dir() or p.suffix == ".py")]
    found = {}
    for item in core:
        folder = str(item.relative_to(ROOT))
        if item.is_dir():
            found.update(offenders([folder], ("orchestrator.tracking", "gateway"), ENTRY_POINTS))
        elif folder not in ENTRY_POINTS:
            bad = sorted(n for n in imports_of(item) if n.startswith(("orchestrator.tracking", "gateway")))
            if bad:
                found[folder] = bad
    assert found == {}


def test_tracking_never_imports_the_gateway():
    assert offenders(["orchestrator/tracking"], ("gateway",)) == {}


def test_services_and_their_runtime_import_neither_orchestrator_nor_gateway():
    assert offenders([*SERVICES, "svc-runtime"], ("orchestrator", "gateway")) == {}


def test_the_scan_sees_imports():
    """The checks above would pass vacuously if the scan found nothing."""
    assert "orchestrator.tracking" in imports_of(ROOT / "orchestrator" / "worker.py")
    assert "orchestrator.tracking.pipeline_view" in imports_of(ROOT / "orchestrator" / "tracking" / "writer.py")
