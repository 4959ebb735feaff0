"""What a checklist rule returns, and the report built from its verdicts.

:class:`RuleResult` is one rule's verdict; :class:`ScoredReport` adds up the points of a
self-check or a quiz. The rules live in :mod:`backfill_lab.course.rules` (the checklist) and
:mod:`backfill_lab.course.late_rules` (late data); ``SECTIONS`` says where the workbook
teaches what each rule checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from ..report import Column, PassFailReport, Row

__all__ = ["RULE_COLUMNS", "SECTIONS", "RuleResult", "ScoredReport", "rule_rows"]

NB = "notebooks/05_designing_safe_backfills.ipynb"
SECTIONS = {
    "range": f"{NB} § 1. Range and order",
    "order": f"{NB} § 1. Range and order",
    "dependencies": f"{NB} § Mistake: ignoring dependencies",
    "concurrency": f"{NB} § 3. Concurrency from system limits",
    "idempotent_writes": f"{NB} § 2. Write mode",
    "retries": "notebooks/02_daily_backfill.ipynb § Step 4: run it and watch the grid",
    "validations": f"{NB} § 4. Validations per partition",
    "rollback": f"{NB} § Rollback, by doing",
    "code_version": f"{NB} § Mistake: mixing code versions",
    "lineage": f"{NB} § 5. Run metadata and lineage",
    "watermark": "notebooks/04_late_data.ipynb § Watermark",
    "reprocess_window": "notebooks/04_late_data.ipynb § Rolling reprocessing window",
    "merge_keys": "notebooks/04_late_data.ipynb § Merge, not append",
}


@dataclass(frozen=True)
class RuleResult:
    """The verdict of one rule (or outcome check) on one plan."""

    name: str
    passed: bool
    points: float
    max_points: float
    message: str
    section: str = ""

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict} {self.name}: {self.message}"


#: the table of a report of rule results: the rule, its points, its message
RULE_COLUMNS = (Column("check", "code"), Column("points"), Column("message", "text"))


def rule_rows(results: Iterable[RuleResult], *, name_width: int = 18,
              sections: bool = True) -> list[Row]:
    """Report rows of rule results: ``  FAIL  name  message`` and, for a failed rule with a
    section (when ``sections``), where the workbook explains it.

    >>> print(rule_rows([RuleResult("range", False, 0.0, 1.0, "Too wide.", "05 § 1")])[0].text)
      FAIL  range              Too wide.
            see 05 § 1
    """
    rows = []
    for r in results:
        see = f"see {r.section}" if sections and not r.passed and r.section else ""
        text = f"  {'pass' if r.passed else 'FAIL'}  {r.name:<{name_width}} {r.message}"
        rows.append(Row(r.passed, (r.name, f"{r.points:g}/{r.max_points:g}", r.message),
                        text + (f"\n        {see}" if see else ""), see))
    return rows


class ScoredReport(PassFailReport):
    """Points of a report made of :class:`RuleResult` rows (a self-check, a quiz).

    Subclasses name their report in :meth:`title` and :meth:`html_title`; the rows, the text
    and the table come from here and :class:`~backfill_lab.report.PassFailReport`.
    """

    results: list[RuleResult]
    status: str

    css_class = "backfill-check"
    columns = RULE_COLUMNS
    #: width of the rule's name in the text rendering
    name_width: ClassVar[int] = 18
    #: whether a failed rule's text and HTML say where the workbook explains it
    show_sections: ClassVar[bool] = True

    @property
    def score(self) -> float:
        """The points scored."""
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        """The points there are."""
        return sum(r.max_points for r in self.results)

    @property
    def passed(self) -> bool:
        """True when the plan (or the answers) could be checked and every rule passed."""
        return self.status == "checked" and all(r.passed for r in self.results)

    def failed(self) -> list[str]:
        """The names of the rules that failed."""
        return [r.name for r in self.results if not r.passed]

    def rows(self) -> list[Row]:
        """One row per rule result."""
        return rule_rows(self.results, name_width=self.name_width, sections=self.show_sections)


def _ok(name: str, message: str) -> RuleResult:
    return RuleResult(name, True, 1.0, 1.0, message, SECTIONS.get(name, ""))


def _fail(name: str, what: str, why: str, fix: str) -> RuleResult:
    return RuleResult(name, False, 0.0, 1.0, f"{what} {why} Fix: {fix}",
                      SECTIONS.get(name, ""))
