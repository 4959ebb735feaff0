"""Kernels and judges side by side: a plan is judged while the next notebooks run.

A batch runs kernels in one pool and judges in another (:mod:`grader.batch`). These tests use
the stand-ins of ``test_grader_units`` (no kernel, a fake judge) to check the scheduling: the
overlap itself, a judge that crashes while kernels run, and the batch's timeline.
"""

from __future__ import annotations

import doctest
import json
import os
import signal
import time
from typing import Any

import pytest

import grader.timeline
from grader.cli import main
from grader.execute import Sandbox
from grader.report import GradeResult
from grader.score import TestResult as Verdict

from .test_grader_units import _CALLS, _fake_batch, _record

PLANS = {"a": "plan-a", "b": "plan-b", "c": "plan-c", "k": "plan-k"}


def _logged() -> list[str]:
    return _CALLS["log"].read_text().splitlines()


def _run_logged(path: str, name: str, sandbox: Sandbox) -> tuple[GradeResult, str | None]:
    """A kernel stand-in that logs each run; ``b-*`` waits (up to a minute) until plan-a's
    judging began, and says whether it saw it while it was still running."""
    _record(f"run {name}")
    if name.startswith("b-"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "judge ex1 plan-a" not in _logged():
            time.sleep(0.05)
        _record(f"{name} saw plan-a judged: {'judge ex1 plan-a' in _logged()}")
    return GradeResult(name, "ex1", "graded", max_score=2.0), PLANS[name[0]]


def _judge_that_crashes(exercise: str, plan_json: str, **_: Any) -> list[Verdict]:
    """plan-c kills its judge's child, plan-k the judge worker itself; others are judged."""
    _record(f"judge {exercise} {plan_json}")
    if plan_json == "plan-c":
        os._exit(3)
    if plan_json == "plan-k":
        os.kill(os.getppid(), signal.SIGKILL)  # the worker that forked this judge
        time.sleep(30)  # killed with it (the judge dies with its parent)
    return [Verdict("rule", 1.0, 1.0, "ok"), Verdict("outcome", 1.0, 1.0, "ok")]


def test_at_one_job_a_plan_is_judged_while_the_next_notebook_runs(tmp_path, monkeypatch,
                                                                   capsys):
    """With --jobs 1 the judge of a-1's plan starts while b-1's kernel is still running (one
    kernel at a time, its judge beside it); both still get their own verdict."""
    subs = _fake_batch(tmp_path, monkeypatch, _run_logged, ("a-1", "b-1"))
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "1"]) == 0
    assert "b-1.ipynb saw plan-a judged: True" in _logged()
    scores = {p.stem: json.loads(p.read_text())["score"] for p in out.glob("*.json")}
    assert scores == {"a-1": 2, "b-1": 1}
    capsys.readouterr()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_judge_that_crashes_mid_overlap_is_an_error_once_and_the_batch_goes_on(
        tmp_path, monkeypatch, capsys, jobs):
    """A judge child that dies gives its plan's submissions ``error``; a judge that kills its
    worker breaks the judges' pool only: what was judged beside it is judged again alone, and
    the plan that breaks the pool alone is an ``error``. No kernel runs again, and every other
    submission keeps its verdict, whatever else its batch holds and at any --jobs."""
    import grader.score as score

    subs = _fake_batch(tmp_path, monkeypatch, _run_logged,
                       ("a-1", "c-1", "k-1", "a-2", "k-2", "c-2", "a-3"))
    monkeypatch.setattr(score, "judge", _judge_that_crashes)
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", jobs]) == 0
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert sorted(results) == ["a-1", "a-2", "a-3", "c-1", "c-2", "k-1", "k-2"]
    assert {n: (r["status"], r["score"]) for n, r in results.items()} == {
        n: ("graded", 2) if n.startswith("a-") else ("error", 0) for n in results}
    for name in ("c-1", "c-2"):
        assert "the process judging this plan died (exit code 3)" in results[name]["reason"]
    for name in ("k-1", "k-2"):
        assert "the process judging this plan died twice" in results[name]["reason"]
    calls = _logged()
    ran = sorted(c for c in calls if c.startswith("run "))
    assert ran == [f"run {n}.ipynb" for n in sorted(results)], calls
    # judged once, or (beside plan-k, two judges at once) once more alone; plan-k twice
    beside = 1 if jobs == "1" else 2
    assert 1 <= calls.count("judge ex1 plan-a") <= beside, calls
    assert 1 <= calls.count("judge ex1 plan-c") <= beside
    assert calls.count("judge ex1 plan-k") == 2
    capsys.readouterr()


def test_the_timeline_shows_every_phase_of_a_batch(tmp_path, monkeypatch, capsys):
    """--timeline FILE writes one span per kernel, judge, staging part and result written, and
    one for the probe and the class report; :func:`grader.timeline.summary` reads them."""
    subs = _fake_batch(tmp_path, monkeypatch, _run_logged, ("a-1", "a-2", "b-1"))
    spans_file = tmp_path / "spans.jsonl"
    assert main(["grade", str(subs), "--out", str(tmp_path / "out"), "--jobs", "1",
                 "--timeline", str(spans_file)]) == 0
    spans = grader.timeline.read(spans_file)
    counts: dict[str, int] = {}
    for span in spans:
        counts[span["phase"]] = counts.get(span["phase"], 0) + 1
        assert 0 <= span["start"] <= span["end"]
    assert counts == {"probe": 1, "stage": 2, "kernel": 3, "judge": 2, "write": 3, "report": 1}
    figures = grader.timeline.summary(spans)
    assert figures["count_kernel"] == 3 and figures["end"] >= figures["last_kernel"]
    capsys.readouterr()


def test_timeline_figures():
    """Overlap counts each second once, however many spans of a side cover it."""
    assert doctest.testmod(grader.timeline).failed == 0
    a = [(0.0, 4.0), (1.0, 2.0), (6.0, 8.0)]
    assert grader.timeline.overlap(a, [(3.0, 7.0)]) == 2.0
    assert grader.timeline.overlap([], a) == 0.0
    s = grader.timeline.summary([
        {"phase": "kernel", "start": 0, "end": 2}, {"phase": "kernel", "start": 2, "end": 4},
        {"phase": "judge", "start": 1.5, "end": 3}, {"phase": "report", "start": 4, "end": 5}])
    assert (s["busy_kernel"], s["busy_judge"], s["judge_beside_kernel"]) == (4.0, 1.5, 1.5)
    assert (s["first_kernel"], s["last_kernel"], s["end"]) == (0, 4, 5)


def test_the_help_says_jobs_bounds_kernels(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "kernels run at once" in text and "judges run beside them" in text

