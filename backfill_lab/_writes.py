"""The SQL of partition writes: overwrite, append, merge and batch overwrite, one transaction each.

Every write is guarded: a row outside the partitions being written aborts the INSERT itself (and
so the transaction), so no second scan is needed to prove the write stayed inside them. The
:class:`backfill_lab.warehouse.Warehouse` calls these with its own cursor, write slot and tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ._db import bind, quote, run, run_rows
from .errors import ConfigError, MergeKeyError, UnknownNameError
from .partitions import PartitionSet, grain_of, parse_key, to_value

__all__ = [
    "BUILT_SCHEMA",
    "MERGE_CHECK",
    "OUTSIDE",
    "OnCommit",
    "OnCommitMany",
    "as_key",
    "dates_as_datetime64",
    "frame_keys_plain",
    "mark_built",
    "merge",
    "null_columns",
    "settle_types",
    "transaction",
    "write_many",
    "write_one",
]

OnCommit = Callable[[duckdb.DuckDBPyConnection, int], None]
"""Called inside a partition's transaction with the rows written (the ledger row goes there)."""
OnCommitMany = Callable[[duckdb.DuckDBPyConnection, dict[str, int]], None]
"""Called inside a batch's transaction with the rows written per partition."""

OUTSIDE = "backfill_lab: row outside its partition"

BUILT_SCHEMA = "CREATE TABLE IF NOT EXISTS _bl_built (tbl VARCHAR, partition VARCHAR)"
"""Every partition a write built with zero rows: a legitimately empty day is present though
no row says so (a partition that holds rows is present by its rows)."""

MERGE_CHECK = "backfill_lab: merge keys need a closer look"
"""The error a merge's one-statement guard raises: the write is retried with the checks one
at a time, so the first failing one is worded."""


def mark_built(cur: duckdb.DuckDBPyConnection, table: str, keys: Sequence[str]) -> None:
    """Record, inside the write's transaction, that ``keys`` of ``table`` were built empty
    (once each: a key already recorded is left as it is). One statement for one key."""
    if len(keys) == 1:
        run(cur, "INSERT INTO _bl_built SELECT $t, $k WHERE NOT EXISTS "
            "(SELECT 1 FROM _bl_built WHERE tbl = $t AND partition = $k)",
            {"t": table, "k": keys[0]})
        return
    run(cur, "DELETE FROM _bl_built WHERE tbl = ? AND list_contains(?, partition)",
        [table, list(keys)])
    run(cur, "INSERT INTO _bl_built SELECT ?, unnest(?)", [table, list(keys)])


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection, outside: str) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any error. The partition guard's ``error()`` (a row
    outside the write's partitions) becomes a ConfigError with the message ``outside``."""
    run(cur, "BEGIN TRANSACTION")
    try:
        yield
        run(cur, "COMMIT")
    except duckdb.Error as exc:
        run(cur, "ROLLBACK")
        if OUTSIDE in str(exc):
            raise ConfigError(outside) from None
        raise
    except BaseException:
        run(cur, "ROLLBACK")
        raise


def write_one(
    cur: duckdb.DuckDBPyConnection, table: str, key: str, pcol: str, source_sql: str,
    params: dict[str, Any], mode: str, merge_keys: Sequence[str] | None,
    on_commit: OnCommit | None, temp: str, frame: pd.DataFrame | None = None,
) -> int:
    """Write partition ``key`` of ``table`` from ``source_sql`` in ``mode``, in one
    transaction (``temp`` names the scratch table a merge uses; ``frame`` is the DataFrame
    ``source_sql`` reads as :data:`backfill_lab._db.ROWS`, if any); the rows written."""
    t = quote(table)
    value = to_value(key)
    params = {**params, "_bl_partition": value}
    # a row of another partition aborts the INSERT itself (and so the transaction): no
    # second scan is needed to prove the write stayed inside its partition
    guarded = (f"INSERT INTO {t} BY NAME SELECT * FROM ({source_sql}) AS _bl_src "
               f"WHERE CASE WHEN _bl_src.{pcol} IS DISTINCT FROM $_bl_partition "
               f"THEN error('{OUTSIDE}') ELSE true END")
    outside = (f"rows written to partition {key} of {t} must all have {pcol} = {key} "
               f"(some rows fell in other partitions); filter the transform to its partition")

    def attempt(one_by_one: bool) -> int:
        with transaction(cur, outside):
            if mode == "overwrite":
                delete = f"DELETE FROM {t} WHERE {pcol} = $_bl_partition"
                run(cur, delete, bind(delete, params))
                written = run_rows(cur, guarded, bind(guarded, params), frame)[0][0]
            elif mode == "append":
                written = run_rows(cur, guarded, bind(guarded, params), frame)[0][0]
            else:
                written = merge(cur, t, key, pcol, source_sql, params,
                                list(merge_keys or []), temp, one_by_one=one_by_one,
                                frame=frame)
            if not written:  # a partition with rows is present by its rows
                mark_built(cur, table, [key])
            if on_commit is not None:
                on_commit(cur, int(written))
        return int(written)

    try:
        return attempt(False)
    except _OneByOne:  # rolled back: the merge's checks rerun one by one, to word the error
        return attempt(True)


class _OneByOne(Exception):
    """The merge's one-query key check failed to run (an unknown or odd key name): DuckDB has
    aborted the transaction, so the write is retried with the checks one at a time."""


def write_many(
    cur: duckdb.DuckDBPyConnection, table: str, keys: list[str], rows: str,
    sql_params: dict[str, Any], pcol: str, on_commit: OnCommitMany | None,
) -> dict[str, int]:
    """Overwrite partitions ``keys`` of ``table`` from the SELECT ``rows`` in one transaction;
    the rows written per partition."""
    t = quote(table)
    values = [to_value(k) for k in keys]
    params_all = {**sql_params, "_bl_keys": values, "_bl_lo": min(values),
                  "_bl_hi": max(values)}
    # a contiguous batch (the usual case) is a plain range: cheap to test on every row
    contiguous = PartitionSet.of(keys).is_contiguous
    member = "true" if contiguous else "coalesce(list_contains($_bl_keys, {col}), false)"
    inside = (f"{pcol} BETWEEN $_bl_lo AND $_bl_hi AND " + member.format(col=pcol))
    src_col = f"_bl_src.{pcol}"
    in_batch = (f"coalesce({src_col} BETWEEN $_bl_lo AND $_bl_hi, false) AND "
                + member.format(col=src_col))
    guarded = (f"INSERT INTO {t} BY NAME SELECT * FROM ({rows}) AS _bl_src "
               f"WHERE CASE WHEN NOT ({in_batch}) THEN error('{OUTSIDE}') ELSE true END")
    counts_sql = f"SELECT {pcol}, count(*) FROM {t} WHERE {inside} GROUP BY {pcol}"
    daily = grain_of(keys[0]) == "daily"
    outside = (f"rows written to partitions {min(keys)}..{max(keys)} of {t} must all "
               f"belong to the batch; filter the transform to its partitions")
    with transaction(cur, outside):
        delete = f"DELETE FROM {t} WHERE {inside}"
        run(cur, delete, bind(delete, params_all))
        run(cur, guarded, bind(guarded, params_all))
        counts = dict.fromkeys(keys, 0)
        for value, n in run(cur, counts_sql, bind(counts_sql, params_all)):
            counts[as_key(value, daily)] = int(n)
        empty = [k for k in keys if not counts[k]]
        if empty:
            mark_built(cur, table, empty)
        if on_commit is not None:
            on_commit(cur, counts)
    return counts


def merge(
    cur: duckdb.DuckDBPyConnection, t: str, key: str, pcol: str, source_sql: str,
    params: dict[str, Any], keys: list[str], src: str, *, one_by_one: bool = False,
    frame: pd.DataFrame | None = None,
) -> int:
    """Upsert partition ``key`` of table ``t`` on ``keys`` (unique, never NULL); the rows
    merged.

    A DataFrame whose keys are plainly fine (:func:`frame_keys_plain`) is merged in one
    statement that also refuses rows of other partitions. Any other source goes through the
    scratch table ``src``, created inside the write's transaction (so a rollback drops it too),
    whose keys are checked with one query (NULL keys, duplicates, rows of other partitions).
    When a check fails in the one statement, or the query cannot run (a key the source lacks),
    :class:`_OneByOne` asks the caller to retry with ``one_by_one``: the checks then run one at
    a time on the scratch table, the first failing one worded.
    """
    partition = {"_bl_partition": params["_bl_partition"]}

    def upsert(source: str) -> str:
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
        return (f"MERGE INTO {t} AS t USING {source} AS s ON {on} AND t.{pcol} = "
                f"$_bl_partition WHEN MATCHED THEN UPDATE WHEN NOT MATCHED THEN INSERT")

    if frame is not None and not one_by_one and frame_keys_plain(frame, keys):
        # keys checked in memory, the rows' partition by the MERGE itself: one statement
        sql = upsert(f"(SELECT * FROM ({source_sql}) AS _bl_src WHERE CASE WHEN _bl_src.{pcol} "
                     f"IS DISTINCT FROM $_bl_partition THEN error('{MERGE_CHECK}') ELSE true END)")
        try:
            run_rows(cur, sql, bind(sql, params), frame)
        except duckdb.Error as exc:
            if MERGE_CHECK in str(exc):  # DuckDB aborted the transaction: retry, one by one
                raise _OneByOne from None
            raise
        return len(frame)
    create = f"CREATE TEMP TABLE {src} AS {source_sql}"
    run_rows(cur, create, bind(create, params), frame)
    if one_by_one:
        n_null, total, distinct, outside = _check_keys(cur, src, keys, pcol, partition)
    elif (counted := _plain_key_counts(cur, src, keys, pcol, partition)) is not None:
        n_null, total, distinct, outside = counted
    else:
        try:
            cols = ", ".join(quote(k) for k in keys)
            nulls = " OR ".join(f"{quote(k)} IS NULL" for k in keys)
            n_null, total, distinct, outside = run(
                cur, f"SELECT count(*) FILTER (WHERE {nulls}), count(*), count(DISTINCT "
                f"({cols})), count(*) FILTER (WHERE {pcol} IS DISTINCT FROM $_bl_partition) "
                f"FROM {src}", partition)[0]
        except (ConfigError, duckdb.Error):
            raise _OneByOne from None
    if n_null:
        raise MergeKeyError(
            f"merge keys {keys} are NULL in {n_null} rows of partition {key}; NULL keys "
            f"never match, so every rerun would add them again: fix the rows upstream"
        )
    if total != distinct:
        raise MergeKeyError(
            f"merge keys {keys} are not unique in partition {key}: {total - distinct} "
            f"duplicate rows (MERGE would silently keep one); dedupe upstream or "
            f"choose keys that identify a row"
        )
    if outside:
        raise duckdb.InvalidInputException(OUTSIDE)  # transaction() words it
    run(cur, upsert(src), partition)
    run(cur, f"DROP TABLE {src}")
    return int(total)


def dates_as_datetime64(frame: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    """``frame`` with its partition ``column`` as datetime64 when it holds Python dates that
    all equal the partition's ``value`` (the usual case): the same DATE values for DuckDB,
    which scans a datetime64 column several times faster than Python objects. Anything else
    is left as it is (the write's guard judges it).

    >>> f = pd.DataFrame({"date": [dt.date(2024, 12, 1)] * 2, "x": [1, 2]})
    >>> str(dates_as_datetime64(f, "date", dt.date(2024, 12, 1))["date"].dtype)
    'datetime64[s]'
    >>> dates_as_datetime64(f, "date", dt.date(2024, 12, 2)) is f
    True
    """
    if (type(value) is not dt.date or column not in frame.columns or len(frame) == 0
            or frame.columns.duplicated().any() or frame[column].dtype != object):
        return frame
    values = frame[column].to_numpy()
    if not all(type(v) is dt.date for v in values[:1]) or not (values == value).all():
        return frame
    out = frame.copy(deep=False)
    out[column] = np.full(len(frame), np.datetime64(value, "s"))
    return out


def frame_keys_plain(frame: pd.DataFrame, keys: Sequence[str]) -> bool:
    """True when merge ``keys`` of ``frame`` are certainly unique and never NULL as DuckDB
    reads them: present once each, with values that convert one to one (integers, booleans,
    whole-microsecond timestamps, text or dates of one type). False only means DuckDB's own
    check must decide.

    >>> f = pd.DataFrame({"k": [1, 2], "date": ["2024-12-01"] * 2})
    >>> frame_keys_plain(f, ["k", "date"]), frame_keys_plain(f, ["date"])
    (True, False)
    """
    columns = list(frame.columns)
    if not keys or any(columns.count(k) != 1 for k in keys):
        return False
    plain = []  # the keys' numpy values, while every key is of numpy's integers, bools, times
    for k in keys:
        values = frame[k]
        kind = values.dtype.kind
        if kind == "M":
            if isinstance(values.dtype, pd.DatetimeTZDtype):
                return False  # DuckDB's TIMESTAMPTZ: let it judge
            stamps = values.to_numpy()
            unit = getattr(values.dtype, "unit", None) or np.datetime_data(stamps.dtype)[0]
            if unit == "ns" and (stamps.view("i8") % 1000).any():
                return False  # DuckDB keeps microseconds: two values could become one
        elif kind == "O":
            if pd.api.types.infer_dtype(values, skipna=False) not in ("string", "date",
                                                                      "integer"):
                return False
        elif kind not in "iub" or isinstance(values.dtype, pd.CategoricalDtype):
            return False
        if isinstance(values.dtype, np.dtype) and kind in "iubM":
            plain.append(stamps if kind == "M" else values.to_numpy())
    if len(plain) < len(keys):  # text, dates, nullable integers: pandas says
        subset = frame[list(keys)]
        return not subset.isna().to_numpy().any() and not subset.duplicated().any()
    # what isna and duplicated say, in numpy: NaT is NULL; a key of one value tells no rows
    # apart (all of them: unique if at most one row); the others' values as one code each
    codes, n = [], len(frame)
    for x in plain:
        if x.dtype.kind == "M" and np.isnat(x).any():
            return False
        x = x.view("i8") if x.dtype.kind == "M" else x
        if n and x.min() != x.max():
            codes.append(x)
    if not codes:
        return n <= 1
    if len(codes) == 1:
        ordered = np.sort(codes[0])
        return not (ordered[1:] == ordered[:-1]).any()
    return _distinct_rows(codes) == n


def _distinct_rows(columns: Sequence[Any]) -> int:
    """How many distinct rows the numpy arrays ``columns`` (one length, at least one) make:
    each column's values coded 0..n-1, each row's codes as one number when it fits."""
    n = len(columns[0])
    codes = [np.unique(x, return_inverse=True)[1].astype(np.int64) for x in columns]
    if not n:
        return 0
    if n ** len(codes) < 2 ** 62:  # each row's codes as one number: it fits
        row = np.zeros(n, dtype=np.int64)
        for found in codes:
            row = row * n + found
        return len(np.unique(row))
    return len(np.unique(np.stack(codes, axis=1), axis=0))


#: DuckDB types whose values numpy holds one to one (``fetchnumpy``: integers, booleans, DATE
#: and TIMESTAMP as datetime64[us]), so numpy counts NULLs and distinct keys as DuckDB would
_PLAIN_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                          "UINTEGER", "UBIGINT", "BOOLEAN", "DATE", "TIMESTAMP"})


def _plain_key_counts(cur: duckdb.DuckDBPyConnection, src: str, keys: list[str], pcol: str,
                      partition: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """The merge checks of the scratch table ``src`` (NULL-key rows, rows, distinct keys, rows
    of other partitions, as the one check query counts them) from its key columns read into
    numpy, when they and the partition column are of :data:`_PLAIN_TYPES` (one statement
    that reads a few columns costs less than one that counts); None when they are not, or
    the read cannot run (a key the source lacks): then the check query decides. With
    NULL keys the other counts are not read (the NULLs are the error)."""
    value = partition["_bl_partition"]
    names = list(dict.fromkeys([*keys, pcol.strip('"')]))
    if (type(value) not in (dt.date, dt.datetime) or getattr(value, "tzinfo", None) is not None
            or len(names) != len(set(map(str.lower, names)))):
        return None
    try:
        result = cur.execute(f"SELECT {', '.join(quote(c) for c in names)} FROM {src}")
        types = [str(d[1]) for d in result.description]
        # numpy arrays, masked where NULL; a DATE numpy's microseconds cannot hold (infinity,
        # year 300000) does not convert: then the query decides, as for any other type
        arrays: dict[str, Any] = dict(result.fetchnumpy())
    except (ConfigError, duckdb.Error, ValueError, OverflowError):
        return None  # if the transaction is aborted, the caller's fallback retries one by one
    if any(t not in _PLAIN_TYPES for t in types) or list(arrays) != names:
        return None
    day = types[names.index(pcol.strip('"'))]
    if (day == "DATE") != (type(value) is dt.date):
        return None  # a DATE compared with a timestamp (or the reverse): DuckDB casts
    total = len(arrays[names[0]])
    missing = np.zeros(total, dtype=bool)
    for k in keys:
        missing |= np.ma.getmaskarray(arrays[k])
    if missing.any():
        return int(missing.sum()), total, total, 0
    p = arrays[pcol.strip('"')]
    outside = int((np.ma.getmaskarray(p) | (np.ma.getdata(p) != np.datetime64(value, "us"))).sum())
    return 0, total, _distinct_rows([np.ma.getdata(arrays[k]) for k in keys]), outside


def _check_keys(cur: duckdb.DuckDBPyConnection, src: str, keys: list[str], pcol: str,
                partition: dict[str, Any]) -> tuple[int, int, int, int]:
    """The merge checks one at a time, in the order their errors are reported (an unknown
    key first): (NULL-key rows, rows, distinct keys, rows of other partitions), each read
    only once the ones before it passed."""
    columns = [r[0] for r in run(cur, f"DESCRIBE {src}")]
    for k in keys:
        if k not in columns:
            raise UnknownNameError.of("merge key", k, columns)
    nulls = " OR ".join(f"{quote(k)} IS NULL" for k in keys)
    n_null = run(cur, f"SELECT count(*) FROM {src} WHERE {nulls}")[0][0]
    if n_null:
        return int(n_null), 0, 0, 0
    cols = ", ".join(quote(k) for k in keys)
    total, distinct = run(cur, f"SELECT count(*), count(DISTINCT ({cols})) FROM {src}")[0]
    if total != distinct:
        return 0, int(total), int(distinct), 0
    outside = run(cur, f"SELECT count(*) FROM {src} WHERE {pcol} IS DISTINCT FROM "
                  f"$_bl_partition", partition)[0][0]
    return 0, int(total), int(distinct), int(outside)


def null_columns(cur: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Columns of ``table`` with no type yet (created from an empty DataFrame)."""
    return [r[0] for r in run(cur, f"DESCRIBE {quote(table)}") if r[1] == '"NULL"']


def settle_types(cur: duckdb.DuckDBPyConnection, table: str, source_sql: str,
                 params: dict[str, Any] | None) -> bool:
    """Give ``table``'s untyped columns the type ``source_sql`` has for them; True once none
    is left untyped."""
    untyped = null_columns(cur, table)
    if untyped:
        source = {r[0]: r[1] for r in run(cur, f"DESCRIBE SELECT * FROM ({source_sql}) LIMIT 0",
                                          params)}
        for column in untyped:
            kind = source.get(column)
            if kind is not None and kind != '"NULL"':
                run(cur, f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} TYPE {kind}")
    return not null_columns(cur, table)


def as_key(value: Any, daily: bool) -> str:
    """The key of a partition column value (DATE, TIMESTAMP or text)."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if daily and isinstance(value, dt.datetime):
        value = value.date()
    return parse_key(value)
