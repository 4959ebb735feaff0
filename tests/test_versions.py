"""Versioned outputs: validated, canary-checked, atomic view switches; rollback; snapshots."""

from __future__ import annotations

import threading

import pytest

from backfill_lab import (
    ConfigError,
    EventSource,
    Fault,
    SwitchoverBlocked,
    daily_features,
    run_backfill,
)
from backfill_lab.snapshots import restore, snapshot, snapshots, untouched_report
from backfill_lab.validations import Validations, validate
from backfill_lab.versions import (
    canary_compare,
    point_view,
    rollback_view,
    switch_view,
    view_history,
    view_state,
)

SOURCE = EventSource(seed=11, entities=300, events_per_day=1200)
RANGE = "2024-12-01..2024-12-20"
RECOMPUTE = "2024-12-08..2024-12-20"
CHECKS = Validations.recommended(baseline="features_v1")


@pytest.fixture
def versioned(wh):
    v1 = daily_features(SOURCE)
    assert run_backfill(v1, wh, RANGE, target="features_v1", concurrency=2).ok
    point_view(wh, "features", "features_v1")
    return wh


def recompute(wh, faults=()):
    v2 = daily_features(SOURCE, feature_version="v2")
    return run_backfill(v2, wh, RECOMPUTE, layers=["features"], target="features_v2",
                        validations=CHECKS, faults=list(faults))


def view_sum(wh, day):
    return wh.sql("SELECT sum(amount_7d) AS s FROM features WHERE date = ?", [day]).s[0]


def test_validated_recompute_switches_atomically_and_rolls_back(versioned):
    wh = versioned
    before = view_sum(wh, "2024-12-15")
    assert recompute(wh).ok
    assert view_sum(wh, "2024-12-15") == before  # v2 written beside v1: readers unaffected
    state = switch_view(wh, "features", "features_v2", partitions=RECOMPUTE)
    assert state.table_for("2024-12-15") == "features_v2"
    assert state.table_for("2024-12-01") == "features_v1"
    assert view_sum(wh, "2024-12-15") < before  # v2 caps amounts
    assert wh.sql("SELECT count(*) AS n FROM features").n[0] == sum(
        wh.partition_counts("features_v1").values())
    back = rollback_view(wh, "features")
    assert back.base == "features_v1" and back.patch is None
    assert view_sum(wh, "2024-12-15") == before
    assert list(view_history(wh, "features").reason) == ["created", "switch", "rollback"]


def test_a_failed_validation_blocks_the_switch(versioned):
    wh = versioned
    result = recompute(wh, [Fault.nulls("features", "2024-12-12", column="amount_7d")])
    assert {s.partition for s in result.steps if s.status == "invalid"} == {"2024-12-12"}
    with pytest.raises(SwitchoverBlocked, match="failed validation: 2024-12-12"):
        switch_view(wh, "features", "features_v2", partitions=RECOMPUTE)
    assert view_state(wh, "features").base == "features_v1"
    assert view_state(wh, "features").patch is None


def test_unvalidated_or_missing_partitions_block_the_switch(versioned):
    wh = versioned
    v2 = daily_features(SOURCE, feature_version="v2")
    run_backfill(v2, wh, RECOMPUTE, layers=["features"], target="features_v2")
    with pytest.raises(SwitchoverBlocked, match=r"never validated: 2024-12-08\.\.2024-12-20"):
        switch_view(wh, "features", "features_v2")
    validate(wh, "features_v2", RECOMPUTE, CHECKS)
    with pytest.raises(SwitchoverBlocked, match="missing in features_v2: 2024-12-01"):
        switch_view(wh, "features", "features_v2", partitions="2024-12-01..2024-12-09")


def test_canary_catches_a_broken_recompute_that_slipped_past_loose_checks(versioned):
    wh = versioned
    v2 = daily_features(SOURCE, feature_version="v2")
    run_backfill(v2, wh, RECOMPUTE, layers=["features"], target="features_v2",
                 faults=[Fault.shift("features", RECOMPUTE, column="amount_7d", factor=3.0)],
                 validations={"row_count": {}})
    report = canary_compare(wh, "features_v1", "features_v2", RECOMPUTE, sample=3)
    assert not report.passed and report.rows[0]["worst_column"] == "amount_7d"
    with pytest.raises(SwitchoverBlocked, match="canary comparison failed"):
        switch_view(wh, "features", "features_v2", partitions=RECOMPUTE)
    assert "FAIL" in str(report)


def test_readers_see_whole_versions_during_a_switch(versioned):
    wh = versioned
    assert recompute(wh).ok
    totals = {
        "v1": wh.sql("SELECT sum(amount_7d) AS s FROM features_v1 WHERE date >= '2024-12-08'").s[0],
        "v2": wh.sql("SELECT sum(amount_7d) AS s FROM features_v2").s[0],
    }
    seen: set[float] = set()
    stop = threading.Event()

    def reader():
        cur = wh.cursor()
        while not stop.is_set():
            seen.add(cur.execute("SELECT sum(amount_7d) FROM features "
                                 "WHERE date >= '2024-12-08'").fetchall()[0][0])

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            switch_view(wh, "features", "features_v2", partitions=RECOMPUTE)
            rollback_view(wh, "features")
    finally:
        stop.set()
        t.join()
    assert {round(x, 2) for x in seen} <= {round(v, 2) for v in totals.values()}


def test_snapshot_and_exact_restore_of_an_in_place_overwrite(wh):
    v1 = daily_features(SOURCE)
    run_backfill(v1, wh, RANGE)
    before = wh.checksums("features")
    snap = snapshot(wh, "features", RECOMPUTE, snapshot_id="pre")
    run_backfill(v1, wh, RECOMPUTE, layers=["features"],
                 faults=[Fault.drop_rows("features", "2024-12-10", fraction=0.5)])
    assert wh.checksums("features") != before
    report = restore(wh, "pre")
    assert report["equal"].all() and len(report) == 13
    assert wh.checksums("features") == before
    assert [s.snapshot_id for s in snapshots(wh)] == ["pre"]
    assert "13 partitions with rows" in str(snap)
    with pytest.raises(ConfigError, match="snapshot id 'pre' is taken"):
        snapshot(wh, "features", RECOMPUTE, snapshot_id="pre")


def test_targeted_backfill_provably_leaves_other_partitions_untouched(wh):
    v1 = daily_features(SOURCE)
    run_backfill(v1, wh, RANGE)
    before = wh.checksums("features")
    run_backfill(v1, wh, "2024-12-10..2024-12-14", layers=["features"],
                 faults=[Fault.shift("features", "2024-12-12", column="amount_1d", factor=2)])
    report = untouched_report(before, wh.checksums("features"), "2024-12-10..2024-12-14")
    assert report.untouched and report.changed_inside == ["2024-12-12"]
    run_backfill(v1, wh, "2024-12-15", layers=["features"],
                 faults=[Fault.shift("features", "2024-12-15", column="amount_1d", factor=2)])
    sloppy = untouched_report(before, wh.checksums("features"), "2024-12-10..2024-12-14")
    assert not sloppy.untouched and sloppy.changed_outside == ["2024-12-15"]
    assert "CHANGED: 2024-12-15" in str(sloppy)


def test_view_errors_are_clear(versioned):
    with pytest.raises(ConfigError, match="is a table"):
        point_view(versioned, "features_v1", "features_v1")
    with pytest.raises(ConfigError, match="no earlier definition"):
        rollback_view(versioned, "features")
    with pytest.raises(ValueError, match=r"unknown view 'feature'.*Did you mean 'features'"):
        view_state(versioned, "feature")
