"""The checklist rules and the outcome simulation, on a table of plans.

Rules alone are instant: every plan of the table is judged here. The simulation stages each
exercise's incident and runs the plan twice, so those tests (a few seconds each) are marked slow.
"""

from __future__ import annotations

import pytest

from backfill_lab import check, judge, load_plan, scenario
from backfill_lab.course.simulate import OUTCOMES

from .plans import GUIDE_SNIPPET, MINI_IN_PLACE, MISTAKES, PERFECT


def rule_failures(plan: str, exercise: str) -> set[str]:
    return {r.name for r in judge(load_plan(plan), scenario(exercise)) if not r.passed}


@pytest.mark.parametrize("exercise", sorted(PERFECT))
def test_a_perfect_plan_passes_every_rule(exercise):
    assert rule_failures(PERFECT[exercise], exercise) == set()


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_common_mistake_fails_exactly_its_rule(name):
    exercise, plan, rules, _ = MISTAKES[name]
    assert rule_failures(plan, exercise) == rules


def test_rule_messages_teach_what_why_how_and_where():
    _, plan, _, _ = MISTAKES["unlimited_parallelism"]
    result = next(r for r in judge(load_plan(plan), scenario("ex1")) if r.name == "concurrency")
    assert "unlimited parallelism" in result.message
    assert "throttled" in result.message  # why it is unsafe
    assert "Fix: set concurrency between 1 and 4" in result.message
    assert result.section.startswith("notebooks/05_designing_safe_backfills.ipynb")
    assert (result.points, result.max_points) == (0.0, 1.0)


def test_the_guides_snippet_loads_and_is_judged_on_what_it_says():
    failed = rule_failures(GUIDE_SNIPPET, "ex1")
    # the snippet has range, concurrency, retries and overwrite; it says nothing of layers'
    # order problems, but it pins no code version, validates nothing, has no rollback or tags
    assert failed == {"validations", "rollback", "code_version", "lineage"}


def test_mini_challenge_in_place_with_snapshot_is_equally_safe():
    assert rule_failures(MINI_IN_PLACE, "mini_challenge") == set()


def test_check_never_raises_for_a_bad_plan():
    not_yet = check(..., "ex1")
    assert not_yet.status == "not_answered" and not_yet.score == 0
    assert "not answered yet" in str(not_yet)
    broken = check({"backfil": {}}, "ex1", simulate_outcomes=False)
    assert broken.status == "invalid_plan" and "Did you mean 'backfill'" in broken.detail
    weird = check(42, "ex1", simulate_outcomes=False)
    assert weird.status == "invalid_plan" and weird.max_score == 10
    with pytest.raises(ValueError, match="unknown exercise 'ex3'"):
        check(PERFECT["ex1"], "ex3")


def test_report_renders_as_html_and_text():
    report = check(MISTAKES["append_on_rerun"][1], "ex1", simulate_outcomes=False)
    assert report.score == 9 and report.max_score == 10
    html = report._repr_html_()
    assert "backfill-check" in html and "idempotent_writes" in html and "9 / 10 points" in html
    text = str(report)
    assert "FAIL  idempotent_writes" in text and "see notebooks/05" in text


@pytest.mark.slow
@pytest.mark.parametrize("exercise", sorted(PERFECT))
def test_perfect_plans_get_full_marks_with_simulation(exercise):
    report = check(PERFECT[exercise], exercise)
    assert report.failed() == []
    assert report.score == report.max_score
    assert [r.name for r in report.results][-3:] == list(OUTCOMES)
    assert report.simulation.max_in_flight <= 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["append_on_rerun", "wrong_range", "unlimited_parallelism",
                                  "late_data_append", "target_without_switchover"])
def test_simulated_outcomes_of_mistakes(name):
    exercise, plan, rules, outcomes = MISTAKES[name]
    report = check(plan, exercise)
    assert set(report.failed()) == rules | outcomes


@pytest.mark.slow
def test_simulation_is_deterministic():
    first = check(PERFECT["mini_challenge"], "mini_challenge")
    again = check(PERFECT["mini_challenge"], "mini_challenge")
    assert [(r.name, r.passed, r.message) for r in first.results] == [
        (r.name, r.passed, r.message) for r in again.results]


def test_every_section_a_message_points_to_exists():
    import json
    from pathlib import Path

    from backfill_lab.course.rules import SECTIONS
    from backfill_lab.course.simulate import SECTION

    root = Path(__file__).resolve().parent.parent
    for ref in [*SECTIONS.values(), SECTION]:
        path, _, heading = ref.partition(" § ")
        nb = json.loads((root / path).read_text())
        headings = {line.lstrip("#").strip() for c in nb["cells"] if c["cell_type"] == "markdown"
                    for line in "".join(c["source"]).splitlines() if line.startswith("#")}
        assert heading in headings, f"{ref}: no such heading"
