"""What the parts of a judged plan cost that this round's changes were about.

Run from the project root with the project's venv::

    python benchmarks/judge_parts.py

It prints, each as the median of many runs on this machine as it is (the load is printed):

* a DuckDB transaction in one process: ``BEGIN; COMMIT`` alone, and with a one-row insert of 4
  and of 16 columns (the ledger's row): what each table a step's transaction touches costs;
* one staging step's transaction (BEGIN, DELETE, the demo's staging INSERT ... SELECT, COMMIT)
  at 4,000 events a day (ex1's), 400 and 40: what a smaller incident would save a step;
* the drift check of one ex1 features partition against its 7-day history (five numeric
  columns): the columns measured together (:func:`~backfill_lab.distributions.drift_by_column`)
  and one by one (:func:`~backfill_lab.distributions.drift_measures` per column, as before);
* the merge key check of one ex2 raw day (600 rows): :func:`backfill_lab._writes.frame_keys_plain`
  and pandas' ``isna`` plus ``duplicated`` on the same keys (what it did before);
* staging a copy of the incident for a plan: a new copy (made, then closed) and a kept copy
  (put back after a replay of the plan, then taken), for ex1 and ex2;
* the memory a kept ex1 copy holds (the process's resident size with it and without it).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def median_ms(fn: Callable[[], Any], n: int) -> float:
    """The median wall time of ``fn()`` over ``n`` calls, in ms."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def in_two_threads(fn: Callable[[], Any], n: int = 200) -> float:
    """The wall time per call of ``fn()`` called ``n`` times in each of two threads at once,
    in ms (what the GIL lets two threads do side by side)."""
    import threading

    def loop() -> None:
        for _ in range(n):
            fn()

    threads = [threading.Thread(target=loop) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 1000 * (time.perf_counter() - t0) / (2 * n)


def load() -> str:
    """The 1-minute load average, for the record."""
    return f"load {os.getloadavg()[0]:.1f}"


def transactions() -> None:
    """BEGIN; COMMIT with nothing, and with one row inserted (4 and 16 columns)."""
    import duckdb

    cur = duckdb.connect().cursor()
    cur.execute("SET threads=1")
    cur.execute("CREATE TABLE four (" + ", ".join(f"c{i} VARCHAR" for i in range(4)) + ")")
    cur.execute("CREATE TABLE sixteen (" + ", ".join(f"c{i} VARCHAR" for i in range(16)) + ")")

    def tx(table: str | None, width: int = 0) -> Callable[[], None]:
        row = f"INSERT INTO {table} VALUES (" + ", ".join("?" * width) + ")"
        values = ["x"] * width

        def run() -> None:
            cur.execute("BEGIN TRANSACTION")
            if table is not None:
                cur.execute(row, values)
            cur.execute("COMMIT")
        return run

    print(f"transaction: BEGIN; COMMIT {median_ms(tx(None), 500):.2f} ms; with a one-row "
          f"insert of 4 columns {median_ms(tx('four', 4), 500):.2f} ms, of 16 columns "
          f"{median_ms(tx('sixteen', 16), 500):.2f} ms ({load()})", flush=True)


def drift() -> None:
    """The drift check of one ex1 features partition, columns together and one by one."""
    from backfill_lab._db import quote
    from backfill_lab.course.scenarios import scenario
    from backfill_lab.course.simulate import staged_copy
    from backfill_lab.distributions import Rows, drift_by_column, drift_measures

    st = staged_copy(scenario("ex1"))
    try:
        cur = st.warehouse.cursor()
        day = dt.date(2024, 11, 30)
        rows = Rows.read(cur, f"SELECT * FROM {quote('features')} WHERE date = ?", [day])
        base = Rows.read(cur, f"SELECT * FROM {quote('features')} WHERE date BETWEEN ? AND ?",
                         [day - dt.timedelta(days=7), day - dt.timedelta(days=1)])
        columns = [c for c in rows.columns if rows.numeric(c) and c != "entity_id"]
        assert drift_by_column(base, rows, columns) == \
            [drift_measures(base.sample(c), rows.sample(c)) for c in columns]
        def together() -> object:
            return drift_by_column(base, rows, columns)

        def one_by_one() -> object:
            return [drift_measures(base.sample(c), rows.sample(c)) for c in columns]

        print(f"drift check, {len(columns)} columns, {len(base)} history rows vs {len(rows)}: "
              f"alone: together {median_ms(together, 300):.2f} ms, one by one "
              f"{median_ms(one_by_one, 300):.2f} ms; in two threads at once (as a replay at "
              f"concurrency 2): together {in_two_threads(together):.2f} ms, one by one "
              f"{in_two_threads(one_by_one):.2f} ms a check ({load()})", flush=True)
    finally:
        st.warehouse.close()


def merge_keys() -> None:
    """The merge key check of one ex2 raw day, in numpy and in pandas."""
    from backfill_lab._writes import dates_as_datetime64, frame_keys_plain
    from backfill_lab.course.scenarios import scenario
    from backfill_lab.demo.daily import EventSource

    sc = scenario("ex2")
    day = dt.date(2024, 12, 5)
    frame = dates_as_datetime64(
        EventSource(sc.seed, sc.entities, sc.events_per_day).events(day.isoformat()), "date", day)
    keys = ["event_id", "date"]

    def pandas() -> bool:
        subset = frame[keys]
        return not subset.isna().to_numpy().any() and not subset.duplicated().any()

    assert frame_keys_plain(frame, keys) == pandas()
    print(f"merge key check, {len(frame)} rows: frame_keys_plain "
          f"{median_ms(lambda: frame_keys_plain(frame, keys), 500):.3f} ms, pandas' isna and "
          f"duplicated {median_ms(pandas, 500):.3f} ms ({load()})", flush=True)


def staging(rounds: int = 5) -> None:
    """A new copy for a plan (made, closed) and a kept one (put back after a replay, taken)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from judge_speed import solution_plan

    from backfill_lab.course import copies
    from backfill_lab.course.scenarios import scenario
    from backfill_lab.course.simulate import simulate, staged
    from backfill_lab.course.templates import template
    from backfill_lab.plan import Plan

    for exercise in ("ex1", "ex2"):
        sc, plan = scenario(exercise), Plan.load(solution_plan(exercise))
        path = template(sc)
        new, kept = [], []
        for _ in range(rounds):
            copies.close_kept()
            t0 = time.perf_counter()
            context = staged(sc, plan)
            context.__enter__().warehouse.close()
            new.append(time.perf_counter() - t0)
            simulate(plan, sc)  # leaves its copy kept, as the replay changed it
            t0 = time.perf_counter()
            found = copies.take(sc, plan, path)
            kept.append(time.perf_counter() - t0)
            assert found is not None
            found[0].warehouse.close()
        print(f"{exercise} staging for a plan: a new copy, made and closed "
              f"{1000 * statistics.median(new):.0f} ms; a kept copy, put back "
              f"{1000 * statistics.median(kept):.0f} ms ({load()})", flush=True)


def memory() -> None:
    """The resident size of this process with a kept ex1 copy and without."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from judge_speed import solution_plan

    from backfill_lab.course import copies
    from backfill_lab.course.scenarios import scenario
    from backfill_lab.course.simulate import simulate
    from backfill_lab.plan import Plan

    def resident_mb() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") \
            >> 20

    simulate(Plan.load(solution_plan("ex1")), scenario("ex1"))
    with_copy = resident_mb()
    copies.close_kept()
    print(f"memory: {with_copy} MB resident with a kept ex1 copy, {resident_mb()} MB after "
          f"closing it", flush=True)


def rows_per_day() -> None:
    """One staging step's transaction (BEGIN, DELETE, the demo's staging INSERT ... SELECT,
    COMMIT) on a month of raw events, at 4,000 events a day (ex1's), 400 and 40: what a smaller
    incident would save a step."""
    import duckdb

    from backfill_lab.demo.daily import STAGING_SQL, EventSource

    figures = []
    for per_day in (4000, 400, 40):
        src = EventSource(seed=7, entities=max(10, per_day // 4), events_per_day=per_day)
        cur = duckdb.connect().cursor()
        cur.execute("SET threads=1")
        month = [src.events(f"2024-11-{day:02d}") for day in range(1, 31)]
        first = month[0]  # noqa: F841 (DuckDB reads it by name)
        cur.execute("CREATE TABLE raw AS SELECT * FROM first")
        for frame in month[1:]:  # noqa: B007 (DuckDB reads it by name)
            cur.execute("INSERT INTO raw SELECT * FROM frame")
        cur.execute("CREATE TABLE staging AS SELECT * FROM raw LIMIT 0")
        write = ("INSERT INTO staging BY NAME SELECT * FROM ("
                 + STAGING_SQL.replace("{raw}", "raw") + ")")

        def step(cur: Any = cur, write: str = write) -> None:
            cur.execute("BEGIN TRANSACTION")
            cur.execute("DELETE FROM staging WHERE date = DATE '2024-11-15'")
            cur.execute(write, {"partition": "2024-11-15"})
            cur.execute("COMMIT")

        figures.append(f"{per_day:,} events a day {median_ms(step, 200):.2f} ms")
    print(f"a staging step's transaction: {', '.join(figures)} ({load()})", flush=True)


def main() -> int:
    transactions()
    rows_per_day()
    drift()
    merge_keys()
    staging()
    memory()
    return 0


if __name__ == "__main__":
    sys.exit(main())
