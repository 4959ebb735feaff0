"""Fast staging gives the same warehouses as slow staging: the reference truth from one batched
backfill equals the clean history built one night at a time, and a staged copy of the template
holds exactly what building the incident for real gives (tables, ledger, validations, view)."""

from __future__ import annotations

import pytest

from backfill_lab.course import scenarios
from backfill_lab.course.drills import incident
from backfill_lab.course.scenarios import Scenario, Staged, scenario
from backfill_lab.course.simulate import may_exceed, staged, throttle
from backfill_lab.plan import Plan

from .plans import MISTAKES, PERFECT


def _nightly_truth(sc: Scenario) -> dict[str, dict[str, str]]:
    """The clean history as the scheduler builds it, one night at a time (the slow way)."""
    clean = Scenario(**{**sc.__dict__, "outage": None, "corrupt": (), "backfill_faults": ()})
    st = clean.build()
    try:
        return {t: st.warehouse.checksums(t) for t in st.warehouse.tables()}
    finally:
        st.warehouse.close()


def _everything(st: Staged) -> dict[str, object]:
    """Every table's rows (system tables too, in rowid order) and the view readers use."""
    wh = st.warehouse
    names = [r[0] for r in wh.cursor().execute(
        "SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
    out: dict[str, object] = {
        n: wh.cursor().execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}
    if st.view is not None:
        out[f"view:{st.view}"] = wh.cursor().execute(
            f'SELECT * FROM "{st.view}" ORDER BY ALL').fetchall()
    return out


@pytest.mark.parametrize("seed", [1, 4])
def test_batched_truth_equals_the_nightly_clean_history_of_a_drill(seed):
    sc = incident(seed)
    assert scenarios._compute_truth(sc) == _nightly_truth(sc)


@pytest.mark.slow
@pytest.mark.parametrize("exercise", ["ex1", "mini_challenge"])
def test_batched_truth_equals_the_nightly_clean_history(exercise):
    sc = scenario(exercise)
    assert scenarios._compute_truth(sc) == _nightly_truth(sc)


@pytest.mark.parametrize("seed", [1, 4])
def test_a_staged_copy_holds_what_building_the_incident_gives(seed):
    sc = incident(seed)
    built, copy = sc.build(), sc.stage()
    try:
        assert _everything(copy) == _everything(built)
        assert copy.view == built.view and copy.pipeline.name == built.pipeline.name
    finally:
        built.warehouse.close()
        copy.warehouse.close()


def test_copies_are_private():
    sc = incident(1)
    one, two = sc.stage(), sc.stage()
    one.warehouse.cursor().execute("DELETE FROM raw")
    assert two.warehouse.partition_counts("raw")
    assert sc.stage().warehouse.partition_counts("raw") == two.warehouse.partition_counts("raw")


def test_the_throttle_waits_only_where_a_plan_can_exceed_the_capacity():
    sc = scenario("ex1")
    within = Plan.load(PERFECT["ex1"])
    above = Plan.load(MISTAKES["over_capacity"][1])
    unlimited = Plan.load(MISTAKES["unlimited_parallelism"][1])
    assert not may_exceed(within, sc) and may_exceed(above, sc) and may_exceed(unlimited, sc)
    with staged(sc, within) as st:
        assert st.warehouse.capacity == sc.capacity and st.warehouse.write_latency == 0
    with staged(sc, above) as st:
        assert st.warehouse.capacity == sc.capacity and st.warehouse.write_latency > 0
    with staged(sc) as st:  # no plan given: the notebooks' warehouse, latency and all
        assert st.warehouse.write_latency > 0
        assert throttle(st.warehouse, sc, within).write_latency == 0
