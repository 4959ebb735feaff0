"""Late-arriving events: a seeded source whose events arrive after they happened, a pipeline that
sees only what has arrived by its run's time, and metrics of what that did to the output.

Every event has an ``event_time`` (when it happened: which day's partition it belongs to) and an
``arrival_time`` (when the pipeline can first see it). A run at time T reads the events of a day
that arrived by T, so a day processed before all its events arrived is counted short, and a day
processed again later is counted right only if the rewrite is idempotent:

>>> src = LateEventSource(seed=1, entities=5, events_per_day=40)
>>> events = src.events("2025-01-01")
>>> list(events.columns)
['date', 'event_id', 'entity_id', 'event_time', 'arrival_time', 'amount', 'category']
>>> bool((events.arrival_time >= events.event_time).all())
True
>>> bool((events.arrival_time - events.event_time).max() <= pd.Timedelta("48h"))
True
>>> len(src.arrived("2025-01-01", "2025-01-02T02:00")) < len(events)   # the nightly run's view
True
>>> len(src.arrived("2025-01-01", "2025-01-04T00:00")) == len(events)  # close + 48 h: all in
True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from .._db import quote
from ..errors import ConfigError, UnknownNameError
from ..ledger import Ledger
from ..partitions import PartitionSet, grain_of
from ..pipeline import Dependency, Layer, Pipeline, StepContext
from ..scheduler import parse_delay
from ..warehouse import Warehouse
from .daily import EventSource

if TYPE_CHECKING:  # matplotlib loads only when a plot is drawn
    from matplotlib.figure import Figure

__all__ = [
    "LATENESS",
    "METRIC_COLUMNS",
    "LateEventSource",
    "LateSource",
    "arrived_by",
    "late_arrival_metrics",
    "late_features",
    "plot_late_arrivals",
]

LATENESS: tuple[str, ...] = ("uniform", "exponential")
#: An event that is not late still takes up to this long to land (an ingest delay).
INGEST_DELAY = dt.timedelta(minutes=1)
METRIC_COLUMNS: tuple[str, ...] = (
    "partition", "events", "first_processed", "last_processed", "processings", "late_events",
    "arrived_after_first_processing", "picked_up_by_reprocessing", "counted", "missed",
    "double_counted",
)


class LateSource(Protocol):
    """What :func:`late_features` and :func:`late_arrival_metrics` need from a source."""

    def events(self, partition: str) -> pd.DataFrame:
        """Every event of ``partition``, with its ``arrival_time``: the truth."""
        ...

    def arrived(self, partition: str, as_of: Any) -> pd.DataFrame:
        """The events of ``partition`` that have arrived by ``as_of``."""
        ...


def arrived_by(
    events: pd.DataFrame, as_of: str | dt.datetime | pd.Timestamp | None
) -> pd.DataFrame:
    """The rows of ``events`` whose ``arrival_time`` is at or before ``as_of``.

    >>> times = pd.to_datetime(["2025-01-01 10:00", "2025-01-02 05:00"])
    >>> df = pd.DataFrame({"arrival_time": times})
    >>> len(arrived_by(df, "2025-01-02T02:00"))
    1
    """
    if as_of is None:
        raise ConfigError(
            "arrived events need a time 'as of' (got None); run the pipeline through "
            "run_backfill or a Scheduler, whose clock gives each step its time (StepContext.now)"
        )
    try:
        cutoff = pd.Timestamp(as_of)
    except (TypeError, ValueError):
        raise ConfigError.invalid("as_of", "a time like '2025-01-03T02:00'", as_of) from None
    if cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert("UTC").tz_localize(None)
    arrived = events["arrival_time"].to_numpy() <= cutoff.to_datetime64()
    if arrived.all():  # every event is in (an older day): the frame as it is, a new object
        return events.reset_index(drop=True)
    return events[arrived].reset_index(drop=True)


@dataclass(frozen=True)
class LateEventSource:
    """Seeded purchase events of which a share ``late_share`` arrives late.

    Taught in notebooks/01_mental_model.ipynb, notebooks/04_late_data.ipynb and
    notebooks/06_practical_projects.ipynb.

    The events are those of :class:`backfill_lab.EventSource` with the same seed. Each late event
    is delayed by a lateness on (0, ``max_lateness``] drawn from ``lateness``: ``uniform``, or
    ``exponential`` (mean a quarter of the maximum, cut at the maximum: most late events are a
    little late, a few very late). The others land within a minute. Lateness is measured from
    the event's time, so with ``max_lateness='48h'`` every event of day D has arrived by D+3 00:00
    (D's close plus 48 hours).
    """

    seed: int = 7
    entities: int = 1000
    events_per_day: int = 4000
    max_lateness: dt.timedelta | str = dt.timedelta(hours=48)
    late_share: float = 0.3
    lateness: str = "uniform"

    def __post_init__(self) -> None:
        EventSource(self.seed, self.entities, self.events_per_day)  # validates the counts
        object.__setattr__(self, "max_lateness", parse_delay(self.max_lateness, "max_lateness"))
        share = self.late_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ConfigError.invalid("late_share", "a number from 0 to 1, e.g. 0.3", share)
        if self.lateness not in LATENESS:
            raise UnknownNameError.of("lateness distribution", str(self.lateness), LATENESS)

    @property
    def base(self) -> EventSource:
        """The on-time source these events come from (same seed and counts)."""
        return EventSource(self.seed, self.entities, self.events_per_day)

    def events(self, partition: str) -> pd.DataFrame:
        """Every event of ``partition`` (one day), with its arrival time: the truth (drawn
        once per process and day, then copied: a caller may change its copy)."""
        return _late_events(self, partition).copy()

    def _draw(self, partition: str) -> pd.DataFrame:
        if grain_of(partition) != "daily":
            raise ConfigError(f"the late event source is daily (got partition {partition!r})")
        events = self.base.events(partition)
        day = events["date"].iloc[0] if len(events) else dt.date.fromisoformat(partition)
        n = len(events)
        rng = np.random.default_rng([self.seed, day.toordinal(), 48])
        late = rng.random(n) < self.late_share
        u = rng.random(n)
        most = self.max_lateness.total_seconds()  # type: ignore[union-attr]
        if self.lateness == "uniform":
            late_s = most * (1.0 - u)  # (0, max]
        else:  # exponential with mean most/4, truncated at most (inverse CDF)
            scale = most / 4 if most else 1.0
            late_s = -scale * np.log1p(-(1.0 - u) * -np.expm1(-most / scale))
        ingest_s = rng.random(n) * INGEST_DELAY.total_seconds()
        delay = np.where(late, np.ceil(late_s), np.floor(ingest_s))
        events.insert(4, "arrival_time",
                      events["event_time"] + pd.to_timedelta(delay.astype("int64"), unit="s"))
        return events

    def arrived(
        self, partition: str, as_of: str | dt.datetime | pd.Timestamp | None
    ) -> pd.DataFrame:
        """The events of ``partition`` that have arrived by ``as_of``: what a run then sees."""
        return arrived_by(_late_events(self, partition), as_of)  # a new frame: no copy needed


@functools.lru_cache(maxsize=128)  # a few weeks of a few sources
def _late_events(source: LateEventSource, partition: str) -> pd.DataFrame:
    """The events of one day of ``source`` with their arrival times (never changed here)."""
    return source._draw(partition)


FEATURES_SQL = """
SELECT date, entity_id, count(*) AS events,
       CAST(sum(CAST(amount AS DECIMAL(18, 2))) AS DOUBLE) AS amount
FROM {raw}
WHERE date = $partition
GROUP BY date, entity_id
"""


def late_features(source: LateSource | None = None, *, code_version: str = "v1") -> Pipeline:
    """The pipeline ``late_features``: ``raw`` (the day's events that have arrived by the run's
    time) -> ``features`` (per entity and day: event count and amount sum).

    Taught in notebooks/01_mental_model.ipynb, notebooks/04_late_data.ipynb and
    notebooks/06_practical_projects.ipynb.

    ``raw`` is keyed on ``event_id, date`` and ``features`` on ``entity_id, date``: the keys a
    ``merge`` write upserts on.
    """
    src: LateSource = source if source is not None else LateEventSource()

    def raw(ctx: StepContext) -> pd.DataFrame:
        return src.arrived(ctx.partition, ctx.now)

    layers = [
        Layer("raw", raw, merge_keys=("event_id", "date"),
              description="events of the day that have arrived by the run's time"),
        Layer("features", FEATURES_SQL, (Dependency.same("raw"),),
              merge_keys=("entity_id", "date"),
              description="per entity and day: event count and amount sum"),
    ]
    settings = dataclasses.asdict(src) if isinstance(src, LateEventSource) else {
        "kind": type(src).__name__}
    return Pipeline("late_features", layers, code_version=code_version,
                    description="raw (arrived events) -> features, for late-data scheduling",
                    config={"source": settings})


def _processing_times(warehouse: Warehouse, raw_table: str) -> pd.DataFrame:
    """Per partition: the start of every successful build of ``raw_table`` (its run's time)."""
    ledger = Ledger(warehouse).frame()
    ok = ledger[(ledger["target"] == raw_table) & (ledger["status"] == "success")]
    return ok[["partition", "started"]]


def _counted(warehouse: Warehouse, table: str, count_column: str) -> dict[str, int]:
    if not warehouse.has_table(table):
        return {}
    pcol = quote(warehouse.partition_column(table))
    df = warehouse.sql(
        f"SELECT CAST({pcol} AS VARCHAR) AS p, CAST(sum({quote(count_column)}) AS BIGINT) AS n "
        f"FROM {quote(table)} GROUP BY ALL"
    )
    return {str(p): int(n) for p, n in zip(df["p"], df["n"], strict=True)}


def late_arrival_metrics(
    source: LateSource,
    warehouse: Warehouse,
    partitions: str | Iterable[str] | PartitionSet | None = None,
    *,
    raw_table: str = "raw",
    table: str = "features",
    count_column: str = "events",
) -> pd.DataFrame:
    """Per partition: how late its events arrived relative to when it was processed, and whether
    the output counts each event exactly once.

    Taught in notebooks/01_mental_model.ipynb, notebooks/04_late_data.ipynb and
    notebooks/06_practical_projects.ipynb.

    Timing comes from the ledger: each successful build of ``raw_table`` read the events that had
    arrived by the start of its step (the run's time). Columns:

    * ``events``: the truth, every event of the day;
    * ``first_processed`` / ``last_processed`` / ``processings``: successful builds of raw;
    * ``late_events`` and ``arrived_after_first_processing`` (their share): events that arrived
      after the first build, so the first run could not count them;
    * ``picked_up_by_reprocessing``: late events that a later build read;
    * ``counted``: what ``table`` says (the sum of ``count_column``);
    * ``missed`` = max(events - counted, 0) and ``double_counted`` = max(counted - events, 0).

    Partitions default to every partition raw was built for.
    """
    times = _processing_times(warehouse, raw_table)
    if partitions is None:
        if times.empty:
            raise ConfigError(
                f"no successful build of {raw_table!r} in the ledger, so there is nothing to "
                f"measure (got partitions=None); run the pipeline first or pass partitions"
            )
        keys = sorted(set(times["partition"]))
    else:
        keys = list(PartitionSet.parse(partitions))
    counted = _counted(warehouse, table, count_column)
    rows = []
    for key in keys:
        events = source.events(key)
        starts = sorted(times.loc[times["partition"] == key, "started"])
        truth = len(events)
        got = counted.get(key, 0)
        row: dict[str, Any] = {
            "partition": key, "events": truth,
            "first_processed": starts[0] if starts else pd.NaT,
            "last_processed": starts[-1] if starts else pd.NaT,
            "processings": len(starts),
            "late_events": pd.NA, "arrived_after_first_processing": np.nan,
            "picked_up_by_reprocessing": pd.NA,
            "counted": got, "missed": max(truth - got, 0), "double_counted": max(got - truth, 0),
        }
        if starts:
            arrival = events["arrival_time"]
            late = arrival > pd.Timestamp(starts[0])
            row["late_events"] = int(late.sum())
            row["arrived_after_first_processing"] = float(late.mean()) if truth else 0.0
            row["picked_up_by_reprocessing"] = int((late & (arrival <= starts[-1])).sum())
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    for column in ("late_events", "picked_up_by_reprocessing"):
        df[column] = df[column].astype("Int64")
    for column in ("first_processed", "last_processed"):
        df[column] = pd.to_datetime(df[column])
    return df


def _figure_class() -> type[Figure]:
    """A matplotlib Figure that shows itself as a PNG in a notebook without ``%matplotlib``."""
    import io

    from matplotlib.figure import Figure

    class ShownFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=90)
            return buffer.getvalue()

    return ShownFigure


def plot_late_arrivals(metrics: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Two panels over the partitions of :func:`late_arrival_metrics`.

    Taught in notebooks/04_late_data.ipynb and notebooks/06_practical_projects.ipynb.

    Top: each partition's events split into those that arrived before its first processing,
    late ones picked up by reprocessing, and late ones never reprocessed. Bottom: what the output
    counts minus the truth (0: every event counted exactly once; below: missed; above: double
    counted). Built on ``matplotlib.figure.Figure``, so it works without a display.
    """
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise ConfigError(
            f"metrics must come from late_arrival_metrics (missing columns {missing}); "
            f"pass its DataFrame"
        )
    x = np.arange(len(metrics))
    late = metrics["late_events"].fillna(0).astype(int).to_numpy()
    picked = metrics["picked_up_by_reprocessing"].fillna(0).astype(int).to_numpy()
    total = metrics["events"].to_numpy()
    on_time = total - late
    fig = _figure_class()(figsize=(max(6.0, 0.5 * len(metrics) + 2), 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.bar(x, on_time, label="arrived before first processing", color="#4c9f70")
    top.bar(x, picked, bottom=on_time, label="late, picked up by reprocessing", color="#f2b134")
    top.bar(x, late - picked, bottom=on_time + picked, label="late, never reprocessed",
            color="#d1495b")
    top.set_ylabel("events")
    top.set_title("When each partition's events arrived")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    diff = (metrics["counted"] - metrics["events"]).to_numpy()
    colors = ["#d1495b" if d < 0 else "#8e44ad" if d > 0 else "#4c9f70" for d in diff]
    bottom.bar(x, diff, color=colors)
    bottom.axhline(0, color="black", linewidth=0.8)
    if not diff.any():
        bottom.text(0.5, 0.75, "every event counted exactly once", ha="center",
                    transform=bottom.transAxes)
    bottom.set_ylabel("counted - events")
    bottom.set_title("Output vs truth (below 0: missed, above 0: double counted)")
    bottom.set_xticks(x, list(metrics["partition"]), rotation=45, ha="right")
    if title:
        fig.suptitle(title)
    return fig
