"""Every picture shows the moment it was drawn (issue 13).

Each teaching notebook is executed the way nbval and "Run All" do (nbclient, a fresh kernel),
and the saved outputs are read back: the grids after a planted outage or bad data show it
(failed, invalid and missing boxes counted from the saved HTML), "before" and "after" pictures
differ where the text says so, a live run's own output ends in the run's end state, and no
picture asks for an ``on_event`` the reader cannot pass. About a minute in all: marked slow.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from backfill_lab.display.live import WIDGET_MIME

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
pytestmark = pytest.mark.slow
STATES = ("ok", "missing", "failed", "invalid", "stale", "running")


def run(name: str) -> nbformat.NotebookNode:
    """The notebook executed in a fresh kernel, with its outputs as they would be saved."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    return {}


def notebook(executed: dict[str, nbformat.NotebookNode], name: str) -> nbformat.NotebookNode:
    if name not in executed:
        executed[name] = run(name)
    return executed[name]


def grids(nb: nbformat.NotebookNode, cell_id: str) -> list[dict[str, int | str | bool]]:
    """Every grid drawn in a cell's saved outputs: its title, its boxes per state (from the
    HTML), the run caption, and whether it is a widget view."""
    cell = next(c for c in nb.cells if c.get("id") == cell_id)
    found = []
    for out in cell.get("outputs", []):
        html = out.get("data", {}).get("text/html", "")
        if "bfg-cell" not in html:
            continue
        counts: dict[str, int | str | bool] = {
            s: html.count(f'class="bfg-cell bfg-{s}"') for s in STATES}
        title = re.search(r'<div style="font-weight:600;margin:0 0 4px">(.*?)</div>', html)
        run_state = re.search(r"bfg-run-(\w+)", html)
        counts["title"] = title.group(1) if title else ""
        counts["run"] = run_state.group(1) if run_state else ""
        counts["live"] = WIDGET_MIME in out.get("data", {})
        found.append(counts)
    assert found, f"no grid in the saved outputs of cell {cell_id}"
    return found


def all_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(str(o.get("data", {}).get("text/html", "")) + str(o.get("text", ""))
                     + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def same_boxes(a: dict[str, int | str | bool], b: dict[str, int | str | bool]) -> bool:
    return all(a[s] == b[s] for s in STATES)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("0[1-6]_*.ipynb")))
def test_no_picture_asks_for_an_on_event_the_reader_cannot_pass(executed, name):
    text = all_text(notebook(executed, name))
    assert "no backfill followed yet" not in text and "pass on_event" not in text
    nb = notebook(executed, name)
    for cell in nb.cells:  # a widget is saved only where a run was followed live (or with a
        for out in cell.get("outputs", []):  # drill's incident, which no run ever follows)
            data = out.get("data", {})
            if WIDGET_MIME in data and "backfill-incident" not in data.get("text/html", ""):
                assert "grid.live()" in "".join(cell.source), cell.get("id")


def test_01_pictures_show_the_outage_the_quiet_bug_and_the_repair(executed):
    nb = notebook(executed, "01_mental_model.ipynb")
    (empty,) = grids(nb, "nb01-05")
    (four,) = grids(nb, "nb01-09")
    (outage,) = grids(nb, "nb01-15")
    (bug,) = grids(nb, "nb01-19")
    (caught_up,) = grids(nb, "nb01-23")
    (fixed,) = grids(nb, "nb01-29")
    assert empty["missing"] == 30 and four["ok"] == 12 and four["missing"] == 18
    # "raw of 5 December is red; staging and features of 5 December are grey"
    assert outage["failed"] == 1 and outage["ok"] == 12 and outage["missing"] == 17
    assert bug["invalid"] == 1 and bug["failed"] == 1  # the quiet bug, marked
    assert caught_up["invalid"] == 1 and caught_up["failed"] == 0 and caught_up["ok"] == 23
    assert fixed["invalid"] == fixed["failed"] == 0 and fixed["ok"] == 24
    with_catchup, without = grids(nb, "nb01-26")
    assert with_catchup["ok"] == 15 and without["missing"] > 0 and without["failed"] > 0
    (live,) = grids(nb, "nb01-28")  # the run's own picture, in the cell that runs it
    assert live["live"] and live["run"] == "success" and same_boxes(live, fixed)


def test_02_pictures_show_the_outage_the_abort_and_the_refill(executed):
    nb = notebook(executed, "02_daily_backfill.ipynb")
    (before,) = grids(nb, "nb02-05")
    assert before["title"] == "before the backfill"
    # raw red for the outage week, features grey there and red for 8-13 December
    assert before["failed"] == 7 + 6 and before["missing"] == 7 + 7
    (aborted_live,) = grids(nb, "nb02-16")
    (aborted,) = grids(nb, "nb02-19")
    # not full and green ("failed" when the deploy also failed a step in flight)
    assert aborted_live["live"] and aborted_live["run"] in ("stopped", "failed")
    assert aborted["run"] == aborted_live["run"] and same_boxes(aborted, aborted_live)
    # "half a week is back; the rest waits"
    # "half a week is back" (how many steps finish before the abort depends on timing)
    assert aborted["ok"] >= before["ok"] + 12 and 0 < aborted["failed"] < before["failed"]
    (resumed,) = grids(nb, "nb02-21")
    assert resumed["live"] and resumed["missing"] == 0 and resumed["failed"] == 6
    live, after = grids(nb, "nb02-23")
    assert live["live"] and after["title"] == "after the two backfills"
    assert after["ok"] == 3 * 28 and same_boxes(live, after)
    assert not same_boxes(before, after) and not same_boxes(aborted, after)


def test_03_pictures_show_the_invalid_days_then_the_fix(executed):
    nb = notebook(executed, "03_versioned_recompute.ipynb")
    (recomputed,) = grids(nb, "nb03-18")
    (fixed,) = grids(nb, "nb03-22")
    assert recomputed["invalid"] > 0 and fixed["invalid"] == 0 and fixed["ok"] == 90


def test_04_runs_without_a_grid_and_without_errors(executed):
    nb = notebook(executed, "04_late_data.ipynb")
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def test_05_before_stays_before_and_the_rollback_shows_damage_then_repair(executed):
    nb = notebook(executed, "05_designing_safe_backfills.ipynb")
    (before,) = grids(nb, "87bdaaa9")
    (live,) = grids(nb, "9bd3220d")
    (after,) = grids(nb, "1ef3285b")
    assert before["title"] == "daily_features, before" and before["failed"] == 7 + 6
    assert after["title"] == "daily_features, after the two backfills" and after["ok"] == 84
    assert live["live"] and live["run"] == "success" and same_boxes(live, after)
    (checked,) = grids(nb, "00cc0d59")
    assert checked["invalid"] == 1
    (damaged,) = grids(nb, "nb05-rb-code1")
    (restored,) = grids(nb, "nb05-rb-code2")
    assert damaged["invalid"] == 3 and restored["invalid"] == 0 and restored["ok"] == 11


def test_06_before_project_1_keeps_the_outage(executed):
    nb = notebook(executed, "06_practical_projects.ipynb")
    (before,) = grids(nb, "4836eaca")
    live, after = grids(nb, "d05acb68")
    assert before["failed"] > 0 and "before project 1" in str(before["title"])
    assert after["ok"] == 3 * 31 and live["live"] and same_boxes(live, after)
    assert not same_boxes(before, after)
