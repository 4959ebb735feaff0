"""The lab warehouse: partitioned tables in DuckDB, three write modes, and a capacity limit.

Every partition write is one DuckDB transaction. ``overwrite`` deletes and re-inserts one partition
inside it, so a concurrent reader sees either the old partition or the new one, never an empty or
half-written one (DuckDB's MVCC gives each reader a snapshot). ``merge`` upserts on merge keys with
``MERGE INTO``. ``append`` only inserts, so a rerun duplicates rows: it is kept to show why.

The capacity models a shared warehouse: at most ``capacity`` writes run at once; a write that finds
no free slot within ``queue_timeout`` seconds fails with :class:`WarehouseOverloaded`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ._db import ROWS, bind, fence, fenced, one, open_advice, quote, run
from ._writes import (
    BUILT_SCHEMA,
    OnCommit,
    OnCommitMany,
    as_key,
    dates_as_datetime64,
    null_columns,
    settle_types,
    write_many,
    write_one,
)
from .errors import ConfigError, UnknownNameError, WarehouseOverloaded
from .options import WRITE_MODES, WriteMode, check_mode, integer, require_merge_keys
from .partitions import grain_of, parse_key, to_value

__all__ = ["WRITE_MODES", "Warehouse", "WriteMode", "WriteResult"]


@dataclass(frozen=True)
class WriteResult:
    """What one partition write did."""

    table: str
    partition: str
    mode: str
    rows: int


Source = pd.DataFrame | str
"""Rows to write: a DataFrame, or a SELECT statement."""


class Warehouse:
    """A DuckDB database (a file, or ``":memory:"``) holding partitioned tables.

    >>> wh = Warehouse()
    >>> wh.write_partition("t", "2024-12-01", pd.DataFrame({"date": [pd.Timestamp("2024-12-01")]}))
    WriteResult(table='t', partition='2024-12-01', mode='overwrite', rows=1)
    >>> wh.partition_counts("t")
    {'2024-12-01': 1}

    Taught in notebooks/01_mental_model.ipynb (Setup), and set up at the start of every notebook.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        capacity: int | None = None,
        write_latency: float = 0.0,
        queue_timeout: float = 0.05,
    ) -> None:
        if capacity is not None:
            capacity = integer("capacity", capacity, 1)
        if not isinstance(write_latency, int | float) or write_latency < 0:
            raise ConfigError.invalid("write_latency", "a number of seconds >= 0", write_latency)
        self.path = str(path)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            first = str(exc).splitlines()[0]
            advice = open_advice(first, Path(self.path))
            raise ConfigError(f"cannot open warehouse {self.path!r}: {first[:160]}; {advice}"
                              ) from None
        self.capacity = capacity
        self.write_latency = float(write_latency)
        self.queue_timeout = float(queue_timeout)
        self._local = threading.local()
        self._cursors: list[tuple[threading.Thread, duckdb.DuckDBPyConnection]] = []
        self._ddl_lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        self._slots = threading.Condition()
        self._active = 0
        self.peak_writes = 0
        self.overloaded = 0
        self._names = itertools.count()
        self._ensured: set[str] = set()
        self._table_info: dict[str, tuple[str, str]] = {}
        self._untyped: set[str] = set()  # tables with columns an empty first write left untyped
        run(self._con, "CREATE TABLE IF NOT EXISTS _bl_tables (name VARCHAR PRIMARY KEY, "
                       "partition_column VARCHAR, grain VARCHAR)")
        run(self._con, "CREATE TABLE IF NOT EXISTS _bl_meta (key VARCHAR PRIMARY KEY, "
                       "value VARCHAR)")
        run(self._con, BUILT_SCHEMA)

    def fence(self) -> None:
        """Cut this database off from files, the network and Python, for good (before SQL that
        is not the lab's own runs on it: :func:`backfill_lab._db.fence`)."""
        fence(self._con, *(c for _, c in self._cursors))

    # -- connections ---------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's own DuckDB cursor (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = fenced(self._con, self._con.cursor())
            self._local.cursor = cur
            with self._cursor_lock:
                self._cursors.append((threading.current_thread(), cur))
        return cur

    def release_cursors(self) -> int:
        """Close the cursors of threads that have ended (a backfill's workers): how many.

        Each worker thread opens its own cursor; without this they would pile up, one per
        thread a backfill ever started, for as long as the warehouse stays open.
        """
        with self._cursor_lock:
            done = [(t, c) for t, c in self._cursors if not t.is_alive()]
            self._cursors = [(t, c) for t, c in self._cursors if t.is_alive()]
        for _, cur in done:
            cur.close()
        return len(done)

    def forget(self) -> None:
        """Forget what this object knows of the catalog (the tables and their registry were
        put back behind its back: :mod:`backfill_lab.course.copies`), and its write peaks."""
        self._ensured, self._table_info, self._untyped = set(), {}, set()
        self.peak_writes = self.overloaded = 0

    @property
    def open_cursors(self) -> int:
        """How many thread cursors are open now."""
        return len(self._cursors)

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a query and return a DataFrame."""
        return self.cursor().execute(query, params).df()

    def close(self) -> None:
        """Close every cursor and the connection."""
        for _, cur in self._cursors:
            cur.close()
        self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({self.path!r}, capacity={self.capacity}, tables={self.tables()})"

    # -- metadata ------------------------------------------------------------------------
    def ensure(self, name: str, ddl: str) -> None:
        """Create a system table once (DDL from several threads at once conflicts in DuckDB)."""
        if name in self._ensured:
            return
        cur = self.cursor()
        with self._ddl_lock:
            if name not in self._ensured:
                run(cur, ddl)
                self._ensured.add(name)

    def set_meta(self, key: str, value: str) -> None:
        """Store a small setting in the warehouse itself (``_bl_meta``)."""
        run(self.cursor(), "INSERT OR REPLACE INTO _bl_meta VALUES (?, ?)", [key, value])

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A setting stored with :meth:`set_meta`, or ``default``."""
        row = one(self.cursor(), "SELECT value FROM _bl_meta WHERE key = ?", [key])
        return row[0] if row else default

    def tables(self) -> list[str]:
        """Names of the partitioned tables, sorted."""
        rows = run(self.cursor(), "SELECT name FROM _bl_tables ORDER BY name")
        return [r[0] for r in rows]

    def _info(self, table: str) -> tuple[str, str] | None:
        """(partition column, grain) of a registered table; cached, since a registration never
        changes and only this process can write the database."""
        info = self._table_info.get(table)
        if info is None:
            row = one(self.cursor(),
                      "SELECT partition_column, grain FROM _bl_tables WHERE name = ?", [table])
            if row is None:
                return None  # not cached: the table may be created later
            info = self._table_info[table] = (row[0], row[1])
        return info

    def has_table(self, table: str) -> bool:
        """Is ``table`` a registered partitioned table?"""
        return self._info(table) is not None

    def partition_column(self, table: str) -> str:
        """The column ``table`` is partitioned by."""
        info = self._info(table)
        if info is None:
            raise UnknownNameError.of("table", table, self.tables())
        return info[0]

    # -- capacity ------------------------------------------------------------------------
    @contextmanager
    def write_slot(self) -> Iterator[None]:
        """Hold one of the warehouse's write slots, or fail as an overloaded warehouse does."""
        with self._slots:
            if self.capacity is not None:
                deadline = time.monotonic() + self.queue_timeout
                while self._active >= self.capacity:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.overloaded += 1
                        raise WarehouseOverloaded(
                            f"warehouse overloaded: {self._active + 1} concurrent writes for a "
                            f"capacity of {self.capacity}; throttled write failed after "
                            f"{self.queue_timeout:g}s; set concurrency to at most {self.capacity}"
                        )
                    self._slots.wait(remaining)
            self._active += 1
            self.peak_writes = max(self.peak_writes, self._active)
        try:
            if self.write_latency:
                time.sleep(self.write_latency)
            yield
        finally:
            with self._slots:
                self._active -= 1
                self._slots.notify()

    # -- writes --------------------------------------------------------------------------
    def _ensure_table(
        self, cur: duckdb.DuckDBPyConnection, table: str, source_sql: str, params: Any,
        partition_column: str, grain: str,
    ) -> None:
        """Create ``table`` from its source's columns (and register it), or settle the types
        of columns an empty first write could not know.

        The partition column's type comes from the grain (DATE or TIMESTAMP), never from the
        first batch of rows: an empty first DataFrame has untyped (``NULL``) columns, and a
        table created from them would refuse every later write.
        """
        if self.has_table(table):
            if table in self._untyped:
                self._settle_types(cur, table, source_sql, params)
            return
        with self._ddl_lock:
            if self.has_table(table):
                return
            typed = "DATE" if grain == "daily" else "TIMESTAMP"
            pcol = quote(partition_column)
            select = f"SELECT * FROM ({source_sql}) LIMIT 0"
            columns = [r[0] for r in run(cur, f"DESCRIBE {select}", bind(source_sql, params or {}))]
            if partition_column in columns:
                select = (f"SELECT * REPLACE (CAST({pcol} AS {typed}) AS {pcol}) "
                          f"FROM ({source_sql}) LIMIT 0")
            run(cur, f"CREATE TABLE IF NOT EXISTS {quote(table)} AS {select}",
                bind(source_sql, params or {}))
            run(cur, "INSERT INTO _bl_tables VALUES (?, ?, ?)", [table, partition_column, grain])
            if null_columns(cur, table):
                self._untyped.add(table)

    def _settle_types(self, cur: duckdb.DuckDBPyConnection, table: str, source_sql: str,
                      params: Any) -> None:
        """Type the columns an empty first write left untyped, once a source has types."""
        with self._ddl_lock:
            if settle_types(cur, table, source_sql, bind(source_sql, params or {})):
                self._untyped.discard(table)

    def write_partition(
        self,
        table: str,
        partition: str,
        rows: Source,
        mode: str = "overwrite",
        *,
        merge_keys: Sequence[str] | None = None,
        params: dict[str, Any] | None = None,
        partition_column: str = "date",
        on_commit: OnCommit | None = None,
    ) -> WriteResult:
        """Write one partition of ``table`` from a DataFrame or a SELECT, in one transaction.

        ``rows`` must hold only rows of ``partition`` (checked; the write is rolled back
        otherwise). ``on_commit`` runs inside the same transaction, so a ledger row written
        there commits together with the data or not at all.
        """
        check_mode(mode)
        require_merge_keys(mode, merge_keys or ())
        key = parse_key(partition)
        quote(table)
        if self.has_table(table):
            partition_column = self.partition_column(table)
        pcol = quote(partition_column)
        cur = self.cursor()
        sql_params: dict[str, Any] = dict(params or {})
        _check_rows(rows)
        view = frame = None
        source_sql = rows if isinstance(rows, str) else ""
        if isinstance(rows, pd.DataFrame):
            if self.has_table(table) and table not in self._untyped:
                # no view to register; Python dates handed over as datetime64 (cheaper to scan)
                frame = dates_as_datetime64(rows, partition_column, to_value(key))
                source_sql = f"SELECT * FROM {ROWS}"
            else:  # the table is created (or typed) from the rows: a view DDL can read
                view = f"_bl_df_{next(self._names)}"
                cur.register(view, rows)
                source_sql = f"SELECT * FROM {view}"
        try:
            self._ensure_table(cur, table, source_sql, sql_params, partition_column,
                               grain_of(key))
            with self.write_slot():
                written = write_one(cur, table, key, pcol, source_sql, sql_params, mode,
                                    merge_keys, on_commit, f"_bl_merge_{next(self._names)}",
                                    frame)
        finally:
            if view is not None:
                cur.unregister(view)
        return WriteResult(table, key, mode, written)

    def write_batch(
        self,
        table: str,
        partitions: Sequence[str],
        rows: Source,
        *,
        params: dict[str, Any] | None = None,
        partition_column: str = "date",
        on_commit: OnCommitMany | None = None,
    ) -> dict[str, int]:
        """Overwrite several partitions of ``table`` from one SELECT, in one transaction.

        The batch is the unit of atomicity: readers see all of its partitions old or all new.
        ``on_commit`` gets the rows written per partition, inside the transaction. One
        transaction instead of one per partition is what makes large backfills cheap.
        """
        keys = [parse_key(k) for k in partitions]
        if not keys:
            raise ConfigError.invalid("partitions", "at least one partition", list(partitions))
        quote(table)
        if self.has_table(table):
            partition_column = self.partition_column(table)
        pcol = quote(partition_column)
        cur = self.cursor()
        sql_params = dict(params or {})
        view = None
        if isinstance(rows, pd.DataFrame):
            view = f"_bl_df_{next(self._names)}"
            cur.register(view, rows)
            rows = f"SELECT * FROM {view}"
        try:
            self._ensure_table(cur, table, rows, sql_params, partition_column, grain_of(keys[0]))
            with self.write_slot():
                return write_many(cur, table, keys, rows, sql_params, pcol, on_commit)
        finally:
            if view is not None:
                cur.unregister(view)

    # -- reads ---------------------------------------------------------------------------
    def read_partition(self, table: str, partition: str) -> pd.DataFrame:
        """All rows of one partition, in a stable order."""
        pcol = quote(self.partition_column(table))
        return self.sql(f"SELECT * FROM {quote(table)} WHERE {pcol} = ? ORDER BY ALL",
                        [to_value(parse_key(partition))])

    def partition_counts(self, table: str) -> dict[str, int]:
        """Row count per existing partition, oldest first."""
        return {k: n for k, (n, _) in self._stats(table).items()}

    def existing_partitions(self, table: str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are present: hold at least one row, or were built with zero rows
        (a legitimately empty day is not a hole). One query; cheap, since DuckDB skips row
        groups by min/max."""
        if not keys or not self.has_table(table):
            return set()
        pcol = quote(self.partition_column(table))
        wanted = sorted({parse_key(k) for k in keys})
        rows = run(
            self.cursor(),
            f"SELECT DISTINCT {pcol}, NULL FROM {quote(table)} WHERE {pcol} BETWEEN $lo AND $hi "
            f"UNION ALL SELECT NULL, partition FROM _bl_built WHERE tbl = $t AND "
            f"list_contains($k, partition)",
            {"lo": to_value(wanted[0]), "hi": to_value(wanted[-1]), "t": table, "k": wanted},
        )
        daily = self.grain(table) == "daily"
        found = {as_key(value, daily) if built is None else built for value, built in rows}
        return found & set(wanted)

    def first_partition(self, table: str) -> str | None:
        """The oldest partition present (holding rows, or built empty), or None for an empty or
        unknown table."""
        if not self.has_table(table):
            return None
        pcol = quote(self.partition_column(table))
        value = one(self.cursor(), f"SELECT min({pcol}) FROM {quote(table)}")
        found = [] if value is None or value[0] is None else \
            [as_key(value[0], self.grain(table) == "daily")]
        built = one(self.cursor(), "SELECT min(partition) FROM _bl_built WHERE tbl = ?", [table])
        if built is not None and built[0] is not None:
            found.append(built[0])
        return min(found) if found else None

    def checksums(self, table: str) -> dict[str, str]:
        """An order-independent checksum per partition: equal iff the rows are equal (as a bag)."""
        return {k: f"{n}:{h}" for k, (n, h) in self._stats(table).items()}

    def checksum(self, table: str, partition: str) -> str | None:
        """The checksum of one partition (None when it holds no rows)."""
        return self.checksums(table).get(parse_key(partition))

    def _stats(self, table: str) -> dict[str, tuple[int, int]]:
        if not self.has_table(table):
            return {}
        pcol = quote(self.partition_column(table))
        daily = self.grain(table) == "daily"
        rows = run(self.cursor(), f"SELECT {pcol}, count(*), sum(hash(_bl_row)::HUGEINT) FROM "
                                  f"{quote(table)} AS _bl_row GROUP BY {pcol} ORDER BY {pcol}")
        return {as_key(p, daily): (int(n), int(h)) for p, n, h in rows}

    def grain(self, table: str) -> str:
        """``daily`` or ``hourly``: the grain of ``table``'s partitions."""
        info = self._info(table)
        if info is None:
            raise UnknownNameError.of("table", table, self.tables())
        return info[1]


def _check_rows(rows: object) -> None:
    """Rows to write are a DataFrame or a SELECT statement."""
    if not isinstance(rows, pd.DataFrame | str):
        raise ConfigError.invalid("rows", "a DataFrame or a SELECT statement",
                                  type(rows).__name__)
