"""Fault injection plants exactly what it says, deterministically."""

from __future__ import annotations

import pandas as pd
import pytest

from backfill_lab import ConfigError, Fault, Faults, InjectedFault, run_backfill

FRAME = pd.DataFrame({"date": ["2024-12-01"] * 10, "k": range(10), "v": [1.0] * 10})


def test_fail_n_times_then_succeed_and_always():
    faults = Faults([Fault.fail("raw", "2024-12-01", times=2), Fault.fail("staging")])
    for _ in range(2):
        with pytest.raises(InjectedFault, match="injected failure in raw 2024-12-01"):
            faults.before_attempt("raw", "2024-12-01")
    faults.before_attempt("raw", "2024-12-01")  # third attempt passes
    faults.before_attempt("raw", "2024-12-02")  # other partitions untouched
    for _ in range(5):
        with pytest.raises(InjectedFault):
            faults.before_attempt("staging", "2024-12-09")


def test_slow_fault_sleeps():
    slept: list[float] = []
    Faults([Fault.slow("raw", seconds=0.3)], sleep=slept.append).before_attempt("raw", "2024-12-01")
    assert slept == [0.3]


def test_bad_data_faults_plant_what_they_say():
    nulls = Faults([Fault.nulls("f", column="v", fraction=0.3)]).corrupt("f", "2024-12-01", FRAME)
    assert nulls["v"].isna().sum() == 3
    dups = Faults([Fault.duplicates("f", fraction=0.2)]).corrupt("f", "2024-12-01", FRAME)
    assert len(dups) == 12 and dups["k"].duplicated().sum() == 2
    dropped = Faults([Fault.drop_rows("f", fraction=0.5)]).corrupt("f", "2024-12-01", FRAME)
    assert len(dropped) == 5
    shifted = Faults([Fault.shift("f", column="v", factor=1.5)]).corrupt("f", "2024-12-01", FRAME)
    assert shifted["v"].tolist() == [1.5] * 10
    again = Faults([Fault.nulls("f", column="v", fraction=0.3)]).corrupt("f", "2024-12-01", FRAME)
    pd.testing.assert_frame_equal(nulls, again)  # same partition, same planted rows
    assert FRAME["v"].notna().all()  # the input is never modified


def test_bad_data_lands_in_the_warehouse_through_a_sql_layer(wh, pipeline):
    faults = [Fault.nulls("features", "2024-12-02", column="amount_1d", fraction=0.5),
              Fault.duplicates("features", "2024-12-03", fraction=0.25)]
    assert run_backfill(pipeline, wh, "2024-12-01..2024-12-03", faults=faults).ok
    day2 = wh.read_partition("features", "2024-12-02")
    assert day2["amount_1d"].isna().mean() == pytest.approx(0.5, abs=0.03)
    day3 = wh.read_partition("features", "2024-12-03")
    assert day3.duplicated(["entity_id", "date"]).sum() > 0
    assert wh.read_partition("features", "2024-12-01")["amount_1d"].notna().all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Fault("explode", "raw"), "unknown fault kind 'explode'"),
        (lambda: Fault.fail("raw", times=0), "'times' must be an integer >= 1"),
        (lambda: Fault.nulls("raw", column="", fraction=0.1), "needs a column"),
        (lambda: Fault.drop_rows("raw", fraction=1.5), "'fraction' must be a number in (0, 1]"),
        (lambda: Fault.fail("raw", "2024-12-31..2024-12-01"), "is reversed"),
    ],
)
def test_bad_faults_are_clear_errors(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)
