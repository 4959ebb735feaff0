"""The demo pipeline daily_features as an Airflow 3 DAG: one run per day (the run's logical date
is the partition), tasks raw -> staging -> staging_window -> features, writing the lab's SQL to
DuckDB (``../../layers.py``).

A backfill (``airflow backfill create --dag-id daily_features ...``) starts up to
``--max-active-runs`` runs at once, and Airflow orders nothing between them: the features of
day D read staging of D-6..D, written by six *other* runs. So ``staging_window`` waits (a
bounded sensor) until those days exist, as the lab's runner does; without it, a run that gets
ahead of its neighbours silently builds its 7-day totals over a partial window.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from airflow.sdk import DAG, PokeReturnValue, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import layers  # the shared layer writes, two folders up

with DAG(
    dag_id="daily_features",
    schedule="@daily",
    start_date=dt.datetime(2024, 11, 1, tzinfo=dt.UTC),
    end_date=dt.datetime(2025, 1, 31, tzinfo=dt.UTC),  # the demo's history
    catchup=False,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=2)},
    tags=["backfill_lab"],
):

    @task
    def raw(ds: str | None = None) -> int:
        """Events copied from the source system."""
        return layers.write_partition("raw", str(ds))

    @task
    def staging(ds: str | None = None) -> int:
        """Clean events: no null amounts or entities, one row per event."""
        return layers.write_partition("staging", str(ds))

    @task.sensor(poke_interval=1, timeout=300, mode="poke")
    def staging_window(ds: str | None = None) -> PokeReturnValue:
        """Wait until every day of the 7-day window exists (other runs may still be writing)."""
        missing = layers.window_missing(str(ds))
        return PokeReturnValue(is_done=not missing)

    @task
    def features(ds: str | None = None) -> int:
        """Per entity and day: 1-day and trailing 7-day purchase features."""
        return layers.write_partition("features", str(ds))

    raw() >> staging() >> staging_window() >> features()
