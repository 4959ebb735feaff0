"""How much does the backfill engine cost on top of DuckDB itself?

Run from the project root with the project's venv::

    python benchmarks/engine_overhead.py            # full run: 365 daily partitions (~3 min)
    python benchmarks/engine_overhead.py --quick    # smoke test: 30 partitions, one repetition
    python benchmarks/engine_overhead.py --profile  # where the engine's time goes (10k rows, c=1)

For 10k and 100k rows per partition it times the same transform written four ways:

* set-based: one ``INSERT INTO target SELECT ... FROM src`` over every day (the floor);
* bare loop: per day ``BEGIN; DELETE; INSERT ... WHERE date = d; COMMIT`` from a plain Python
  loop on 1 and 2 threads, each thread on its own cursor (DuckDB's own per-transaction cost);
* the engine: ``run_backfill`` of a one-layer SQL pipeline, concurrency 1 and 2, mode overwrite;
* the engine in merge mode (``merge_keys=["event_id", "date"]``) over a full target;
* the engine with ``batch_size`` 7 and 30 (concurrency 2), one transaction per batch: first with
  the same per-partition SQL (each batch is a UNION ALL of its partitions' SELECTs), then with the
  transform written range-aware (``WHERE date BETWEEN $batch_start AND $batch_end``), so each
  batch is one SELECT that DuckDB runs on all cores, like the set-based statement.

The bare loop and the engine are timed into an empty target and again over the full target they
just wrote (overwriting every partition, as a real rerun does). "Engine overhead per partition"
is ``(engine ms - bare loop ms at the same thread count) / partitions``. Each measurement is the
best of ``--reps`` repetitions, timed with ``time.perf_counter``.

Fairness: every repetition of every measurement gets a brand-new in-memory ``Warehouse`` with the
source table rebuilt (untimed), so each starts from the same state: an empty target, no
``_bl_tables`` rows, an empty ledger, no deleted row versions left behind by an earlier run, and
no engine-side cache that a dropped table could leave stale.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import os
import platform
import pstats
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import duckdb

import backfill_lab
import backfill_lab._db
from backfill_lab import Layer, Pipeline, Warehouse, run_backfill

FIRST_DAY = dt.date(2024, 1, 1)
FULL_DAYS = 365  # 2024-01-01..2024-12-30 (2024 is a leap year)
QUICK_DAYS = 30
SIZES = (10_000, 100_000)
TRANSFORM = "date, entity_id, event_id, amount, amount * 2 AS amount_x2"
MERGE_KEYS = ["event_id", "date"]
BATCHES = (7, 30)  # partitions per transaction for the batched runs

GOAL_OVERHEAD_MS = 5.0  # engine ms per partition beyond the bare per-partition transaction
GOAL_RATIO = 2.0  # engine / set-based at 100k rows per partition
GOAL_RATIO_ROWS = 100_000
MERGE_BUDGET_S = 60.0  # skip the merge measurement when it would take longer than this
MERGE_PROBE_DAYS = 10  # partitions merged first to estimate the full merge's duration

Rows = list[tuple[Any, ...]]


# -- setup ---------------------------------------------------------------------------------
def q(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> Rows:
    """Execute and read the result to its end (DuckDB 2 wants that before the next statement)."""
    return cur.execute(sql, params).fetchall()


def day_list(days: int) -> list[dt.date]:
    return [FIRST_DAY + dt.timedelta(days=i) for i in range(days)]


def partition_range(days: int) -> str:
    dates = day_list(days)
    return f"{dates[0]}..{dates[-1]}"


def new_warehouse(rows: int, days: int) -> Warehouse:
    """A fresh in-memory warehouse holding ``src``: ``days`` partitions of ``rows`` rows each.

    ``range()`` yields ``i`` in order and DuckDB preserves insertion order, so the table is
    stored sorted by date (each row group then covers a narrow date range).
    """
    wh = Warehouse()
    q(
        wh.cursor(),
        f"CREATE TABLE src AS SELECT "
        f"DATE '{FIRST_DAY}' + (i // {rows})::INTEGER AS date, "
        f"(i % 5000)::BIGINT AS entity_id, "
        f"i::BIGINT AS event_id, "
        f"((i * 7919) % 100000) / 100.0 AS amount "
        f"FROM range({rows * days}) AS t(i)",
    )
    return wh


def create_target(cur: duckdb.DuckDBPyConnection) -> None:
    """The baselines' target, with the schema the engine would create for it."""
    q(cur, f"CREATE TABLE target AS SELECT {TRANSFORM} FROM src LIMIT 0")


def check_target(wh: Warehouse, expected: int) -> None:
    n = q(wh.cursor(), "SELECT count(*) FROM target")[0][0]
    if n != expected:
        raise RuntimeError(f"target holds {n} rows, expected {expected}")


def pipeline(ranged: bool = False) -> Pipeline:
    """The one-layer pipeline: per-partition SQL, or the same transform range-aware."""
    # ``src`` is not a pipeline layer, so the SQL names it literally.
    where = "date BETWEEN $batch_start AND $batch_end" if ranged else "date = $partition"
    layer = Layer("target", f"SELECT {TRANSFORM} FROM src WHERE {where}")
    return Pipeline("bench", [layer])


def timed(action: Callable[[], object]) -> float:
    """Milliseconds ``action`` takes (after a garbage collection, so none lands inside)."""
    gc.collect()
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


# -- the three ways to write ---------------------------------------------------------------
def set_based(wh: Warehouse) -> None:
    q(wh.cursor(), f"INSERT INTO target SELECT {TRANSFORM} FROM src")


def bare_loop(wh: Warehouse, dates: Sequence[dt.date], threads: int) -> None:
    """Per day: BEGIN; DELETE the day; INSERT it from ``src``; COMMIT. No engine involved."""
    base = wh.cursor()
    work: Iterator[dt.date] = iter(dates)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        cur = base.cursor()  # each thread its own DuckDB connection
        try:
            while True:
                with lock:
                    day = next(work, None)
                if day is None:
                    return
                q(cur, "BEGIN TRANSACTION")
                try:
                    q(cur, "DELETE FROM target WHERE date = ?", [day])
                    q(cur, f"INSERT INTO target SELECT {TRANSFORM} FROM src WHERE date = ?", [day])
                    q(cur, "COMMIT")
                except BaseException:
                    q(cur, "ROLLBACK")
                    raise
        except BaseException as exc:
            errors.append(exc)
        finally:
            cur.close()

    if threads == 1:
        worker()
    else:
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    if errors:
        raise errors[0]


def engine(wh: Warehouse, days: int, concurrency: int, mode: str = "overwrite",
           batch_size: int = 1, ranged: bool = False) -> None:
    options: dict[str, Any] = {"concurrency": concurrency, "mode": mode,
                               "batch_size": batch_size}
    if mode == "merge":
        options["merge_keys"] = MERGE_KEYS
    result = run_backfill(pipeline(ranged), wh, partition_range(days), **options)
    if not isinstance(result, backfill_lab.BackfillResult) or not result.ok:
        raise RuntimeError(f"engine run did not succeed: {result!r}")


# -- measurements --------------------------------------------------------------------------
@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> float | None:
        return min(self.runs) if self.runs else None


@dataclass
class Results:
    rows: int
    days: int
    timings: dict[str, Timing] = field(default_factory=dict)

    def add(self, key: str, ms: float) -> None:
        self.timings.setdefault(key, Timing()).runs.append(ms)

    def best(self, key: str) -> float | None:
        timing = self.timings.get(key)
        return timing.best if timing else None


def measure_set_based(res: Results) -> None:
    with new_warehouse(res.rows, res.days) as wh:
        create_target(wh.cursor())
        res.add("set", timed(lambda: set_based(wh)))
        check_target(wh, res.rows * res.days)


def measure_bare(res: Results, threads: int) -> None:
    dates = day_list(res.days)
    with new_warehouse(res.rows, res.days) as wh:
        create_target(wh.cursor())
        res.add(f"bare{threads}_empty", timed(lambda: bare_loop(wh, dates, threads)))
        check_target(wh, res.rows * res.days)
        res.add(f"bare{threads}_full", timed(lambda: bare_loop(wh, dates, threads)))
        check_target(wh, res.rows * res.days)


def measure_engine(res: Results, concurrency: int) -> None:
    with new_warehouse(res.rows, res.days) as wh:
        res.add(f"engine{concurrency}_empty", timed(lambda: engine(wh, res.days, concurrency)))
        check_target(wh, res.rows * res.days)
        res.add(f"engine{concurrency}_full", timed(lambda: engine(wh, res.days, concurrency)))
        check_target(wh, res.rows * res.days)


def measure_batched(res: Results, batch: int, ranged: bool = False) -> None:
    """The engine writing ``batch`` partitions per transaction (concurrency 2)."""
    kind = "range" if ranged else "batch"
    with new_warehouse(res.rows, res.days) as wh:
        for target in ("empty", "full"):
            res.add(f"{kind}{batch}_{target}",
                    timed(lambda: engine(wh, res.days, 2, batch_size=batch, ranged=ranged)))
            check_target(wh, res.rows * res.days)


def measure_merge(res: Results, concurrency: int) -> None:
    """Merge over a full target; estimated from a short probe first, skipped if too slow."""
    key = f"merge{concurrency}_full"
    with new_warehouse(res.rows, res.days) as wh:
        engine(wh, res.days, concurrency)  # fill the target (untimed)
        probe_days = min(MERGE_PROBE_DAYS, res.days)
        probe_ms = timed(lambda: engine(wh, probe_days, concurrency, "merge"))
        estimate_s = probe_ms / probe_days * res.days / 1000
        if estimate_s > MERGE_BUDGET_S:
            res.timings.setdefault(key, Timing()).note = (
                f"skipped: {probe_days} partitions took {probe_ms:.0f} ms, so all {res.days} "
                f"would take ~{estimate_s:.0f} s (> {MERGE_BUDGET_S:.0f} s)"
            )
            return
        res.add(key, timed(lambda: engine(wh, res.days, concurrency, "merge")))
        check_target(wh, res.rows * res.days)


def run_size(rows: int, days: int, reps: int) -> Results:
    res = Results(rows, days)
    for rep in range(reps):
        print(f"  {rows:,} rows/partition: repetition {rep + 1}/{reps} ...", flush=True)
        measure_set_based(res)
        for n in (1, 2):
            measure_bare(res, n)
            measure_engine(res, n)
            measure_merge(res, n)
        for batch in BATCHES:
            measure_batched(res, batch)
            measure_batched(res, batch, ranged=True)
    return res


# -- report --------------------------------------------------------------------------------
LABELS = {
    "set": "set-based: one INSERT ... SELECT",
    "bare1_empty": "bare loop, 1 thread, empty target",
    "bare2_empty": "bare loop, 2 threads, empty target",
    "bare1_full": "bare loop, 1 thread, full target",
    "bare2_full": "bare loop, 2 threads, full target",
    "engine1_empty": "engine overwrite, c=1, empty target",
    "engine2_empty": "engine overwrite, c=2, empty target",
    "engine1_full": "engine overwrite, c=1, full target",
    "engine2_full": "engine overwrite, c=2, full target",
    "batch7_empty": "engine, 7 partitions/txn, empty target",
    "batch7_full": "engine, 7 partitions/txn, full target",
    "batch30_empty": "engine, 30 partitions/txn, empty",
    "batch30_full": "engine, 30 partitions/txn, full",
    "range7_empty": "range-aware SQL, 7/txn, empty",
    "range7_full": "range-aware SQL, 7/txn, full",
    "range30_empty": "range-aware SQL, 30/txn, empty",
    "range30_full": "range-aware SQL, 30/txn, full",
    "merge1_full": "engine merge, c=1, full target",
    "merge2_full": "engine merge, c=2, full target",
}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


@dataclass(frozen=True)
class Summary:
    worst_overhead: float  # ms per partition, worst of c=1/c=2 and empty/full target
    engine_ratio: float  # best engine run into an empty target / set-based
    bare_ratio: float  # best bare loop into an empty target / set-based
    batched_ratio: float  # best batched engine run into an empty target / set-based
    ranged_ratio: float  # the same with the transform written range-aware


def print_size(res: Results) -> Summary:
    """Print one size's tables and return what the goals are judged on."""
    total = res.rows * res.days
    print(f"\n== {res.rows:,} rows/partition x {res.days} partitions = {total:,} rows ==")
    print(f"{'measurement':<38} {'best ms':>9} {'ms/part':>8}  runs (ms)")
    for key, label in LABELS.items():
        timing = res.timings.get(key)
        if timing is None:
            continue
        if timing.best is None:
            print(f"{label:<38} {'-':>9} {'-':>8}  {timing.note}")
            continue
        runs = " ".join(f"{ms:.0f}" for ms in timing.runs)
        print(f"{label:<38} {timing.best:>9.1f} {timing.best / res.days:>8.2f}  {runs}")

    set_ms = res.best("set")
    assert set_ms is not None
    print(
        f"\n{'engine vs baselines':<24} {'engine ms':>9} {'bare ms':>9} "
        f"{'eng/set':>8} {'eng/bare':>8} {'overhead ms/part':>16}  goal <= {GOAL_OVERHEAD_MS:g} ms"
    )
    worst = float("-inf")
    for n in (1, 2):
        for target in ("empty", "full"):
            eng = res.best(f"engine{n}_{target}")
            bare = res.best(f"bare{n}_{target}")
            assert eng is not None and bare is not None
            overhead = (eng - bare) / res.days
            worst = max(worst, overhead)
            print(
                f"{f'c={n}, {target} target':<24} {eng:>9.1f} {bare:>9.1f} "
                f"{eng / set_ms:>7.2f}x {eng / bare:>7.2f}x {overhead:>16.2f}  "
                f"{verdict(overhead <= GOAL_OVERHEAD_MS)}"
            )
    for n in (1, 2):
        merge = res.best(f"merge{n}_full")
        if merge is not None:
            print(
                f"{f'merge c={n}, full target':<24} {merge:>9.1f} {'':>9} {merge / set_ms:>7.2f}x"
            )
    for kind in ("batch", "range"):
        for batch in BATCHES:
            for target in ("empty", "full"):
                ms = res.best(f"{kind}{batch}_{target}")
                if ms is not None:
                    print(f"{f'{kind} {batch}, {target} target':<24} {ms:>9.1f} {'':>9} "
                          f"{ms / set_ms:>7.2f}x")
    return Summary(worst, best_of(res, "engine") / set_ms, best_of(res, "bare") / set_ms,
                   best_batch(res, "batch") / set_ms, best_batch(res, "range") / set_ms)


def best_batch(res: Results, kind: str) -> float:
    """The fastest batch size of ``kind`` ("batch" or "range"), into an empty target."""
    return min((ms for b in BATCHES if (ms := res.best(f"{kind}{b}_empty")) is not None),
               default=float("inf"))


def best_of(res: Results, kind: str) -> float:
    """The faster of thread counts 1 and 2, into an empty target."""
    return min(ms for n in (1, 2) if (ms := res.best(f"{kind}{n}_empty")) is not None)


def print_goals(results: Sequence[Results], summary: dict[int, Summary]) -> None:
    print("\n== goals ==")
    print(
        f"1. engine overhead <= {GOAL_OVERHEAD_MS:g} ms per partition write beyond the bare "
        f"per-partition transaction\n   (worst of c=1/c=2, empty/full target):"
    )
    for res in results:
        worst = summary[res.rows].worst_overhead
        print(
            f"   {res.rows:>7,} rows/partition: {worst:6.2f} ms  "
            f"{verdict(worst <= GOAL_OVERHEAD_MS)}"
        )
    print(
        f"2. at {GOAL_RATIO_ROWS:,} rows/partition, engine <= {GOAL_RATIO:g}x the set-based "
        f"insert (best of c=1/c=2, empty target):"
    )
    for res in results:
        if res.rows != GOAL_RATIO_ROWS:
            continue
        ratio = summary[res.rows].engine_ratio
        print(f"   {res.rows:>7,} rows/partition: {ratio:6.2f}x  {verdict(ratio <= GOAL_RATIO)}")
        print(
            f"   (reference: the bare per-partition loop alone is "
            f"{summary[res.rows].bare_ratio:.2f}x the set-based insert)"
        )
        batched = summary[res.rows].batched_ratio
        print(f"   with batch_size (several partitions per transaction): {batched:6.2f}x  "
              f"{verdict(batched <= GOAL_RATIO)}")
        ranged = summary[res.rows].ranged_ratio
        print(f"   with batch_size and a range-aware transform (one SELECT per batch): "
              f"{ranged:6.2f}x  {verdict(ranged <= GOAL_RATIO)}")


# -- profile -------------------------------------------------------------------------------
@contextmanager
def sql_timer(totals: dict[str, list[float]]) -> Iterator[None]:
    """Time every statement the engine sends through ``backfill_lab._db.run``/``one``.

    The engine modules import those helpers by name, so each module's reference is wrapped.
    """
    lock = threading.Lock()

    def wrap(helper: Callable[..., Any]) -> Callable[..., Any]:
        def timed_helper(cur: Any, sql: str, params: Any = None) -> Any:
            start = time.perf_counter()
            try:
                return helper(cur, sql, params)
            finally:
                ms = (time.perf_counter() - start) * 1000
                key = " ".join(sql.split())[:72]
                with lock:
                    entry = totals.setdefault(key, [0, 0.0])
                    entry[0] += 1
                    entry[1] += ms

        return timed_helper

    originals = {backfill_lab._db.run: wrap(backfill_lab._db.run),
                 backfill_lab._db.one: wrap(backfill_lab._db.one)}
    patches = [
        mock.patch.object(module, name, originals[value])
        for module in list(sys.modules.values())
        if getattr(module, "__name__", "").startswith("backfill_lab.")
        for name, value in list(vars(module).items())
        if callable(value) and value in originals
    ]
    for p in patches:
        p.start()
    try:
        yield
    finally:
        for p in reversed(patches):
            p.stop()


def profile(rows: int, days: int) -> None:
    """cProfile of one engine run (concurrency 1, empty target), plus time per SQL statement.

    The step runs in a pool thread, which a profiler enabled in the main thread does not see,
    so the worker thread gets its own profiler, started by a ``threading.setprofile`` hook.
    """
    print(f"\n== profile: engine overwrite, c=1, empty target, {rows:,} rows x {days} days ==")
    main, worker = cProfile.Profile(), cProfile.Profile()

    def start_worker_profiler(*_: object) -> None:
        sys.setprofile(None)
        worker.enable()

    totals: dict[str, list[float]] = {}
    with new_warehouse(rows, days) as wh:
        gc.collect()
        threading.setprofile(start_worker_profiler)
        start = time.perf_counter()
        try:
            with sql_timer(totals):
                main.enable()
                engine(wh, days, 1)
                main.disable()
        finally:
            threading.setprofile(None)
        wall = (time.perf_counter() - start) * 1000
    print(f"wall {wall:.0f} ms = {wall / days:.2f} ms/partition (profiled, so slower than above)")

    print("\nSQL statements sent by the engine, by total time:")
    print(f"{'calls':>6} {'ms total':>9} {'ms/part':>8}  statement")
    sql_ms = 0.0
    for key, (calls, ms) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        sql_ms += ms
        print(f"{calls:>6} {ms:>9.1f} {ms / days:>8.3f}  {key}")
    print(f"{'':>6} {sql_ms:>9.1f} {sql_ms / days:>8.3f}  (all SQL; the rest is Python)")

    for title, prof in (("worker thread (the steps)", worker), ("main thread (scheduler)", main)):
        print(f"\ncProfile, {title}, top 15 by cumulative time:")
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.strip_dirs().sort_stats("cumulative").print_stats(15)


def print_load(when: str) -> None:
    """Other processes on a 2-core machine skew every number: say when the machine was busy."""
    load = os.getloadavg()[0]
    busy = "  (busy: numbers will be noisy)" if when == "before" and load > 0.5 else ""
    print(f"load average (1 min) {when}: {load:.2f}{busy}")


# -- main ----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DAYS} partitions and one repetition (a smoke test)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions per measurement (default 3, or 1 with --quick)")
    parser.add_argument("--profile", action="store_true",
                        help="only profile the engine at 10k rows/partition, concurrency 1")
    args = parser.parse_args(argv)
    days = QUICK_DAYS if args.quick else FULL_DAYS
    reps = args.reps or (1 if args.quick else 3)

    print(
        f"DuckDB {duckdb.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, backfill_lab {backfill_lab.__version__}"
    )
    print_load("before")
    if args.profile:
        profile(SIZES[0], days)
        return
    print(f"{days} daily partitions from {FIRST_DAY}, best of {reps} repetition(s)")
    start = time.perf_counter()
    results = [run_size(rows, days, reps) for rows in SIZES]
    summary = {res.rows: print_size(res) for res in results}
    print_goals(results, summary)
    print(f"\n(total benchmark time {time.perf_counter() - start:.0f} s)")
    print_load("after")


if __name__ == "__main__":
    main()
