"""The simulated scheduler: schedule parsing, watermark arithmetic, catchup, failures, restarts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml

from backfill_lab import (
    ConfigError,
    FixedClock,
    Layer,
    Ledger,
    Pipeline,
    StepContext,
    SystemClock,
    UnknownNameError,
    Warehouse,
)
from backfill_lab.faults import Fault
from backfill_lab.partitions import to_value
from backfill_lab.scheduler import (
    LateDataPolicy,
    Schedule,
    Scheduler,
    first_run,
    parse_delay,
    partition_due,
    run_partitions,
)

T = dt.datetime


def stamp_pipeline(column: str = "date") -> Pipeline:
    """One Python layer that writes, per partition, the time its run saw (StepContext.now)."""

    def stamp(ctx: StepContext) -> pd.DataFrame:
        return pd.DataFrame({column: [to_value(ctx.partition)], "seen_at": [ctx.now]})

    return Pipeline("stamps", [Layer("stamps", stamp, partition_column=column)])


def seen(wh: Warehouse) -> dict[str, dt.datetime]:
    df = wh.sql("SELECT CAST(date AS VARCHAR) AS p, seen_at FROM stamps ORDER BY p")
    return {p: s.to_pydatetime() for p, s in zip(df.p, df.seen_at, strict=True)}


def scheduler(wh: Warehouse, clock: FixedClock, **kw) -> Scheduler:
    kw.setdefault("start", "2025-01-01")
    return Scheduler(stamp_pipeline(), wh, "daily 02:00 UTC", clock=clock, **kw)


# -- parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("daily 02:00 UTC", Schedule("daily", 2, 0)),
    ("daily 02:00", Schedule("daily", 2, 0)),
    ("  Daily 2:30 utc ", Schedule("daily", 2, 30)),
    ("daily", Schedule("daily", 0, 0)),
    ("@daily", Schedule("daily", 0, 0)),
    ("hourly :15", Schedule("hourly", 0, 15)),
    ("hourly", Schedule("hourly", 0, 0)),
])
def test_schedule_parse_accepts_the_plan_forms(text, expected):
    assert Schedule.parse(text) == expected
    assert Schedule.parse(str(expected)) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("nightly", "schedule must look like 'daily 02:00 UTC' or 'hourly :15' (got 'nightly')"),
    ("daily 2am", "(got 'daily 2am')"),
    ("daily 25:00", "between 00:00 and 23:59 (got 'daily 25:00')"),
    ("hourly 15", "(got 'hourly 15')"),
    ("daily 02:00 CET", "UTC only (got 'daily 02:00 CET')"),
    ("", "(got '')"),
])
def test_schedule_parse_errors_name_what_was_received(text, fragment):
    with pytest.raises(ConfigError) as err:
        Schedule.parse(text)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_delays_and_plan_values_from_yaml():
    plan = yaml.safe_load(
        "schedule: daily 02:00 UTC\ncatchup: true\n"
        "late_data: {watermark_delay: 2d, reprocess_window: 3}\n"
    )
    assert Schedule.parse(plan["schedule"]) == Schedule("daily", 2, 0)
    policy = LateDataPolicy.parse(plan["late_data"])
    assert policy == LateDataPolicy(dt.timedelta(days=2), 3)
    assert parse_delay("48h") == parse_delay("2d") == dt.timedelta(hours=48)
    assert parse_delay("0d") == dt.timedelta(0)
    assert parse_delay(dt.timedelta(hours=6)) == dt.timedelta(hours=6)
    wh = Warehouse()
    s = scheduler(wh, FixedClock("2025-01-01"), catchup=plan["catchup"], **plan["late_data"])
    assert (s.watermark_delay, s.reprocess_window, s.catchup) == (dt.timedelta(days=2), 3, True)


@pytest.mark.parametrize("bad", ["2 days", "-1d", "2", 2, "", None])
def test_parse_delay_rejects_with_one_line(bad):
    with pytest.raises(ConfigError, match=r"'watermark_delay' must be .*\(got "):
        parse_delay(bad)


def test_late_data_policy_rejects_unknown_keys_and_bad_windows():
    with pytest.raises(UnknownNameError, match="Did you mean 'reprocess_window'"):
        LateDataPolicy.parse({"reprocess_windows": 3})
    with pytest.raises(ConfigError, match=r"'reprocess_window' must be .*\(got -1\)"):
        LateDataPolicy.parse({"reprocess_window": -1})


# -- watermark arithmetic -----------------------------------------------------------------------
def test_watermark_is_measured_from_the_partition_close():
    nightly = "daily 02:00 UTC"
    # D+0: the 02:00 run on D+1 processes D; before D closes, D-1 is the newest due
    assert partition_due(T(2025, 1, 2, 2, 0), nightly) == "2025-01-01"
    assert partition_due(T(2025, 1, 1, 23, 59), nightly) == "2024-12-31"
    assert first_run("2025-01-01", nightly) == T(2025, 1, 2, 2, 0)
    # D+2: D closes at D+1 00:00; two days later is D+3 00:00; the first run after is 02:00
    assert first_run("2025-01-01", nightly, "2d") == T(2025, 1, 4, 2, 0)
    assert partition_due(T(2025, 1, 4, 2, 0), nightly, "2d") == "2025-01-01"
    assert partition_due(T(2025, 1, 4, 2, 0), nightly, "48h") == "2025-01-01"
    # hourly: the :15 run processes the hour that closed 15 minutes earlier
    assert partition_due(T(2025, 1, 1, 5, 15), "hourly :15") == "2025-01-01T04:00"
    assert first_run("2025-01-01T04:00", "hourly :15", "2h") == T(2025, 1, 1, 7, 15)


def test_every_partition_is_due_exactly_once_per_run():
    s = Schedule.parse("daily 02:00 UTC")
    runs = s.run_times(T(2025, 1, 1), T(2025, 1, 31, 23))
    for delay in ("0d", "36h", "2d"):
        due = [partition_due(t, s, delay) for t in runs]
        assert len(set(due)) == len(runs)
        assert all(first_run(p, s, delay) == t for p, t in zip(due, runs, strict=True))


def test_run_partitions_is_the_window_before_due_clipped_at_start():
    assert run_partitions("2025-01-10", 3) == ["2025-01-07", "2025-01-08", "2025-01-09",
                                               "2025-01-10"]
    assert run_partitions("2025-01-10", 0) == ["2025-01-10"]
    assert run_partitions("2025-01-02", 3, start="2025-01-01") == ["2025-01-01", "2025-01-02"]


# -- running ------------------------------------------------------------------------------------
def test_on_time_runs_see_their_run_time_and_process_the_due_partition():
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    s = scheduler(wh, clock)
    runs = s.run_until("2025-01-05T12:00")
    assert list(runs.run_time) == [pd.Timestamp(f"2025-01-0{d} 02:00") for d in (2, 3, 4, 5)]
    assert list(runs.partition) == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert (runs.executed_at == runs.run_time).all() and (runs.status == "success").all()
    assert clock.now() == T(2025, 1, 5, 12, 0)
    # the transform saw each run's time: "now" is the run, not the wall clock
    assert seen(wh)["2025-01-03"] == T(2025, 1, 4, 2, 0)
    ids = set(Ledger(wh).frame().backfill_id)
    assert ids == {f"scheduled-2025-01-0{d}T02:00" for d in (2, 3, 4, 5)}
    assert s.run_until("2025-01-05T12:00").empty  # nothing new is due


def test_reprocess_window_reruns_the_previous_partitions():
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    runs = scheduler(wh, clock, watermark_delay="2d", reprocess_window=2).run_until(
        "2025-01-07T02:00")
    assert list(runs.partition) == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert list(runs.reprocessed) == [[], ["2025-01-01"], ["2025-01-01", "2025-01-02"],
                                      ["2025-01-02", "2025-01-03"]]
    # 2025-01-02 was last rebuilt by the run at 01-07 02:00 (as a reprocessed partition)
    assert seen(wh)["2025-01-02"] == T(2025, 1, 7, 2, 0)


@pytest.mark.parametrize("catchup", [True, False])
def test_catchup_after_a_gap(catchup):
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    s = scheduler(wh, clock, catchup=catchup)
    s.run_until("2025-01-03T02:00")
    clock.set(T(2025, 1, 8, 12, 0))  # nobody ticked the scheduler for five days
    runs = s.tick()
    missed = [f"2025-01-0{d}" for d in (3, 4, 5, 6, 7)]
    assert list(runs.partition) == missed
    assert (runs.executed_at == pd.Timestamp("2025-01-08 12:00")).all()
    if catchup:
        assert (runs.status == "success").all()
        assert list(runs.run_time) == sorted(runs.run_time)  # oldest first
        assert set(missed) <= set(seen(wh))
    else:
        assert list(runs.status) == ["skipped"] * 4 + ["success"]
        assert runs.backfill_id.isna().sum() == 4
        assert set(seen(wh)) == {"2025-01-01", "2025-01-02", "2025-01-07"}
    assert s.tick().empty  # the gap is closed either way
    assert len(s.runs()) == 2 + 5


def test_a_failed_run_stops_the_tick_and_is_resumed_next_time():
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    s = scheduler(wh, clock, faults=[Fault.fail("stamps", "2025-01-03", times=1)])
    runs = s.run_until("2025-01-06T02:00")
    assert [(r.partition, r.status) for r in runs.itertuples()] == [
        ("2025-01-01", "success"), ("2025-01-02", "success"), ("2025-01-03", "failed"),
        ("2025-01-03", "success"), ("2025-01-04", "success"), ("2025-01-05", "success"),
    ]
    failed, retried = runs.iloc[2], runs.iloc[3]
    assert "injected" in failed.error.lower()
    assert failed.backfill_id == retried.backfill_id == "scheduled-2025-01-04T02:00"
    assert retried.executed_at == pd.Timestamp("2025-01-05 02:00")  # retried a day later
    assert len(seen(wh)) == 5


def test_a_run_that_always_fails_blocks_later_runs_with_catchup():
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    s = scheduler(wh, clock, faults=[Fault.fail("stamps", "2025-01-02")])
    runs = s.run_until("2025-01-05T02:00")
    assert list(runs.status) == ["success"] + ["failed"] * 3
    assert set(runs.partition[1:]) == {"2025-01-02"}
    assert set(seen(wh)) == {"2025-01-01"}
    assert [t.isoformat() for t in s.pending()] == [f"2025-01-0{d}T02:00:00" for d in (3, 4, 5)]


def test_a_run_until_reads_once_what_its_runs_cannot_change():
    """Progress, the backfill ids and a table's columns are read once per run_until, not once
    per run; only the retried run (its backfill id was recorded) looks its backfill up."""
    from tests.test_write_statements import statements

    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    s = scheduler(wh, clock, mode="merge", merge_keys=["date"],
                  faults=[Fault.fail("stamps", "2025-01-03", times=1)])
    s.run_until("2025-01-02T02:00")  # the table exists from here on
    ran = statements(wh, lambda: s.run_until("2025-01-06T02:00"))
    assert [r.status for r in s.runs().itertuples()] == ["success"] * 2 + ["failed"] + [
        "success"] * 3
    assert sum("max(run_time)" in q for q in ran) == 1
    assert sum(q.startswith("DESCRIBE") for q in ran) == 1
    assert sum("FROM _bl_backfills WHERE backfill_id" in q for q in ran) == 1  # the retry
    assert sum(q.startswith("INSERT INTO _bl_backfills") for q in ran) == 4
    assert sum(q.startswith("SELECT backfill_id FROM _bl_backfills") for q in ran) == 1
    assert len(wh._cursors) <= 1  # the runs' threads ended with the run_until


def test_restart_continues_where_the_last_scheduler_stopped():
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    scheduler(wh, clock, reprocess_window=1).run_until("2025-01-04T02:00")
    again = Scheduler(stamp_pipeline(), wh, "daily 02:00 UTC", clock=clock, reprocess_window=1)
    assert again.start == "2025-01-01"  # remembered in the warehouse
    runs = again.run_until("2025-01-07T02:00")
    assert list(runs.partition) == ["2025-01-04", "2025-01-05", "2025-01-06"]
    assert len(again.runs()) == 6

    whole, clock2 = Warehouse(), FixedClock("2025-01-01T00:00")
    scheduler(whole, clock2, reprocess_window=1).run_until("2025-01-07T02:00")
    assert wh.checksums("stamps") == whole.checksums("stamps")


def test_hourly_schedule_builds_hourly_partitions():
    def stamp(ctx: StepContext) -> pd.DataFrame:
        return pd.DataFrame({"hour": [to_value(ctx.partition)], "seen_at": [ctx.now]})

    pipe = Pipeline("hours", [Layer("hours", stamp, partition_column="hour")])
    wh, clock = Warehouse(), FixedClock("2025-01-01T00:00")
    s = Scheduler(pipe, wh, "hourly :15", clock=clock, start="2025-01-01T00:00")
    runs = s.run_until("2025-01-01T03:20")
    assert list(runs.partition) == ["2025-01-01T00:00", "2025-01-01T01:00", "2025-01-01T02:00"]
    assert list(wh.partition_counts("hours")) == list(runs.partition)


def test_scheduler_option_errors():
    wh, clock = Warehouse(), FixedClock("2025-01-01")
    with pytest.raises(ConfigError, match="chooses 'backfill_id' for each run"):
        scheduler(wh, clock, backfill_id="mine")
    with pytest.raises(UnknownNameError, match="Did you mean 'concurrency'"):
        scheduler(wh, clock, concurency=2)
    with pytest.raises(ConfigError, match="'merge' needs merge_keys: layer 'stamps' declares"):
        scheduler(wh, clock, mode="merge")
    with pytest.raises(ConfigError, match=r"'catchup' must be true or false \(got 'yes'\)"):
        scheduler(wh, clock, catchup="yes")
    with pytest.raises(ConfigError, match="must be a daily partition"):
        scheduler(wh, clock, start="2025-01-01T05:00")
    with pytest.raises(ConfigError, match="run_until moves the clock"):
        Scheduler(stamp_pipeline(), wh, clock=SystemClock(), start="2025-01-01").run_until(
            "2025-01-02")


# -- time zones: partition keys are UTC (issue 14) -----------------------------------------------
def _london(*args: int, fold: int = 0) -> dt.datetime:
    import zoneinfo

    return dt.datetime(*args, fold=fold, tzinfo=zoneinfo.ZoneInfo("Europe/London"))


def _hour_pipeline() -> Pipeline:
    def stamp(ctx: StepContext) -> pd.DataFrame:
        return pd.DataFrame({"hour": [to_value(ctx.partition)], "seen_at": [ctx.now]})

    return Pipeline("hours", [Layer("hours", stamp, partition_column="hour")])


def test_the_two_hours_of_a_dst_fall_back_are_two_utc_partitions():
    from backfill_lab import run_backfill
    from backfill_lab.partitions import PartitionSet, parse_key

    first, second = _london(2024, 10, 27, 1, fold=0), _london(2024, 10, 27, 1, fold=1)
    assert (parse_key(first), parse_key(second)) == ("2024-10-27T00:00", "2024-10-27T01:00")
    wh = Warehouse()
    result = run_backfill(_hour_pipeline(), wh, [first, second])
    assert result.ok
    assert list(wh.partition_counts("hours")) == ["2024-10-27T00:00", "2024-10-27T01:00"]
    # a local day of 25 hours (its hours read off a London clock) is 25 UTC partitions
    midnight = _london(2024, 10, 27).astimezone(dt.UTC)
    local = [(midnight + dt.timedelta(hours=h)).astimezone(first.tzinfo) for h in range(25)]
    assert [t.hour for t in local[:4]] == [0, 1, 1, 2]
    keys = PartitionSet.of([parse_key(t) for t in local])
    assert len(keys) == 25 and keys.is_contiguous


def test_a_dst_spring_forward_skips_no_utc_partition():
    from backfill_lab.partitions import parse_key, shift

    before, after = _london(2024, 3, 31, 0), _london(2024, 3, 31, 2)  # 01:00 never happens
    assert parse_key(before) == "2024-03-31T00:00"
    assert parse_key(after) == "2024-03-31T01:00" == shift(parse_key(before), 1)


def test_naive_times_are_utc_and_aware_ones_are_converted():
    from backfill_lab.partitions import parse_key

    assert parse_key(T(2024, 7, 1, 5)) == "2024-07-01T05:00"
    assert parse_key(_london(2024, 7, 1, 6)) == "2024-07-01T05:00"  # BST is UTC+1
    assert parse_key(dt.datetime(2024, 7, 1, 5, tzinfo=dt.UTC)) == "2024-07-01T05:00"


def test_an_aware_fixed_clock_drives_the_scheduler():
    clock = FixedClock(_london(2024, 10, 27, 0, 0))  # 2024-10-26T23:00 UTC
    assert clock.now() == T(2024, 10, 26, 23, 0)
    wh = Warehouse()
    s = Scheduler(_hour_pipeline(), wh, "hourly :15", clock=clock, start="2024-10-27T00:00")
    runs = s.run_until(_london(2024, 10, 27, 1, 20, fold=1))  # 01:20 GMT = 01:20 UTC
    assert list(runs.partition) == ["2024-10-27T00:00"]
    clock.set(_london(2024, 10, 27, 3, 0))
    assert clock.now() == T(2024, 10, 27, 3, 0)
