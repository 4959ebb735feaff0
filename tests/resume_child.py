"""Child process for the resume test: runs a backfill on a warehouse file and reports each commit.

Usage: python -m tests.resume_child DB MODE BACKFILL_ID
Prints ``committed LAYER PARTITION`` after each step commits; a slow fault on later partitions
keeps it running long enough for the parent to kill it mid-run.
"""

from __future__ import annotations

import sys

from backfill_lab import BackfillRunner, Fault, Warehouse, daily_features

from .conftest import SMALL

RANGE = "2024-12-01..2024-12-14"


def main(db: str, mode: str, backfill_id: str) -> None:
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
