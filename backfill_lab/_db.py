"""Small helpers around DuckDB cursors.

DuckDB 2 refuses new work on a cursor whose last result was not read to the end (a ``fetchone()``
leaves it open), so every statement here is read completely before the next one runs.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from .errors import ConfigError

__all__ = ["ROWS", "bind", "one", "quote", "run", "run_rows"]

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

Params = dict[str, Any] | list[Any] | None

ROWS = "_bl_rows"
"""The name a statement run by :func:`run_rows` reads its DataFrame by."""


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
    DataFrame as a view and removing it again, two catalog changes per write.
    """
    return cur.execute(sql, params).fetchall()
