"""The teaching notebooks keep their shape: fresh navigation, learning goals, summary, self-check,
and no saved outputs. Plain JSON reading (no kernel, no nbformat), so this stays fast."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _load_nav() -> ModuleType:
    """tools/ is not a package: load tools/nav.py as a module by path."""
    spec = importlib.util.spec_from_file_location("backfill_nav", ROOT / "tools" / "nav.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


nav = _load_nav()
PATHS = nav.numbered_notebooks(NOTEBOOKS)
TEACHING = [p for p in PATHS if not p.name.startswith("00_")]


def _nb(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _src(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _markdown(nb: dict[str, Any]) -> list[str]:
    return [_src(c) for c in nb["cells"] if c["cell_type"] == "markdown"]


def _headings(nb: dict[str, Any]) -> list[str]:
    return [line.strip() for text in _markdown(nb) for line in text.splitlines()
            if line.startswith("#")]


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# -- the real notebooks ------------------------------------------------------------------------
def test_there_are_notebooks_to_check():
    names = [p.name for p in PATHS]
    assert names and names[0].startswith("00_"), f"expected 00_index first in {NOTEBOOKS}: {names}"


def test_navigation_cells_are_fresh():
    stale = nav.check(NOTEBOOKS)
    assert not stale, ("stale navigation (run: python tools/nav.py):\n  " + "\n  ".join(stale))


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_title_then_nav_at_top_and_nav_at_bottom(path):
    cells = _nb(path)["cells"]
    number = path.name[:2]
    assert cells[0]["cell_type"] == "markdown"
    assert _src(cells[0]).startswith(f"# {number} · "), (
        f"{path.name}: the first cell must be the title '# {number} · Title'")
    assert nav.is_nav_cell(cells[1]), f"{path.name}: cell 1 (under the title) must be the nav cell"
    assert nav.is_nav_cell(cells[-1]), f"{path.name}: the last cell must be the nav cell"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_committed_without_outputs(path):
    nb = _nb(path)
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: clear outputs and execution counts of cells {dirty}"


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_format_kernel_and_cell_ids(path):
    nb = _nb(path)
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5), f"{path.name}: nbformat 4.5 needed"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: every cell needs a unique id"


@pytest.mark.parametrize("path", TEACHING, ids=_ids(TEACHING))
def test_learning_goals_summary_and_self_check(path):
    nb = _nb(path)
    cells = nb["cells"]
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    intro = [_src(c) for c in cells[:first_code] if c["cell_type"] == "markdown"]
    goals = [t for t in intro if "You will learn" in t]
    assert goals, f"{path.name}: a 'You will learn' list must come before the first code cell"
    after = goals[0].split("You will learn", 1)[1]
    assert re.search(r"^\s*[-*] \S", after, re.MULTILINE), (
        f"{path.name}: 'You will learn' must be followed by a bullet list")
    headings = _headings(nb)
    for wanted in ("## Summary", "## Self-check"):
        assert wanted in headings, f"{path.name}: missing heading {wanted!r}"
    assert headings.index("## Summary") < headings.index("## Self-check")
    check = next(t for t in _markdown(nb) if "## Self-check" in t.splitlines())
    assert "<details>" in check, f"{path.name}: self-check answers belong in a <details> block"


def test_index_links_every_notebook_and_shows_the_learning_path():
    index = next(p for p in PATHS if p.name.startswith("00_"))
    text = "\n".join(_markdown(_nb(index)))
    assert "## Learning path" in _headings(_nb(index))
    for path in PATHS[1:]:
        assert f"]({path.name})" in text, f"the index does not link {path.name}"


# -- tools/nav.py itself, on a scratch folder --------------------------------------------------
def _write(folder: Path, name: str, title: str, *, nav_cells: bool = True) -> Path:
    cells = [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": [f"# {title}\n"]}]
    if nav_cells:
        cells.insert(1, {"cell_type": "markdown", "id": "n1", "metadata": {},
                         "source": ["<!-- nav -->\n", "old links"]})
        cells.append({"cell_type": "markdown", "id": "n2", "metadata": {},
                      "source": ["<!-- nav -->"]})
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = folder / name
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _navs(path: Path) -> list[str]:
    nb = _nb(path)
    return [_src(nb["cells"][i]) for i in nav.nav_cell_positions(nb)]


def test_nav_update_writes_prev_index_next_links(tmp_path):
    _write(tmp_path, "00_index.ipynb", "00 · Start")
    _write(tmp_path, "01_a.ipynb", "01 · Alpha")
    _write(tmp_path, "02_b.ipynb", "02 · Beta")
    (tmp_path / "notes.ipynb").write_text("{}")  # not numbered: ignored
    assert sorted(line.split(":")[0] for line in nav.check(tmp_path)) == [
        "00_index.ipynb", "01_a.ipynb", "02_b.ipynb"]
    assert nav.update(tmp_path) == ["00_index.ipynb", "01_a.ipynb", "02_b.ipynb"]
    assert nav.check(tmp_path) == []
    assert _navs(tmp_path / "01_a.ipynb") == [
        "<!-- nav -->\n[Index](00_index.ipynb) | [02 · Beta →](02_b.ipynb)"] * 2
    assert _navs(tmp_path / "02_b.ipynb") == [
        "<!-- nav -->\n[← 01 · Alpha](01_a.ipynb) | [Index](00_index.ipynb)"] * 2
    assert _navs(tmp_path / "00_index.ipynb")[0] == "<!-- nav -->\n[01 · Alpha →](01_a.ipynb)"
    assert nav.update(tmp_path) == []  # fresh: nothing rewritten


def test_nav_sees_new_and_retitled_notebooks_and_can_limit_rewrites(tmp_path):
    for name, title in (("00_index.ipynb", "00 · Start"), ("01_a.ipynb", "01 · Alpha")):
        _write(tmp_path, name, title)
    nav.update(tmp_path)
    _write(tmp_path, "02_b.ipynb", "02 · Beta")  # a notebook lands: 01 must now link to it
    assert [s.split(":")[0] for s in nav.check(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert nav.update(tmp_path, only=["02_b.ipynb"]) == ["02_b.ipynb"]
    assert [s.split(":")[0] for s in nav.check(tmp_path)] == ["01_a.ipynb"]  # left alone
    assert nav.main(["--check", "--folder", str(tmp_path)]) == 1
    assert nav.main(["--folder", str(tmp_path)]) == 0
    assert nav.main(["--check", "--folder", str(tmp_path)]) == 0
    _write(tmp_path, "01_a.ipynb", "01 · Renamed")  # retitled: its neighbours' labels change
    assert "02_b.ipynb: cell 1 links differ from the notebook order" in nav.check(tmp_path)


def test_nav_reports_missing_nav_cells_and_titles(tmp_path, capsys):
    _write(tmp_path, "00_index.ipynb", "00 · Start")
    _write(tmp_path, "01_a.ipynb", "01 · Alpha", nav_cells=False)
    nav.update(tmp_path)
    assert nav.check(tmp_path) == ["01_a.ipynb: no cell starting with '<!-- nav -->'"]
    assert nav.main(["--folder", str(tmp_path)]) == 1
    assert "no nav cell" in capsys.readouterr().out
    (tmp_path / "02_b.ipynb").write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match=r"02_b\.ipynb has no title"):
        nav.check(tmp_path)
    assert nav.main(["--check", "--folder", str(tmp_path)]) == 2


def test_nav_rewrite_keeps_nbformat_layout(tmp_path):
    path = _write(tmp_path, "00_index.ipynb", "00 · Start")
    _write(tmp_path, "01_a.ipynb", "01 · Alpha")
    nav.update(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n "cells": [' in text  # indent 1, sorted keys, newline
    assert "·" in text  # not escaped to \\u00b7, as nbformat writes it


def test_the_learning_path_goes_through_the_notebooks_in_order():
    """The index says "take them in order": its learning path must name them in that order,
    each once (a path that jumps 02 -> 04 -> 03 -> 02 contradicts it)."""
    index = json.loads((NOTEBOOKS / "00_index.ipynb").read_text())
    sources = ["".join(c["source"]) for c in index["cells"]]
    text = next(s for s in sources if "## Learning path" in s)
    path = text.split("## Learning path", 1)[1].split("## ", 1)[0]
    assert "take them in order" in path
    linked = re.findall(r"\]\((\d\d)_[a-z_]+\.ipynb\)", path)
    teaching = sorted(p.name[:2] for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))[1:]
    assert linked == teaching, f"the learning path visits {linked}, the notebooks are {teaching}"


def test_teaching_notebooks_never_record_their_demonstrations_as_progress():
    """A self-check a teaching notebook runs to demonstrate (a sloppy plan on purpose) is not the
    learner's attempt: every ``bl.check`` there passes ``record=False``, and no drill is checked
    with ``drill.check`` (which records). Only the exercises and a learner's own drills record."""
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "code")
        calls = re.findall(r"bl\.check\((?:[^()]|\([^()]*\))*\)", code)
        assert all("record=False" in call for call in calls), (path.name, calls)
        assert "drill.check(" not in code, path.name
