"""A replay started ahead (while the learner watches their plan run) gives the self-check the
report a replay in the foreground gives, is taken once, only by the same plan on the same
exercise, and never starts while grading or for a plan whose outcome depends on timing."""

from __future__ import annotations

import pytest

from backfill_lab.course import selfcheck
from backfill_lab.course.scenarios import scenario
from backfill_lab.course.selfcheck import check, simulate_ahead
from backfill_lab.course.simulate import simulate
from backfill_lab.plan import Plan

from .plans import MISTAKES, PERFECT_MINI


@pytest.fixture(autouse=True)
def ahead(monkeypatch):
    """No replay ahead left over from another test, none left for the next."""
    monkeypatch.setattr(selfcheck, "_AHEAD", [])
    monkeypatch.delenv("BACKFILL_LAB_GRADING", raising=False)
    yield selfcheck._AHEAD
    for _, _, future in selfcheck._AHEAD:
        future.exception()  # wait: its thread must not outlive the test


def _verdicts(report):
    return [(r.name, r.passed, r.points, r.message) for r in report.results]


@pytest.mark.parametrize("name", ["perfect", "target_without_switchover"])
def test_the_report_ahead_is_the_one_a_replay_in_the_foreground_gives(name, ahead):
    text = PERFECT_MINI if name == "perfect" else MISTAKES[name][1]
    plan, sc = Plan.load(text), scenario("mini_challenge")
    assert simulate_ahead(plan, sc)
    future = ahead[0][2]
    here = simulate(plan, sc)
    there = future.result()
    assert _verdicts(there) == _verdicts(here) and there.picture == here.picture


def test_the_self_check_of_the_same_plan_takes_it_once(ahead, monkeypatch):
    sc = scenario("mini_challenge")
    assert simulate_ahead(Plan.load(PERFECT_MINI), sc)
    assert not simulate_ahead(Plan.load(PERFECT_MINI), sc)  # already under way
    report = ahead[0][2].result()
    replayed = []
    real = selfcheck.simulate
    monkeypatch.setattr(selfcheck, "simulate",
                        lambda plan, sc: replayed.append(plan) or real(plan, sc))
    first = check(PERFECT_MINI, sc, record=False)
    assert first.simulation is report and not replayed and not ahead
    again = check(PERFECT_MINI, sc, record=False)  # nothing ahead any more: replayed
    assert len(replayed) == 1 and _verdicts(again) == _verdicts(first)


def test_another_plan_or_exercise_does_not_take_it(ahead, monkeypatch):
    sc = scenario("mini_challenge")
    simulate_ahead(Plan.load(PERFECT_MINI), sc)
    replayed = []
    real = selfcheck.simulate
    monkeypatch.setattr(selfcheck, "simulate",
                        lambda plan, sc: replayed.append(plan) or real(plan, sc))
    other = PERFECT_MINI.replace("INC-3001", "INC-3002")
    check(other, sc, record=False)
    assert len(replayed) == 1 and len(ahead) == 1  # still there, for its own plan


def test_nothing_starts_while_grading_or_for_a_plan_that_can_exceed_the_capacity(
        ahead, monkeypatch):
    sc = scenario("ex1")
    over = Plan.load(MISTAKES["over_capacity"][1])
    assert not simulate_ahead(over, sc)
    unlimited = Plan.load(MISTAKES["unlimited_parallelism"][1])
    assert not simulate_ahead(unlimited, sc)
    monkeypatch.setenv("BACKFILL_LAB_GRADING", "1")
    assert not simulate_ahead(Plan.load(PERFECT_MINI), scenario("mini_challenge"))
    assert not ahead


def test_a_replay_ahead_that_failed_is_replayed_in_the_foreground(ahead, monkeypatch):
    sc = scenario("mini_challenge")
    real = selfcheck.simulate
    monkeypatch.setattr(selfcheck, "simulate", lambda plan, sc: 1 / 0)
    assert simulate_ahead(Plan.load(PERFECT_MINI), sc)
    assert isinstance(ahead[0][2].exception(), ZeroDivisionError)
    monkeypatch.setattr(selfcheck, "simulate", real)
    report = check(PERFECT_MINI, sc, record=False)
    assert report.score == report.max_score


def test_run_and_show_starts_one_only_in_a_notebook(ahead):
    """Outside a notebook (here) nobody watches the grid: no thread is started."""
    from backfill_lab.course.exercises import run_and_show

    assert run_and_show(PERFECT_MINI, "mini_challenge").run.ok and not ahead
