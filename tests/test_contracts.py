"""The generated stubs match the .proto files, import without post-processing,
and every package folder is part of the install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def test_stubs_are_current(tmp_path):
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    assert protos, "no .proto files found"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(PROTOS),
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *protos,
        ],
        check=True,
    )
    generated = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert generated
    stale = [
        str(p.relative_to(tmp_path))
        for p in generated
        if not (PROTOS / p.relative_to(tmp_path)).exists()
        or (PROTOS / p.relative_to(tmp_path)).read_bytes() != p.read_bytes()
    ]
    assert not stale, f"stubs are stale, run `make protos`: {stale}"


def test_generated_imports_work_as_installed():
    for module in ("parser", "embedder", "llm", "stt"):
        code = f"from aiworker.{module}.v1 import {module}_pb2, {module}_pb2_grpc"
        subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_every_package_folder_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
