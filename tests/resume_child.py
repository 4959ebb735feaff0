"""Child process for the resume test: runs a backfill on a warehouse file and reports each commit.

Usage: python -m tests.resume_child DB MODE BACKFILL_ID
Prints ``committed LAYER PARTITION`` after each step commits; a slow fault on later partitions
keeps it running long enough for the parent to kill it mid-run.

MODE ``validate`` runs with validations on ``features`` and prints ``written LAYER PARTITION``
when a partition's write has committed and its checks are about to run, then waits, so the parent
can kill it in exactly that gap.
"""

from __future__ import annotations

import sys
import time

from backfill_lab import BackfillRunner, Fault, Warehouse, daily_features, evaluate
from backfill_lab.validations import NullRate, UniqueKeys, Validations

from .conftest import SMALL

RANGE = "2024-12-01..2024-12-14"
CHECKS = Validations(null_rate=NullRate(), unique_keys=UniqueKeys(("entity_id", "date")))


def validating(db: str, backfill_id: str) -> None:
    """Run with checks on features; stall between each write and its validations."""
    original = evaluate.validate_partition

    def stalled(wh, table, partition, *args, **kwargs):  # type: ignore[no-untyped-def]
        print(f"written features {partition}", flush=True)
        time.sleep(0.3)
        return original(wh, table, partition, *args, **kwargs)

    evaluate.validate_partition = stalled  # type: ignore[assignment]
    BackfillRunner(daily_features(SMALL), Warehouse(db), RANGE, backfill_id=backfill_id,
                   validations={"features": CHECKS}).run()
    print("finished", flush=True)


def main(db: str, mode: str, backfill_id: str) -> None:
    if mode == "validate":
        validating(db, backfill_id)
        return
    wh = Warehouse(db)
    pipeline = daily_features(SMALL)

    def report(event) -> None:
        if event.status == "success":
            print(f"committed {event.layer} {event.partition}", flush=True)

    BackfillRunner(
        pipeline, wh, RANGE, concurrency=2, mode=mode, backfill_id=backfill_id,
        merge_keys=["event_id", "date"] if mode == "merge" else None,
        layers=["raw", "staging"] if mode == "merge" else None,
        faults=[Fault.slow("raw", "2024-12-05..2024-12-14", seconds=0.4)], on_event=report,
    ).run()
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
