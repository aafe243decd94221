"""The package's layering holds: who may import whom, where argparse lives, file sizes.

See docs/design.md. Parts import no task code; data/ and models/ import only parts;
inference never imports the trainer; argparse and Namespaces stay in textrnn/cli/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "textrnn"
PARTS = ("attention", "cells", "collate", "crf", "decode", "device", "errors", "layers",
         "live_rows", "losses", "metrics", "mlp", "progress", "ragged", "rounding", "tokenize",
         "vocab")
TASK_CODE = ("textrnn.data", "textrnn.models", "textrnn.pipelines", "textrnn.cli",
             "textrnn.train", "textrnn.checkpoint", "textrnn.chat", "textrnn.sessions",
             "textrnn.serve")
MAX_LINES = 450


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (``from a.b import c`` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def name_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


@pytest.mark.parametrize("part", PARTS)
def test_parts_import_no_task_code(part):
    path = PACKAGE / f"{part}.py"
    if not path.is_file():
        pytest.skip(f"{part}.py is not there")
    bad = {n for n in imports(path) for t in TASK_CODE if n == t or n.startswith(t + ".")}
    assert not bad, f"{part}.py imports {sorted(bad)}"


@pytest.mark.parametrize("folder", ["data", "models"])
def test_data_and_models_import_only_parts(folder):
    allowed = {f"textrnn.{p}" for p in PARTS} | {f"textrnn.{folder}", "textrnn"}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        ours = {n for n in imports(path) if n.startswith("textrnn.")}
        bad = {n for n in ours if not any(n == a or n.startswith(a + ".") for a in allowed)}
        assert not bad, f"{name_of(path)} imports {sorted(bad)}"


def test_argparse_only_in_the_cli():
    for path in modules():
        if path.parent.name == "cli":
            continue
        assert "argparse" not in imports(path), f"{name_of(path)} imports argparse"
        assert "Namespace" not in path.read_text(encoding="utf-8"), name_of(path)


def test_inference_never_imports_the_trainer():
    for path in modules():
        if path.parent.name == "cli" or path.name == "train.py":
            continue
        assert "textrnn.train" not in imports(path), f"{name_of(path)} imports textrnn.train"


def test_no_print_in_library_code():
    """Library code returns values and raises errors; the CLI prints (the terminal chat
    lives in cli/terminal.py)."""
    for path in modules():
        if path.parent.name == "cli" or path.name in ("__main__.py", "progress.py"):
            continue
        calls = [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]
        assert not calls, f"{name_of(path)} prints at line {calls[0].lineno}"


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_file_over_the_limit(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name_of(path)} has {lines} lines"
