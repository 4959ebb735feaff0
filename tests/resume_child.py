"""Child process for the resume test: runs a backfill on a warehouse file and reports each commit.

Usage: python -m tests.resume_child DB MODE BACKFILL_ID
Prints ``committed LAYER PARTITION`` after each step commits; a slow fault on later partitions
keeps it running long enough for the parent to kill it mid-run.

MODE ``validate`` runs with validations on ``features`` that include a consumer's own query (so
they run after the write's transaction) and prints ``written LAYER PARTITION`` when a
partition's write has committed and its checks are about to run, then waits, so the parent can
kill it in exactly that gap. MODE ``validate-inside`` runs checks that run inside the write's
transaction, and prints the same line while they run there (not committed yet).
"""

from __future__ import annotations

import sys
import time

from backfill_lab import BackfillRunner, Fault, Warehouse, daily_features, evaluate
from backfill_lab.validations import DownstreamRead, NullRate, UniqueKeys, Validations

from .conftest import SMALL

RANGE = "2024-12-01..2024-12-14"
CHECKS = Validations(null_rate=NullRate(), unique_keys=UniqueKeys(("entity_id", "date")))
#: the same checks and a consumer's own query: they run after the write commits
CHECKS_AFTER = Validations(null_rate=NullRate(), unique_keys=UniqueKeys(("entity_id", "date")),
                           downstream_read=DownstreamRead(
                               "SELECT entity_id FROM {table} WHERE date = $partition"))


def validating(db: str, backfill_id: str, checks: Validations) -> None:
    """Run with ``checks`` on features; stall before each partition's validations."""
    original = evaluate.validate_partition

    def stalled(wh, table, partition, *args, **kwargs):  # type: ignore[no-untyped-def]
        print(f"written features {partition}", flush=True)
        time.sleep(0.3)
        return original(wh, table, partition, *args, **kwargs)

    evaluate.validate_partition = stalled  # type: ignore[assignment]
    BackfillRunner(daily_features(SMALL), Warehouse(db), RANGE, backfill_id=backfill_id,
                   validations={"features": checks}).run()
    print("finished", flush=True)


def main(db: str, mode: str, backfill_id: str) -> None:
    if mode in ("validate", "validate-inside"):
        validating(db, backfill_id, CHECKS_AFTER if mode == "validate" else CHECKS)
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
