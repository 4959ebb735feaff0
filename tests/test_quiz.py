"""The quick test: questions, the key kept in the solution notebook, scoring, and the form."""

from __future__ import annotations

import ast
import json
import re
from html import escape
from pathlib import Path

import pytest

from backfill_lab.course.quiz import (
    LETTERS,
    QUESTIONS,
    Quiz,
    answers_literal,
    load_key,
    quiz,
    quiz_progress,
    score_answers,
)
from backfill_lab.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "quick_test.ipynb"
KEY = load_key(ROOT)


def _headings(path: Path) -> set[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    out.add(line.lstrip("#").strip())
    return out


def _solution_answers() -> dict[str, str]:
    nb = json.loads(SOLUTION.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        tree = ast.parse("".join(cell["source"])) if cell["cell_type"] == "code" else None
        for node in tree.body if tree else []:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "answers":
                return ast.literal_eval(node.value)
    raise AssertionError("no `answers = {...}` in the solution")


# -- questions and key ---------------------------------------------------------------------
def test_questions_are_single_choice_with_four_distinct_options():
    assert len(QUESTIONS) >= 10
    assert [q.id for q in QUESTIONS] == [f"q{i}" for i in range(1, len(QUESTIONS) + 1)]
    for q in QUESTIONS:
        assert q.prompt.strip() and len(q.options) == 4
        assert len({o.strip().lower() for o in q.options}) == 4 and all(o.strip() for o in
                                                                         q.options)
        assert [c[0] for c in q.choices()] == list(LETTERS)


def test_questions_cover_terms_design_steps_checklist_mistakes_and_late_data():
    topics = " ".join(q.topic for q in QUESTIONS)
    for area in ("key terms", "design step", "validation checklist", "common mistake",
                 "late data"):
        assert area in topics, area


def test_the_key_lives_only_in_the_solution_and_matches_the_questions():
    assert KEY is not None
    assert sorted(KEY, key=lambda q: int(q[1:])) == [q.id for q in QUESTIONS]
    assert all(entry["answer"] in LETTERS and entry["explanation"] for entry in KEY.values())
    used = [entry["answer"] for entry in KEY.values()]
    assert all(used.count(letter) >= 2 for letter in LETTERS), f"answers too uniform: {used}"
    source = "".join((ROOT / "backfill_lab" / "course" / name).read_text(encoding="utf-8")
                     for name in ("quiz.py", "questions.py", "answers.py"))
    for entry in KEY.values():
        assert entry["explanation"] not in source


def test_every_explanation_names_a_real_notebook_section():
    for qid, entry in KEY.items():
        match = re.fullmatch(r"(notebooks/\S+\.ipynb) § (.+)", entry["section"])
        assert match, f"{qid}: section must read 'notebooks/NN_x.ipynb § Heading'"
        path = ROOT / match[1]
        assert path.is_file(), f"{qid}: no notebook {match[1]}"
        assert match[2] in _headings(path), f"{qid}: no heading {match[2]!r} in {match[1]}"


def test_the_solution_answers_score_full_marks():
    report = score_answers(_solution_answers(), KEY)
    assert report.score == report.max_score == len(QUESTIONS) and report.passed


# -- scoring --------------------------------------------------------------------------------
def test_wrong_and_junk_answers_never_reveal_the_right_one():
    for q in QUESTIONS:
        right = KEY[q.id]["answer"]
        wrong = next(letter for letter in LETTERS if letter != right)
        for value in (wrong, "e", 3, None, "ab"):
            result = next(r for r in score_answers({q.id: value}, KEY).results if r.name == q.id)
            assert not result.passed and result.points == 0
            assert KEY[q.id]["explanation"] not in result.message
            assert f"'{right}'" not in result.message
    junk = score_answers({"q1": "e"}, KEY).results[0].message
    assert "is not a choice" in junk and "a, b, c or d" in junk


def test_forgiving_about_case_and_brackets_strict_about_meaning():
    right = KEY["q1"]["answer"]
    for typed in (right.upper(), f" {right} ", f"{right})"):
        assert score_answers({"q1": typed}, KEY).results[0].passed
    assert score_answers({"Q1": right}, KEY).results[0].passed


def test_missing_unknown_and_non_dict_answers():
    report = score_answers({"q1": KEY["q1"]["answer"], "q99": "a"}, KEY)
    assert report.score == 1 and "q99" in report.detail
    assert next(r for r in report.results if r.name == "q2").message == "not answered."
    for empty in (None, ..., {}):
        report = score_answers(empty, KEY)
        assert report.status == "not_answered" and report.score == 0
        assert report.max_score == len(QUESTIONS)
    listed = score_answers(["a", "b"], KEY)
    assert listed.status == "invalid_answers" and "got list" in listed.detail


def test_results_are_in_question_order_and_render():
    report = score_answers({q.id: KEY[q.id]["answer"] for q in QUESTIONS}, KEY)
    assert [r.name for r in report.results] == [q.id for q in QUESTIONS]
    assert f"{len(QUESTIONS)}/{len(QUESTIONS)} points" in str(report)
    assert "class='backfill-check'" in report._repr_html_()


def test_course_mode_progress_without_a_key():
    assert quiz_progress({"q1": "a", "q2": "z"}).startswith(f"1/{len(QUESTIONS)} answered")
    assert "q2: 'z' is not a choice" in quiz_progress({"q1": "a", "q2": "z"})
    assert quiz_progress(...) == "not answered yet"
    assert "must be a dict" in quiz_progress("abc")


# -- the form -------------------------------------------------------------------------------
def _question_boxes(form: Quiz) -> list:
    return [b for b in form.widget.children if "backfill-quiz-question" in b._dom_classes]


def test_form_fills_the_given_dict_as_the_learner_clicks():
    answers: dict[str, str] = {}
    form = quiz(answers, key=None)
    root = form.widget
    assert "backfill-quiz" in root._dom_classes
    boxes = _question_boxes(form)
    assert len(boxes) == len(QUESTIONS)
    radio = boxes[2].children[1]
    radio.value = "c"  # what a click does
    assert answers == {"q3": "c"} and form.answers is answers
    radio.value = None
    assert answers == {}
    form.select("q1", "B")
    assert answers == {"q1": "b"} and boxes[0].children[1].value == "b"


def test_course_mode_records_and_says_graded_later():
    form = quiz({}, key=None)
    form.select("q4", "a")
    assert form.mode == "course"
    assert "graded later" in form.feedback("q4")
    assert "Course mode" in form.to_text()


def test_self_study_mode_marks_each_click_with_the_explanation():
    form = quiz({}, key=KEY)
    right = KEY["q5"]["answer"]
    form.select("q5", right)
    assert form.feedback("q5").startswith("✔") and KEY["q5"]["explanation"] in form.feedback("q5")
    form.select("q5", next(letter for letter in LETTERS if letter != right))
    assert form.feedback("q5").startswith("✘")
    feedback_widget = _question_boxes(form)[4].children[2]
    assert "not quite" in feedback_widget.value


def test_summary_gives_a_line_to_paste_that_rebuilds_the_answers():
    form = quiz({"q2": "c"}, key=None)
    form.select("q1", "a")
    line = answers_literal(form.answers)
    assert line == 'answers = {"q1": "a", "q2": "c"}' and line in form.summary()
    scope: dict = {}
    exec(line, scope)
    assert scope["answers"] == form.answers


def test_typed_answers_preselect_the_form_and_fallbacks_show_every_question():
    form = quiz({"q1": "d"}, key=None)
    assert _question_boxes(form)[0].children[1].value == "d"
    bundle = form._repr_mimebundle_()
    assert {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"} <= set(bundle)
    for q in QUESTIONS:
        assert q.prompt in bundle["text/plain"]
    assert bundle["text/html"].count("backfill-quiz-question") == len(QUESTIONS)
    assert "(x) d)" in bundle["text/plain"]


def test_placeholder_and_bad_arguments():
    assert quiz(..., key=None).answers == {}
    with pytest.raises(ConfigError, match="answers"):
        quiz(["a"], key=None)  # type: ignore[arg-type]
    form = quiz({}, key=None)
    with pytest.raises(ConfigError, match="one of the letters"):
        form.select("q1", "z")
    with pytest.raises(ConfigError, match="question id"):
        form.select("q0", "a")


# -- finding the key ------------------------------------------------------------------------
def _key_notebook(folder: Path, key: object) -> None:
    (folder / "solutions").mkdir(parents=True)
    nb = {"cells": [], "metadata": {"backfill_lab": {"exercise": "quick_test", "key": key}}}
    (folder / "solutions" / "quick_test.ipynb").write_text(json.dumps(nb), encoding="utf-8")


def test_load_key_walks_up_from_the_start_folder(tmp_path):
    _key_notebook(tmp_path, {"q1": {"answer": "c", "explanation": "x", "section": "s"}})
    deep = tmp_path / "exercises" / "sub"
    deep.mkdir(parents=True)
    assert load_key(deep) == {"q1": {"answer": "c", "explanation": "x", "section": "s"}}


def test_load_key_is_none_in_a_bundle_and_checks_what_it_finds(tmp_path, monkeypatch):
    assert load_key(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    assert quiz().mode == "course"
    _key_notebook(tmp_path / "broken", {"q1": {"answer": "z"}})
    with pytest.raises(ConfigError, match="key"):
        load_key(tmp_path / "broken")


def test_quiz_finds_the_key_from_the_working_directory_but_not_while_grading(monkeypatch):
    monkeypatch.chdir(ROOT / "exercises")
    monkeypatch.delenv("BACKFILL_LAB_GRADING", raising=False)
    assert quiz().mode == "self-study"
    monkeypatch.setenv("BACKFILL_LAB_GRADING", "1")
    assert quiz().mode == "course"


def test_no_function_shadows_its_module():
    """``bl.quiz``, ``bl.simulate``, ``bl.progress`` are functions; their modules live in
    ``backfill_lab.course`` and stay reachable there, under their own names."""
    import importlib
    import types

    import backfill_lab as bl
    import backfill_lab.course as course

    for name in ("quiz", "simulate", "progress"):
        module = importlib.import_module(f"backfill_lab.course.{name}")
        assert isinstance(getattr(course, name), types.ModuleType)
        assert getattr(course, name) is module
        assert callable(getattr(bl, name)) and getattr(bl, name) is getattr(module, name)
    modules = {p.stem for p in (ROOT / "backfill_lab" / "course").glob("*.py")}
    exported = {n for n, v in vars(course).items() if not isinstance(v, types.ModuleType)}
    assert not exported & modules, f"backfill_lab.course re-exports {exported & modules}"


# -- issue 13: a quiz that tests understanding, not the obvious safe option ------------------
def _key_letters() -> list[str]:
    assert KEY is not None
    return [KEY[q.id]["answer"] for q in QUESTIONS]


def test_at_least_fifteen_questions_with_answers_spread_evenly_and_no_pattern():
    letters = _key_letters()
    assert len(QUESTIONS) >= 15
    counts = [letters.count(x) for x in LETTERS]
    assert max(counts) - min(counts) <= 1, counts
    assert not any(letters[i] == letters[i + 1] == letters[i + 2]
                   for i in range(len(letters) - 2)), letters
    for period in range(1, len(LETTERS) + 1):  # not b, c, d, a, b, c, d, a, ...
        assert any(letters[i] != letters[i + period] for i in range(len(letters) - period))


def test_the_right_option_is_not_given_away_by_its_length():
    letters = _key_letters()
    longest = [q.id for q, right in zip(QUESTIONS, letters, strict=True)
               if all(len(q.options[LETTERS.index(right)]) > len(o)
                      for i, o in enumerate(q.options) if LETTERS[i] != right)]
    assert len(longest) <= len(QUESTIONS) // 4, longest


def test_a_third_of_the_questions_ask_to_read_a_grid_a_ledger_or_a_plan():
    reading = [q for q in QUESTIONS if q.exhibit]
    assert len(reading) * 3 >= len(QUESTIONS)
    kinds = set()
    for q in reading:
        assert q.topic.startswith("read a "), q.id
        kind = q.topic.split("·")[0].removeprefix("read a ").strip()
        kinds.add(kind)
        shows = {"grid": "legend: # ok", "ledger": "status", "plan": "backfill:"}[kind]
        assert shows in q.exhibit, q.id
        assert q.exhibit.strip() in q.text().replace("\n      ", "\n")
        assert "<pre" in q.html() and escape(q.exhibit.strip("\n")) in q.html()
    assert kinds == {"grid", "ledger", "plan"}
    form = quiz({}, key=None)
    assert all(q.exhibit.strip().splitlines()[0] in form.to_text() for q in reading)
    assert "<pre" in form.to_html()


def test_the_grids_to_read_are_what_the_engine_draws_for_those_incidents():
    from backfill_lab import Warehouse, build_demo
    from backfill_lab.course.questions import GRID_OUTAGE, GRID_QUIET_BUG
    from backfill_lab.display.render import render_text
    from backfill_lab.status import grid_states

    wh = Warehouse()
    pipeline, _ = build_demo(wh, entities=30, events_per_day=120,
                             history="2024-11-24..2024-12-12", outage="2024-12-03..2024-12-05")
    drawn = render_text(grid_states(wh, pipeline.layer_names, "2024-12-01..2024-12-12"))
    assert drawn == GRID_OUTAGE.strip("\n")
    quiet = Warehouse()
    pipeline, _ = build_demo(quiet, entities=30, events_per_day=120,
                             history="2024-11-24..2024-12-08", outage=None)
    drawn = render_text(grid_states(quiet, pipeline.layer_names, "2024-12-01..2024-12-08",
                                    invalid={"features": "2024-12-03"}))
    assert drawn == GRID_QUIET_BUG.strip("\n")

