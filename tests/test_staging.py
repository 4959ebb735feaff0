"""Fast staging gives the same warehouses as slow staging: the reference truth from one batched
backfill equals the clean history built one night at a time, the truth repaired from the staged
incident (only the damaged boxes rebuilt) equals the truth built from nothing, and a staged copy
of the template holds exactly what building the incident for real gives (tables, ledger,
validations, view)."""

from __future__ import annotations

import sys

import pytest

from backfill_lab.course import scenarios
from backfill_lab.course.drills import incident
from backfill_lab.course.scenarios import Scenario, Staged, scenario
from backfill_lab.course.simulate import may_exceed, staged, throttle
from backfill_lab.course.templates import built_template, template
from backfill_lab.faults import Fault
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
    assert scenarios._clean_truth(sc) == _nightly_truth(sc)


@pytest.mark.slow
@pytest.mark.parametrize("exercise", ["ex1", "mini_challenge"])
def test_batched_truth_equals_the_nightly_clean_history(exercise):
    sc = scenario(exercise)
    assert scenarios._clean_truth(sc) == _nightly_truth(sc)


# one drill of each kind: bad data (rows dropped, nulls behind a view or not, drift behind a view
# or not, duplicates) and an outage
DRILL_KINDS = [0, 2, 3, 4, 8, 10, 11]

#: damage the exercises and drills never have: an outage in the middle of the history (the days
#: after it refuse to build: their window reads the hole) and bad data in a layer others read
MIDDLE = (
    Scenario(exercise="outage-in-the-middle", title="t", story="s",
             history="2024-11-01..2024-11-24", broken="2024-11-10..2024-11-18",
             layers=("raw", "staging", "features"), outage="2024-11-10..2024-11-12",
             entities=60, events_per_day=200),
    Scenario(exercise="bad-staging", title="t", story="s", history="2024-11-01..2024-11-24",
             broken="2024-11-10..2024-11-17", layers=("staging", "features"),
             corrupt=(Fault.drop_rows("staging", "2024-11-10..2024-11-11", fraction=0.5),
                      Fault.duplicates("features", "2024-11-20", fraction=0.2)),
             versioned=True, monitor="2024-11-08..2024-11-22", entities=60,
             events_per_day=200),
)


def _repaired_equals_clean(sc: Scenario) -> None:
    assert scenarios._repaired_truth(sc, template(sc)) == scenarios._clean_truth(sc)


@pytest.mark.parametrize("seed", DRILL_KINDS)
def test_the_truth_repaired_from_a_drills_incident_equals_the_clean_one(seed):
    _repaired_equals_clean(incident(seed))


@pytest.mark.parametrize("sc", MIDDLE, ids=lambda sc: sc.exercise)
def test_the_repair_rebuilds_every_day_below_the_damage(sc):
    layers, days = scenarios._damage(sc)
    assert layers[0] == ("raw" if sc.outage else "staging") and days.end == "2024-11-24"
    _repaired_equals_clean(sc)


@pytest.mark.slow
@pytest.mark.parametrize("exercise", ["ex1", "ex2", "mini_challenge"])
def test_the_truth_repaired_from_an_exercises_incident_equals_the_clean_one(exercise):
    _repaired_equals_clean(scenario(exercise))


def test_the_truth_is_repaired_only_from_a_template_at_hand(monkeypatch):
    """Without the incident built in this process, the truth is rebuilt whole (nothing is
    staged for it: the grader builds the two in parallel); with it, repaired. Same checksums."""
    templates = sys.modules["backfill_lab.course.templates"]
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    sc = incident(5)
    calls: list[str] = []
    for name in ("_clean_truth", "_repaired_truth"):
        real = getattr(scenarios, name)
        monkeypatch.setattr(scenarios, name,
                            lambda *a, real=real, name=name: calls.append(name) or real(*a))
    whole = scenarios._compute_truth(sc)
    assert calls == ["_clean_truth"] and built_template(sc) is None
    template(sc)
    assert scenarios._compute_truth(sc) == whole
    assert calls == ["_clean_truth", "_repaired_truth"]


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
