"""The fast judge gives the verdicts of the full simulation: a second run is skipped only where
the first proves it would write the same rows again, and then the outcomes are those of a real
second run, message for message."""

from __future__ import annotations

import pytest

from backfill_lab.course.drills import incident
from backfill_lab.course.scenarios import scenario
from backfill_lab.course.simulate import simulate
from backfill_lab.plan import Plan

from .plans import MINI_IN_PLACE, MISTAKES, PERFECT, edit


def _verdicts(plan: str, sc: object, **options: bool) -> list[tuple[str, bool, str]]:
    report = simulate(Plan.load(plan), scenario(sc) if isinstance(sc, str) else sc, **options)
    return [(r.name, r.passed, r.message) for r in report.results]


def _skipped(plan: str, sc: object) -> bool:
    report = simulate(Plan.load(plan), scenario(sc) if isinstance(sc, str) else sc)
    return len(report.runs) == 2 and "not replayed" in report.runs[1]


def _drill_plan(seed: int) -> str:
    sc = incident(seed)
    return (f"pipeline: daily_features\ncode_version: {sc.code_version}\nbackfill:\n"
            f"  partitions: {sc.broken}\n  layers: [{', '.join(sc.layers)}]\n"
            f"  concurrency: 2\n  retries: 2\n  mode: overwrite\n")


@pytest.mark.parametrize("seed", [1, 4])
def test_a_skipped_second_run_gives_the_verdicts_of_a_real_one_on_a_drill(seed):
    sc, plan = incident(seed), _drill_plan(seed)
    assert _skipped(plan, sc)
    assert _verdicts(plan, sc) == _verdicts(plan, sc, replay_twice=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["perfect", "descending", "batched", "no_validations",
                                  "mini_in_place"])
def test_a_skipped_second_run_gives_the_verdicts_of_a_real_one(name):
    exercise, plan = {
        "perfect": ("ex1", PERFECT["ex1"]),
        "descending": ("ex1", MISTAKES["descending_order"][1]),
        "batched": ("ex1", edit(PERFECT["ex1"], "  mode: overwrite\n",
                                "  mode: overwrite\n  batch_size: 7\n")),
        "no_validations": ("ex1", MISTAKES["no_validations"][1]),
        "mini_in_place": ("mini_challenge", MINI_IN_PLACE),
    }[name]
    assert _skipped(plan, exercise)
    assert _verdicts(plan, exercise) == _verdicts(plan, exercise, replay_twice=True)


def test_plans_that_could_change_on_a_second_run_are_replayed_twice():
    sc = incident(1)
    plan = _drill_plan(1)
    for changed in (edit(plan, "mode: overwrite", "mode: append"),  # doubles the rows
                    edit(plan, "retries: 2", "retries: 0"),  # the first run failed somewhere
                    edit(plan, "  mode: overwrite\n", "  mode: overwrite\n  target: f_v2\n")):
        assert not _skipped(changed, sc), changed


def _judged(plan: str, exercise: str, **options: bool) -> tuple[object, ...]:
    """Every outcome, message for message, and the replay's picture."""
    report = simulate(Plan.load(plan), scenario(exercise), **options)
    return ([(r.name, r.passed, r.message) for r in report.results], report.picture)


LATE = {
    "perfect": PERFECT["ex2"],
    "overwrite": MISTAKES["late_data_overwrite"][1],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LATE))
def test_a_late_rerun_skipped_gives_the_verdicts_and_picture_of_a_real_one(name):
    """Late data: when the schedule left every partition of the range as it is once every
    event arrived, the on-call rerun is not replayed, and the outcomes and the picture are
    those of a real rerun."""
    plan = LATE[name]
    assert _skipped(plan, "ex2")
    assert _judged(plan, "ex2") == _judged(plan, "ex2", replay_twice=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["late_data_append", "wrong_merge_keys", "d0_short_window",
                                  "raw", "features"])
def test_late_reruns_that_could_change_something_are_replayed(name):
    plan = (edit(PERFECT["ex2"], "layers: [raw, features]", f"layers: [{name}]")
            if name in ("raw", "features") else MISTAKES[name][1])
    assert not _skipped(plan, "ex2"), name
