"""Grader pieces that need no kernel: reading submissions, quiz scoring, usage errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.cli import main
from grader.execute import Sandbox
from grader.extract import extraction_cell, value_of
from grader.grade import read_submission
from grader.report import GradeResult
from grader.score import TestResult as Verdict
from grader.score import score_plan, score_quiz

KEY = {f"q{i}": {"answer": "b", "explanation": f"because {i}",
                 "section": "notebooks/01_mental_model.ipynb § Late data"} for i in range(1, 5)}


def test_quiz_all_right_half_right_and_junk():
    status, tests = score_quiz({"answers": {f"q{i}": "B" for i in range(1, 5)}}, KEY)
    assert status == "graded" and [t.score for t in tests] == [1, 1, 1, 1]
    _, half = score_quiz({"answers": {"q1": "b", "q2": "b", "q3": "a", "q4": "c"}}, KEY)
    assert [t.score for t in half] == [1, 1, 0, 0]
    assert half[2].output == ("not correct (you chose 'a'). "
                              "Review: notebooks/01_mental_model.ipynb § Late data.")
    _, junk = score_quiz({"answers": {"q1": 42, "q2": "zz", "q3": None}}, KEY)
    assert [t.output for t in junk] == [
        '42 is not a choice: answer with one letter, a, b, c or d (e.g. "a").',
        "'zz' is not a choice: answer with one letter, a, b, c or d (e.g. \"a\").",
        "not answered.", "not answered."]
    for t in [*tests, *half, *junk]:
        assert "because" not in t.output and "answer is" not in t.output  # never the key


def test_the_grader_accepts_what_the_notebook_quiz_accepts():
    """A learner whose self-check said "correct" must not lose the point in grading."""
    from backfill_lab.course.quiz import score_answers

    answers = {"Q1": "b)", "q2": " B ", "q3": "b", "q4": "", "q9": "a"}
    notebook = score_answers(answers, KEY)
    status, graded = score_quiz({"answers": answers}, KEY)
    assert status == "graded"
    assert [t.score for t in graded] == [r.points for r in notebook.results] == [1, 1, 1, 0]
    assert graded[3].output == "not answered."
    assert "ignored unknown question ids: q9" in graded[0].output
    assert score_quiz({"answers": {}}, KEY)[0] == "missing_answer"
    _, numbered = score_quiz({"answers": {"1": "b", "2": "b"}}, KEY)
    assert 'question ids look like "q1", not "1"' in numbered[0].output


def test_quiz_missing_placeholder_and_wrong_type():
    assert score_quiz({}, KEY)[0] == "missing_answer"
    assert score_quiz({"answers": {"__placeholder__": True}}, KEY)[0] == "missing_answer"
    status, tests = score_quiz({"answers": ["b", "b"]}, KEY)
    assert status == "graded" and "must be a dict like {'q1': 'b'} (got list)" in tests[0].output


def test_plan_missing_placeholder_and_unreadable():
    assert score_plan({}, "ex1")[0] == "missing_answer"
    status, tests = score_plan({"plan": {"__error__": "TypeError: set is not plain data"}}, "ex1")
    assert status == "graded" and all(t.score == 0 for t in tests)
    assert "could not be read as plain data" in tests[0].output
    status, tests = score_plan({"plan": {"backfil": {}}}, "ex1")
    assert status == "graded" and "Did you mean 'backfill'?" in tests[0].output


def test_value_of_and_the_extraction_cell():
    assert value_of({"plan": "x"}, "plan") == ("ok", "x")
    cell = extraction_cell("abc123")
    assert "'abc123'" in cell and "application/x-backfill-grader+json" in cell
    compile(cell, "<extract>", "exec")


@pytest.mark.parametrize(("content", "fragment"), [
    (b"{oops", "not JSON"),
    (b"\xff\xfe binary", "not JSON"),
    (b'{"a": 1}', "no cells"),
    (json.dumps({"cells": "nope", "metadata": {}, "nbformat": 4,
                 "nbformat_minor": 5}).encode(), "not a valid notebook"),
])
def test_unreadable_files_are_invalid_notebooks(tmp_path, content, fragment):
    path = tmp_path / "sub.ipynb"
    path.write_bytes(content)
    nb, why = read_submission(path)
    assert nb is None and fragment in why


@pytest.mark.parametrize(("args", "message"), [
    (["grade", "nowhere", "--out", "x"], "no such file or folder: 'nowhere'"),
    (["grade", ".", "--out", "x", "--jobs", "two"], "'jobs' must be an integer >= 1 (got 'two')"),
    (["grade", ".", "--out", "x", "--timeout", "-1"], "'timeout' must be a number of seconds"),
    (["grade", ".", "--out", "x", "--exercise", "ex3"], "unknown exercise 'ex3'"),
    (["grde"], "Did you mean 'grade'?"),
    (["grade", ".", "--out", "x", "--jbos", "2"], "Did you mean '--jobs'?"),
    (["merge", "nowhere", "--out", "x"], "no such folder: 'nowhere'"),
])
def test_usage_errors_exit_2_with_one_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_forged_cache_entry_is_ignored(tmp_path, monkeypatch):
    import grader.score as score

    folder = tmp_path / "cache"
    folder.mkdir()
    cache = score.VerdictCache(folder)
    plan = json.dumps({"backfill": {"partitions": "2024-12-01..2024-12-31"}}, sort_keys=True)
    score._judge_here.cache_clear()
    honest = score._judge("ex1", plan, cache)
    (entry,) = folder.glob("*.json")
    forged = json.loads(entry.read_text())
    for test in forged["tests"]:
        test["score"] = test["max_score"]
    entry.write_text(json.dumps(forged))
    score._judge_here.cache_clear()
    again = score._judge("ex1", plan, cache)
    assert sum(t.score for t in again) == sum(t.score for t in honest) < 16


# stand-ins for kernels, staging and the real judge in a batch's forked workers (pickled by
# name, so they live here); they log each call to the file named in _CALLS
_CALLS: dict[str, Path] = {}


def _record(line: str) -> None:
    with _CALLS["log"].open("a") as handle:
        handle.write(line + "\n")


def _fake_run(path: str, name: str, sandbox: Sandbox) -> tuple[GradeResult, str | None]:
    plan = {"a": "plan-a", "b": "plan-b"}.get(name.split("-")[0])
    result = GradeResult(name, "ex1", "graded", max_score=2.0)
    if plan is None:
        result.tests = [Verdict("plan", 0.0, 2.0, "`plan` is not defined")]
        result.status = "missing_answer"
    return result, plan


def _fake_stage(exercise: str, part: str) -> dict[str, Any]:
    _record(f"stage {exercise} {part}")
    return {}


def _fake_judge(exercise: str, plan_json: str, **_: Any) -> list[Verdict]:
    _record(f"judge {exercise} {plan_json}")
    return [Verdict("rule", 1.0, 1.0, "ok"),
            Verdict("outcome", 1.0 if plan_json == "plan-a" else 0.0, 1.0, "?")]


def _fake_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Any,
                stems: tuple[str, ...]) -> Path:
    """A folder of ex1 submissions named ``stems``, graded by ``run`` instead of kernels, with
    the stand-in staging and judge (the batch's scheduling is what is under test)."""
    import grader.batch as batch
    import grader.score as score

    monkeypatch.setitem(_CALLS, "log", tmp_path / "calls.log")
    monkeypatch.setattr(batch, "_run_one", run)
    monkeypatch.setattr(batch, "isolation", lambda *a, **k: Sandbox("none", "not isolated"))
    monkeypatch.setattr(score, "stage", _fake_stage)
    monkeypatch.setattr(score, "judge", _fake_judge)
    subs = tmp_path / "subs"
    subs.mkdir()
    meta = json.dumps({"metadata": {"backfill_lab": {"exercise": "ex1"}}, "cells": [],
                       "nbformat": 4, "nbformat_minor": 5})
    for stem in stems:
        (subs / f"{stem}.ipynb").write_text(meta)
    return subs


def test_a_batch_stages_each_exercise_once_and_judges_each_distinct_plan_once(
        tmp_path, monkeypatch, capsys):
    """Two workers, five submissions, two distinct plans: staging and judging happen once
    each, and every submission still gets its plan's verdict."""
    subs = _fake_batch(tmp_path, monkeypatch, _fake_run, ("a-1", "a-2", "a-3", "b-1", "none-1"))
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "2"]) == 0
    calls = sorted(_CALLS["log"].read_text().splitlines())
    assert calls == ["judge ex1 plan-a", "judge ex1 plan-b", "stage ex1 incident",
                     "stage ex1 truth"]
    scores = {p.stem: json.loads(p.read_text())["score"] for p in out.glob("*.json")}
    assert scores == {"a-1": 2, "a-2": 2, "a-3": 2, "b-1": 1, "none-1": 0}
    assert "not isolated" in json.loads((out / "none-1.json").read_text())["notes"]
    capsys.readouterr()


def _fake_run_that_kills(path: str, name: str, sandbox: Sandbox) -> tuple[GradeResult, str | None]:
    if name.startswith("killer"):
        os._exit(9)  # what os.kill(os.getppid(), SIGKILL) does to an unsandboxed worker
    return _fake_run(path, name, sandbox)


def test_a_submission_that_kills_its_worker_is_an_error_and_the_batch_goes_on(
        tmp_path, monkeypatch, capsys):
    """Without a sandbox a kernel can kill the worker grading it. The batch replaces the pool,
    reruns the submissions that were cut short one at a time, and records only the killer."""
    subs = _fake_batch(tmp_path, monkeypatch, _fake_run_that_kills,
                       ("a-1", "a-2", "killer-1", "b-1", "a-3", "none-1"))
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "2"]) == 0
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert {k: r["score"] for k, r in results.items()} == {
        "a-1": 2, "a-2": 2, "a-3": 2, "b-1": 1, "none-1": 0, "killer-1": 0}
    killer = results["killer-1"]
    assert killer["status"] == "error" and "died while it ran" in killer["reason"]
    assert killer["max_score"] == 16  # ex1's tests, all at zero
    assert "judge ex1 plan-a" in _CALLS["log"].read_text()
    capsys.readouterr()


def test_staging_handed_over_is_used_only_if_unchanged(tmp_path, monkeypatch):
    """A worker adopts the truth and the incident template another worker built, but never a
    template file that changed since its builder hashed it."""
    import backfill_lab.course.scenarios as scenarios
    import grader.score as score
    from backfill_lab.course.templates import file_digest

    templates = sys.modules["backfill_lab.course.templates"]
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setattr(scenarios, "_TRUTHS", {})

    def no_staging(sc):
        raise AssertionError("staged again although a truth was handed over")

    monkeypatch.setattr(scenarios, "_compute_truth", no_staging)
    sc = scenarios.scenario("ex1")
    path = tmp_path / "incident.duckdb"
    path.write_bytes(b"the incident")
    digest = file_digest(path)
    truth = {"raw": {"2024-12-01": "1:2"}}
    score.adopt("ex1", [{"truth": truth}, {"template": str(path), "sha256": digest}])
    assert scenarios.truth(sc) is truth
    assert templates._TEMPLATES[sc] == path
    templates._TEMPLATES.clear()
    path.write_bytes(b"the incident, changed")
    score.adopt("ex1", [{"template": str(path), "sha256": digest}])
    assert sc not in templates._TEMPLATES
    with pytest.raises(ValueError, match="'part' must be one of truth, incident"):
        score.stage("ex1", "everything")


def test_the_gradebook_says_when_a_kernel_was_not_isolated():
    from grader.report import GradeResult
    from grader.status import Status

    ran = GradeResult("a.ipynb", "ex1", Status.GRADED, isolated=False)
    boxed = GradeResult("b.ipynb", "ex1", Status.GRADED, isolated=True)
    unread = GradeResult("c.ipynb", None, Status.INVALID_NOTEBOOK)
    assert [r.row()["isolation"] for r in (ran, boxed, unread)] == [
        "not isolated", "isolated", ""]


@pytest.mark.parametrize("cores, jobs", [(None, 1), (1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_the_default_is_one_job_per_two_cores(monkeypatch, cores, jobs):
    """A job is a kernel and a judge beside it: one job keeps two cores busy."""
    from grader import batch

    monkeypatch.setattr(batch.os, "cpu_count", lambda: cores)
    assert batch.default_jobs() == jobs
