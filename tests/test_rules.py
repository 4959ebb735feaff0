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
                                  "over_capacity", "late_data_append",
                                  "target_without_switchover", "rebuilds_healthy_layers",
                                  "short_reprocess_window", "d0_short_window",
                                  "late_data_overwrite"])
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


# -- issue 13: the rules teach what the notebooks teach ---------------------------------------
def test_rebuilding_healthy_layers_names_what_it_touched_and_made_stale():
    exercise, plan, _, _ = MISTAKES["rebuilds_healthy_layers"]
    result = next(r for r in judge(load_plan(plan), scenario(exercise)) if r.name == "range")
    assert not result.passed and result.points == 0
    assert "healthy raw, staging of 2025-01-10..2025-01-14" in result.message
    # features read a 7-day window of staging: the 6 days after the fix read rebuilt rows
    assert "6 partitions outside the plan stale (features 2025-01-15..2025-01-20)" in (
        result.message)
    assert "Fix: set layers: ['features']" in result.message


def test_the_minimum_window_derives_from_lateness_watermark_and_schedule():
    from dataclasses import replace

    from backfill_lab.course.late_rules import last_look_hours, min_window

    sc = scenario("ex2")
    plan = load_plan(PERFECT["ex2"])
    assert min_window(plan, sc) == 2  # 50 h + 2 reruns = 98 h >= 48 h + 48 h
    assert last_look_hours(plan, sc, 1) == 74 and last_look_hours(plan, sc, 2) == 98
    d0 = load_plan(PERFECT["ex2"].replace("watermark_delay: 2d", "watermark_delay: 0d"))
    assert last_look_hours(d0, sc, 1) == 26 and min_window(d0, sc) == 2  # notebook 04's K = 2
    # not a constant: longer lateness needs a longer window, a later schedule a shorter one
    assert min_window(plan, replace(sc, max_lateness="96h")) == 4
    late_runs = load_plan(PERFECT["ex2"].replace("daily 02:00 UTC", "daily 23:00 UTC"))
    assert min_window(late_runs, replace(sc, max_lateness="70h")) == 2
    assert min_window(late_runs, replace(sc, max_lateness="72h")) == 3
    short = next(r for r in judge(load_plan(MISTAKES["short_reprocess_window"][1]), sc)
                 if r.name == "reprocess_window")
    assert not short.passed and "last processed 74 h after it closes" in short.message
    assert "reprocess_window: 2 or more" in short.message


def test_ex2_asks_for_merge_and_says_overwrite_is_idempotent_too():
    sc = scenario("ex2")
    result = next(r for r in judge(load_plan(MISTAKES["late_data_overwrite"][1]), sc)
                  if r.name == "merge_keys")
    assert not result.passed and "Overwrite is idempotent too" in result.message
    assert "exercise 2 asks for" in result.message
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parent.parent
                     / "notebooks/04_late_data.ipynb").read_text())
    text = " ".join("".join(c["source"]) for c in nb["cells"]).replace("\n", " ")
    assert "`overwrite` would be idempotent too" in text
    assert "Exercise 2 asks for merge" in text  # the notebook says what the rule says


@pytest.mark.slow
def test_the_replay_throttles_writes_above_capacity_as_the_notebooks_warehouse_does():
    from backfill_lab.course.exercises import run_and_show

    exercise, plan, _, _ = MISTAKES["over_capacity"]
    report = check(plan, exercise, record=False)
    assert "outcome_complete" in report.failed() and "failed" in report.simulation.runs[0]
    shown = run_and_show(plan, exercise)  # the learner's replay: the same warehouse
    counts = shown.run.backfill.counts()
    assert counts.get("failed", 0) > 0 and counts.get("success", 0) < 93
    ok = run_and_show(PERFECT["ex1"], exercise)
    assert ok.run.backfill.counts() == {"success": 93}


def thresholds(sc) -> set[int]:
    """Every number a checklist rule grades this scenario's plans against."""
    from backfill_lab.course.late_rules import MAX_WINDOW, min_window
    from backfill_lab.course.rules import MAX_RETRIES

    found = {MAX_RETRIES, MAX_WINDOW, 3, sc.capacity}  # 3: the fewest validations
    found |= {int(sc.entities * 0.95), int(sc.entities * 0.98)}  # row-count bounds
    if sc.late:
        from backfill_lab import parse_delay

        hours = int(parse_delay(sc.max_lateness).total_seconds() // 3600)
        found |= {hours, hours // 24, 4 * hours, min_window(load_plan(PERFECT["ex2"]), sc)}
    return found


@pytest.mark.parametrize("exercise", sorted(PERFECT))
def test_hints_do_not_give_away_the_grading_thresholds(exercise):
    import re

    from backfill_lab.course import registry

    sc = scenario(exercise)
    limits = thresholds(sc)
    hints = registry.exercise(exercise).hints
    assert hints
    for hint in hints:
        numbers = {int(n) for n in re.findall(r"\d+", hint)}
        assert not numbers & limits, f"{exercise} hint gives away {numbers & limits}: {hint}"
        assert not re.search(r"D\s*\+\s*\d", hint), hint  # "D+2" is the watermark's answer


def test_drill_hints_do_not_give_away_the_grading_thresholds():
    import re

    from backfill_lab import drill

    for seed in range(4):
        sc = drill(seed=seed).scenario
        for hint in sc.hints:
            numbers = {int(n) for n in re.findall(r"\d+", hint)}
            assert not numbers & thresholds(sc), hint


# -- a learner who wants points: checks that can never fail (found by a hostile-learner helper)
IDLE_EX1 = PERFECT["ex1"].replace("  row_count: {min: 900, max: 1100}\n  null_rate: {max: 0.01}\n"
                                  "  unique_keys: [entity_id, date]\n  drift: {max_psi: 0.2}\n"
                                  "  downstream_read: true\n",
                                  "  row_count: {min: 0}\n  null_rate: {max: 1}\n"
                                  "  downstream_read: {query: SELECT 1}\n"
                                  ).replace("{ticket: INC-1234, owner: data-platform}", "{x: ''}")
IDLE_MINI = PERFECT["mini_challenge"].replace("drift: {max_psi: 0.2, reference_window: 7}",
                                              "drift: {max_psi: 1.0e+300}")


@pytest.mark.parametrize(("exercise", "plan", "why"), [
    ("ex1", IDLE_EX1, "row_count passes a day that lost 60% of its rows"),
    ("mini_challenge", IDLE_MINI, "drift passes a shift of PSI 1 and KS 0.5"),
])
def test_checks_that_can_never_fail_earn_no_validation_points(exercise, plan, why):
    """Both plans got full marks: the rule counted checks without asking whether any could
    fail, and the replay cannot tell (a refill of good data passes any check)."""
    assert PERFECT["ex1"] != IDLE_EX1 and PERFECT["mini_challenge"] != IDLE_MINI
    report = check(plan, exercise, record=False)
    failed = {r.name: r.message for r in report.results if not r.passed}
    assert report.score < report.max_score
    assert "validations" in failed and why in failed["validations"], failed
    if exercise == "ex1":
        assert "lineage" in failed  # {x: ''} tags nobody


def test_each_kind_of_idle_check_is_named():
    from backfill_lab.course.rules import never_fails

    def idle(validations):
        return never_fails(load_plan({"pipeline": "daily_features", "partitions": "2024-12-01",
                                      "validations": validations}), scenario("ex1"))

    assert idle({"row_count": {"min": 900, "max": 1100}, "null_rate": {"max": 0.01},
                 "drift": {"max_psi": 0.2}, "downstream_read": {
                     "query": "SELECT 1 FROM {table} WHERE date = $partition"}}) == []
    assert idle({"row_count": {"relative": 0.5}, "drift": {"max_psi": 5, "max_ks": 0.3}}) == []
    assert idle({"drift": {"max_psi": None, "max_ks": 1.0}}) == \
        ["drift passes a shift of PSI 1 and KS 0.5"]
    assert idle({"downstream_read": {"query": "SELECT 42 AS answer"}}) == \
        ["downstream_read's query does not read the partition ({table} and $partition)"]


# the second attacker's plans: just inside the first rule, still unable to catch anything
_V = ("  row_count: {min: 900, max: 1100}\n  null_rate: {max: 0.01}\n"
      "  unique_keys: [entity_id, date]\n  drift: {max_psi: 0.2}\n  downstream_read: true\n")
NEAR_IDLE = {
    "row_count_min_1": (_V.replace("{min: 900, max: 1100}", "{min: 1, max: 1000000000000}"),
                        "row_count passes a day that lost 60% of its rows"),
    "row_count_relative_huge": (_V.replace("{min: 900, max: 1100}", "{relative: 1.0e+300}"),
                                "row_count passes a day that lost 60% of its rows"),
    "null_rate_nearly_1": (_V.replace("{max: 0.01}", "{max: 0.999999}"),
                           "null_rate passes a day with half its values null"),
    "drift_ks_nearly_1": (_V.replace("{max_psi: 0.2}", "{max_psi: null, max_ks: 0.999999999}"),
                          "drift passes a shift of PSI 1 and KS 0.5"),
    "drift_against_itself": (_V.replace("{max_psi: 0.2}", "{baseline: features, max_psi: 0.2}"),
                             "drift compares features with itself"),
    "drift_on_a_key": (_V.replace("{max_psi: 0.2}", "{max_psi: 0.2, columns: [entity_id]}"),
                       "drift measures only key columns"),
    "query_reads_no_partition": (_V.replace("downstream_read: true",
                                            "downstream_read: {query: 'SELECT 1 FROM {table}'}"),
                                 "downstream_read's query does not read the partition"),
    "query_names_a_table_only": (_V.replace("downstream_read: true",
                                            "downstream_read: {query: 'SELECT 1 AS features'}"),
                                 "downstream_read's query does not read the partition"),
}


@pytest.mark.parametrize("case", sorted(NEAR_IDLE))
def test_checks_just_inside_the_first_rule_still_earn_no_validation_points(case):
    validations, why = NEAR_IDLE[case]
    plan = PERFECT["ex1"].replace(_V, validations)
    assert plan != PERFECT["ex1"]
    failed = {r.name: r.message for r in judge(load_plan(plan), scenario("ex1")) if not r.passed}
    assert "validations" in failed and why in failed["validations"], failed


def test_tags_that_only_look_like_text_are_no_lineage():
    plan = PERFECT["ex1"].replace("{ticket: INC-1234, owner: data-platform}",
                                  '{"\\u200b": "\\u200b"}')
    failed = {r.name for r in judge(load_plan(plan), scenario("ex1")) if not r.passed}
    assert failed == {"lineage"}
