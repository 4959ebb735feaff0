"""Scoring in the grader's own process: checklist rules, outcome simulation, quiz answers.

The quiz key is read from the quiz's solution notebook once, before any learner code runs; plans
are judged by the same rules and simulation as the in-notebook self-check (``bl.check``), on
plain data only: a string is YAML text, never a path. Feedback never contains the key or a
solution: a wrong quiz answer says where to read again, not which letter was right.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backfill_lab.course import registry
from backfill_lab.course.quiz import question_order, score_answers
from backfill_lab.course.rules import rule_names
from backfill_lab.course.scenarios import remember_truth, scenario, truth
from backfill_lab.course.selfcheck import check
from backfill_lab.course.simulate import OUTCOME_POINTS, OUTCOMES
from backfill_lab.course.templates import adopt_template, file_digest, no_disk_cache, template
from backfill_lab.errors import BackfillLabError
from backfill_lab.plan import Plan

from .extract import value_of
from .status import Status

__all__ = ["STAGING_PARTS", "TestResult", "VerdictCache", "adopt", "judge", "load_key",
           "max_score", "picture", "prepare", "read_plan", "score_plan", "score_quiz", "stage"]


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
        """Full marks on this check."""
        return self.score >= self.max_score


def load_key(root: Path) -> dict[str, dict[str, Any]] | None:
    """The quiz key from the quiz's solution notebook (its metadata), or None."""
    path = root / "solutions" / registry.quiz_exercise().notebook
    if not path.exists():
        return None
    meta = json.loads(path.read_text()).get("metadata", {}).get("backfill_lab", {})
    key = meta.get("key")
    return dict(key) if isinstance(key, dict) and key else None


def max_score(exercise: str | None, key: dict[str, Any] | None) -> float:
    """What a perfect submission of ``exercise`` scores (0 when unknown)."""
    if exercise not in registry.IDS:
        return 0.0
    ex = registry.exercise(exercise)
    if ex.is_quiz:
        return float(len(key or {}))
    sc = scenario(str(ex.scenario))
    return float(len(rule_names(sc))) + OUTCOME_POINTS * len(OUTCOMES)


def zero_tests(exercise: str | None, key: dict[str, Any] | None, why: str) -> list[TestResult]:
    """Every test of the exercise at zero, all with the same reason."""
    if exercise not in registry.IDS:
        return []
    ex = registry.exercise(exercise)
    if ex.is_quiz:
        return [TestResult(q, 0.0, 1.0, why) for q in sorted(key or {}, key=question_order)]
    sc = scenario(str(ex.scenario))
    return ([TestResult(n, 0.0, 1.0, why) for n in rule_names(sc)]
            + [TestResult(n, 0.0, OUTCOME_POINTS, why) for n in OUTCOMES])


class VerdictCache:
    """Verdicts judged once, shared by the workers of one batch through a folder.

    Judging is deterministic, so a plan judged by any worker need not be judged again. An entry
    is named by a digest of the exercise and the plan (length-prefixed: no two different pairs
    share a name) and signed with a secret that exists only in the grader's memory, over that
    name and the verdict: a file planted in the folder, or one plan's entry copied under
    another's name, is ignored, never trusted. Handed to workers explicitly (it pickles).
    """

    def __init__(self, folder: Path, secret: bytes | None = None) -> None:
        self.folder = folder
        self.secret = secret or secrets.token_bytes(32)

    @classmethod
    def create(cls) -> VerdictCache:
        """A cache in a new private temporary folder (remove it with :meth:`remove`)."""
        return cls(Path(tempfile.mkdtemp(prefix="backfill-grader-cache-")))

    def remove(self) -> None:
        """Delete the folder and every entry in it."""
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def name(exercise: str, plan_json: str) -> str:
        """The entry's name: a digest of the exercise and the plan, length-prefixed."""
        text = f"{len(exercise)}:{exercise}{len(plan_json)}:{plan_json}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _mac(self, name: str, body: str) -> str:
        return hmac.new(self.secret, f"{name}\n{body}".encode(), "sha256").hexdigest()

    def get(self, exercise: str, plan_json: str) -> tuple[TestResult, ...] | None:
        """The verdict stored for this plan, or None (absent, unreadable or forged)."""
        found = self.lookup(exercise, plan_json)
        return found[0] if found is not None else None

    def lookup(self, exercise: str, plan_json: str
               ) -> tuple[tuple[TestResult, ...], dict[str, Any] | None] | None:
        """``(tests, picture)`` stored for this plan, or None (absent, unreadable or forged);
        the replay's picture is signed with the verdict."""
        name = self.name(exercise, plan_json)
        try:
            stored = json.loads((self.folder / f"{name}.json").read_text())
            picture = stored.get("picture")
            body = json.dumps([stored["tests"], picture], sort_keys=True)
            if hmac.compare_digest(self._mac(name, body), stored["mac"]):
                return tuple(TestResult(**t) for t in stored["tests"]), picture
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return None

    def put(self, exercise: str, plan_json: str, tests: Iterable[TestResult],
            picture: dict[str, Any] | None = None) -> None:
        """Store a verdict and the replay's picture (atomically; a cache that cannot be
        written is skipped)."""
        name = self.name(exercise, plan_json)
        listed = [asdict(t) for t in tests]
        body = json.dumps([listed, picture], sort_keys=True)
        entry = self.folder / f"{name}.json"
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"mac": self._mac(name, body), "tests": listed,
                                       "picture": picture}))
            tmp.replace(entry)  # atomic: another worker never reads half a file
        except OSError:
            pass  # a cache is an optimisation: grading goes on without it


#: The pictures of the replays judged in this process, by (exercise, plan): what
#: :func:`picture` hands back after :func:`judge` (the verdict itself stays a tuple of tests).
#: Least recently used first, and larger than ``_judge_here``'s cache, used in the same order:
#: a verdict that cache still holds always has its picture here.
_PICTURES: dict[tuple[str, str], dict[str, Any] | None] = {}
_PICTURE_SLOTS = 512


def _remember_picture(exercise: str, plan_json: str, found: dict[str, Any] | None) -> None:
    _PICTURES.pop((exercise, plan_json), None)
    if len(_PICTURES) >= _PICTURE_SLOTS:
        del _PICTURES[next(iter(_PICTURES))]
    _PICTURES[(exercise, plan_json)] = found


def _touch_picture(exercise: str, plan_json: str) -> None:
    """Mark a picture as just used (its verdict came from ``_judge_here``'s cache)."""
    if (exercise, plan_json) in _PICTURES:
        _PICTURES[(exercise, plan_json)] = _PICTURES.pop((exercise, plan_json))


def picture(exercise: str, plan_json: str) -> dict[str, Any] | None:
    """The grid the replay of this plan left (see :mod:`backfill_lab.course.replaygrid`), once
    :func:`judge` judged it in this process; None when it was not replayed."""
    return _PICTURES.get((exercise, plan_json))


def _judge(exercise: str, plan_json: str, cache: VerdictCache | None = None
           ) -> tuple[TestResult, ...]:
    found = cache.lookup(exercise, plan_json) if cache is not None else None
    if found is not None:
        _remember_picture(exercise, plan_json, found[1])
        return found[0]
    tests = _judge_here(exercise, plan_json)
    _touch_picture(exercise, plan_json)
    if cache is not None:
        cache.put(exercise, plan_json, tests, picture(exercise, plan_json))
    return tests


#: A plan whose range holds more partitions than this many times the incident's (and more than
#: FAR_MINIMUM) is judged without replaying it: its range rule fails, and so do the outcomes.
FAR_FACTOR = 8
FAR_MINIMUM = 366


def _loaded(value: Any, exercise: str) -> Plan | tuple[TestResult, ...] | Any:
    """A plan as the judge takes it: YAML text becomes a Plan (never a path to open), and so
    does a dict; text that does not load is the verdict itself (every test at zero, saying
    why); anything else goes to check() as it is, which says what is wrong with it."""
    if isinstance(value, str) and value.strip():
        try:
            return Plan.from_yaml(value)
        except BackfillLabError as exc:
            return tuple(zero_tests(exercise, None, f"the plan does not load: {exc}"))
    if isinstance(value, dict):
        try:
            return Plan.from_dict(value)
        except Exception:  # check() reports it, in its words
            return value
    return value


@functools.lru_cache(maxsize=256)
def _judge_here(exercise: str, plan_json: str) -> tuple[TestResult, ...]:
    """Rules and simulation for one plan, in this process."""
    plan = _loaded(json.loads(plan_json), exercise)
    if isinstance(plan, tuple):
        return plan
    sc = scenario(exercise)
    far = isinstance(plan, Plan) and len(plan.backfill.partitions) > max(
        FAR_MINIMUM, FAR_FACTOR * len(sc.partitions))
    with no_disk_cache():  # the incident and the reference are built here or handed over
        report = check(plan, sc, simulate_outcomes=not far, record=False)
    _remember_picture(exercise, plan_json,
                      report.simulation.picture if report.simulation is not None else None)
    out = []
    for r in report.results:
        text = r.message if r.passed else (
            f"{r.message} (see {r.section})" if r.section else r.message)
        if report.status == "invalid_plan" and not r.passed:
            text = report.detail
        out.append(TestResult(r.name, r.points, r.max_points, text))
    if far and report.status == "checked":
        size = len(plan.backfill.partitions)
        why = (f"not replayed: the range holds {size} partitions, far more than the "
               f"{len(sc.partitions)} of the incident; narrow it to {sc.partitions}")
        out += [TestResult(n, 0.0, OUTCOME_POINTS, why) for n in OUTCOMES]
    return tuple(out)


#: The largest plan judged, as canonical JSON (YAML text is bounded alike by its loader).
MAX_PLAN_BYTES = 65_536
#: The exercises whose answer is a plan (they have an incident to stage).
PLAN_IDS: tuple[str, ...] = tuple(e.id for e in registry.EXERCISES if not e.is_quiz)
STAGING_PARTS: tuple[str, ...] = ("truth", "incident")


def stage(exercise: str, part: str) -> dict[str, Any]:
    """Build one part of what judging ``exercise`` needs, in this process, and describe it so
    another process can :func:`adopt` it: the reference ``truth`` (checksums), or the
    ``incident`` (the staged warehouse's template file and its SHA-256).

    A batch stages each part once, in whichever worker is free, while other workers already
    run kernels: the parts are independent, so two workers build them at the same time.
    """
    sc = scenario(exercise)
    with no_disk_cache():  # built here, never taken from a learner's cache folder
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
    for exercise in sorted(exercises & set(PLAN_IDS)):
        for part in STAGING_PARTS:
            stage(exercise, part)


def read_plan(data: dict[str, Any], exercise: str
              ) -> tuple[Status, list[TestResult], str | None]:
    """``(status, tests, plan_json)``: ``plan_json`` (canonical JSON) when the plan is to be
    judged (then ``tests`` is empty: see :func:`judge`), None when ``tests`` is already the
    verdict (no plan, or not plain data)."""
    state, value = value_of(data, registry.exercise(exercise).answer)
    if state in ("missing", "placeholder"):
        why = ("`plan` is not defined" if state == "missing"
               else "`plan` is still the `...` placeholder: write your plan")
        return Status.MISSING_ANSWER, zero_tests(exercise, None, why), None
    if state == "error":
        why = f"`plan` could not be read as plain data ({value}); use YAML text or a dict"
        return Status.GRADED, zero_tests(exercise, None, why), None
    try:
        plan_json = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return Status.GRADED, zero_tests(exercise, None, f"`plan` is not plain data: {exc}"), None
    if len(plan_json) > MAX_PLAN_BYTES:
        why = (f"`plan` is {len(plan_json)} bytes as data, more than the {MAX_PLAN_BYTES} a "
               f"plan may hold; a plan is a page of YAML: write ranges, not lists of days")
        return Status.GRADED, zero_tests(exercise, None, why), None
    return Status.GRADED, [], plan_json


def judge(exercise: str, plan_json: str, *, cache: VerdictCache | None = None
          ) -> list[TestResult]:
    """The checklist and outcome tests of a plan (as returned by :func:`read_plan`), looked up
    in ``cache`` first and stored there after."""
    return list(_judge(exercise, plan_json, cache))


def score_plan(data: dict[str, Any], exercise: str) -> tuple[Status, list[TestResult]]:
    """``(status, tests)`` for an exercise whose answer is ``plan``."""
    status, tests, plan_json = read_plan(data, exercise)
    if plan_json is not None:
        tests = judge(exercise, plan_json)
    return status, tests


def score_quiz(data: dict[str, Any], key: dict[str, Any] | None
               ) -> tuple[Status, list[TestResult]]:
    """``(status, tests)`` for the quick test: one test per question of the key.

    Each question's verdict is the one the notebook's own quiz gives
    (:func:`backfill_lab.course.quiz.score_answers`): what a learner's self-check accepts, the
    grader accepts, in the same words, except that a right answer's explanation stays with the key.
    """
    if not key:
        return Status.ERROR, []
    quiz = registry.quiz_exercise()
    state, answers = value_of(data, quiz.answer)
    if state in ("missing", "placeholder"):
        why = ("`answers` is not defined" if state == "missing"
               else "`answers` is still the `...` placeholder: answer the questions")
        return Status.MISSING_ANSWER, zero_tests(quiz.id, key, why)
    if state == "error" or not isinstance(answers, dict):
        got = answers if state == "error" else type(answers).__name__
        return Status.GRADED, zero_tests(
            quiz.id, key, f"`answers` must be a dict like {{'q1': 'b'}} (got {got})")
    report = score_answers(answers, key)
    if report.status == "not_answered":
        return Status.MISSING_ANSWER, zero_tests(quiz.id, key, report.detail)
    tests = [TestResult(r.name, r.points, r.max_points, "correct." if r.passed else r.message)
             for r in report.results]
    if report.detail and tests:
        first = tests[0]
        tests[0] = TestResult(first.name, first.score, first.max_score,
                              f"{first.output} ({report.detail})")
    return Status.GRADED, tests
