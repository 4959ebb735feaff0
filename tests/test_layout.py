"""The folder layout is the architecture: each room imports only the rooms below it.

engine (backfill_lab/*.py) <- demo/, display/ <- course/ <- cli/, grader/
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "backfill_lab"
ROOMS = ("demo", "display", "course", "cli")
# what each room may import from backfill_lab (the engine is the room "")
ALLOWED = {
    "": {""},
    "demo": {"", "demo"},
    "display": {"", "display"},
    "course": {"", "demo", "display", "course"},
    "cli": {"", "demo", "display", "course", "cli"},
}
MAX_LINES = 450


def _room(module: str) -> str:
    """The room of a dotted module under backfill_lab ('' for the engine)."""
    parts = module.split(".")[1:]
    return parts[0] if parts and parts[0] in ROOMS else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every backfill_lab module that ``path`` imports, resolved to absolute dotted names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("backfill_lab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("backfill_lab"):
                continue
            found.add(target)
            # "from . import x" / "from .course import exercises" name submodules
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if (PKG.parent / (candidate.replace(".", "/") + ".py")).exists() or (
                        PKG.parent / candidate.replace(".", "/")).is_dir():
                    found.add(candidate)
    return found


SOURCES = sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_rooms_import_only_the_rooms_below(path: Path) -> None:
    room = _room(_module_name(path))
    bad = sorted(m for m in _imports(path) if m != "backfill_lab" and _room(m) not in ALLOWED[room])
    assert not bad, f"{path.relative_to(ROOT)} ({room or 'engine'}) must not import {bad}"


def test_grader_uses_the_learner_api_and_the_course_only() -> None:
    """The grader sees the engine's public modules and the course; nothing private, no widget.
    The exceptions: both commands share one argument parser (``backfill_lab.cli.parse``), so
    their usage errors read the same; and the grader's HTML feedback draws the replay's grid
    with the renderer the notebooks use (``backfill_lab.display.render``), never a copy."""
    bad = {}
    for path in sorted((ROOT / "grader").rglob("*.py")):
        outside = sorted(m for m in _imports(path) if m not in SHARED_WITH_GRADER and (
            _room(m) not in ("", "course")
            or (_room(m) == "" and m != "backfill_lab" and m.split(".")[1] not in _ENGINE_PUBLIC)))
        if outside:
            bad[path.name] = outside
    assert not bad, f"grader modules reach past backfill_lab and backfill_lab.course: {bad}"


# the grader's feedback draws the partition grid with the notebooks' own renderer (issue 17)
SHARED_WITH_GRADER = {"backfill_lab.cli.parse", "backfill_lab.display.render"}
_ENGINE_PUBLIC = {p.stem for p in PKG.glob("*.py") if not p.stem.startswith("_")}


@pytest.mark.parametrize("path", sorted([*PKG.rglob("*.py"), *(ROOT / "grader").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_no_flat_module_left_behind() -> None:
    """The engine room holds only engine modules; course and display code lives in its room."""
    engine = {p.stem for p in PKG.glob("*.py")}
    assert engine == {
        "__init__", "errors", "clock", "partitions", "_db", "pipeline", "warehouse", "ledger",
        "faults", "validations", "snapshots", "versions", "runner", "_dag", "scheduler", "plan",
        "_yaml", "export", "planrun", "status", "report", "distributions", "validation_config",
        "options", "steps", "evaluate", "schedule", "_writes", "preflight", "pins",
    }
