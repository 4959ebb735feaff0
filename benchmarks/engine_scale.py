"""How the engine's time grows with the size of a backfill: planning, running and resuming.

Run from the project root with the project's venv::

    python benchmarks/engine_scale.py            # planning 1,250..10,000 days; runs 15..120 days
    python benchmarks/engine_scale.py --quick    # a smoke test: a quarter of each size

At 1x, 2x, 4x and 8x it times, on the demo pipeline (``raw -> staging -> features``, a small seeded
source so the engine's own costs dominate):

* planning: ``run_backfill(..., dry_run=True)`` over ``--plan-days`` x factor daily partitions
  (three steps per day); linear growth shows as a ratio close to the factor (O(n log n) a
  little above it), quadratic growth as the factor squared;
* run: a real backfill of ``--run-days`` x factor days into a fresh in-memory warehouse,
  concurrency 2;
* resume: the same backfill with its source down for the second half of the range (those steps
  fail and their downstream steps are skipped), then resumed with the same backfill id: the time
  of the resume, which skips every step that had succeeded and reruns the rest.

Each figure is the best of ``--reps`` repetitions, timed with ``time.perf_counter``; the ratio
column divides by the 1x figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

from backfill_lab import EventSource, Fault, Warehouse, daily_features, run_backfill

SOURCE = EventSource(seed=11, entities=50, events_per_day=200)
START = dt.date(1995, 1, 1)
FACTORS = (1, 2, 4, 8)


def days(n: int) -> str:
    """The range of ``n`` days from :data:`START`."""
    return f"{START}..{START + dt.timedelta(days=n - 1)}"


def best(reps: int, fn: Callable[[], float]) -> float:
    """The smallest of ``reps`` timings."""
    return min(fn() for _ in range(reps))


def plan_seconds(n: int) -> float:
    """Seconds to plan (dry run) a backfill of ``n`` days."""
    with Warehouse() as wh:
        t0 = time.perf_counter()
        steps = run_backfill(daily_features(SOURCE), wh, days(n), dry_run=True)
        seconds = time.perf_counter() - t0
    assert len(steps) == 3 * n
    return seconds


def run_seconds(n: int) -> float:
    """Seconds to run a backfill of ``n`` days into a fresh warehouse."""
    with Warehouse() as wh:
        t0 = time.perf_counter()
        result = run_backfill(daily_features(SOURCE), wh, days(n), concurrency=2)
        seconds = time.perf_counter() - t0
    assert result.ok
    return seconds


def resume_seconds(n: int) -> float:
    """Seconds to resume a backfill of ``n`` days whose second half had failed."""
    half = START + dt.timedelta(days=n // 2)
    down = [Fault.fail("raw", f"{half}..{START + dt.timedelta(days=n - 1)}")]
    with Warehouse() as wh:
        first = run_backfill(daily_features(SOURCE), wh, days(n), concurrency=2,
                             backoff=0, faults=down, backfill_id="scale")
        assert not first.ok
        t0 = time.perf_counter()
        result = run_backfill(daily_features(SOURCE), wh, days(n), concurrency=2,
                              backfill_id="scale")
        seconds = time.perf_counter() - t0
    assert result.ok and result.resumed > 0
    return seconds


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan-days", type=int, default=1250)
    parser.add_argument("--run-days", type=int, default=15)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    plan_days, run_days = args.plan_days, args.run_days
    if args.quick:
        plan_days, run_days, args.reps = max(1, plan_days // 4), max(2, run_days // 4), 1
    measures = [
        ("planning (dry run)", plan_days, plan_seconds),
        ("run", run_days, run_seconds),
        ("resume (half failed)", run_days, resume_seconds),
    ]
    print(f"{'measure':<22}{'factor':>7}{'days':>8}{'steps':>8}{'seconds':>10}{'ratio':>8}")
    for name, base, fn in measures:
        first = None
        for factor in FACTORS:
            n = base * factor
            seconds = best(args.reps, lambda n=n, fn=fn: fn(n))  # type: ignore[misc]
            first = first or seconds
            print(f"{name:<22}{factor:>6}x{n:>8}{3 * n:>8}{seconds:>10.3f}"
                  f"{seconds / first:>8.2f}")


if __name__ == "__main__":
    main()
