"""Navigation cells of the teaching notebooks, generated from their order and titles.

Every notebook in ``notebooks/`` named ``NN_name.ipynb`` (sorted by name; ``00`` is the index)
carries a navigation markdown cell under its title and another at its end. Such a cell starts
with ``<!-- nav -->`` and links to the previous notebook, the index and the next one, labelled
with each notebook's title (its first ``# `` heading). Adding, renaming or retitling a notebook
changes its neighbours' links; this script rewrites them so nobody edits links by hand.

    python tools/nav.py                  # rewrite every stale navigation cell
    python tools/nav.py --check          # exit 1 and list stale notebooks; change nothing
    python tools/nav.py notebooks/02_daily_backfill.ipynb   # rewrite only these notebooks

Plain JSON in and out (no nbformat import: this runs in a fast unit test). Files are written
the way nbformat writes them (indent 1, sorted keys, sources split into lines), so a rewrite
changes only the navigation lines.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "INDEX_LABEL",
    "NAV_MARKER",
    "NOTEBOOKS",
    "Entry",
    "check",
    "entries",
    "expected_navs",
    "is_nav_cell",
    "main",
    "nav_cell_positions",
    "nav_text",
    "notebook_title",
    "numbered_notebooks",
    "update",
]

NAV_MARKER = "<!-- nav -->"
INDEX_LABEL = "Index"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_NUMBERED = re.compile(r"^(\d{2})_[A-Za-z0-9_]+\.ipynb$")


@dataclass(frozen=True)
class Entry:
    """One numbered notebook: its file name, number and title (``01 · Mental model``)."""

    name: str
    number: str
    title: str

    @property
    def is_index(self) -> bool:
        return self.number == "00"


def numbered_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The ``NN_*.ipynb`` files of ``folder``, sorted by name (checkpoints are ignored)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and _NUMBERED.match(p.name))


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def notebook_title(nb: Mapping[str, Any], name: str = "notebook") -> str:
    """The text of the first ``# `` heading in a markdown cell: the title links show.

    >>> notebook_title({"cells": [{"cell_type": "markdown", "source": ["# 01 · Mental model\\n",
    ...                                                                  "intro"]}]})
    '01 · Mental model'
    """
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in _source(cell).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    raise ValueError(f"{name} has no title: add a markdown cell starting with '# NN · Title'")


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} is not valid notebook JSON: {exc.msg} at line "
                         f"{exc.lineno}") from None


def entries(paths: Sequence[Path]) -> list[Entry]:
    """An :class:`Entry` per notebook, in order."""
    return [Entry(p.name, p.name[:2], notebook_title(_read(p), p.name)) for p in paths]


def nav_text(items: Sequence[Entry], position: int) -> str:
    """The navigation cell of ``items[position]``: previous | Index | next, where they exist.

    The index's own cell has no "Index" link, and a notebook right after the index links back
    only once (as "Index").

    >>> items = [Entry("00_index.ipynb", "00", "00 · Start here"),
    ...          Entry("01_a.ipynb", "01", "01 · A"), Entry("02_b.ipynb", "02", "02 · B")]
    >>> print(nav_text(items, 2))
    <!-- nav -->
    [← 01 · A](01_a.ipynb) | [Index](00_index.ipynb)
    >>> print(nav_text(items, 1))
    <!-- nav -->
    [Index](00_index.ipynb) | [02 · B →](02_b.ipynb)
    >>> print(nav_text(items, 0))
    <!-- nav -->
    [01 · A →](01_a.ipynb)
    """
    here = items[position]
    index = next((e for e in items if e.is_index), None)
    links: list[str] = []
    if position > 0 and not items[position - 1].is_index:
        before = items[position - 1]
        links.append(f"[← {before.title}]({before.name})")
    if index is not None and not here.is_index:
        links.append(f"[{INDEX_LABEL}]({index.name})")
    if position + 1 < len(items):
        after = items[position + 1]
        links.append(f"[{after.title} →]({after.name})")
    return f"{NAV_MARKER}\n" + " | ".join(links)


def expected_navs(folder: Path = NOTEBOOKS) -> dict[str, str]:
    """File name -> the navigation text its cells should hold, for every numbered notebook."""
    items = entries(numbered_notebooks(folder))
    return {e.name: nav_text(items, i) for i, e in enumerate(items)}


def is_nav_cell(cell: Mapping[str, Any]) -> bool:
    return cell.get("cell_type") == "markdown" and _source(cell).startswith(NAV_MARKER)


def nav_cell_positions(nb: Mapping[str, Any]) -> list[int]:
    """Indexes of the navigation cells of a notebook."""
    return [i for i, cell in enumerate(nb.get("cells", [])) if is_nav_cell(cell)]


def _problem(nb: Mapping[str, Any], expected: str) -> str | None:
    """Why a notebook's navigation is stale, or None when it is fresh."""
    positions = nav_cell_positions(nb)
    if not positions:
        return f"no cell starting with {NAV_MARKER!r}"
    for i in positions:
        if _source(nb["cells"][i]).rstrip("\n") != expected:
            return f"cell {i} links differ from the notebook order"
    return None


def check(folder: Path = NOTEBOOKS) -> list[str]:
    """``'name: reason'`` for every notebook whose navigation cells are stale or missing."""
    out = []
    for name, expected in expected_navs(folder).items():
        problem = _problem(_read(folder / name), expected)
        if problem is not None:
            out.append(f"{name}: {problem}")
    return out


def _dumps(nb: Mapping[str, Any]) -> str:
    """JSON as nbformat writes it: indent 1, sorted keys, sources as lists of lines."""
    return json.dumps(nb, indent=1, sort_keys=True, separators=(",", ": "),
                      ensure_ascii=False) + "\n"


def update(folder: Path = NOTEBOOKS, only: Sequence[str] | None = None) -> list[str]:
    """Rewrite stale navigation cells; return the names of the notebooks changed.

    ``only`` limits the rewrite to these file names (the links still come from every notebook
    in ``folder``), so a change to one notebook need not touch files others are editing.
    """
    expected = expected_navs(folder)
    if only is not None:
        unknown = sorted(set(only) - set(expected))
        if unknown:
            known = ", ".join(expected) or "none"
            raise ValueError(f"not a numbered notebook of {folder}: {unknown[0]} (known: {known})")
    changed = []
    for name, text in expected.items():
        if only is not None and name not in only:
            continue
        path = folder / name
        nb = _read(path)
        if _problem(nb, text) is None or not nav_cell_positions(nb):
            continue
        for i in nav_cell_positions(nb):
            nb["cells"][i]["source"] = text.splitlines(keepends=True)
        path.write_text(_dumps(nb), encoding="utf-8")
        changed.append(name)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="list stale notebooks and exit 1 if any; change nothing")
    parser.add_argument("--folder", type=Path, default=NOTEBOOKS,
                        help="the notebooks folder (default: notebooks/ of this project)")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="rewrite only these notebooks (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = check(args.folder)
            for line in stale:
                print(f"stale: {line}")
            if stale:
                print("run: python tools/nav.py", file=sys.stderr)
            return 1 if stale else 0
        only = [p.name for p in args.notebooks] if args.notebooks else None
        missing = [n for n, expected in expected_navs(args.folder).items()
                   if (only is None or n in only)
                   and not nav_cell_positions(_read(args.folder / n))]
        for name in update(args.folder, only):
            print(f"updated: {name}")
        for name in missing:
            print(f"no nav cell (add a markdown cell starting with {NAV_MARKER!r}): {name}")
        return 1 if missing else 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
