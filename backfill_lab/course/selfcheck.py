"""``backfill_lab.check``: the self-check a learner runs in the notebook, and the grader's judge.

It never raises for a bad plan: a plan that does not load, or is not written yet, comes back as a
report that says so. The report renders as an HTML table in JupyterLab and as text elsewhere.
"""

from __future__ import annotations

import html
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

    def __str__(self) -> str:
        head = f"{self.exercise}: {self.score:g}/{self.max_score:g} points"
        if self.status != "checked":
            head += f" ({self.detail})"
        lines = [head]
        for r in self.results:
            lines.append(f"  {'pass' if r.passed else 'FAIL'}  {r.name:<18} {r.message}")
            if not r.passed and r.section:
                lines.append(f"        see {r.section}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = []
        for r in self.results:
            colour = "#e8f5e9" if r.passed else "#ffebee"
            see = f"<br><small>see {html.escape(r.section)}</small>" if not r.passed \
                and r.section else ""
            rows.append(
                f"<tr style='background:{colour}'><td>{'✔' if r.passed else '✘'}</td>"
                f"<td><code>{r.name}</code></td><td>{r.points:g}/{r.max_points:g}</td>"
                f"<td style='text-align:left'>{html.escape(r.message)}{see}</td></tr>")
        note = f"<p>{html.escape(self.detail)}</p>" if self.detail else ""
        return (f"<div class='backfill-check'><h4>Self-check {html.escape(self.exercise)}: "
                f"{self.score:g} / {self.max_score:g} points</h4>{note}"
                f"<table><tr><th></th><th>check</th><th>points</th><th>message</th></tr>"
                f"{''.join(rows)}</table></div>")


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
