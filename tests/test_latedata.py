"""Late-arriving events: the source, the late_features pipeline, and the policies that count
every event exactly once (or do not)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from matplotlib.figure import Figure

from backfill_lab import ConfigError, FixedClock, UnknownNameError, Warehouse
from backfill_lab.demo.late import (
    METRIC_COLUMNS,
    LateEventSource,
    arrived_by,
    late_arrival_metrics,
    late_features,
    plot_late_arrivals,
)
from backfill_lab.scheduler import Scheduler

SOURCE = LateEventSource(seed=4, entities=20, events_per_day=100, max_lateness="48h",
                         late_share=0.3)
DAYS = "2025-01-01..2025-01-10"
TRUTH = {f"2025-01-{d:02d}": len(SOURCE.events(f"2025-01-{d:02d}")) for d in range(1, 11)}


def counted(wh: Warehouse) -> dict[str, int]:
    df = wh.sql("SELECT CAST(date AS VARCHAR) AS p, CAST(sum(events) AS BIGINT) AS n "
                "FROM features GROUP BY ALL ORDER BY p")
    return {p: int(n) for p, n in zip(df.p, df.n, strict=True) if p in TRUTH}


def schedule(source=SOURCE, *, until="2025-01-13T02:00", **policy) -> tuple[Warehouse, Scheduler]:
    """Nightly runs at 02:00 from 2025-01-01; by ``until`` every day of DAYS has been due."""
    wh = Warehouse()
    s = Scheduler(late_features(source), wh, "daily 02:00 UTC",
                  clock=FixedClock("2025-01-01T00:00"), start="2025-01-01", **policy)
    runs = s.run_until(until)
    assert (runs.status == "success").all()
    return wh, s


# -- the source ---------------------------------------------------------------------------------
def test_source_is_deterministic_and_lateness_is_bounded():
    events = SOURCE.events("2025-01-05")
    assert events.equals(SOURCE.events("2025-01-05"))
    assert not events.equals(LateEventSource(seed=5, entities=20, events_per_day=100)
                             .events("2025-01-05"))
    assert list(events.columns) == ["date", "event_id", "entity_id", "event_time",
                                    "arrival_time", "amount", "category"]
    lateness = events.arrival_time - events.event_time
    assert lateness.min() >= pd.Timedelta(0) and lateness.max() <= pd.Timedelta("48h")
    assert (events.date == dt.date(2025, 1, 5)).all()


def test_late_share_and_distribution_shape():
    days = [f"2025-02-{d:02d}" for d in range(1, 11)]

    def lateness(source: LateEventSource) -> pd.Series:
        frames = [source.events(d) for d in days]
        return pd.concat([f.arrival_time - f.event_time for f in frames])

    uniform = lateness(SOURCE)
    late = uniform > pd.Timedelta("1min")
    assert 0.22 < late.mean() < 0.38  # late_share=0.3 of about 1000 events
    expo = lateness(LateEventSource(4, 20, 100, "48h", 0.3, lateness="exponential"))
    assert expo[expo > pd.Timedelta("1min")].mean() < uniform[late].mean() / 1.5
    assert expo.max() <= pd.Timedelta("48h")
    none_late = lateness(LateEventSource(4, 20, 100, late_share=0.0))
    assert none_late.max() <= pd.Timedelta("1min")


def test_arrived_is_what_a_run_at_that_time_sees():
    day = "2025-01-03"
    events = SOURCE.events(day)
    sizes = [len(SOURCE.arrived(day, t)) for t in
             ("2025-01-03T12:00", "2025-01-04T02:00", "2025-01-05T02:00", "2025-01-06T00:00")]
    assert sizes == sorted(sizes) and sizes[-1] == len(events) and sizes[1] < len(events)
    assert (SOURCE.arrived(day, "2025-01-04T02:00").arrival_time <= "2025-01-04T02:00").all()
    with pytest.raises(ConfigError, match="need a time 'as of' \\(got None\\)"):
        arrived_by(events, None)


def test_source_validation():
    with pytest.raises(ConfigError, match=r"'late_share' must be a number from 0 to 1.*1.5"):
        LateEventSource(late_share=1.5)
    with pytest.raises(UnknownNameError, match="Did you mean 'exponential'"):
        LateEventSource(lateness="exponental")
    with pytest.raises(ConfigError, match="'max_lateness' must be a duration"):
        LateEventSource(max_lateness="two days")
    with pytest.raises(ConfigError, match="daily"):
        SOURCE.events("2025-01-01T05:00")


# -- the policies (worked example 3 of the guide) -----------------------------------------------
def test_d_plus_2_watermark_and_3_day_merge_window_count_every_event_exactly_once():
    wh, s = schedule(watermark_delay="2d", reprocess_window=3, mode="merge")
    assert counted(wh) == TRUTH
    first = s.runs().iloc[0]
    assert first.partition == "2025-01-01" and first.run_time == pd.Timestamp("2025-01-04 02:00")
    # the features rows are unique per entity and day: merge updated them, never added twice
    keys = wh.sql("SELECT count(*) AS n, count(DISTINCT (entity_id, date)) AS k FROM features")
    assert keys.n[0] == keys.k[0]


def test_naive_nightly_run_without_reprocessing_misses_late_events():
    wh, _ = schedule(watermark_delay="0d", reprocess_window=0, mode="overwrite")
    got = counted(wh)
    assert set(got) == set(TRUTH)
    short = [p for p in TRUTH if got[p] < TRUTH[p]]
    assert len(short) >= 8 and all(got[p] <= TRUTH[p] for p in TRUTH)


def test_append_based_reprocessing_double_counts():
    wh, _ = schedule(watermark_delay="2d", reprocess_window=3, mode="append")
    got = counted(wh)
    # every day rerun at least once is counted more than once; 2025-01-10 was only built by the
    # last run (2025-01-13 02:00), so append has not hurt it yet
    assert all(got[p] > TRUTH[p] for p in TRUTH if p < "2025-01-10")
    assert got["2025-01-10"] == TRUTH["2025-01-10"]


def test_no_watermark_but_a_2_day_window_also_converges():
    # events are at most 48 h late: two reruns after D+0 see everything, without waiting
    wh, _ = schedule(watermark_delay="0d", reprocess_window=2, mode="merge")
    assert counted(wh) == TRUTH
    metrics = late_arrival_metrics(SOURCE, wh, DAYS)
    assert (metrics.late_events > 0).all()
    assert (metrics.picked_up_by_reprocessing == metrics.late_events).all()
    assert (metrics.processings == 3).all()


# -- metrics, checked by hand on a tiny source --------------------------------------------------
class TinySource:
    """Seven hand-made events; 2025-01-01 is the interesting day."""

    ROWS = (  # (day, event_id, entity, event time, arrival time)
        ("2025-01-01", 1, 1, "2025-01-01 10:00", "2025-01-01 10:00"),  # on time
        ("2025-01-01", 2, 1, "2025-01-01 20:00", "2025-01-02 01:00"),  # in by the 02:00 run
        ("2025-01-01", 3, 2, "2025-01-01 23:00", "2025-01-02 05:00"),  # late: 1st rerun has it
        ("2025-01-01", 4, 2, "2025-01-01 23:30", "2025-01-04 12:00"),  # too late for any rerun
        ("2025-01-02", 5, 1, "2025-01-02 12:00", "2025-01-02 12:00"),
        ("2025-01-03", 6, 1, "2025-01-03 12:00", "2025-01-03 12:00"),
        ("2025-01-04", 7, 3, "2025-01-04 12:00", "2025-01-04 12:00"),
    )

    def events(self, partition: str) -> pd.DataFrame:
        rows = [r for r in self.ROWS if r[0] == partition]
        return pd.DataFrame({
            "date": pd.Series([dt.date.fromisoformat(r[0]) for r in rows], dtype="object"),
            "event_id": pd.Series([r[1] for r in rows], dtype="int64"),
            "entity_id": pd.Series([r[2] for r in rows], dtype="int64"),
            "event_time": pd.to_datetime([r[3] for r in rows]),
            "arrival_time": pd.to_datetime([r[4] for r in rows]),
            "amount": [10.0] * len(rows),
            "category": ["web"] * len(rows),
        })

    def arrived(self, partition: str, as_of) -> pd.DataFrame:
        return arrived_by(self.events(partition), as_of)


def test_metrics_by_hand():
    # D+0 nightly at 02:00 with a 1-day rolling window: 2025-01-01 is built at 01-02 02:00
    # (sees events 1, 2) and again at 01-03 02:00 (sees 1, 2, 3); event 4 lands at 01-04 12:00
    wh, _ = schedule(TinySource(), until="2025-01-05T02:00", watermark_delay="0d",
                     reprocess_window=1, mode="overwrite")
    m = late_arrival_metrics(TinySource(), wh, "2025-01-01..2025-01-04").set_index("partition")
    assert list(m.reset_index().columns) == list(METRIC_COLUMNS)
    day = m.loc["2025-01-01"]
    assert (day.events, day.processings, day.late_events) == (4, 2, 2)
    assert day.arrived_after_first_processing == 0.5
    assert (day.picked_up_by_reprocessing, day.counted, day.missed, day.double_counted) == \
        (1, 3, 1, 0)
    assert day.first_processed == pd.Timestamp("2025-01-02 02:00")
    assert day.last_processed == pd.Timestamp("2025-01-03 02:00")
    last = m.loc["2025-01-04"]  # built once so far, everything on time
    assert (last.processings, last.late_events, last.counted, last.missed) == (1, 0, 1, 0)


def test_metrics_show_double_counting_and_unprocessed_days():
    wh = Warehouse()
    Scheduler(late_features(TinySource()), wh, clock=FixedClock("2025-01-01"), mode="append",
              reprocess_window=1, start="2025-01-01").run_until("2025-01-03T02:00")
    m = late_arrival_metrics(TinySource(), wh, "2025-01-01..2025-01-04").set_index("partition")
    # 01-01: appended 2 events at the first run, then raw (now 2 + 3 rows) counted again
    assert (m.loc["2025-01-01", "counted"], m.loc["2025-01-01", "double_counted"]) == (7, 3)
    never = m.loc["2025-01-04"]
    assert never.processings == 0 and pd.isna(never.late_events) and never.missed == 1


def test_metrics_need_something_to_measure():
    with pytest.raises(ConfigError, match="no successful build of 'raw'"):
        late_arrival_metrics(SOURCE, Warehouse())


def test_plot_has_an_arrival_panel_and_an_output_vs_truth_panel():
    wh, _ = schedule(until="2025-01-06T02:00", watermark_delay="0d", reprocess_window=0,
                     mode="overwrite")
    m = late_arrival_metrics(SOURCE, wh, "2025-01-01..2025-01-05")
    fig = plot_late_arrivals(m, title="D+0, no reprocessing")
    assert isinstance(fig, Figure)
    top, bottom = fig.axes
    assert len(top.patches) == 3 * len(m)  # on time, picked up, never reprocessed
    heights = [p.get_height() for p in bottom.patches]
    assert heights == list(m.counted - m.events) and all(h < 0 for h in heights)
    assert [t.get_text() for t in bottom.get_xticklabels()] == list(m.partition)
    with pytest.raises(ConfigError, match="must come from late_arrival_metrics"):
        plot_late_arrivals(m.drop(columns=["missed"]))
