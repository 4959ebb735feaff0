"""The run ledger: one row per step attempt, kept in the warehouse itself, and the statuses it
records (one ``StrEnum`` each for a step, a backfill and a scheduled run).

Rows are only ever inserted (never updated), so parallel steps never contend for a ledger row. A
successful attempt's row is inserted in the same transaction as its partition write: the data and
the record of it commit together, which is what makes resume after a crash exact.

Statuses are plain strings (``StepStatus.SUCCESS == "success"``), so they go into the ledger,
into JSON and into DataFrames unchanged, and code that compares with ``"success"`` keeps working.

>>> StepStatus.SUCCESS == "success", str(StepStatus.FAILED), f"{BackfillStatus.ABORTED}"
(True, 'failed', 'aborted')
>>> StepStatus("skipped") is StepStatus.SKIPPED
True
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import duckdb
import pandas as pd

from ._db import one, run
from .errors import UnknownNameError

__all__ = [
    "LEDGER_STATUSES", "RUN_STATUSES", "STATUSES", "BackfillRecord", "BackfillStatus", "Ledger",
    "LedgerEntry", "RunStatus", "StepStatus",
]

class StepStatus(StrEnum):
    """A step's state, as the live grid shows it and the ledger records it.

    ``running`` and ``retrying`` are transient (events only); ``success``, ``invalid`` (written
    but failing its validations), ``failed``, ``skipped`` (an upstream step did not succeed) and
    ``cancelled`` (the backfill stopped before the step started) are final.
    These are the states of the partition grid in notebooks/02_daily_backfill.ipynb (Step 4:
    run it and watch the grid).
    """

    RUNNING = "running"
    SUCCESS = "success"
    INVALID = "invalid"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class BackfillStatus(StrEnum):
    """How a whole backfill ended (``BackfillResult.status``)."""

    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"
    DRY_RUN = "dry_run"


class RunStatus(StrEnum):
    """How one scheduled run ended (``Scheduler.runs()['status']``)."""

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


LEDGER_STATUSES: tuple[str, ...] = tuple(s.value for s in (
    StepStatus.SUCCESS, StepStatus.INVALID, StepStatus.FAILED, StepStatus.SKIPPED,
    StepStatus.CANCELLED))
"""The statuses a ledger row can hold (one row per attempt, or per step not run)."""

RUN_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)
"""The statuses a scheduled run can end in."""


STATUSES: tuple[str, ...] = LEDGER_STATUSES

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _bl_ledger (
    backfill_id VARCHAR, layer VARCHAR, partition VARCHAR, target VARCHAR, mode VARCHAR,
    code_version VARCHAR, attempt INTEGER, status VARCHAR, rows BIGINT,
    started TIMESTAMP, finished TIMESTAMP, error VARCHAR, upstream VARCHAR[], audit_tags VARCHAR,
    config_hash VARCHAR, runtime VARCHAR
);
-- a ledger written before config and runtime were pinned gets their columns (NULL in old rows)
ALTER TABLE _bl_ledger ADD COLUMN IF NOT EXISTS config_hash VARCHAR;
ALTER TABLE _bl_ledger ADD COLUMN IF NOT EXISTS runtime VARCHAR;
CREATE TABLE IF NOT EXISTS _bl_backfills (
    backfill_id VARCHAR, pipeline VARCHAR, code_version VARCHAR, params VARCHAR,
    created TIMESTAMP
);
"""
_COLUMNS = (
    "backfill_id", "layer", "partition", "target", "mode", "code_version", "attempt", "status",
    "rows", "started", "finished", "error", "upstream", "audit_tags", "config_hash", "runtime",
)


@dataclass(frozen=True)
class LedgerEntry:
    """One attempt of one step (a layer's partition) of one backfill."""

    backfill_id: str
    layer: str
    partition: str
    target: str
    mode: str
    code_version: str
    attempt: int
    status: str
    rows: int | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    error: str | None = None
    upstream: tuple[str, ...] = ()
    audit_tags: Mapping[str, str] = field(default_factory=dict)
    config_hash: str | None = None  # the pipeline's config the attempt ran with
    runtime: str | None = None  # what executed it (python / duckdb / backfill_lab)

    def values(self) -> list[Any]:
        """The row as the ledger table stores it (lists and JSON for the nested fields)."""
        row = [getattr(self, c) for c in _COLUMNS]
        row[_COLUMNS.index("upstream")] = list(self.upstream)
        row[_COLUMNS.index("audit_tags")] = json.dumps(dict(self.audit_tags), sort_keys=True)
        return row


@dataclass(frozen=True)
class BackfillRecord:
    """What a backfill was started with, kept so a resume can refuse a different one."""

    backfill_id: str
    pipeline: str
    code_version: str
    params: dict[str, Any]
    created: dt.datetime


class Ledger:
    """Read and write the run ledger of one warehouse.

    Taught in notebooks/02_daily_backfill.ipynb (Step 1: find the affected boxes) and
    notebooks/06_practical_projects.ipynb (Audit tags on every write).
    """

    def __init__(self, connection_source: Any) -> None:
        # ``connection_source`` is a Warehouse (anything with ``cursor()``); kept loose to
        # avoid an import cycle and to let tests pass a bare DuckDB connection factory.
        self._source = connection_source
        ensure = getattr(self._source, "ensure", None)
        if ensure is not None:
            ensure("_bl_ledger", _SCHEMA)
        else:
            run(self._cursor(), _SCHEMA)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection = self._source.cursor()
        return cur

    def record(self, entry: LedgerEntry, cur: duckdb.DuckDBPyConnection | None = None) -> None:
        """Insert one row; pass ``cur`` to make it part of that cursor's open transaction."""
        self.record_many([entry], cur)

    def record_many(self, entries: Sequence[LedgerEntry],
                    cur: duckdb.DuckDBPyConnection | None = None) -> None:
        """Insert rows in one statement, in order (a batch's partitions: one round trip)."""
        if not entries:
            return
        row = "(" + ", ".join("?" for _ in _COLUMNS) + ")"
        values = [v for entry in entries for v in entry.values()]
        run(cur or self._cursor(),
            f"INSERT INTO _bl_ledger ({', '.join(_COLUMNS)}) VALUES "
            + ", ".join(row for _ in entries), values)

    def settle(self, backfill_id: str, layer: str, partition: str, attempt: int,
               status: str, error: str | None, pending: str,
               cur: duckdb.DuckDBPyConnection | None = None) -> None:
        """Give a written, not yet validated attempt (error ``pending``) its final status and
        error; pass ``cur`` to make it part of the transaction that records its checks."""
        run(cur or self._cursor(),
            "UPDATE _bl_ledger SET status = ?, error = ? WHERE backfill_id = ? AND layer = ? "
            "AND partition = ? AND attempt = ? AND error = ?",
            [status, error, backfill_id, layer, partition, attempt, pending])

    def start_backfill(self, record: BackfillRecord) -> None:
        """Record that a backfill started, with what identifies it."""
        run(
            self._cursor(),
            "INSERT INTO _bl_backfills VALUES (?, ?, ?, ?, ?)",
            [record.backfill_id, record.pipeline, record.code_version,
             json.dumps(record.params, sort_keys=True), record.created],
        )

    def backfill(self, backfill_id: str) -> BackfillRecord | None:
        """What backfill ``backfill_id`` was started with, or None for a new id."""
        row = one(self._cursor(), "SELECT * FROM _bl_backfills WHERE backfill_id = ?",
                  [backfill_id])
        if row is None:
            return None
        return BackfillRecord(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def backfill_ids(self) -> list[str]:
        """Every backfill id, in the order they started."""
        rows = run(self._cursor(),
                   "SELECT backfill_id FROM _bl_backfills ORDER BY created, backfill_id")
        return [r[0] for r in rows]

    def frame(self, backfill_id: str | None = None) -> pd.DataFrame:
        """The ledger as a DataFrame, in the order rows were recorded (one backfill, or all).

        ``seq`` is that order: it does not depend on any clock, so it stays right when runs
        were stamped by different clocks (a demo's scheduled times, a notebook's fixed clock).
        """
        if backfill_id is not None and backfill_id not in self.backfill_ids():
            raise UnknownNameError.of("backfill id", backfill_id, self.backfill_ids())
        where = "WHERE backfill_id = ?" if backfill_id else ""
        params = [backfill_id] if backfill_id else []
        return self._cursor().execute(
            f"SELECT rowid AS seq, * FROM _bl_ledger {where} ORDER BY rowid",
            params,
        ).df()

    def last_status(self, backfill_id: str) -> dict[tuple[str, str], tuple[str, int]]:
        """``(layer, partition) -> (status, attempts so far)`` from each step's latest attempt."""
        rows = run(
            self._cursor(),
            "SELECT layer, partition, arg_max(status, rowid), max(attempt) "
            "FROM _bl_ledger WHERE backfill_id = ? GROUP BY layer, partition",
            [backfill_id],
        )
        return {(layer, part): (status, int(n)) for layer, part, status, n in rows}

    def latest_by_partition(self, layers: Sequence[str] | None = None) -> pd.DataFrame:
        """The newest recorded status of every (layer, partition), across all backfills."""
        df = self._cursor().execute(
            "SELECT layer, partition, arg_max(status, rowid) AS status, "
            "arg_max(finished, rowid) AS finished FROM _bl_ledger GROUP BY layer, partition"
        ).df()
        if layers is not None:
            df = df[df["layer"].isin(list(layers))]
        return df.reset_index(drop=True)
