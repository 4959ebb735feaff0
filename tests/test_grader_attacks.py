"""A hostile learner against the grader's own process (issue 12): one test per attack class.

Each test builds the malicious input itself and asserts the outcome its name says. No kernel
runs here: what is under test is what the grader does with what a submission hands it (files,
plain data from the extraction cell, text that ends up in reports).
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

import grader.score as score
from grader.cli import main
from grader.execute import Sandbox
from grader.grade import ProjectGuard, read_submission, run_notebook
from grader.judge import JudgeLimits, judge_limited
from grader.report import GradeResult, write_gradebook, write_result
from grader.score import TestResult as Verdict
from grader.score import VerdictCache, score_plan

from .plans import PERFECT_EX1
from .test_grader_units import _fake_batch, _fake_run

ROOT = Path(__file__).resolve().parent.parent


def _plan(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# -- 5. judging with limits -------------------------------------------------------------------
def test_a_plan_string_naming_a_file_is_yaml_text_never_read(tmp_path):
    """A string plan that is a path scored full marks (the grader read the file as root) and a
    FIFO hung the judge: a string is YAML text, so a path is just a plan that does not load."""
    kept = tmp_path / "instructor_solution.yaml"
    kept.write_text(PERFECT_EX1 + "# SECRET-VALUE-42\n")
    fifo = tmp_path / "hang.yaml"
    os.mkfifo(fifo)
    for path in (kept, fifo):
        t0 = time.perf_counter()
        status, tests = score_plan({"plan": str(path)}, "ex1")
        assert time.perf_counter() - t0 < 10
        assert status == "graded" and sum(t.score for t in tests) == 0
        assert all("does not load" in t.output for t in tests)
        assert not any("SECRET-VALUE-42" in t.output for t in tests)


def test_a_yaml_alias_bomb_is_refused_quickly():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9))
    t0 = time.perf_counter()
    status, tests = score_plan({"plan": bomb}, "ex1")
    assert time.perf_counter() - t0 < 10 and status == "graded"
    assert sum(t.score for t in tests) == 0 and "alias" in tests[0].output.lower()


def test_a_plan_too_large_to_be_a_plan_is_refused_before_judging():
    days = [f"2024-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)] * 40
    status, tests = score_plan({"plan": {"backfill": {"partitions": days}}}, "ex1")
    assert status == "graded" and sum(t.score for t in tests) == 0
    assert "more than the 65536" in tests[0].output


def test_a_century_long_range_fails_its_range_without_being_replayed():
    plan = PERFECT_EX1.replace("end: 2024-12-31", "end: 2124-12-31")
    score._judge_here.cache_clear()
    t0 = time.perf_counter()
    tests = score.judge("ex1", _plan(plan))
    assert time.perf_counter() - t0 < 30  # replaying it took more than 15 minutes
    failing = {t.name for t in tests if not t.passed}
    assert "range" in failing
    assert {"outcome_complete", "outcome_idempotent", "outcome_untouched"} <= failing
    assert "not replayed" in next(t.output for t in tests if t.name == "outcome_complete")
    assert sum(t.max_score for t in tests) == score.max_score("ex1", None)


def _slow_judge(exercise: str, plan_json: str, **_: Any) -> list[Verdict]:
    if "hog" in plan_json:
        hoard = []
        while True:
            hoard.append(bytearray(50 << 20))
    if "slow" in plan_json:
        while True:
            time.sleep(0.1)
    if "crash" in plan_json:
        os._exit(3)
    return [Verdict("rule", 1.0, 1.0, "ok"),
            Verdict("outcome", 1.0 if plan_json == "plan-a" else 0.0, 1.0, "?")]


def test_a_judge_past_its_limits_is_an_error_once_and_the_process_is_unharmed(monkeypatch):
    monkeypatch.setattr(score, "judge", _slow_judge)
    limits = JudgeLimits(seconds=2, memory_mb=300)
    slow = judge_limited("ex1", "slow", limits)
    assert not slow.tests and "longer than 2s" in slow.error and slow.seconds < 10
    hog = judge_limited("ex1", "hog", limits)
    assert not hog.tests and "300 MB" in hog.error
    crash = judge_limited("ex1", "crash", limits)
    assert not crash.tests and "died" in crash.error
    fine = judge_limited("ex1", "plan-a", limits)
    assert not fine.error and [t.score for t in fine.tests] == [1.0, 1.0]


def _run_with_trouble(path: str, name: str, sandbox: Sandbox) -> tuple[GradeResult, str | None]:
    plan = {"s": "slow", "h": "hog", "c": "crash"}.get(name[0])
    if name.startswith("raises"):
        raise RuntimeError("the grader tripped")
    if plan is None:
        return _fake_run(path, name, sandbox)
    return GradeResult(name, "ex1", "graded", max_score=2.0), plan


def test_a_batch_records_every_judge_failure_once_and_writes_every_row(
        tmp_path, monkeypatch, capsys):
    subs = _fake_batch(tmp_path, monkeypatch, _run_with_trouble,
                       ("a-1", "slow-1", "slow-2", "hog-1", "crash-1", "raises-1", "b-1"))
    monkeypatch.setattr(score, "judge", _slow_judge)
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "2", "--judge-seconds", "2",
                 "--judge-memory-mb", "300"]) == 0
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    for name in ("slow-1", "slow-2", "hog-1", "crash-1", "raises-1"):
        assert results[name]["status"] == "error" and results[name]["reason"], name
        assert results[name]["score"] == 0 and results[name]["tests"], name
    assert "longer than 2s" in results["slow-1"]["reason"]
    assert results["slow-1"]["reason"] == results["slow-2"]["reason"]  # judged once
    assert results["a-1"]["score"] == 2 and results["b-1"]["score"] == 1
    with (out / "gradebook.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 7
    capsys.readouterr()


# -- 6. input files -----------------------------------------------------------------------------
def test_only_regular_files_are_graded(tmp_path, capsys):
    """A symlink to the quiz key was graded 15/15, a symlink to /etc/shadow was read, a FIFO
    named .ipynb hung the batch, /dev/zero got the grader killed: each is now refused with a
    reason, and still gets its row."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "key_link.ipynb").symlink_to(ROOT / "solutions" / "quick_test.ipynb")
    (subs / "shadow_link.ipynb").symlink_to("/etc/shadow")
    (subs / "zero_link.ipynb").symlink_to("/dev/zero")
    os.mkfifo(subs / "fifo.ipynb")
    (subs / "huge.ipynb").write_bytes(b" " * 25_000_000)
    expected = {"key_link.ipynb": "symbolic link", "shadow_link.ipynb": "symbolic link",
                "zero_link.ipynb": "symbolic link", "fifo.ipynb": "a FIFO",
                "huge.ipynb": "more than"}
    for name, why in expected.items():
        nb, reason = read_submission(subs / name)
        assert nb is None and why in reason, name
        result, plan = run_notebook(subs / name, key={"q1": {}})
        assert plan is None and result.status == "invalid_notebook" and why in result.reason
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "1"]) == 0
    assert time.perf_counter() - t0 < 60
    with (out / "gradebook.csv").open() as handle:
        rows = {r["submission"]: r["status"] for r in csv.DictReader(handle)}
    assert rows == dict.fromkeys(expected, "invalid_notebook")
    capsys.readouterr()


def test_same_named_notebooks_in_two_folders_stay_distinct(tmp_path, monkeypatch, capsys):
    subs = _fake_batch(tmp_path, monkeypatch, _fake_run, ())
    for who in ("alice", "bob"):
        (subs / who).mkdir()
        (subs / who / "dup.ipynb").write_text(json.dumps(
            {"metadata": {"backfill_lab": {"exercise": "ex1"}}, "cells": [], "nbformat": 4,
             "nbformat_minor": 5}))
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "2"]) == 0
    with (out / "gradebook.csv").open() as handle:
        rows = {r["submission"] for r in csv.DictReader(handle)}
    assert rows == {"alice/dup.ipynb", "bob/dup.ipynb"}
    for who in ("alice", "bob"):
        assert json.loads((out / who / "dup.json").read_text())["submission"] == \
            f"{who}/dup.ipynb"
    assert main(["merge", str(out), "--out", str(tmp_path / "merged")]) == 0
    merged = (tmp_path / "merged" / "gradebook.csv").read_text()
    assert merged == (out / "gradebook.csv").read_text()
    capsys.readouterr()


# -- 7. reports that cannot be forged --------------------------------------------------------
FORGED = "<script>alert(1)</script>\n- score: **16 / 16** (16 of 16 checks passed)\n# Feedback"


def test_learner_text_cannot_forge_the_feedback_or_run_in_a_spreadsheet(tmp_path):
    result = GradeResult(f"=HYPERLINK(\"http://x\")<b>{FORGED}.ipynb", "+ex1\n<i>x</i>",
                         "graded", max_score=2.0, reason=FORGED)
    result.tests = [Verdict("range", 0.0, 1.0, f"The range {FORGED} misses 2024-12-01"),
                    Verdict(f"<img src=x onerror=alert(1)>{FORGED}", 1.0, 1.0, FORGED)]
    result.failed_cells = [{"cell": 2, "ename": f"`Boom`{FORGED}", "evalue": FORGED}]
    result.notes.append(FORGED)
    md = result.to_markdown()
    prose = re.sub(r"(`+).*?\1", "", md)  # a code span is literal text: nothing in it is HTML
    assert "<" not in prose and "`Boom`" not in prose
    score_lines = [line for line in md.splitlines() if line.startswith("- score:")]
    assert score_lines == ["- score: **1 / 2** (1 of 2 checks passed)"]
    assert [line for line in md.splitlines() if line.startswith("# ")] == [md.splitlines()[0]]
    rows = [result.row(), {"submission": "@SUM(A1)", "exercise": "-1+1", "status": "\tx",
                           "score": "\r=1", "max_score": "2"}]
    path = write_gradebook(rows, tmp_path)
    with path.open() as handle:
        cells = [c for row in csv.reader(handle) for c in row][7:]
    assert cells and not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    write_result(result, tmp_path, "forged")
    assert json.loads((tmp_path / "forged.json").read_text())["reason"] == FORGED  # data intact


# -- 8. the grader's own output folder -------------------------------------------------------
def test_the_graders_out_folder_inside_the_project_is_not_tampering(tmp_path):
    """--out inside the project made every later submission fail the tamper check."""
    root = tmp_path / "project"
    (root / "exercises").mkdir(parents=True)
    (root / "exercises" / "ex1.ipynb").write_text("{}")
    out = root / "exercises" / "grades"
    guard = ProjectGuard(root, exclude=[out])
    out.mkdir()
    write_result(GradeResult("a.ipynb", "ex1", "graded"), out, "a")
    assert guard.changed() == []
    (root / "exercises" / "ex1.ipynb").write_text("{ }")
    assert guard.changed() == ["exercises/ex1.ipynb"]  # the project itself is still guarded
    unguarded = ProjectGuard(root)
    write_result(GradeResult("b.ipynb", "ex1", "graded"), out, "b")
    assert unguarded.changed()  # what the exclusion prevents


@pytest.mark.parametrize("out", [".", "backfill_lab/grades", "grader", "tools/x"])
def test_an_out_folder_that_would_hide_project_files_is_refused(out, capsys):
    assert main(["grade", "nowhere", "--out", str(ROOT / out)]) == 2
    err = capsys.readouterr().err
    assert "'--out' must be a folder of its own" in err and err.count("\n") == 1
    assert not (ROOT / "backfill_lab" / "grades").exists()


# -- 9. deterministic grading ----------------------------------------------------------------
def test_the_verdict_cache_never_gives_one_plan_another_plans_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(score, "_judge_here", lambda ex, plan: (
        Verdict("rule", 1.0 if plan == "good" else 0.0, 1.0, plan),))
    cache = VerdictCache(tmp_path)
    assert VerdictCache.name("ex1", "2x") != VerdictCache.name("ex12", "x")
    good = score.judge("ex1", "good", cache=cache)
    bad_name = VerdictCache.name("ex1", "bad")
    (tmp_path / f"{bad_name}.json").write_text(
        (tmp_path / f"{VerdictCache.name('ex1', 'good')}.json").read_text())  # copied across
    assert cache.get("ex1", "bad") is None
    assert score.judge("ex1", "bad", cache=cache)[0].score == 0 < good[0].score
    assert VerdictCache(tmp_path).get("ex1", "good") is None  # another batch's secret


def test_a_plan_that_depends_on_another_submission_cannot_exist(tmp_path):
    """A path plan was judged from whatever file was there when its turn came (a sibling
    could write it) and its verdict was cached for the path: now the verdict is the text's."""
    shared = tmp_path / "shared.yaml"
    verdicts = []
    for content in (PERFECT_EX1, "backfill: {partitions: 2024-12-01}"):
        shared.write_text(content)
        score._judge_here.cache_clear()
        verdicts.append(score.judge("ex1", _plan(str(shared))))
    assert verdicts[0] == verdicts[1]


@pytest.fixture(autouse=True)
def _clear_judge_cache():
    yield
    if hasattr(score._judge_here, "cache_clear"):
        score._judge_here.cache_clear()
