"""The demo pipeline daily_features as a Dagster code location: one daily-partitioned asset per
layer (raw -> staging -> features), writing the lab's SQL to DuckDB (``../layers.py``).

Run from this folder, as the lab's export prints it::

    dagster asset materialize -m daily_features --select raw,staging,features \\
        --partition-range 2024-12-01...2024-12-13

A partition range on the command line needs ``BackfillPolicy.single_run()`` on every asset:
the whole range is then one run, each asset receiving every day of the range (written here one
day per transaction, oldest first). ``features`` declares the 7-day window it reads, so Dagster
knows which ``staging`` partitions each day depends on.
"""

# no `from __future__ import annotations`: Dagster reads the context annotation at runtime
import sys
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import layers  # the shared layer writes, one folder up

DAYS = dg.DailyPartitionsDefinition(start_date="2024-11-01")
ONE_RUN = dg.BackfillPolicy.single_run()


def _write(context: dg.AssetExecutionContext, layer: str) -> dg.MaterializeResult:
    """Write every day of this run's partition range, oldest first."""
    rows = {day: layers.write_partition(layer, day) for day in sorted(context.partition_keys)}
    context.log.info(f"{layer}: {len(rows)} partitions, {sum(rows.values())} rows")
    return dg.MaterializeResult(metadata={"rows": sum(rows.values()), "partitions": len(rows)})


@dg.asset(partitions_def=DAYS, backfill_policy=ONE_RUN)
def raw(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Events copied from the source system."""
    return _write(context, "raw")


@dg.asset(partitions_def=DAYS, backfill_policy=ONE_RUN, deps=["raw"])
def staging(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Clean events: no null amounts or entities, one row per event."""
    return _write(context, "staging")


@dg.asset(
    partitions_def=DAYS, backfill_policy=ONE_RUN,
    deps=[dg.AssetDep("staging", partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-(layers.WINDOW - 1), allow_nonexistent_upstream_partitions=True))],
)
def features(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Per entity and day: 1-day and trailing 7-day purchase features."""
    return _write(context, "features")


defs = dg.Definitions(assets=[raw, staging, features])
