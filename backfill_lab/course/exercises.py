"""What the exercise notebooks call: the incident on its grid, hints one at a time, the learner's
plan run on the staged incident, and the self-check (recorded in the learner's progress).

Exercise notebooks stay short and identical in shape because the work lives here. Every helper
is safe to call before the learner has answered (``plan = ...``): it says "not answered yet"
instead of failing. While the autograder runs a notebook (``BACKFILL_LAB_GRADING=1``) the slow
helpers do nothing: the grader stages, runs and judges the plan itself, outside the kernel.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..display.grid import PartitionGrid
from ..display.live import WidgetFallback
from ..errors import BackfillLabError
from ..faults import Faults
from ..partitions import PartitionSet, shift
from ..plan import Plan
from ..planrun import PlanRun, run_plan
from . import registry
from .progress import grading
from .progress import record as record_progress
from .quiz import QuizReport, load_key, quiz_progress, score_answers
from .scenarios import Scenario, Staged, scenario, truth
from .selfcheck import CheckReport, simulate_ahead
from .selfcheck import check as judge_plan
from .simulate import throttle

__all__ = [
    "Hints",
    "Incident",
    "Note",
    "RunOutcome",
    "answered",
    "check",
    "grading",
    "grid_window",
    "hints",
    "incident_facts",
    "incident_grid",
    "run_and_show",
    "show_incident",
]

NOT_ANSWERED = "not answered yet: define `plan` in the cell above, then run this cell again"
SKIPPED = "skipped while grading: the grader stages, runs and checks your plan itself"

def answered(value: object) -> bool:
    """Has the learner filled in this answer? (``...``, None, blank text or an empty dict: no.)

    >>> answered(...), answered(None), answered("  "), answered({}), answered("backfill: {}")
    (False, False, False, False, True)
    """
    if value is None or value is Ellipsis:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Mapping | Sequence):
        return len(value) > 0
    return True


@dataclass(frozen=True)
class Note:
    """A one-line message a helper shows instead of doing its work (skipped, not answered)."""

    message: str
    status: str = "note"
    score: float = 0.0
    max_score: float = 0.0

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        return f"<p class='backfill-note'><i>{html.escape(self.message)}</i></p>"


# -- the incident ---------------------------------------------------------------------------
def grid_window(sc: Scenario) -> str:
    """The partitions to show for an incident: a week before the broken ones (as far as the
    history goes) to the end of what was loaded or broken.

    >>> grid_window(scenario("ex1")), grid_window(scenario("mini_challenge"))
    ('2024-11-24..2024-12-31', '2025-01-03..2025-01-31')
    """
    broken, history = sc.partitions, PartitionSet.parse(sc.history)
    start = max(shift(broken.start, -7), history.start) if history.start < broken.start \
        else broken.start
    end = max(broken.end, history.end)
    return f"{start}..{end}"


def incident_grid(sc: Scenario, st: Staged, *, title: str | None = None,
                  invalid: Mapping[str, object] | None = None,
                  tables: Mapping[str, str] | None = None) -> PartitionGrid:
    """The partition grid of a staged incident (every layer, the window around the damage);
    ``tables`` shows a layer from another table (a plan's versioned target)."""
    window = grid_window(sc)
    return PartitionGrid(st.warehouse, st.pipeline, window, invalid=invalid, tables=tables,
                         title=title or f"{sc.title} · {window}")


def _story_html(title: str, story: str, facts: Sequence[str] = ()) -> str:
    items = "".join(f"<li>{html.escape(f)}</li>" for f in facts)
    return (f"<div class='backfill-incident'><h4>{html.escape(title)}</h4>"
            f"<p>{html.escape(story)}</p>{f'<ul>{items}</ul>' if items else ''}</div>")


@dataclass
class Incident:
    """An exercise's incident staged on a fresh warehouse: its story, facts and grid."""

    scenario: Scenario
    staged: Staged | None
    grid: PartitionGrid | None
    facts: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """The story, the facts and the grid, as plain text."""
        lines = [self.scenario.title, self.scenario.story, *[f"- {f}" for f in self.facts]]
        if self.grid is not None:
            lines += ["", self.grid.to_text()]
        return "\n".join(lines)

    def to_html(self) -> str:
        """The story, the facts and the grid, as HTML."""
        grid = self.grid.to_html() if self.grid is not None else ""
        return _story_html(self.scenario.title, self.scenario.story, self.facts) + grid

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """A frozen picture of the incident as staged (no run ever follows this copy: the
        learner's plan runs on a fresh one), so no progress bar waits under it."""
        return {"text/plain": self.to_text(), "text/html": self.to_html()}


def incident_facts(sc: Scenario, st: Staged) -> list[str]:
    """What an engineer would look up before planning: limits, version, healthy volumes."""
    facts = [f"Broken: {', '.join(sc.layers)} for {sc.broken} ({len(sc.partitions)} "
             f"partitions).",
             f"The warehouse takes {sc.capacity} concurrent writes.",
             f"Deployed code version: {sc.code_version}."]
    table = st.pipeline.layer("features").default_table
    counts = pd.Series(st.warehouse.partition_counts(table), dtype="int64")
    healthy = counts.drop([k for k in sc.partitions if k in counts.index])
    if not healthy.empty:
        facts.append(f"Healthy days of {table} have {healthy.min()}-{healthy.max()} rows "
                     f"({len(healthy)} days loaded outside the damage).")
    if st.view is not None:
        facts.append(f"Readers query the view '{st.view}' over '{table}'.")
    return facts


def show_incident(exercise: str | Scenario) -> Incident:
    """Stage the exercise's incident on a fresh in-memory warehouse and show it on a grid.

    It also prepares what the self-check compares a plan with (the reference truth, repaired
    from the incident just staged), so that ``bl.check`` later only judges the plan.
    While grading, nothing is staged (the grader stages its own copy): only the story shows.
    """
    sc = scenario(exercise)
    if grading():
        return Incident(sc, None, None, ["staging skipped while grading: the grader stages "
                                         "its own copy of the incident"])
    st = sc.stage()
    truth(sc)  # computed once per process, from the template stage() just built
    return Incident(sc, st, incident_grid(sc, st), incident_facts(sc, st))


# -- hints ----------------------------------------------------------------------------------
class Hints(WidgetFallback):
    """An exercise's hints, revealed one at a time (a "Show next hint" button; a static render
    nests them in ``<details>`` blocks so each opens only after the one before).

    >>> h = Hints("ex9", ("First.", "Second."))
    >>> h.next(), h.next(), h.next()
    ('First.', 'Second.', None)
    >>> print(h.to_text())
    Hint 1: First.
    Hint 2: Second.
    """

    def __init__(self, exercise: str, items: Sequence[str]) -> None:
        self.exercise = exercise
        self.items = tuple(items)
        self.shown = 0
        self._widget: Any = None
        self._parts: tuple[Any, Any] | None = None

    def next(self) -> str | None:
        """Reveal the next hint and return it (None when all are shown)."""
        if self.shown >= len(self.items):
            return None
        self.shown += 1
        self._render()
        return self.items[self.shown - 1]

    def _label(self) -> str:
        left = len(self.items) - self.shown
        return f"Show next hint ({left} left)" if left else "No more hints"

    def _render(self) -> None:
        if self._parts is None:
            return
        button, shown = self._parts
        shown.value = "".join(f"<p><b>Hint {i}.</b> {html.escape(t)}</p>"
                              for i, t in enumerate(self.items[:self.shown], 1))
        button.description = self._label()
        button.disabled = self.shown >= len(self.items)

    @property
    def widget(self) -> Any:
        """The live widget: the hints shown so far and a "Show next hint" button."""
        if self._widget is None:
            import ipywidgets

            button = ipywidgets.Button(description=self._label(),
                                       layout=ipywidgets.Layout(width="auto"))
            button.on_click(lambda _: self.next())
            shown = ipywidgets.HTML()
            self._parts = (button, shown)
            self._render()
            box = ipywidgets.VBox([shown, button])
            box.add_class("backfill-hints")
            self._widget = box
        return self._widget

    def to_html(self) -> str:
        """Every hint in nested ``<details>`` blocks (a static render)."""
        inner = ""
        for i in range(len(self.items), 0, -1):  # innermost last: hint n opens inside n-1
            inner = (f"<details><summary>Hint {i}</summary><p>{html.escape(self.items[i - 1])}"
                     f"</p>{inner}</details>")
        return f"<div class='backfill-hints'>{inner}</div>"

    def to_text(self) -> str:
        """Every hint, numbered, as plain text."""
        return "\n".join(f"Hint {i}: {t}" for i, t in enumerate(self.items, 1))



def hints(exercise: str | Scenario) -> Hints:
    """The hints of an exercise (or a drill's scenario), to reveal one at a time."""
    if isinstance(exercise, Scenario) and exercise.exercise not in registry.IDS:
        return Hints(exercise.exercise, exercise.hints)  # a drill's
    ex = registry.exercise(exercise.exercise if isinstance(exercise, Scenario) else exercise)
    return Hints(ex.id, ex.hints)


# -- running the learner's plan -------------------------------------------------------------
@dataclass
class RunOutcome:
    """What the learner's plan did to the staged incident, as the readers now see it.

    The grid was displayed live while the plan ran (in a notebook); it is repeated here only
    when it could not be (``shown_live=False``).
    """

    scenario: Scenario
    run: PlanRun
    grid: PartitionGrid
    table: pd.DataFrame
    seconds: float
    shown_live: bool = True

    def __str__(self) -> str:
        lines = [f"your plan on {self.scenario.exercise}'s incident ({self.seconds:.1f} s):",
                 str(self.run), "", self.table.to_string()]
        return "\n".join(lines + ([] if self.shown_live else ["", self.grid.to_text()]))

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        run = "<br>".join(html.escape(line) for line in str(self.run).splitlines())
        grid = "" if self.shown_live else self.grid.to_html()
        return (f"<div class='backfill-run'><h4>Your plan on {html.escape(self.scenario.exercise)}"
                f"'s incident ({self.seconds:.1f} s)</h4><p>{run}</p>"
                f"{self.table.to_html()}{grid}</div>")


def _no_sleep(_: float) -> None:
    pass


def _result_table(sc: Scenario, st: Staged, tables: Mapping[str, str]) -> pd.DataFrame:
    """Per layer (and the readers' view): broken partitions now filled, and rows per day."""
    rows = []
    keys = list(sc.partitions)
    shown = {name: tables.get(name, st.pipeline.layer(name).default_table) for name in sc.layers}
    targets = [(f"{name} ({table})", table) for name, table in shown.items()]
    if st.view is not None:
        targets.append((f"view {st.view} (what readers see)", st.view))
    for label, rel in targets:
        got: dict[str, int] = {}
        if st.warehouse.has_table(rel) or rel == st.view:
            counts = st.warehouse.sql(
                f'SELECT CAST(date AS VARCHAR) AS day, count(*) AS n FROM "{rel}" GROUP BY 1')
            got = dict(zip(counts["day"], counts["n"].astype(int), strict=True))
        filled = [got[k] for k in keys if k in got]
        rows.append({"relation": label, "filled": f"{len(filled)}/{len(keys)}",
                     "rows per day": f"{min(filled)}-{max(filled)}" if filled else "-"})
    return pd.DataFrame(rows).set_index("relation")


def _late_table(sc: Scenario, st: Staged) -> pd.DataFrame:
    from ..demo.late import late_arrival_metrics

    metrics = late_arrival_metrics(st.source, st.warehouse, sc.partitions)
    total = metrics[["events", "counted", "missed", "double_counted"]].sum()
    return pd.DataFrame([{"relation": "features", "days": len(metrics),
                          **{k: int(v) for k, v in total.items()}}]).set_index("relation")


def run_and_show(plan: Any, exercise: str | Scenario) -> RunOutcome | Note:
    """Run ``plan`` on a freshly staged copy of the exercise's incident, with the same transient
    faults the grader injects, and show the grid filling and what readers now see.

    In a notebook it also starts the self-check's replay of the plan in the background
    (:func:`~backfill_lab.course.selfcheck.simulate_ahead`), for ``bl.check`` of the same plan
    to take. Never raises for the learner's plan: a missing or broken plan comes back as a
    :class:`Note`.
    """
    if grading():
        return Note(SKIPPED, "skipped")
    if not answered(plan):
        return Note(NOT_ANSWERED, "not_answered")
    try:
        loaded = Plan.load(plan)
    except Exception as exc:  # a learner's object: report, never raise
        return Note(f"the plan does not load: {exc}", "invalid_plan")
    sc = scenario(exercise)
    t0 = time.perf_counter()
    st = sc.stage()
    # the warehouse the notebooks taught, as the grader's replay has it: excess writes are
    # throttled and fail; a plan that never has more in flight than it takes never waits
    throttle(st.warehouse, sc, loaded)
    # a versioned target is where the plan writes: follow it on the grid
    last = (loaded.backfill.layers or sc.layers)[-1]
    tables = {last: loaded.backfill.target} if loaded.backfill.target else {}
    writes = f" (writing {loaded.backfill.target})" if tables else ""
    try:
        grid = incident_grid(sc, st, title=f"{sc.exercise}: your plan running{writes}",
                             tables=tables)
    except BackfillLabError as exc:
        return Note(f"the plan could not run: {exc}", "error")
    view = grid.live()  # the grid fills in this cell while the plan runs
    if view.shown:  # in a notebook: the self-check's replay starts while the learner watches
        simulate_ahead(loaded, sc)
    try:
        run = run_plan(loaded, st.warehouse, st.pipeline, faults=Faults(sc.backfill_faults),
                       sleep=_no_sleep, on_event=grid.on_event,
                       backfill_id=f"{sc.exercise}-your-plan")
    except BackfillLabError as exc:
        view.close()
        return Note(f"the plan could not run: {exc}", "error")
    grid.title = f"{sc.exercise}: after your plan{writes}"
    grid.refresh()
    view.close()  # it keeps this end state, in the saved notebook too
    table = _late_table(sc, st) if sc.late else _result_table(sc, st, tables)
    return RunOutcome(sc, run, grid, table, time.perf_counter() - t0, view.shown)


# -- the self-check -------------------------------------------------------------------------
def check(answer: Any, exercise: str | Scenario = "ex1", *, simulate_outcomes: bool = True,
          record: bool = True) -> CheckReport | QuizReport | Note:
    """``bl.check``: judge your answer to an exercise, the way the grader will.

    For a plan exercise (or a drill's :class:`Scenario`), ``answer`` is the plan (a Plan, dict
    or YAML text): the checklist rules and, unless ``simulate_outcomes=False``, a replay on the
    staged incident (:func:`backfill_lab.course.selfcheck.check`). For the quiz, ``answer`` is
    the ``answers`` dict, scored against the key when this copy of the workbook has it
    (otherwise a note counts what you answered). A placeholder scores zero ("not answered
    yet"); any other attempt is recorded in your progress (``record=False``: not). While the
    grader runs a notebook it is skipped: the grader judges the answer itself.
    """
    if grading():
        return Note(SKIPPED.replace("stages, runs and checks your plan", "checks your answer"),
                    "skipped")
    if not isinstance(exercise, Scenario) and registry.exercise(exercise).is_quiz:
        key = load_key()
        if key is None:
            return Note(f"course mode: {quiz_progress(answer)}; your answers are graded when "
                        "you submit this notebook (no key in this copy of the workbook).",
                        "no_key")
        report: CheckReport | QuizReport = score_answers(answer, key)
    else:
        sc = exercise if isinstance(exercise, Scenario) else \
            scenario(str(registry.exercise(exercise).scenario))
        report = judge_plan(answer, sc, simulate_outcomes=simulate_outcomes, record=record)
    if record and report.status != "not_answered":
        record_progress(report)
    return report
