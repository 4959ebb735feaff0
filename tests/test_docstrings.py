"""Every public definition says what it is for (as nbclient's full docstring coverage does)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "backfill_lab").rglob("*.py"), *(ROOT / "grader").rglob("*.py")])


def _undocumented(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    missing = [] if ast.get_docstring(tree) else ["<module>"]

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = child.name
                public = not name.startswith("_")
                overload = any(getattr(d, "id", getattr(d, "attr", "")) == "overload"
                               for d in getattr(child, "decorator_list", []))
                if (public and not overload and not name.startswith("__")
                        and ast.get_docstring(child) is None):
                    missing.append(prefix + name)
                if isinstance(child, ast.ClassDef) and not name.startswith("_"):
                    visit(child, f"{prefix}{name}.")

    visit(tree, "")
    return missing


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_public_definition_has_a_docstring(path: Path) -> None:
    missing = _undocumented(path)
    assert not missing, f"{path.relative_to(ROOT)}: no docstring on {missing}"
