"""Each planted fault is caught by the check that names it; clean data passes all five."""

from __future__ import annotations

import pytest

from backfill_lab import (
    ConfigError,
    EventSource,
    Fault,
    UnknownNameError,
    Warehouse,
    daily_features,
    run_backfill,
)
from backfill_lab.validations import (
    DownstreamRead,
    Drift,
    RowCount,
    Validations,
    invalid_partitions,
    ks_statistic,
    latest_validations,
    psi,
    validate,
)

HISTORY = "2024-11-20..2024-12-09"
DAY = "2024-12-10"
# PSI needs a few hundred rows per partition to tell drift from noise
MEDIUM = EventSource(seed=3, entities=400, events_per_day=1600)


@pytest.fixture
def pipeline():
    return daily_features(MEDIUM)


@pytest.fixture
def loaded(wh, pipeline):
    assert run_backfill(pipeline, wh, HISTORY, concurrency=2).ok
    return wh


def write_day(wh, pipeline, faults=()):
    return run_backfill(pipeline, wh, DAY, faults=list(faults))


def verdicts(report):
    return {r.check: r.passed for r in report.results}


def test_clean_partition_passes_the_whole_checklist(loaded, pipeline):
    write_day(loaded, pipeline)
    report = validate(loaded, "features", DAY, Validations.recommended())
    assert verdicts(report) == dict.fromkeys(
        ["row_count", "null_rate", "unique_keys", "drift", "downstream_read"], True)
    assert report.passed and report.invalid_partitions() == []
    drift = next(r for r in report.results if r.check == "drift")
    assert drift.measured < 0.2 and drift.threshold == "PSI <= 0.2"


@pytest.mark.parametrize(
    ("fault", "caught_by"),
    [
        (Fault.nulls("features", DAY, column="amount_1d", fraction=0.3), "null_rate"),
        (Fault.duplicates("features", DAY, fraction=0.1), "unique_keys"),
        (Fault.shift("features", DAY, column="amount_7d", factor=1.6), "drift"),
        (Fault.drop_rows("features", DAY, fraction=0.7), "row_count"),
    ],
    ids=["nulls", "duplicates", "shift", "missing_rows"],
)
def test_each_planted_fault_is_caught_by_its_check(loaded, pipeline, fault, caught_by):
    write_day(loaded, pipeline, [fault])
    report = validate(loaded, "features", DAY, Validations.recommended())
    failed = {r.check for r in report.failed}
    assert caught_by in failed
    assert failed <= {caught_by, "drift"}  # missing rows or nulls may also move distributions
    assert invalid_partitions(loaded, "features") == {DAY}
    result = next(r for r in report.results if r.check == caught_by)
    assert result.measured is not None and result.threshold and result.detail


def test_absolute_row_bounds_and_messages(loaded, pipeline):
    write_day(loaded, pipeline)
    n = loaded.partition_counts("features")[DAY]
    ok = validate(loaded, "features", DAY, Validations(row_count=RowCount.between(n, n)))
    assert ok.passed
    low = validate(loaded, "features", DAY, Validations(row_count=RowCount(min=n + 1)))
    assert low.results[0].detail == f"{n} rows < min {n + 1}"


def test_drift_against_a_previous_version(loaded, pipeline):
    v2 = daily_features(MEDIUM, feature_version="v2")
    run_backfill(v2, loaded, "2024-12-01..2024-12-09", layers=["features"],
                 target="features_v2")
    same = validate(loaded, "features", "2024-12-05",
                    Validations(drift=Drift(baseline="features")))
    assert same.results[0].measured == 0.0  # a table against itself: no drift
    changed = validate(loaded, "features_v2", "2024-12-05",
                       Validations(drift=Drift(baseline="features", max_ks=0.0, max_psi=None)))
    assert not changed.passed and "vs features 2024-12-05" in changed.results[0].detail


def test_downstream_read_fails_when_a_consumer_query_breaks(loaded, pipeline):
    write_day(loaded, pipeline)
    ok = validate(loaded, "features", DAY, Validations(downstream_read=DownstreamRead(
        "SELECT entity_id, amount_7d FROM {table} WHERE date = $partition")))
    assert ok.passed
    broken = validate(loaded, "features", DAY, Validations(downstream_read=DownstreamRead(
        "SELECT entity_id, amount_30d FROM {table} WHERE date = $partition")))
    assert not broken.passed and "consumer query failed" in broken.results[0].detail
    empty = validate(loaded, "features", "2025-02-01", Validations(
        downstream_read=DownstreamRead()))
    assert not empty.passed


def test_runner_marks_failed_partitions_invalid_and_skips_downstream(wh, pipeline):
    run_backfill(pipeline, wh, HISTORY)
    result = run_backfill(
        pipeline, wh, "2024-12-10..2024-12-11", layers=["staging", "features"],
        faults=[Fault.fail("raw", "2024-12-10..2024-12-11", times=9)], backfill_id="v",
        validations={"staging": {"null_rate": {"max": 0.0}},
                     "features": {"unique_keys": ["entity_id", "date"]}})
    assert result.status == "failed"  # raw missing for those days: staging cannot build
    run_backfill(pipeline, wh, "2024-12-10..2024-12-11", layers=["raw"])
    checked = run_backfill(
        pipeline, wh, "2024-12-10..2024-12-11", layers=["staging", "features"],
        faults=[Fault.duplicates("features", "2024-12-11", fraction=0.2)],
        validations={"features": {"unique_keys": ["entity_id", "date"]}})
    status = {(s.layer, s.partition): s.status for s in checked.steps}
    assert status[("features", "2024-12-10")] == "success"
    assert status[("features", "2024-12-11")] == "invalid"
    assert checked.status == "failed"
    assert "unique_keys" in next(s.error for s in checked.steps if s.status == "invalid")
    latest = latest_validations(wh, "features")
    assert set(latest.partition) == {"2024-12-10", "2024-12-11"}


def test_validations_from_a_plan_section():
    v = Validations.from_dict({
        "row_count": {"min": 900, "max": 1100}, "null_rate": {"max": 0.01},
        "unique_keys": ["entity_id", "date"], "drift": {"baseline": "features_v1",
                                                        "max_psi": 0.2},
        "downstream_read": True})
    assert v.enabled == ["row_count", "null_rate", "unique_keys", "drift", "downstream_read"]
    assert v.drift.baseline == "features_v1" and v.row_count.max == 1100
    assert Validations.from_dict({"row_count": {}}).row_count.relative == 0.5
    assert Validations.from_dict(v.to_dict()) == v


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"row_cont": {}}, "Did you mean 'row_count'?"),
        ({"drift": {"max_pci": 0.2}}, "Did you mean 'max_psi'?"),
        ({"row_count": {"min": 10, "max": 5}}, "min 10 is above max 5"),
        ({"null_rate": {"max": "low"}}, "'validations.null_rate.max' must be a number >= 0"),
        ({"unique_keys": 3}, "'validations.unique_keys' must be a list of columns (got 3)"),
        ({"drift": {"max_psi": None}}, "needs max_psi or max_ks"),
    ],
)
def test_bad_validation_config_is_one_clear_line(spec, message):
    with pytest.raises(ConfigError) as info:
        Validations.from_dict(spec)
    assert message in str(info.value)


def test_unknown_columns_are_named(loaded):
    with pytest.raises(UnknownNameError, match="Did you mean 'amount_7d'"):
        validate(loaded, "features", "2024-12-05",
                 Validations(drift=Drift(columns=("amount_7", ))))


def test_statistics_on_known_inputs():
    assert psi([1.0] * 50 + [2.0] * 50, [1.0] * 50 + [2.0] * 50) == 0.0
    assert ks_statistic([0, 1, 2, 3], [2, 3, 4, 5]) == 0.5
    assert psi(range(1000), range(1000, 2000)) > 5


def test_report_renders_as_text_and_html(loaded, pipeline):
    write_day(loaded, pipeline, [Fault.nulls("features", DAY, column="avg_amount_1d")])
    report = validate(loaded, "features", DAY, Validations.recommended())
    text = str(report)
    assert "FAIL null_rate" in text and f"invalid partitions: {DAY}" in text
    assert "<table class='backfill-validations'>" in report._repr_html_()
    frame = report.frame()
    assert list(frame.columns) == ["check", "table", "partition", "measured", "threshold",
                                   "passed", "detail"]


def test_empty_warehouse_fails_instead_of_crashing():
    wh = Warehouse()
    wh.write_partition("t", "2024-12-01", "SELECT DATE '2024-12-01' AS date, 1 AS x")
    report = validate(wh, "t", "2024-12-02", Validations(row_count=RowCount(min=1)))
    assert not report.passed and "partition is empty" in report.results[0].detail


def test_report_html_escapes_every_cell():
    from backfill_lab.validations import CheckResult, ValidationReport

    report = ValidationReport([CheckResult("row_count", "t", "2024-12-01", 12.0, ">= 900", False,
                                           "12 rows < min 900 <script>")])
    html = report._repr_html_()
    assert "&lt;script&gt;" in html and "<script>" not in html and "&gt;= 900" in html
    assert str(report).splitlines()[-1] == "0/1 checks passed; invalid partitions: 2024-12-01"
