"""Build the learners' bundle: the workbook without solutions, without the quiz key.

The bundle holds what a learner needs to run ``make lab``: ``notebooks/``, ``exercises/``,
``backfill_lab/``, ``tools/``, ``environment.yml``, ``pyproject.toml``, ``Makefile``,
``README.md`` and ``.ci/``. It never holds ``solutions/`` or the grader. Before it is written,
``exercises/`` must be fresh (regenerated from ``solutions/``); after, every file of the bundle is
searched for solution markers and for the quiz key's explanations, and the build fails if one
is found.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from backfill_lab.course import registry

from .assign import main as assign_main

__all__ = ["CONTENTS", "leaks", "main"]

CONTENTS: tuple[str, ...] = ("notebooks", "exercises", "backfill_lab", "tools",
                             "environment.yml", "pyproject.toml", "Makefile", "README.md", ".ci")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.duckdb",
                              "*.duckdb.wal", "*.egg-info")
MARKER = ".backfill-release"
SOLUTION_MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")


def _key_texts(root: Path) -> list[str]:
    """The quiz key's explanations: text that exists only in the solution notebook."""
    path = root / "solutions" / registry.quiz_exercise().notebook
    if not path.is_file():
        return []
    key = json.loads(path.read_text(encoding="utf-8"))["metadata"].get(
        "backfill_lab", {}).get("key", {})
    return [str(entry["explanation"]) for entry in key.values() if entry.get("explanation")]


def leaks(bundle: Path, key_texts: list[str]) -> list[str]:
    """``path: what`` for every file in ``bundle`` that gives a solution away."""
    found = []
    if (bundle / "solutions").exists():
        found.append("solutions/: the solutions folder is in the bundle")
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for marker in SOLUTION_MARKERS:
            if marker in text:
                found.append(f"{rel}: contains {marker!r}")
        if '"key"' in text and path.suffix == ".ipynb":
            meta = json.loads(text).get("metadata", {}).get("backfill_lab", {})
            if "key" in meta:
                found.append(f"{rel}: notebook metadata holds the quiz key")
        for explanation in key_texts:
            if explanation in text:
                found.append(f"{rel}: contains a quiz key explanation "
                             f"({explanation[:40]!r}...)")
                break
    return found


def main(*, out: Path, root: Path) -> int:
    """Write the bundle to ``out`` (0); 1 when exercises are stale or a solution would leak;
    2 on a usage error (``out`` is a folder that is not an earlier bundle, a missing file)."""
    root, out = root.resolve(), out.resolve()
    if out == root or out.is_relative_to(root / "solutions"):
        print(f"error: cannot build the bundle in {out}; choose a folder outside the project's "
              "sources (e.g. dist/bundle)", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        print(f"error: {out} exists and is not an earlier bundle; choose an empty or new folder",
              file=sys.stderr)
        return 2
    missing = [name for name in CONTENTS if not (root / name).exists()]
    if missing:
        print(f"error: {root} has no {', '.join(missing)}; run this from the project",
              file=sys.stderr)
        return 2
    if assign_main(solutions=root / "solutions", exercises=root / "exercises", check=True):
        print("error: exercises/ is stale; run: backfill-grader assign", file=sys.stderr)
        return 1
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in CONTENTS:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=SKIP)
        else:
            shutil.copy2(source, out / name)
    (out / MARKER).write_text("built by backfill-grader release; safe to delete\n",
                              encoding="utf-8")
    # the bundle has no grader: drop its command and package from the learners' install
    project = out / "pyproject.toml"
    text = project.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines()
                     if not line.startswith("backfill-grader = ")) + "\n"
    project.write_text(text.replace('include = ["backfill_lab*", "grader*"]',
                                    'include = ["backfill_lab*"]'), encoding="utf-8")
    found = leaks(out, _key_texts(root))
    if found:
        for line in found:
            print(f"leak: {line}", file=sys.stderr)
        shutil.rmtree(out)
        print("error: the bundle would give solutions away; nothing was written",
              file=sys.stderr)
        return 1
    files = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"bundle: {out} ({files} files, no solutions, no quiz key)")
    return 0
