"""The demo pipeline ``daily_features`` (raw -> staging -> features) and its event source.

* ``raw``: the day's events copied from a seeded synthetic source (Python transform).
* ``staging``: cleaned events: no null amounts or entities, one row per event id (SQL).
* ``features``: one row per entity active that day, with 1-day and trailing 7-day features (SQL,
  reading a 7-day window of ``staging``).

Everything is a pure function of the seed: the same seed gives the same rows on every machine.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..clock import FixedClock
from ..errors import ConfigError, UnknownNameError
from ..faults import Fault, Faults
from ..partitions import PartitionSet, shift, to_value
from ..pipeline import Dependency, Layer, Pipeline, StepContext
from ..runner import BackfillResult, BackfillRunner
from ..warehouse import Warehouse

__all__ = [
    "CODE_VERSIONS",
    "DEMO_HISTORY",
    "DEMO_OUTAGE",
    "EventSource",
    "build_demo",
    "daily_features",
    "demo_pipeline",
]

#: The deployed code version of each feature definition.
CODE_VERSIONS = {"v1": "v1.4.2", "v2": "v2.0.0"}
DEMO_HISTORY = "2024-11-01..2025-01-31"
DEMO_OUTAGE = "2024-12-01..2024-12-31"
FIRST_DAY = "1990-01-01"
"""The first day the synthetic source has events for (the last is today, UTC)."""
CATEGORIES = ("web", "app", "store")


def check_days(partitions: PartitionSet) -> None:
    """The demo source is daily and has events from :data:`FIRST_DAY` to today (UTC): hourly
    keys, or days it holds no events for, are refused before a backfill writes anything."""
    if partitions.start and "T" in partitions.start:
        raise ConfigError(f"pipeline daily_features is daily; {partitions.start!r} is an hourly "
                          f"key: give days like 2024-12-01")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    if partitions.start < FIRST_DAY or partitions.end > today:
        bad = partitions.start if partitions.start < FIRST_DAY else partitions.end
        raise ConfigError(f"the demo source has events from {FIRST_DAY} to today ({today}), not "
                          f"for {bad}; choose days in that span")


@dataclass(frozen=True)
class EventSource:
    """A seeded stream of purchase events: ``events(day)`` is the same for the same seed.

    Taught in notebooks/01_mental_model.ipynb and notebooks/03_versioned_recompute.ipynb.

    >>> src = EventSource(seed=1, entities=10, events_per_day=50)
    >>> df = src.events("2024-12-01")
    >>> list(df.columns)
    ['date', 'event_id', 'entity_id', 'event_time', 'amount', 'category']
    >>> df.equals(src.events("2024-12-01"))
    True
    """

    seed: int = 7
    entities: int = 1000
    events_per_day: int = 4000

    def __post_init__(self) -> None:
        for name in ("seed", "entities", "events_per_day"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (name != "seed"):
                raise ConfigError.invalid(name, "a non-negative integer (>= 1 for counts)", value)

    def events(self, partition: str) -> pd.DataFrame:
        """The events of one day: the same rows every time for the same seed and day (drawn
        once per process and day, then copied: a caller may change its copy)."""
        return _day_events(self, partition).copy()


@functools.lru_cache(maxsize=192)  # a few months of a few sources; ~0.2 MB a day
def _day_events(source: EventSource, partition: str) -> pd.DataFrame:
    """The events of one day of ``source`` (see :meth:`EventSource.events`)."""
    day = to_value(partition)
    if isinstance(day, dt.datetime):
        raise ConfigError(f"the demo source is daily (got hourly partition {partition!r})")
    rng = np.random.default_rng([source.seed, day.toordinal()])
    n = int(rng.poisson(source.events_per_day))
    seconds = np.sort(rng.integers(0, 86_400, n))
    midnight = pd.Timestamp(day)
    return pd.DataFrame({
        "date": pd.Series([day] * n, dtype="object"),
        "event_id": day.toordinal() * 1_000_000 + np.arange(n, dtype="int64"),
        "entity_id": rng.integers(0, source.entities, n).astype("int64"),
        "event_time": midnight + pd.to_timedelta(seconds, unit="s"),
        "amount": rng.lognormal(3.0, 0.6, n).round(2),
        "category": rng.choice(np.array(CATEGORIES), n, p=[0.5, 0.3, 0.2]),
    })


STAGING_SQL = """
SELECT date, event_id, entity_id, event_time, amount, category
FROM {raw}
WHERE date = $partition AND amount IS NOT NULL AND entity_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_time) = 1
"""

# Sums run over whole cents (DECIMAL), never over doubles: a parallel float sum depends on the
# order threads add in, and a backfill must give the same bytes every time it runs.
# v1: amounts as recorded. v2 (the "changed feature definition" of worked example 2): amounts
# capped at 60 before aggregation, so a few outliers no longer dominate the averages.
FEATURES_SQL = """
WITH w AS (
    SELECT date, entity_id, CAST({amount} AS DECIMAL(18, 2)) AS amount
    FROM {{staging}}
    WHERE date BETWEEN $window_start AND $window_end
)
SELECT
    CAST($partition AS DATE) AS date,
    entity_id,
    count(*) FILTER (WHERE date = $partition) AS events_1d,
    CAST(sum(amount) FILTER (WHERE date = $partition) AS DOUBLE) AS amount_1d,
    round(CAST(sum(amount) FILTER (WHERE date = $partition) AS DOUBLE)
          / count(*) FILTER (WHERE date = $partition), 4) AS avg_amount_1d,
    count(*) AS events_7d,
    CAST(sum(amount) AS DOUBLE) AS amount_7d
FROM w
GROUP BY entity_id
HAVING count(*) FILTER (WHERE date = $partition) > 0
"""
_AMOUNT = {"v1": "amount", "v2": "least(amount, 60.0)"}


def daily_features(
    source: EventSource | None = None, *, feature_version: str = "v1",
    code_version: str | None = None, features_table: str | None = None, window: int = 7,
) -> Pipeline:
    """The demo pipeline over ``source`` (a default seeded source when omitted).

    Taught in notebooks/01_mental_model.ipynb and notebooks/03_versioned_recompute.ipynb.

    ``features_table`` names the table the features layer writes by default (``features_v1``
    where readers use a view called ``features``). ``window`` is the trailing window of the
    ``*_7d`` features, in days: part of the pipeline's config with the source's settings, so a
    different window gives another ``config_hash``.

    >>> daily_features().config
    {'features_window': 7, 'source': {'entities': 1000, 'events_per_day': 4000, 'seed': 7}}
    >>> daily_features().config_hash != daily_features(window=14).config_hash
    True
    """
    if feature_version not in _AMOUNT:
        raise UnknownNameError.of("feature version", feature_version, _AMOUNT)
    src = source or EventSource()

    def raw(ctx: StepContext) -> pd.DataFrame:
        return src.events(ctx.partition)

    layers = [
        Layer("raw", raw, merge_keys=("event_id", "date"),
              description="events copied from the source system"),
        Layer("staging", STAGING_SQL, (Dependency.same("raw"),), merge_keys=("event_id", "date"),
              description="clean events: no null amounts or entities, one row per event"),
        Layer("features", FEATURES_SQL.format(amount=_AMOUNT[feature_version]),
              (Dependency.window("staging", window),), merge_keys=("entity_id", "date"),
              description="per entity and day: 1-day and trailing 7-day purchase features",
              table=features_table),
    ]
    return Pipeline(
        "daily_features", layers,
        code_version=code_version or CODE_VERSIONS[feature_version],
        description=f"raw -> staging -> features, feature definition {feature_version}",
        partition_check=check_days,
        config={"source": {"seed": src.seed, "entities": src.entities,
                           "events_per_day": src.events_per_day}, "features_window": window},
    )


def demo_pipeline(warehouse: Warehouse, *, feature_version: str | None = None,
                  window: int = 7) -> Pipeline:
    """The demo pipeline with the source settings stored in ``warehouse`` by :func:`build_demo`.

    Taught in notebooks/05_designing_safe_backfills.ipynb and
    notebooks/06_practical_projects.ipynb.
    """
    seed = warehouse.get_meta("demo.seed")
    if seed is None:
        raise ConfigError(
            f"warehouse {warehouse.path!r} holds no demo; build one with "
            f"'backfill-lab demo --db {warehouse.path}' or backfill_lab.build_demo()"
        )
    source = EventSource(
        int(seed), int(warehouse.get_meta("demo.entities", "1000") or 1000),
        int(warehouse.get_meta("demo.events_per_day", "4000") or 4000),
    )
    version = feature_version or warehouse.get_meta("demo.feature_version", "v1") or "v1"
    table = warehouse.get_meta("demo.features_table", "features")
    return daily_features(source, feature_version=version,
                          features_table=None if table == "features" else table, window=window)


def build_demo(
    warehouse: Warehouse,
    *,
    history: str = DEMO_HISTORY,
    outage: str | None = DEMO_OUTAGE,
    seed: int = 7,
    entities: int = 1000,
    events_per_day: int = 4000,
    faults: Sequence[Fault] = (),
    features_table: str | None = None,
) -> tuple[Pipeline, list[BackfillResult]]:
    """Load ``history`` as a nightly scheduler would have, with every run in ``outage`` failed.

    Taught in notebooks/02_daily_backfill.ipynb, notebooks/03_versioned_recompute.ipynb,
    notebooks/05_designing_safe_backfills.ipynb and notebooks/06_practical_projects.ipynb.

    Each day is its own scheduled run (backfill id ``scheduled-<day>``), oldest first. The outage
    is staged for real: the ``raw`` step of each outage day fails (its source was down), so
    ``staging`` and ``features`` are skipped for those days and the ledger says so. Days just
    after the outage refuse to build: their 7-day window reads the hole.

    ``faults`` are planted in the scheduled runs too (e.g. a bad config that shifted a feature
    for some days); ``features_table`` names the features table (``features_v1`` where readers
    use a view called ``features``; the view is the caller's to create).
    """
    source = EventSource(seed, entities, events_per_day)
    pipeline = daily_features(source, features_table=features_table)
    partitions = PartitionSet.parse(history)
    check_days(partitions)
    planted = [Fault.fail("raw", outage)] if outage else []
    if outage:
        missing = set(PartitionSet.parse(outage)) - set(partitions)
        if missing:
            raise ConfigError(
                f"outage {outage!r} must lie inside history {history!r} "
                f"(outside: {min(missing)})"
            )
    injected = Faults([*planted, *faults])
    for key, value in (("demo.seed", seed), ("demo.entities", entities),
                       ("demo.events_per_day", events_per_day), ("demo.feature_version", "v1")):
        warehouse.set_meta(key, str(value))
    warehouse.set_meta("demo.features_table", features_table or "features")
    results = []
    for day in partitions:  # one scheduled run per day, oldest first, as a nightly scheduler does
        # stamped at the run's scheduled time (02:00 the next day): the ledger reads like the
        # real history, and a later backfill on any clock sorts after it
        run_at = dt.datetime.fromisoformat(shift(day, 1)).replace(hour=2)
        results.append(BackfillRunner(
            pipeline, warehouse, [day], faults=injected, backfill_id=f"scheduled-{day}",
            audit_tags={"trigger": "schedule"}, backoff=0,
            clock=FixedClock(run_at, tick=dt.timedelta(milliseconds=10)),
        ).run())
    return pipeline, results
