"""The exercise notebooks' helpers and the learner's progress file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from backfill_lab.clock import FixedClock
from backfill_lab.course import registry
from backfill_lab.course.exercises import (
    Incident,
    Note,
    RunOutcome,
    answered,
    hints,
    run_and_show,
    show_incident,
)
from backfill_lab.course.exercises import check as self_check
from backfill_lab.course.progress import Attempt, load, progress, progress_path, record
from backfill_lab.course.scenarios import SCENARIOS as EXERCISES
from backfill_lab.course.selfcheck import check
from backfill_lab.errors import ConfigError, UnknownNameError
from tests.plans import PERFECT_EX2, PERFECT_MINI

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def learner(tmp_path, monkeypatch):
    """A learner's workspace: progress goes to a scratch file, and we are not grading."""
    monkeypatch.setenv("BACKFILL_LAB_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.delenv("BACKFILL_LAB_GRADING", raising=False)
    return tmp_path / "progress.json"


@pytest.fixture
def grading(monkeypatch):
    monkeypatch.setenv("BACKFILL_LAB_GRADING", "1")


# -- answered, hints ----------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (..., False), (None, False), ("", False), ("\n  ", False), ({}, False), ([], False),
    ("pipeline: daily_features", True), ({"backfill": {}}, True), (0, True),
])
def test_answered(value, expected):
    assert answered(value) is expected


def test_hints_unfold_one_at_a_time_scenario_hints_first():
    h = hints("ex1")
    assert h.items == registry.exercise("ex1").hints and len(h.items) > 3
    widget = h.widget
    assert "backfill-hints" in widget._dom_classes
    shown, button = widget.children
    assert shown.value == "" and "Show next hint" in button.description
    button.click()
    assert h.items[0] in shown.value and h.items[1] not in shown.value
    for _ in h.items:
        button.click()
    assert button.disabled and all(item in shown.value for item in h.items)
    assert h.next() is None


def test_hints_fallback_nests_details_so_each_opens_after_the_one_before():
    html = hints("mini_challenge").to_html()
    n = len(hints("mini_challenge").items)
    assert html.count("<details>") == n == html.count("</details>")
    assert html.index("Hint 1") < html.index("Hint 2") < html.rindex("</details>")
    assert "</details></details>" in html  # nested, not side by side


def test_hints_of_unknown_exercise():
    with pytest.raises(UnknownNameError, match="Did you mean 'ex1'"):
        hints("ex11")
    assert hints("quick_test").items


# -- the incident -------------------------------------------------------------------------------
def test_show_incident_stages_the_scenario_with_its_facts_and_grid():
    incident = show_incident("ex2")
    assert isinstance(incident, Incident) and incident.grid is not None
    text = repr(incident)
    assert EXERCISES["ex2"].story in text and "4 concurrent writes" in text
    assert "2024-12-01..2024-12-14" in text and "legend:" in text
    states = incident.grid.states
    assert (states.loc["raw", "2024-12-01":"2024-12-14"] == "missing").all()
    assert (states.loc["raw", "2024-11-27":"2024-11-30"] == "ok").all()
    bundle = incident._repr_mimebundle_()
    # a frozen picture of the incident as staged: no run follows this copy, so no live widget
    # (and no progress bar waiting for a backfill that never comes)
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "backfill-incident" in bundle["text/html"]
    assert "backfill-grid-static" in bundle["text/html"]
    assert "waiting for the first step" not in bundle["text/html"]


def test_show_incident_while_grading_stages_nothing(grading, monkeypatch):
    from backfill_lab.course import scenarios

    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    incident = show_incident("mini_challenge")
    assert incident.staged is None and incident.grid is None
    assert "skipped while grading" in repr(incident)
    assert not scenarios._TRUTHS  # nor is the truth computed: the grader has its own


def test_show_incident_prepares_the_truth_the_self_check_compares_with(monkeypatch):
    """Shown the incident, the learner reads and plans; the self-check then only judges."""
    from backfill_lab.course import scenarios

    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    show_incident("mini_challenge")
    assert EXERCISES["mini_challenge"] in scenarios._TRUTHS
    monkeypatch.setattr(scenarios, "_compute_truth", lambda sc: pytest.fail("computed again"))
    assert self_check(PERFECT_MINI, "mini_challenge", record=False).score > 0


# -- running the learner's plan -----------------------------------------------------------------
def test_run_and_show_with_the_placeholder_says_not_answered():
    for placeholder in (..., None, "   "):
        note = run_and_show(placeholder, "ex1")
        assert isinstance(note, Note) and note.status == "not_answered"
        assert "not answered yet" in str(note) and "not answered" in note._repr_html_()


def test_run_and_show_never_raises_for_a_broken_plan():
    note = run_and_show("backfill: {start: 2024-12-01, end: 2024-12-31, concurency: 2}", "ex1")
    assert note.status == "invalid_plan" and "Did you mean 'concurrency'" in str(note)
    assert run_and_show(object(), "ex1").status == "invalid_plan"
    wrong_pipeline = PERFECT_EX2.replace("pipeline: late_features", "pipeline: daily_features")
    assert run_and_show(wrong_pipeline, "ex2").status == "error"


def test_run_and_show_is_skipped_while_grading(grading):
    assert run_and_show(PERFECT_EX2, "ex2").status == "skipped"


def test_run_and_show_runs_the_plan_on_the_incident_and_shows_what_readers_see():
    outcome = run_and_show(PERFECT_EX2, "ex2")
    assert isinstance(outcome, RunOutcome) and outcome.run.ok
    row = outcome.table.loc["features"]
    assert row["days"] == 14 and row["missed"] == 0 and row["double_counted"] == 0
    assert (outcome.grid.states.loc["features", "2024-12-01":"2024-12-14"] == "ok").all()
    assert "missed" in str(outcome) and not outcome.shown_live
    assert "legend:" in str(outcome)  # no live display outside a notebook: the grid is in it


def test_run_and_show_throttles_the_warehouse_as_the_graders_replay_does(monkeypatch):
    """The scenario's capacity always; the wait for a slot only for a plan that can exceed it
    (within it, a plan never waits, so the wait would change nothing but the time)."""
    import backfill_lab.course.exercises as exercises

    seen, real = [], exercises.throttle

    def spy(wh, sc, plan=None):
        seen.append(real(wh, sc, plan))
        return seen[-1]

    monkeypatch.setattr(exercises, "throttle", spy)
    within = run_and_show(PERFECT_MINI, "mini_challenge")
    above = run_and_show(PERFECT_MINI.replace("concurrency: 2", "concurrency: 8"),
                         "mini_challenge")
    assert within.run.ok and above.run is not None
    assert [(wh.capacity, wh.write_latency > 0) for wh in seen] == [(4, False), (4, True)]


# -- self-check and progress ----------------------------------------------------------------------
def test_self_check_of_the_placeholder_is_zero_and_not_recorded(learner):
    report = self_check(..., "ex1")
    assert report.score == 0 and report.max_score > 0 and report.status == "not_answered"
    assert not learner.exists()


def test_self_check_records_each_attempt(learner):
    report = self_check("backfill: {partitions: 2024-12-01}\nwhat: 1", "ex1")
    assert report.status == "invalid_plan" and report.score == 0
    attempts = load(learner)
    assert [(a.exercise, a.score, a.max_score, a.status) for a in attempts] == [
        ("ex1", 0.0, report.max_score, "invalid_plan")]


def test_self_check_of_the_quiz_uses_the_key_when_there_is_one(learner, monkeypatch):
    monkeypatch.chdir(ROOT / "exercises")
    report = self_check({"q1": "a"}, "quick_test")
    assert report.max_score >= 10 and report.status == "checked"
    assert load(learner)[0].exercise == "quick_test"


def test_self_check_of_the_quiz_without_a_key_counts_answers(learner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    note = self_check({"q1": "a", "q2": "x"}, "quick_test")
    assert isinstance(note, Note) and note.status == "no_key"
    assert "1/15 answered" in str(note) and "q2: 'x'" in str(note)
    assert not learner.exists()


def test_nothing_is_written_while_grading(learner, grading):
    assert self_check("not: a plan", "ex1").status == "skipped"
    report = check(None, "ex1")
    assert record(report) is None and not learner.exists()


def test_record_uses_the_injected_clock_and_records_a_report_once(learner):
    report = check("backfill: {partitions: 2024-12-01}", "ex1", simulate_outcomes=False,
                   record=False)
    clock = FixedClock("2025-02-03T10:15")
    attempt = record(report, clock=clock)
    assert attempt == Attempt("ex1", report.score, report.max_score, "2025-02-03T10:15:00")
    assert record(report, clock=clock) is None  # the same report (check's hook + a helper)
    saved = json.loads(learner.read_text(encoding="utf-8"))
    assert saved["format"] == 1 and len(saved["attempts"]) == 1


def test_progress_table_shows_best_and_last_per_exercise(learner):
    class Report:
        def __init__(self, exercise: str, score: float, max_score: float) -> None:
            self.exercise, self.score, self.max_score = exercise, score, max_score

    clock = FixedClock("2025-02-03T10:00", tick=dt.timedelta(minutes=5))
    for exercise, score, top in (("ex1", 9, 16), ("ex1", 16, 16), ("ex1", 12, 16),
                                 ("drill-7", 13, 16)):
        record(Report(exercise, score, top), clock=clock)
    table = progress()
    rows = {r.exercise: r for r in table.rows}
    assert (rows["ex1"].attempts, rows["ex1"].best, rows["ex1"].last, rows["ex1"].done) == (
        3, "16/16", "12/16", True)
    assert rows["ex2"].attempts == 0 and rows["drill-7"].title == "Drill 7"
    assert "2025-02-03 10:10" in str(table)
    assert "<table class='backfill-progress'>" in table._repr_html_()


def test_progress_before_any_check_and_with_a_broken_file(learner):
    assert "No self-checks recorded yet" in str(progress())
    learner.write_text("{not json", encoding="utf-8")
    assert "unreadable" in str(progress()) and "delete it" in str(progress())
    report = check(None, "ex1")
    report.status = "checked"
    assert record(report) is None  # never overwrites a file it cannot read
    assert learner.read_text(encoding="utf-8") == "{not json"


def test_progress_file_defaults_to_the_home_folder_and_never_the_workbook(monkeypatch, tmp_path):
    monkeypatch.delenv("BACKFILL_LAB_PROGRESS")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert progress_path() == tmp_path / ".backfill_lab" / "progress.json"
    monkeypatch.setenv("BACKFILL_LAB_PROGRESS", str(ROOT / "notebooks" / "progress.json"))
    with pytest.raises(ConfigError, match="outside the workbook folder"):
        progress_path()
