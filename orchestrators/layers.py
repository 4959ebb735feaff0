"""The demo pipeline's layers as plain DuckDB writes, shared by the Dagster and Airflow mirrors.

Each layer writes one day the way the lab's ``overwrite`` mode does: delete the day and insert
it again in one transaction, so a reader never sees it empty or half written. The SQL is the
lab's own (``sql/*.sql``). The warehouse is the DuckDB file ``BACKFILL_WAREHOUSE``; the source
system is the Parquet file ``BACKFILL_SOURCE``. Only the standard library and ``duckdb``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from pathlib import Path
from typing import Any

import duckdb

SQL_DIR = Path(__file__).resolve().parent / "sql"
LAYERS = ("raw", "staging", "features")
WINDOW = 7  # features read a trailing 7-day window of staging
LOCK_WAIT = 120.0  # seconds to wait for another process's hold on the DuckDB file


def connect() -> duckdb.DuckDBPyConnection:
    """The warehouse, read-write. DuckDB lets one process hold the file: wait for it (bounded)."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def sql_for(layer: str, day: str) -> tuple[str, dict[str, Any]]:
    """The SELECT that builds ``day`` of ``layer``, with its parameters (only those it uses)."""
    lines = (SQL_DIR / f"{layer}.sql").read_text().splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("--"))  # the header comment
    text = body.format(raw="raw", staging="staging")
    date = dt.date.fromisoformat(day)
    params: dict[str, Any] = {
        "partition": date, "window_start": date - dt.timedelta(days=WINDOW - 1),
        "window_end": date, "source": os.environ.get("BACKFILL_SOURCE", "")}
    used = set(re.findall(r"\$(\w+)", text))
    return text, {k: v for k, v in params.items() if k in used}


def write_partition(layer: str, day: str) -> int:
    """Replace ``day`` of ``layer`` atomically; the number of rows written."""
    select, params = sql_for(layer, day)
    con = connect()
    try:
        con.execute("BEGIN")
        con.execute(f"CREATE TABLE IF NOT EXISTS {layer} AS SELECT * FROM ({select}) LIMIT 0",
                    params)
        con.execute(f"DELETE FROM {layer} WHERE date = $day", {"day": dt.date.fromisoformat(day)})
        con.execute(f"INSERT INTO {layer} BY NAME {select}", params)
        rows = con.execute(f"SELECT count(*) FROM {layer} WHERE date = $day",
                           {"day": dt.date.fromisoformat(day)}).fetchone()
        con.execute("COMMIT")
        return int(rows[0]) if rows else 0
    finally:
        con.close()


def window_missing(day: str) -> list[str]:
    """The days of ``day``'s 7-day staging window not written yet (what the lab's runner waits
    for). A window reaching back before the first staging day reads what exists, as in the lab."""
    date = dt.date.fromisoformat(day)
    wanted = [date - dt.timedelta(days=k) for k in range(WINDOW - 1, -1, -1)]
    con = connect()
    try:
        first = con.execute("SELECT min(date) FROM staging").fetchone()
        present = {r[0] for r in con.execute(
            "SELECT DISTINCT date FROM staging WHERE date BETWEEN $a AND $b",
            {"a": wanted[0], "b": wanted[-1]}).fetchall()}
    finally:
        con.close()
    start = first[0] if first and first[0] is not None else date
    return [d.isoformat() for d in wanted if d >= start and d not in present]
