"""The picture of a replay: what a plan left in each box of the exercise's grid.

:func:`backfill_lab.course.simulate.simulate` replays a plan on the staged incident (twice, as a
retry would); :func:`replay_picture` then reads the warehouse it left and sorts every box
(layer x partition) of a window around the incident into one of :data:`OUTCOME_STATES`, and
keeps the engine's own state of each box (:func:`backfill_lab.status.grid_states`) beside it.
The result is plain data (it goes into the grader's JSON); :func:`picture_frames` turns it back
into the frames :func:`backfill_lab.display.render.render_html` draws.

When several apply, the first one listed wins:

* ``broken``: in the incident, and its latest attempt failed (the engine's ``failed``).
* ``duplicated``: it holds more rows than it should (an append that ran twice).
* ``invalid`` / ``stale``: the engine's states (a validation rejected it; built before an
  upstream box it reads was rebuilt).
* ``refilled``: in the incident, holding exactly the rows it should have had.
* ``broken``: in the incident, still missing or holding wrong rows.
* ``outside``: outside the incident, and changed by the replay.
* ``untouched``: outside the incident, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .._db import run
from ..errors import PartitionError
from ..ledger import Ledger
from ..partitions import PartitionSet, key_range, shift
from ..plan import Plan
from ..status import staleness
from ..versions import verdicts, view_state
from .scenarios import Scenario, Staged, truth

__all__ = ["MAX_COLUMNS", "OUTCOME_COLOURS", "OUTCOME_MEANING", "OUTCOME_STATES",
           "picture_frames", "replay_picture"]

#: what a box can be after the replay, in the legend's order
OUTCOME_STATES: tuple[str, ...] = ("refilled", "broken", "duplicated", "invalid", "stale",
                                   "outside", "untouched")
#: one colour per outcome (Okabe-Ito where it can; untouched is the grid's light grey)
OUTCOME_COLOURS: dict[str, str] = {
    "refilled": "#009E73", "broken": "#D55E00", "duplicated": "#882255", "invalid": "#CC79A7",
    "stale": "#F0E442", "outside": "#0072B2", "untouched": "#E2E2E2",
}
#: what each outcome means, for the legend
OUTCOME_MEANING: dict[str, str] = {
    "refilled": "in the incident, now holds exactly the rows it should",
    "broken": "in the incident, still missing, failed or holding wrong rows",
    "duplicated": "holds more rows than it should (written twice: append on a rerun)",
    "invalid": "a validation rejected its rows",
    "stale": "built before an upstream partition it reads was rebuilt",
    "outside": "outside the incident, yet the plan changed it",
    "untouched": "outside the incident, unchanged",
}
MARGIN = 3  # partitions shown on each side of the incident
MAX_COLUMNS = 186  # about half a year of days: a wider window is cut around the incident


def _rows(checksum: str | None) -> int:
    return int(checksum.split(":", 1)[0]) if checksum else 0


def _window(plan: Plan, sc: Scenario) -> tuple[list[str], bool]:
    """The partitions shown (contiguous, so gaps show) and whether the window was cut."""
    inc = sc.partitions
    keys = [*plan.backfill.partitions, shift(inc.start, -MARGIN), shift(inc.end, MARGIN)]
    start, end = min(keys), max(keys)
    try:
        span = key_range(start, end)
    except PartitionError:  # mixed grains, or far too many: cut around the incident
        span = []
    if span and len(span) <= MAX_COLUMNS:
        return span, False
    pad = max(0, (MAX_COLUMNS - len(inc)) // 2)
    return key_range(shift(inc.start, -pad), shift(inc.end, pad))[:MAX_COLUMNS], True


def _relation(st: Staged, layer: str) -> str:
    """The relation readers see for ``layer`` (the view, when the scenario has one)."""
    if st.view is not None and layer == "features":
        return f"view:{st.view}"
    return st.pipeline.layer(layer).default_table


def _engine_states(st: Staged, layers: Sequence[str], keys: list[str],
                   after: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """The engine's state of every box, read from the table each box is shown from: what
    :func:`~backfill_lab.status.grid_states` says of it, from one read of the ledger, one of
    the built marks and one of each table's validations (``after``: the checksums of every
    table now, so which partitions hold rows is known already)."""
    wh = st.warehouse
    state = view_state(wh, st.view) if st.view is not None and "features" in layers else None
    default = {layer: st.pipeline.layer(layer).default_table for layer in layers}
    combos: dict[tuple[tuple[str, str], ...], list[str]] = {}  # layer -> table: its keys
    for k in keys:
        shown = {layer: state.table_for(k) if state is not None and layer == "features"
                 else default[layer] for layer in layers}
        combos.setdefault(tuple(sorted(shown.items())), []).append(k)
    Ledger(wh)  # as grid_states reads it: the table exists
    ledger = run(wh.cursor(), "SELECT rowid, layer, partition, target, status FROM _bl_ledger "
                              "ORDER BY rowid")
    tables = sorted({t for combo in combos for _, t in combo})
    built: dict[str, set[str]] = {t: set() for t in tables}
    for tbl, part in run(wh.cursor(), "SELECT tbl, partition FROM _bl_built "
                                      "WHERE list_contains($t, tbl)", {"t": tables}):
        built[tbl].add(part)
    checked = verdicts(wh, [t for t in tables if wh.has_table(t)])
    rejected = {t: checked[t].invalid() if t in checked else set() for t in tables}
    out: dict[str, dict[str, str]] = {layer: {} for layer in layers}
    for combo, cols in combos.items():
        shown = dict(combo)
        latest: dict[tuple[str, str], str] = {}
        success: dict[tuple[str, str], Any] = {}
        for seq, layer, part, target, status in ledger:  # in recording order: newest last
            if target == shown.get(layer, layer):
                latest[(layer, part)] = status
                if status == "success":
                    success[(layer, part)] = seq
        stale = staleness(st.pipeline, success)
        for layer in layers:
            table = shown[layer]
            present = (set(after[table]) | built[table] if table in after
                       else wh.existing_partitions(table, cols))
            for k in cols:
                if latest.get((layer, k)) == "failed":
                    out[layer][k] = "failed"
                elif k not in present:
                    out[layer][k] = "missing"
                elif k in rejected[table]:
                    out[layer][k] = "invalid"
                elif stale(layer, k):
                    out[layer][k] = "stale"
                else:
                    out[layer][k] = "ok"
    return {layer: [out[layer][k] for k in keys] for layer in layers}


def replay_picture(plan: Plan, sc: Scenario, st: Staged,
                   before: Mapping[str, Mapping[str, str]],
                   after: Mapping[str, Mapping[str, str]], runs: int) -> dict[str, Any]:
    """What the replay left in each box, as plain data (see the module's docstring).

    ``before`` and ``after`` are the per-relation checksums before the first run and after the
    last, which is now: nothing wrote to the warehouse since
    (:func:`backfill_lab.course.simulate.simulate` computes both); ``runs`` is how many times
    the plan ran.
    """
    layers = list(st.pipeline.layer_names)
    keys, clipped = _window(plan, sc)
    want = truth(sc)
    engine = _engine_states(st, layers, keys, after)
    incident = set(sc.partitions)
    cells: dict[str, list[str]] = {}
    for layer in layers:
        rel = _relation(st, layer)
        expected = want.get(st.pipeline.layer(layer).default_table, {})
        old, new = before.get(rel, {}), after.get(rel, {})
        row = []
        for i, k in enumerate(keys):
            state = engine[layer][i]
            broken_box = layer in sc.layers and k in incident
            if broken_box and state == "failed":
                row.append("broken")
            elif new.get(k) and expected.get(k) and _rows(new.get(k)) > _rows(expected.get(k)):
                row.append("duplicated")
            elif state in ("invalid", "stale"):
                row.append(state)
            elif broken_box:
                row.append("refilled" if new.get(k) is not None and new.get(k) == expected.get(k)
                           else "broken")
            elif old.get(k) != new.get(k) and not (sc.late and k not in old):
                row.append("outside")  # a late schedule's new days are its job, not a change
            else:
                row.append("untouched")
        cells[layer] = row
    return {"exercise": sc.exercise, "layers": layers, "partitions": keys, "cells": cells,
            "states": engine,
            "broken": str(sc.partitions), "broken_layers": list(sc.layers),
            "range": str(plan.backfill.partitions), "runs": runs, "clipped": clipped}


def picture_frames(picture: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(outcomes, engine states)`` as layers x partitions frames, from :func:`replay_picture`'s
    data (read back from a file: a value that is not a known outcome or state raises
    ``ValueError``, so nothing unknown is ever drawn)."""
    from ..status import STATES

    layers = [str(x) for x in picture["layers"]]
    keys = [str(x) for x in picture["partitions"]]
    PartitionSet.parse(keys)  # real partition keys only
    frames = []
    for field, allowed in (("cells", OUTCOME_STATES), ("states", STATES)):
        rows = {}
        for layer in layers:
            row = [str(v) for v in picture[field][layer]]
            if len(row) != len(keys) or not set(row) <= set(allowed):
                raise ValueError(f"not a replay picture: bad {field} for {layer!r}")
            rows[layer] = row
        frames.append(pd.DataFrame.from_dict(rows, orient="index", columns=keys))
    return frames[0], frames[1]
