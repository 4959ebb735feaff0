"""Drills: a seeded incident graded like an exercise, with a timer."""

from __future__ import annotations

import datetime as dt
import html

import pytest

from backfill_lab.clock import FixedClock
from backfill_lab.course.drills import BAD_DATA, Drill, drill, incident
from backfill_lab.course.progress import load
from backfill_lab.course.scenarios import Scenario
from backfill_lab.course.selfcheck import check
from backfill_lab.errors import ConfigError
from backfill_lab.partitions import PartitionSet


@pytest.fixture(autouse=True)
def learner(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKFILL_LAB_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.delenv("BACKFILL_LAB_GRADING", raising=False)
    return tmp_path / "progress.json"


def plan_for(sc: Scenario) -> str:
    """A safe plan written from the facts a drill shows (what a learner should arrive at)."""
    lines = ["pipeline: daily_features", f"code_version: {sc.code_version}", "backfill:",
             f"  partitions: {sc.broken}", "  order: ascending",
             f"  layers: [{', '.join(sc.layers)}]", f"  concurrency: {min(2, sc.capacity)}",
             "  retries: 2", "  mode: overwrite"]
    lines += ["  target: features_v2"] if sc.versioned else []
    lines += ["validations:", f"  row_count: {{min: {int(sc.entities * 0.8)}, max: "
              f"{int(sc.entities * 1.1)}}}", "  null_rate: {max: 0.01}",
              "  unique_keys: [entity_id, date]", "  drift: {max_psi: 0.2, reference_window: 7}",
              "  downstream_read: true",
              f"rollback: {{strategy: {'previous_version' if sc.versioned else 'snapshot'}}}",
              "lineage: {audit_tags: {ticket: DRILL, owner: me}}"]
    lines += ["switchover: {view: features, when: validated}"] if sc.versioned else []
    return "\n".join(lines)


def test_same_seed_same_incident_different_seeds_differ():
    assert incident(11) == incident(11) and hash(incident(11)) == hash(incident(11))
    assert incident(11).exercise == "drill-11"
    scenarios = [incident(seed) for seed in range(40)]
    assert len({(s.history, s.broken, s.layers, s.capacity) for s in scenarios}) == 40
    kinds = {"outage" if s.outage else s.required_checks[0] for s in scenarios}
    assert kinds == {"outage"} | {check for _, check in BAD_DATA.values()}
    assert any(s.versioned for s in scenarios) and any(not s.versioned for s in scenarios)


@pytest.mark.parametrize("seed", range(40))
def test_every_incident_is_one_a_single_plan_can_fix(seed):
    sc = incident(seed)
    history, broken = PartitionSet.parse(sc.history), sc.partitions
    assert set(broken) <= set(history) and sc.capacity >= 2 and sc.entities == 300
    assert 1 <= len(sc.backfill_faults) <= 2
    assert all(f.layer in sc.layers and set(f.partitions) <= set(broken)
               for f in sc.backfill_faults)
    if sc.outage:  # the source was down at the end: nothing after it reads the hole
        assert broken.end == history.end and sc.layers == ("raw", "staging", "features")
    else:  # bad features with two trusted weeks before (drift's reference window) and days after
        assert sc.layers == ("features",) and len(list(history)) - len(list(broken)) >= 16
        assert list(history).index(broken.start) >= 14 and broken.end < history.end


def test_bad_seeds_and_limits():
    for seed in (-1, 1.5, "7", True):
        with pytest.raises(ConfigError, match="seed"):
            incident(seed)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="minutes"):
        Drill(1, minutes=0, stage=False)


@pytest.mark.parametrize("seed", [5, 12])  # an outage; drifted features behind a view
def test_a_safe_plan_gets_full_marks_with_the_exercises_rules_and_simulation(seed):
    sc = incident(seed)
    report = check(plan_for(sc), sc)
    assert report.exercise == f"drill-{seed}"
    assert report.passed and report.score == report.max_score, report
    assert {"outcome_complete", "outcome_idempotent", "outcome_untouched"} <= {
        r.name for r in report.results}


def test_mistakes_lose_the_rule_that_names_them():
    sc = incident(5)
    flooded = plan_for(sc).replace(f"concurrency: {min(2, sc.capacity)}", "concurrency: 9")
    report = check(flooded, sc, simulate_outcomes=False)
    assert report.failed() == ["concurrency"] and "capacity of 2" in str(report)


def test_same_seed_same_warehouse_timer_on_the_injected_clock_result_recorded(learner):
    clock = FixedClock("2025-03-01T09:00")
    d = drill(5, clock=clock, minutes=10)
    assert d.started == dt.datetime(2025, 3, 1, 9, 0)
    again = Drill(5)  # the same seed stages the same warehouse
    assert d.staged is not None and again.staged is not None
    for table in ("raw", "staging", "features"):
        assert d.staged.warehouse.checksums(table) == again.staged.warehouse.checksums(table)
    clock.advance(dt.timedelta(minutes=7, seconds=30))
    result = d.check(plan_for(d.scenario), simulate_outcomes=False)
    assert result.elapsed == dt.timedelta(minutes=7, seconds=30) and result.in_time
    assert result.headline() == ("drill-5: 10/10 points in 7 min 30 s "
                                 "(within the 10-minute target)")
    clock.advance(dt.timedelta(minutes=5))
    late = d.check("backfill: {partitions: 2025-01-03}", simulate_outcomes=False)
    assert not late.in_time and "over the 10-minute target" in str(late)
    attempts = load(learner)
    assert [(a.exercise, a.score, a.at) for a in attempts] == [
        ("drill-5", 10.0, "2025-03-01T09:07:30"), ("drill-5", late.score, "2025-03-01T09:12:30")]


def test_a_drill_shows_story_facts_and_grid():
    d = drill(10)  # drifted features behind a view, found by monitoring
    text = repr(d)
    assert d.story in text and "Target time: 15 minutes" in text
    assert "Readers query the view 'features'" in text
    states = d.grid().states
    assert (states.loc["features", d.scenario.broken.split("..")[0]] == "invalid")
    assert (states.loc["staging"] == "ok").all()
    bundle = d._repr_mimebundle_()
    # a frozen picture of the drill's incident as staged (no run follows that copy)
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "backfill-grid-static" in bundle["text/html"]
    assert html.escape(d.story) in bundle["text/html"]
    assert d.hints().items[0] == d.scenario.hints[0]
    assert d.kind == "bad data" and Drill(5, stage=False).kind == "outage"
