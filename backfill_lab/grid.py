"""The partition grid: layers x partitions, one mark per state. This module holds the states and
the text rendering used by ``backfill-lab status``.

States: ``ok`` (present, last run succeeded), ``missing`` (no rows), ``failed`` (last run
failed), ``running`` (in flight now), ``invalid`` and ``stale`` (set by validations and by
upstream changes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .ledger import Ledger
from .partitions import PartitionSet
from .warehouse import Warehouse

__all__ = ["MARKS", "STATES", "grid_states", "render_text"]

STATES: tuple[str, ...] = ("missing", "ok", "failed", "invalid", "stale", "running")
MARKS: dict[str, str] = {
    "ok": "#", "missing": ".", "failed": "X", "invalid": "!", "stale": "~", "running": ">",
}


def grid_states(
    warehouse: Warehouse, layers: Sequence[str], partitions: object,
    tables: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A layers x partitions frame of states, from the warehouse's rows and the ledger."""
    keys = list(PartitionSet.parse(partitions))  # type: ignore[arg-type]
    latest = Ledger(warehouse).latest_by_partition(layers)
    last = {(r.layer, r.partition): r.status for r in latest.itertuples()}
    rows = {}
    for layer in layers:
        table = (tables or {}).get(layer, layer)
        present = warehouse.existing_partitions(table, keys)
        states = []
        for key in keys:
            status = last.get((layer, key))
            if status == "failed":
                states.append("failed")
            elif key in present:
                states.append("ok")
            else:
                states.append("missing")
        rows[layer] = states
    return pd.DataFrame.from_dict(rows, orient="index", columns=keys)


def render_text(states: pd.DataFrame, *, width: int = 31) -> str:
    """The grid as text, ``width`` partitions per block, with a legend.

    >>> df = pd.DataFrame([["ok", "missing", "failed"]], index=["raw"],
    ...                   columns=["2024-12-01", "2024-12-02", "2024-12-03"])
    >>> print(render_text(df))
    2024-12-01 .. 2024-12-03
      raw  #.X
    legend: # ok  . missing  X failed  ! invalid  ~ stale  > running
    """
    lines: list[str] = []
    pad = max(len(str(i)) for i in states.index) if len(states.index) else 0
    cols = list(states.columns)
    for start in range(0, len(cols), width):
        block = cols[start:start + width]
        lines.append(f"{block[0]} .. {block[-1]}")
        for layer in states.index:
            marks = "".join(MARKS[states.at[layer, c]] for c in block)
            lines.append(f"  {str(layer).rjust(pad)}  {marks}")
    legend = "  ".join(f"{MARKS[s]} {s}" for s in ("ok", "missing", "failed", "invalid",
                                                     "stale", "running"))
    lines.append(f"legend: {legend}")
    return "\n".join(lines)
