"""The demo pipeline and warehouse are deterministic and stage a real outage."""

from __future__ import annotations

from backfill_lab import (
    EventSource,
    Ledger,
    Warehouse,
    build_demo,
    daily_features,
    grid_states,
    run_backfill,
)

from .conftest import all_checksums

HISTORY = "2024-11-20..2024-12-10"
OUTAGE = "2024-12-01..2024-12-05"


def demo(seed: int) -> Warehouse:
    wh = Warehouse()
    build_demo(wh, history=HISTORY, outage=OUTAGE, seed=seed, entities=30, events_per_day=120)
    return wh


def test_same_seed_same_warehouse_different_seed_different():
    a, b, c = demo(1), demo(1), demo(2)
    assert all_checksums(a) == all_checksums(b)
    assert all_checksums(a)["raw"] != all_checksums(c)["raw"]


def test_outage_is_staged_through_real_failed_runs():
    wh = demo(1)
    states = grid_states(wh, ["raw", "staging", "features"], HISTORY)
    assert set(states.loc["raw", "2024-12-01":"2024-12-05"]) == {"failed"}
    assert set(states.loc["features", "2024-12-01":"2024-12-05"]) == {"missing"}
    # features after the outage read a 7-day window with a hole in it: they refuse to build
    assert set(states.loc["features", "2024-12-06":"2024-12-10"]) == {"failed"}
    assert set(states.loc["features", "2024-11-20":"2024-11-30"]) == {"ok"}
    errors = Ledger(wh).frame("scheduled-2024-12-08").set_index("layer").error
    assert errors["features"].startswith("upstream staging 2024-12-02 is missing")
    ledger = Ledger(wh).frame()
    assert set(ledger.backfill_id) >= {"scheduled-2024-12-01", "scheduled-2024-12-10"}
    skipped = ledger[(ledger.status == "skipped") & (ledger.partition == "2024-12-03")]
    assert set(skipped.layer) == {"staging", "features"}


def test_features_have_one_row_per_active_entity():
    source = EventSource(seed=5, entities=50, events_per_day=400)
    events = source.events("2024-12-01")
    wh = Warehouse()
    assert run_backfill(daily_features(source), wh, "2024-12-01").ok
    features = wh.read_partition("features", "2024-12-01")
    assert len(features) == events["entity_id"].nunique()
    assert features["events_1d"].sum() == len(events)
    assert not features.duplicated(["entity_id", "date"]).any()


def test_v2_feature_definition_changes_only_capped_amounts():
    source = EventSource(seed=5, entities=50, events_per_day=400)
    v1, v2 = Warehouse(), Warehouse()
    run_backfill(daily_features(source), v1, "2024-12-01")
    run_backfill(daily_features(source, feature_version="v2"), v2, "2024-12-01")
    f1 = v1.read_partition("features", "2024-12-01")
    f2 = v2.read_partition("features", "2024-12-01")
    assert (f1["events_1d"] == f2["events_1d"]).all()
    assert (f2["amount_1d"] <= f1["amount_1d"]).all() and (f2["amount_1d"] < f1["amount_1d"]).any()
