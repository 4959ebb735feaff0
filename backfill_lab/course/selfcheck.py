"""``backfill_lab.check``: the self-check a learner runs in the notebook, and the grader's judge.

It never raises for a bad plan: a plan that does not load, or is not written yet, comes back as a
report that says so. The report renders as an HTML table in JupyterLab and as text elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import BackfillLabError
from ..plan import Plan
from .progress import record as record_progress
from .rules import RuleResult, ScoredReport, judge, rule_names
from .scenarios import Scenario, scenario
from .simulate import OUTCOME_POINTS, OUTCOMES, SimulationReport, simulate

__all__ = ["CheckReport", "check"]


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
        report.simulation = simulate(loaded, sc)
        report.results = results + report.simulation.results
    if record:
        record_progress(report)
    return report
