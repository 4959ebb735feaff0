"""Snapshots before in-place overwrites, exact restores, and the proof that nothing else changed.

Before a backfill overwrites partitions in place, copy them aside; if validation fails, restore
them and compare checksums: equal means the table is exactly as it was. For a targeted backfill,
per-partition checksums before and after show every partition outside the target is untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._db import bind, one, quote, run
from ._writes import as_key
from .errors import ConfigError, UnknownNameError
from .partitions import PartitionSet, PartitionsLike, to_value

__all__ = ["Snapshot", "UntouchedReport", "partition_checksums", "restore", "snapshot", "snapshots",
           "untouched_report"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _bl_snapshots (
    snapshot_id VARCHAR, "table" VARCHAR, copy VARCHAR, partitions VARCHAR, checksums VARCHAR,
    created TIMESTAMP
)
"""


@dataclass(frozen=True)
class Snapshot:
    """A copy of some partitions of a table, with their checksums at the time of the copy."""

    snapshot_id: str
    table: str
    copy: str
    partitions: tuple[str, ...]
    checksums: Mapping[str, str] = field(default_factory=dict)  # only partitions that existed

    def __str__(self) -> str:
        held = len(self.checksums)
        return (f"snapshot {self.snapshot_id} of {self.table} "
                f"[{PartitionSet.parse(list(self.partitions))}]: {held} partitions with rows")


def partition_checksums(wh: Any, table: str, keys: list[str]) -> dict[str, str]:
    """``wh.checksums(table)`` of the partitions ``keys`` only (the same strings), without
    hashing the rest of the table (snapshots, and the put-back of a kept copy,
    :mod:`backfill_lab.course.copies`)."""
    if not keys or not wh.has_table(table):
        return {}
    pcol = quote(wh.partition_column(table))
    daily = wh.grain(table) == "daily"
    wanted = set(keys)
    rows = run(wh.cursor(),
               f"SELECT {pcol}, count(*), sum(hash(_bl_row)::HUGEINT) FROM {quote(table)} "
               f"AS _bl_row WHERE {pcol} BETWEEN $lo AND $hi GROUP BY {pcol} ORDER BY {pcol}",
               {"lo": to_value(min(keys)), "hi": to_value(max(keys))})
    found = {as_key(p, daily): f"{int(n)}:{int(h)}" for p, n, h in rows}
    return {k: v for k, v in found.items() if k in wanted}


def snapshot(wh: Any, table: str, partitions: PartitionsLike, *, snapshot_id: str | None = None,
             now: dt.datetime | None = None) -> Snapshot:
    """Copy ``partitions`` of ``table`` aside (``_bl_snap_<id>``) and record their checksums.

    Taught in notebooks/05_designing_safe_backfills.ipynb (Your design as a plan).
    """
    if not wh.has_table(table):
        raise UnknownNameError.of("table", table, wh.tables())
    keys = list(PartitionSet.parse(partitions))
    sid = snapshot_id or uuid.uuid4().hex[:8]
    quote(f"s_{sid}")
    copy = f"_bl_snap_{sid}"
    pcol = quote(wh.partition_column(table))
    before = partition_checksums(wh, table, keys)
    sums = {k: before[k] for k in keys if k in before}
    wh.ensure("_bl_snapshots", _SCHEMA)
    cur = wh.cursor()
    if one(cur, "SELECT count(*) FROM _bl_snapshots WHERE snapshot_id = ?", [sid]) != (0,):
        raise ConfigError(f"snapshot id {sid!r} is taken; choose another snapshot_id")
    sql = (f"CREATE TABLE {quote(copy)} AS SELECT * FROM {quote(table)} "
           f"WHERE {pcol} IN (SELECT unnest($keys))")
    run(cur, "BEGIN TRANSACTION")
    try:
        run(cur, sql, bind(sql, {"keys": [to_value(k) for k in keys]}))
        run(cur, "INSERT INTO _bl_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [sid, table, copy, json.dumps(keys), json.dumps(sums),
             now or dt.datetime.now(dt.UTC).replace(tzinfo=None)])
        run(cur, "COMMIT")
    except BaseException:
        run(cur, "ROLLBACK")
        raise
    return Snapshot(sid, table, copy, tuple(keys), sums)


def snapshots(wh: Any) -> list[Snapshot]:
    """Every snapshot recorded in the warehouse, oldest first."""
    wh.ensure("_bl_snapshots", _SCHEMA)
    cur = wh.cursor()
    rows = run(cur, 'SELECT snapshot_id, "table", copy, partitions, checksums '
                    "FROM _bl_snapshots ORDER BY rowid")
    return [Snapshot(r[0], r[1], r[2], tuple(json.loads(r[3])), json.loads(r[4])) for r in rows]


def restore(wh: Any, snap: Snapshot | str, *,
            partitions: PartitionsLike | None = None) -> pd.DataFrame:
    """Put the snapshot's partitions back (all, or only ``partitions``) in one transaction, and
    prove it with checksums.

    Partitions that had no rows at snapshot time are emptied again. Returns one row per partition
    (checksum at snapshot, checksum after restore, equal); raises if any differs.

    Taught in notebooks/03_versioned_recompute.ipynb.
    """
    if isinstance(snap, str):
        found = {s.snapshot_id: s for s in snapshots(wh)}
        if snap not in found:
            raise UnknownNameError.of("snapshot", snap, found)
        snap = found[snap]
    keys = list(snap.partitions)
    if partitions is not None:
        wanted = set(PartitionSet.parse(partitions))
        outside = sorted(wanted - set(keys))
        if outside:
            raise ConfigError(f"snapshot {snap.snapshot_id} holds no copy of {outside[0]}; it "
                              f"covers {PartitionSet.parse(keys)}")
        keys = [k for k in keys if k in wanted]
    pcol = quote(wh.partition_column(snap.table))
    t, c = quote(snap.table), quote(snap.copy)
    cur = wh.cursor()
    run(cur, "BEGIN TRANSACTION")
    try:
        for key in keys:
            run(cur, f"DELETE FROM {t} WHERE {pcol} = ?", [to_value(key)])
            run(cur, f"INSERT INTO {t} BY NAME SELECT * FROM {c} WHERE {pcol} = ?",
                [to_value(key)])
        run(cur, "COMMIT")
    except BaseException:
        run(cur, "ROLLBACK")
        raise
    after = partition_checksums(wh, snap.table, keys)
    rows = [{"partition": k, "at_snapshot": snap.checksums.get(k), "after_restore": after.get(k),
             "equal": snap.checksums.get(k) == after.get(k)} for k in keys]
    report = pd.DataFrame(rows)
    if not report["equal"].all():
        bad = report.loc[~report["equal"], "partition"].tolist()
        raise RuntimeError(f"restore of snapshot {snap.snapshot_id} left {bad} different")
    return report


@dataclass(repr=False)
class UntouchedReport:
    """Per-partition checksums before and after a targeted backfill, and what changed where."""

    frame: pd.DataFrame

    @property
    def untouched(self) -> bool:
        """True when no partition outside the target changed (or appeared, or vanished)."""
        return not self.changed_outside

    @property
    def changed_outside(self) -> list[str]:
        """Partitions outside the backfill whose checksum changed (should be none)."""
        f = self.frame
        return f.loc[~f["targeted"] & f["changed"], "partition"].tolist()

    @property
    def changed_inside(self) -> list[str]:
        """Partitions inside the backfill whose checksum changed."""
        f = self.frame
        return f.loc[f["targeted"] & f["changed"], "partition"].tolist()

    def __str__(self) -> str:
        f = self.frame
        outside = int((~f["targeted"]).sum())
        verdict = "untouched" if self.untouched else f"CHANGED: {', '.join(self.changed_outside)}"
        return (f"{len(self.changed_inside)} of {int(f['targeted'].sum())} targeted partitions "
                f"changed; {outside} partitions outside the target: {verdict}")

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<p>{self}</p>" + self.frame.to_html(index=False, classes="backfill-untouched")


def untouched_report(before: Mapping[str, str], after: Mapping[str, str],
                     targeted: PartitionsLike) -> UntouchedReport:
    """Compare two ``Warehouse.checksums(table)`` readings around a backfill of ``targeted``.

    >>> r = untouched_report({"2025-01-09": "a", "2025-01-10": "b"},
    ...                      {"2025-01-09": "a", "2025-01-10": "c"}, "2025-01-10")
    >>> r.untouched, r.changed_inside
    (True, ['2025-01-10'])
    """
    target = set(PartitionSet.parse(targeted))
    keys = sorted(set(before) | set(after) | target)
    rows = [{"partition": k, "targeted": k in target, "before": before.get(k),
             "after": after.get(k), "changed": before.get(k) != after.get(k)} for k in keys]
    return UntouchedReport(pd.DataFrame(rows))
