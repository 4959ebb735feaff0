"""Small helpers around DuckDB cursors.

DuckDB 2 refuses new work on a cursor whose last result was not read to the end (a ``fetchone()``
leaves it open), so every statement here is read completely before the next one runs.
"""

from __future__ import annotations

import json
import re
import weakref
from pathlib import Path
from typing import Any

import duckdb

from .errors import ConfigError

__all__ = ["ROWS", "bind", "fence", "fenced", "one", "open_advice", "quote", "run", "run_rows",
           "run_select"]

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

Params = dict[str, Any] | list[Any] | None

ROWS = "_bl_rows"
"""The name a statement run by :func:`run_rows` reads its DataFrame by."""

_FENCED: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()  # see fence()


def open_advice(error: str, path: Path) -> str:
    """What to do when DuckDB could not open the file ``path`` (its first error line).

    >>> open_advice("IO Error: Cannot open file: No such file or directory", Path("no/x.duckdb"))
    "its folder 'no' does not exist; create it first"
    """
    lowered = error.lower()
    if "lock" in lowered:
        return "close the other program (or notebook kernel) that has it open"
    if "permission denied" in lowered:
        return "you may not write it or its folder; check their permissions, or copy it"
    if "no such file or directory" in lowered and not path.parent.exists():
        return f"its folder {str(path.parent)!r} does not exist; create it first"
    return "it is not a DuckDB database file"


def quote(name: str) -> str:
    """Quote an identifier for SQL after checking it is a plain name.

    >>> quote("features_v2")
    '"features_v2"'
    """
    if not isinstance(name, str) or not name or not set(name) <= _IDENT_OK or name[0].isdigit():
        raise ConfigError.invalid("table or column name", "letters, digits and '_'", name)
    return f'"{name}"'


def bind(sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Only the named parameters ``sql`` uses (DuckDB rejects extra ones).

    >>> bind("SELECT $a", {"a": 1, "b": 2})
    {'a': 1}
    """
    names = set(_PARAM.findall(sql))
    return {k: v for k, v in params.items() if k in names} or None


def run(cur: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
    """Execute and read every row."""
    return cur.execute(sql, params).fetchall()


def one(cur: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> tuple[Any, ...] | None:
    """Execute and return the first row (or None), reading the result to its end."""
    rows = cur.execute(sql, params).fetchall()
    return rows[0] if rows else None


def run_rows(cur: duckdb.DuckDBPyConnection, sql: str, params: Params,
             _bl_rows: Any) -> list[tuple[Any, ...]]:
    """Execute with the DataFrame ``_bl_rows`` readable by that name (:data:`ROWS`), and read
    every row.

    DuckDB finds a name no table has among the local variables of the Python frame that runs
    the statement (its replacement scan): this one's. That costs less than registering the
    DataFrame as a view and removing it again, two catalog changes per write; a fenced
    database (:func:`fence`) reads no Python variables, so there it is registered.
    """
    if _bl_rows is None or cur not in _FENCED:
        return cur.execute(sql, params).fetchall()
    cur.register(ROWS, _bl_rows)
    try:
        return cur.execute(sql, params).fetchall()
    finally:
        cur.unregister(ROWS)


def fence(con: duckdb.DuckDBPyConnection, *cursors: duckdb.DuckDBPyConnection) -> None:
    """Cut the database of ``con`` off from everything but itself, for good: no files, no
    network, no extensions, no Python variables (DuckDB's ``enable_external_access`` off), and
    its settings locked. The grader's judge does it to a copy before a plan's own SQL runs on
    it. ``cursors``: those already open on it (a new one is marked by :func:`fenced`)."""
    run(con, "SET enable_external_access = false")
    run(con, "SET lock_configuration = true")
    for c in (con, *cursors):
        _FENCED.add(c)


def fenced(parent: duckdb.DuckDBPyConnection,
           cur: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``cur``, a new cursor of ``parent``, marked as fenced when ``parent`` is."""
    if parent in _FENCED:
        _FENCED.add(cur)
    return cur


def run_select(cur: duckdb.DuckDBPyConnection, sql: str, params: Params = None
               ) -> list[tuple[Any, ...]]:
    """Run SQL that is not the lab's own (a plan's consumer query) so that it can change
    nothing: it must be one SELECT statement (DuckDB's own parser says whether it is), and it
    runs in a transaction rolled back after it (a SELECT can still hold a data-changing
    ``WITH``). Raises ValueError, naming what it got, when it is anything else."""
    parsed = json.loads(cur.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if parsed.get("error") or len(parsed.get("statements", ())) != 1:
        raise ValueError(f"the query must be one SELECT statement (got {sql[:80]!r}); "
                         "write a single SELECT that reads the partition")
    run(cur, "BEGIN TRANSACTION")
    try:
        return run(cur, sql, params)
    finally:
        run(cur, "ROLLBACK")
