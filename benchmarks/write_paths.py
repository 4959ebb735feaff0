"""What one small DuckDB statement costs, and the write paths the judge chose between.

Run from the project root with the project's venv::

    python benchmarks/write_paths.py            # 200 repetitions of each
    python benchmarks/write_paths.py -n 50

Each figure is the thread CPU time of one statement (or one write), the median of ``n``
repetitions, on one DuckDB thread as a replay runs, each write rolled back so every repetition
starts from the same table. It prints:

* the fixed cost of a small statement: a 16-column ledger INSERT, an empty BEGIN/COMMIT;
* a day of demo events (about 4,000 rows) inserted from a DataFrame whose ``date`` column
  holds Python dates, and the same with it as datetime64 (what a write hands DuckDB now);
* a merge of a DataFrame: the scratch table, its key check, MERGE and DROP, against the one
  guarded MERGE a frame with plainly unique keys now gets;
* a merge of a SELECT (the late pipeline's features): the scratch-table path it keeps, against
  one MERGE with its checks in a QUALIFY window, and against fetching the SELECT into pandas.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from backfill_lab.demo.daily import EventSource
from backfill_lab.ledger import _COLUMNS, _SCHEMA

DAY = dt.date(2024, 12, 10)
P = {"p": DAY}


def cost(fn: Callable[[], Any], n: int) -> float:
    """The median thread CPU time of ``fn()`` over ``n`` runs, in ms (after one warm-up)."""
    fn()
    times = []
    for _ in range(n):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return statistics.median(times) * 1e3


def rolled_back(cur: duckdb.DuckDBPyConnection, *statements: str,
                rows: pd.DataFrame | None = None) -> Callable[[], None]:
    """A write of ``statements`` in a transaction that is rolled back (``rows`` readable as
    ``_bl_rows``, as the engine passes a DataFrame)."""
    def write(_bl_rows: pd.DataFrame | None = rows) -> None:
        cur.execute("BEGIN TRANSACTION")
        for sql in statements:
            cur.execute(sql, P if "$p" in sql else None).fetchall()
        cur.execute("ROLLBACK")
    return write


def line(label: str, ms: float) -> None:
    """One figure."""
    print(f"  {label:<40} {ms:6.2f}")


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="repetitions of each (median)")
    n = parser.parse_args().n
    con = duckdb.connect()
    con.execute("SET threads=1")
    cur = con.cursor()
    cur.execute(_SCHEMA)
    events = EventSource().events(DAY.isoformat())
    cur.execute("CREATE TABLE raw AS SELECT * FROM events")
    history = pd.concat([EventSource().events((DAY - dt.timedelta(days=d)).isoformat())
                         for d in range(1, 31)], ignore_index=True)
    cur.register("history", history)
    cur.execute("INSERT INTO raw SELECT * FROM history")
    cur.unregister("history")
    cur.execute("DELETE FROM raw WHERE date = $p", P)
    features = ("SELECT date, entity_id, count(*) AS events, CAST(sum(CAST(amount AS "
                "DECIMAL(18, 2))) AS DOUBLE) AS amount FROM raw WHERE date = $p "
                "GROUP BY date, entity_id")
    cur.execute("INSERT INTO raw SELECT * FROM events")
    cur.execute(f"CREATE TABLE f AS {features.replace('= $p', '<= ?')}", [DAY])

    row = "(" + ", ".join("?" for _ in _COLUMNS) + ")"
    values = ["bf-1", "raw", DAY.isoformat(), "raw", "merge", "v1", 1, "success", 100,
              dt.datetime(2024, 12, 11, 2), dt.datetime(2024, 12, 11, 2, 0, 1), None,
              [f"raw:{DAY}"], '{"owner": "x"}', "sha256:12345678", "python 3.11"]
    ledger = f"INSERT INTO _bl_ledger ({', '.join(_COLUMNS)}) VALUES {row}"
    print(f"statement costs, thread CPU, median of {n} (ms):")
    line("16-column ledger INSERT", cost(lambda: cur.execute(ledger, values), n))
    line("empty BEGIN + COMMIT", cost(lambda: (cur.execute("BEGIN"), cur.execute("COMMIT")), n))

    as_dates = events.copy()
    as_stamps = events.copy()
    as_stamps["date"] = np.full(len(events), np.datetime64(DAY, "s"))
    insert = ("INSERT INTO raw BY NAME SELECT * FROM (SELECT * FROM _bl_rows) AS s WHERE CASE "
              "WHEN s.date IS DISTINCT FROM $p THEN error('outside') ELSE true END")
    print(f"a day of events ({len(events):,} rows) inserted from a DataFrame:")
    for label, frame in (("date column of Python dates", as_dates),
                         ("date column as datetime64 (now)", as_stamps)):
        line(label, cost(rolled_back(cur, insert, rows=frame), n))

    on = "t.event_id = s.event_id AND t.date = s.date AND t.date = $p"
    upsert = "WHEN MATCHED THEN UPDATE WHEN NOT MATCHED THEN INSERT"
    scratch = ("CREATE TEMP TABLE s1 AS SELECT * FROM _bl_rows",
               "SELECT count(*) FILTER (WHERE event_id IS NULL OR date IS NULL), count(*), "
               "count(DISTINCT (event_id, date)), count(*) FILTER (WHERE date IS DISTINCT FROM "
               "$p) FROM s1",
               f"MERGE INTO raw AS t USING s1 AS s ON {on} {upsert}", "DROP TABLE s1")
    one = (f"MERGE INTO raw AS t USING (SELECT * FROM (SELECT * FROM _bl_rows) AS _s WHERE "
           f"CASE WHEN _s.date IS DISTINCT FROM $p THEN error('check') ELSE true END) AS s "
           f"ON {on} {upsert}",)
    print("a merge of that DataFrame into its own rows:")
    line("scratch table, key check, MERGE", cost(rolled_back(cur, *scratch, rows=as_stamps), n))
    line("one guarded MERGE (now)", cost(rolled_back(cur, *one, rows=as_stamps), n))

    on_f = "t.entity_id = s.entity_id AND t.date = s.date AND t.date = $p"
    kept = (f"CREATE TEMP TABLE s2 AS {features}",
            "SELECT count(*) FILTER (WHERE entity_id IS NULL OR date IS NULL), count(*), "
            "count(DISTINCT (entity_id, date)), count(*) FILTER (WHERE date IS DISTINCT FROM $p) "
            "FROM s2", f"MERGE INTO f AS t USING s2 AS s ON {on_f} {upsert}", "DROP TABLE s2")
    qualify = (f"MERGE INTO f AS t USING (SELECT * FROM ({features}) AS _s WHERE CASE WHEN "
               f"entity_id IS NULL OR date IS NULL OR date IS DISTINCT FROM $p THEN "
               f"error('check') ELSE true END QUALIFY CASE WHEN count(*) OVER (PARTITION BY "
               f"entity_id, date) > 1 THEN error('check') ELSE true END) AS s ON {on_f} {upsert}",)

    def via_pandas() -> None:
        cur.execute("BEGIN TRANSACTION")
        _bl_rows = cur.execute(features, P).df()
        keys = _bl_rows[["entity_id", "date"]]
        assert not keys.isna().to_numpy().any() and not keys.duplicated().any()
        cur.execute(f"MERGE INTO f AS t USING (SELECT * FROM _bl_rows) AS s ON {on_f} {upsert}",
                    P).fetchall()
        cur.execute("ROLLBACK")

    print("a merge of a SELECT (the late pipeline's features of one day):")
    line("scratch table, key check, MERGE (kept)", cost(rolled_back(cur, *kept), n))
    line("one MERGE, checks in a QUALIFY", cost(rolled_back(cur, *qualify), n))
    line("fetched into pandas, then MERGE", cost(via_pandas, n))


if __name__ == "__main__":
    main()
