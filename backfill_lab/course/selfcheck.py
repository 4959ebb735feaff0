"""``backfill_lab.check``: the self-check a learner runs in the notebook, and the grader's judge.

It never raises for a bad plan: a plan that does not load, or is not written yet, comes back as a
report that says so. The report renders as an HTML table in JupyterLab and as text elsewhere.

In a learner's notebook the outcome replay can be started ahead (:func:`simulate_ahead`: the cell
that runs the plan for the learner to watch starts it too, in a background thread); a self-check
of the same plan on the same exercise then takes that replay's report instead of replaying it
again. Only a plan whose outcome cannot depend on timing is replayed ahead, so the report is the
one a replay in the foreground gives; never while grading.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackfillLabError
from ..plan import Plan
from .progress import grading
from .progress import record as record_progress
from .rules import RuleResult, ScoredReport, judge, rule_names
from .scenarios import Scenario, scenario
from .simulate import OUTCOME_POINTS, OUTCOMES, SimulationReport, may_exceed, simulate

__all__ = ["CheckReport", "check", "simulate_ahead"]


@dataclass(repr=False)
class CheckReport(ScoredReport):
    """Every checklist rule and outcome check, with points and a message that teaches."""

    exercise: str
    results: list[RuleResult] = field(default_factory=list)
    status: str = "checked"  # checked | not_answered | invalid_plan
    detail: str = ""
    simulation: SimulationReport | None = None

    def title(self) -> str:
        """``ex1: 9/10 points`` (and why nothing was checked, if so)."""
        head = f"{self.exercise}: {self.score:g}/{self.max_score:g} points"
        return head + (f" ({self.detail})" if self.status != "checked" else "")

    def html_title(self) -> str:
        """``Self-check ex1: 9 / 10 points``."""
        return f"Self-check {self.exercise}: {self.score:g} / {self.max_score:g} points"

    def note(self) -> str:
        """Why nothing was checked, if so."""
        return self.detail


def _unanswered(exercise: str, names: list[str], status: str, detail: str) -> CheckReport:
    results = [RuleResult(n, False, 0.0, OUTCOME_POINTS if n in OUTCOMES else 1.0, detail)
               for n in names]
    return CheckReport(exercise, results, status, detail)


def check(plan: Any, exercise: str | Scenario = "ex1", *,
          simulate_outcomes: bool = True, record: bool = True) -> CheckReport:
    """Judge ``plan`` (a Plan, dict or YAML text) against an exercise's checklist and outcomes.

    ``exercise`` is an exercise id or a :class:`Scenario` (a drill's).
    ``simulate_outcomes=False`` skips the outcome simulation (instant feedback on the design).
    The result is recorded in your progress file (``record=False``: not; never while grading).
    """
    sc = scenario(exercise)
    exercise = sc.exercise
    names = rule_names(sc) + (list(OUTCOMES) if simulate_outcomes else [])
    if plan is None or plan is Ellipsis or (isinstance(plan, str) and not plan.strip()):
        return _unanswered(exercise, names, "not_answered",
                           "not answered yet: define `plan` and run the self-check again")
    try:
        loaded = Plan.load(plan)
    except BackfillLabError as exc:
        return _unanswered(exercise, names, "invalid_plan", f"the plan does not load: {exc}")
    except Exception as exc:  # a learner's object of an unexpected kind: report, never raise
        return _unanswered(exercise, names, "invalid_plan",
                           f"the plan does not load: {type(exc).__name__}: {exc}")
    results = judge(loaded, sc)
    report = CheckReport(exercise, results)
    if simulate_outcomes:
        report.simulation = _simulated(loaded, sc)
        report.results = results + report.simulation.results
    if record:
        record_progress(report)
    return report


# replays started ahead (simulate_ahead), each taken by the first self-check of its plan: a few
_AHEAD: list[tuple[Scenario, Plan, Future[SimulationReport]]] = []
_AHEAD_SLOTS = 4
_AHEAD_LOCK = threading.Lock()


def simulate_ahead(plan: Plan, sc: Scenario) -> bool:
    """Start replaying ``plan`` on ``sc`` in a background thread, for the next self-check of the
    same plan on the same exercise to take (True when started).

    Nothing starts while grading, for a plan already being replayed ahead, or for a plan that can
    have more writes in flight than the warehouse takes: its throttled writes fail depending on
    timing, and a replay beside other work would time them differently. Otherwise the replay is
    a pure function of the plan and the scenario, wherever and whenever it runs (its private
    copy of the incident, its own faults), so the report is the one the self-check would get.
    """
    if grading() or may_exceed(plan, sc):
        return False
    own = copy.deepcopy(plan)  # the learner's objects may change; this replay's plan may not
    future: Future[SimulationReport] = Future()
    with _AHEAD_LOCK:
        if any(s == sc and p == own for s, p, _ in _AHEAD):
            return False
        _AHEAD.append((sc, own, future))
        del _AHEAD[:-_AHEAD_SLOTS]

    def work() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(simulate(own, sc))
        except BaseException as exc:  # handed to the self-check, which replays it again
            future.set_exception(exc)

    threading.Thread(target=work, name="backfill-lab-replay-ahead", daemon=True).start()
    return True


def _simulated(plan: Plan, sc: Scenario) -> SimulationReport:
    """The replay of ``plan`` on ``sc``: the one started ahead for it, if any (waiting for it to
    finish), else replayed now."""
    with _AHEAD_LOCK:
        found = next((i for i, (s, p, _) in enumerate(_AHEAD) if s == sc and p == plan), None)
        future = _AHEAD.pop(found)[2] if found is not None else None
    if future is not None and not grading():
        try:
            return future.result()
        except Exception:  # the replay ahead failed: replay it here
            pass
    return simulate(plan, sc)
