"""Scoring in the grader's own process: checklist rules, outcome simulation, quiz answers.

The quiz key is read from ``solutions/quick_test.ipynb`` once, before any learner code runs; plans
are judged with ``backfill_lab.check`` (the same rules and simulation as the in-notebook
self-check). Feedback never contains the key or a solution: a wrong quiz answer says where to
read again, not which letter was right.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backfill_lab.course.quiz import question_order, score_answers
from backfill_lab.course.rules import rule_names
from backfill_lab.course.scenarios import EXERCISES, remember_truth, scenario, truth
from backfill_lab.course.selfcheck import check
from backfill_lab.course.simulate import (
    OUTCOME_POINTS,
    OUTCOMES,
    adopt_template,
    file_digest,
    template,
)

from .extract import value_of

__all__ = ["EXERCISE_IDS", "STAGING_PARTS", "TestResult", "adopt", "judge", "load_key",
           "max_score", "prepare", "read_plan", "score_plan", "score_quiz", "stage"]

EXERCISE_IDS: tuple[str, ...] = (*EXERCISES, "quick_test")


@dataclass(frozen=True)
class TestResult:
    """One graded check, in Gradescope's ``tests`` shape."""

    name: str
    score: float
    max_score: float
    output: str
    visibility: str = "visible"

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


def load_key(root: Path) -> dict[str, dict[str, Any]] | None:
    """The quiz key from ``solutions/quick_test.ipynb`` (notebook metadata), or None."""
    path = root / "solutions" / "quick_test.ipynb"
    if not path.exists():
        return None
    meta = json.loads(path.read_text()).get("metadata", {}).get("backfill_lab", {})
    key = meta.get("key")
    return dict(key) if isinstance(key, dict) and key else None


def max_score(exercise: str | None, key: dict[str, Any] | None) -> float:
    """What a perfect submission of ``exercise`` scores (0 when unknown)."""
    if exercise == "quick_test":
        return float(len(key or {}))
    if exercise in EXERCISES:
        sc = scenario(exercise)
        return float(len(rule_names(sc))) + OUTCOME_POINTS * len(OUTCOMES)
    return 0.0


def zero_tests(exercise: str | None, key: dict[str, Any] | None, why: str) -> list[TestResult]:
    """Every test of the exercise at zero, all with the same reason."""
    if exercise == "quick_test":
        return [TestResult(q, 0.0, 1.0, why) for q in sorted(key or {}, key=question_order)]
    if exercise in EXERCISES:
        sc = scenario(exercise)
        return ([TestResult(n, 0.0, 1.0, why) for n in rule_names(sc)]
                + [TestResult(n, 0.0, OUTCOME_POINTS, why) for n in OUTCOMES])
    return []


# Judging is deterministic, so a plan judged once (by any worker of the batch) is not judged
# again: results are kept in memory and, when a batch sets one, in a folder shared by workers.
# Each cached result is signed with a secret that exists only in the grader's memory, so a file
# planted in that folder (by a kernel that is not sandboxed) is ignored, never trusted.
CACHE_DIR: Path | None = None
CACHE_SECRET: bytes = secrets.token_bytes(32)


def _judge(exercise: str, plan_json: str) -> tuple[TestResult, ...]:
    digest = hashlib.sha256(f"{exercise}\n{plan_json}".encode()).hexdigest()
    cached = CACHE_DIR / f"{digest}.json" if CACHE_DIR is not None else None
    if cached is not None and cached.exists():
        try:
            stored = json.loads(cached.read_text())
            body = json.dumps(stored["tests"], sort_keys=True)
            mac = hmac.new(CACHE_SECRET, f"{digest}{body}".encode(), "sha256").hexdigest()
            if hmac.compare_digest(mac, stored["mac"]):
                return tuple(TestResult(**t) for t in stored["tests"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or forged: judge it here
    tests = _judge_here(exercise, plan_json)
    if cached is not None:
        body = json.dumps([t.__dict__ for t in tests], sort_keys=True)
        mac = hmac.new(CACHE_SECRET, f"{digest}{body}".encode(), "sha256").hexdigest()
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"mac": mac, "tests": json.loads(body)}))
            tmp.replace(cached)  # atomic: another worker never reads half a file
        except OSError:
            pass  # a cache is an optimisation: grading goes on without it
    return tests


@functools.lru_cache(maxsize=256)
def _judge_here(exercise: str, plan_json: str) -> tuple[TestResult, ...]:
    """Rules and simulation for one plan, in this process."""
    report = check(json.loads(plan_json), exercise)
    out = []
    for r in report.results:
        text = r.message if r.passed else (
            f"{r.message} (see {r.section})" if r.section else r.message)
        if report.status == "invalid_plan" and not r.passed:
            text = report.detail
        out.append(TestResult(r.name, r.points, r.max_points, text))
    return tuple(out)


STAGING_PARTS: tuple[str, ...] = ("truth", "incident")


def stage(exercise: str, part: str) -> dict[str, Any]:
    """Build one part of what judging ``exercise`` needs, in this process, and describe it so
    another process can :func:`adopt` it: the reference ``truth`` (checksums), or the
    ``incident`` (the staged warehouse's template file and its SHA-256).

    A batch stages each part once, in whichever worker is free, while other workers already
    run kernels: the parts are independent, so two workers build them at the same time.
    """
    sc = scenario(exercise)
    if part == "truth":
        return {"truth": truth(sc)}
    if part == "incident":
        path = template(sc)
        return {"template": str(path), "sha256": file_digest(path)}
    raise ValueError(f"'part' must be one of {', '.join(STAGING_PARTS)} (got {part!r})")


def adopt(exercise: str, parts: Iterable[dict[str, Any]]) -> None:
    """Use staging parts built by :func:`stage` (maybe in another process) here.

    A template file whose SHA-256 no longer matches is ignored (this process then builds its
    own): judging never trusts a file someone could have changed since it was built.
    """
    sc = scenario(exercise)
    for part in parts:
        if "truth" in part:
            remember_truth(sc, part["truth"])
        if "template" in part:
            adopt_template(sc, Path(part["template"]), part["sha256"])


def prepare(exercises: set[str]) -> None:
    """Stage each of ``exercises``' incidents and references in this process, ahead of use."""
    for exercise in sorted(exercises & set(EXERCISES)):
        for part in STAGING_PARTS:
            stage(exercise, part)


def read_plan(data: dict[str, Any], exercise: str
              ) -> tuple[str, list[TestResult], str | None]:
    """``(status, tests, plan_json)``: ``plan_json`` (canonical JSON) when the plan is to be
    judged (then ``tests`` is empty: see :func:`judge`), None when ``tests`` is already the
    verdict (no plan, or not plain data)."""
    state, value = value_of(data, "plan")
    if state in ("missing", "placeholder"):
        why = ("`plan` is not defined" if state == "missing"
               else "`plan` is still the `...` placeholder: write your plan")
        return "missing_answer", zero_tests(exercise, None, why), None
    if state == "error":
        why = f"`plan` could not be read as plain data ({value}); use YAML text or a dict"
        return "graded", zero_tests(exercise, None, why), None
    try:
        plan_json = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return "graded", zero_tests(exercise, None, f"`plan` is not plain data: {exc}"), None
    return "graded", [], plan_json


def judge(exercise: str, plan_json: str) -> list[TestResult]:
    """The checklist and outcome tests of a plan (as returned by :func:`read_plan`)."""
    return list(_judge(exercise, plan_json))


def score_plan(data: dict[str, Any], exercise: str) -> tuple[str, list[TestResult]]:
    """``(status, tests)`` for an exercise whose answer is ``plan``."""
    status, tests, plan_json = read_plan(data, exercise)
    if plan_json is not None:
        tests = judge(exercise, plan_json)
    return status, tests


def score_quiz(data: dict[str, Any], key: dict[str, Any] | None) -> tuple[str, list[TestResult]]:
    """``(status, tests)`` for the quick test: one test per question of the key.

    Each question's verdict is the one the notebook's own quiz gives
    (:func:`backfill_lab.course.quiz.score_answers`): what a learner's self-check accepts, the
    grader accepts, in the same words, except that a right answer's explanation stays with the key.
    """
    if not key:
        return "error", []
    state, answers = value_of(data, "answers")
    if state in ("missing", "placeholder"):
        why = ("`answers` is not defined" if state == "missing"
               else "`answers` is still the `...` placeholder: answer the questions")
        return "missing_answer", zero_tests("quick_test", key, why)
    if state == "error" or not isinstance(answers, dict):
        got = answers if state == "error" else type(answers).__name__
        return "graded", zero_tests(
            "quick_test", key, f"`answers` must be a dict like {{'q1': 'b'}} (got {got})")
    report = score_answers(answers, key)
    if report.status == "not_answered":
        return "missing_answer", zero_tests("quick_test", key, report.detail)
    tests = [TestResult(r.name, r.points, r.max_points, "correct." if r.passed else r.message)
             for r in report.results]
    if report.detail and tests:
        first = tests[0]
        tests[0] = TestResult(first.name, first.score, first.max_score,
                              f"{first.output} ({report.detail})")
    return "graded", tests
