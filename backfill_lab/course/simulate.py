"""Outcome simulation: replay a plan on the exercise's staged incident, twice, and measure.

* ``outcome_complete``: every partition that should be refilled is, with exactly the rows it
  would have had if nothing had broken, and (when the plan validates) it passed validation. For
  a scenario with a view, what counts is what readers see through the view.
* ``outcome_idempotent``: the second run changes nothing, in any table or view, except to fill
  in what the first left missing or short (that is ``outcome_complete``'s finding, and, for late
  data, the window's: a rerun that lands on the truth is not a double write).
* ``outcome_untouched``: every partition outside the plan's range is byte-for-byte what it was.

It also reports the observed maximum concurrency and whether steps started in the plan's order.

Each replay runs on a private in-memory copy of the scenario's template (built once per
process); a table the plan cannot write is read in place from the template instead of copied,
and keeps the checksums it had (:func:`backfill_lab.course.second_run.written_tables`). A
copy a plan ran on is put back and kept for the next (:mod:`backfill_lab.course.copies`).
The outcome checks themselves are in :mod:`backfill_lab.course.outcomes`. The second run is
replayed for real unless the first one proves it would write the same rows again
(:func:`backfill_lab.course.second_run.rewrites_the_same`); then its state is the first's.
The warehouse behaves like the one the notebooks taught (:func:`throttle`): it takes the
scenario's capacity in concurrent writes, and a write that finds no free slot in time is
throttled and fails. A plan within the capacity never waits, so its outcome does not depend on
timing; a plan above it sees writes fail, as on a real shared warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._db import quote, run
from ..clock import FixedClock
from ..errors import BackfillLabError
from ..faults import Faults
from ..partitions import parse_key
from ..plan import Plan
from ..planrun import PlanRun, run_plan
from ..report import PassFailReport, Row
from ..runner import BackfillResult, run_backfill
from ..versions import verdicts
from ..warehouse import Warehouse
from .copies import Layout, State, open_copy, put_back, reusable
from .outcomes import (
    OUTCOME_POINTS,
    OUTCOMES,
    SECTION,
    complete,
    idempotent,
    result,
    truth_of,
    untouched,
)
from .rules import RULE_COLUMNS, RuleResult, rule_rows
from .scenarios import Scenario, Staged
from .second_run import (
    LANDS_AGAIN,
    SAME_AGAIN,
    may_exceed,
    rerun_lands_the_same,
    rewrites_the_same,
    written_tables,
)
from .templates import copy_template, template

__all__ = ["OUTCOMES", "OUTCOME_POINTS", "SECTION", "SimulationReport", "may_exceed",
           "relation_checksums", "rewrites_the_same", "simulate", "staged_copy", "throttle"]

#: how long one write holds its slot, and how long a write waits for a free one, in a replay:
#: short, so replays stay fast, and a wait shorter than a write, so excess writes fail
WRITE_LATENCY = 0.01
QUEUE_TIMEOUT = 0.005


def throttle(wh: Warehouse, sc: Scenario, plan: Plan | None = None) -> Warehouse:
    """Make ``wh`` take at most ``sc.capacity`` concurrent writes, as the scenario says its
    warehouse does: more writes in flight than that are throttled and fail (after the staging,
    which a scheduler did one night at a time). Late-data scenarios run one night at a time and
    are left as they are.

    Given the ``plan`` about to run: a plan that never has more steps in flight than the
    capacity never waits for a slot, so its writes need not take :data:`WRITE_LATENCY` to show
    the limit (the same outcome, without the wait).
    """
    if not sc.late:
        wh.capacity = sc.capacity
        wh.write_latency = WRITE_LATENCY if plan is None or may_exceed(plan, sc) else 0.0
        wh.queue_timeout = QUEUE_TIMEOUT
    return wh


def relation_checksums(wh: Warehouse, name: str, pcol: str = "date") -> dict[str, str]:
    """Per-partition checksums of a table or a view (same form as ``Warehouse.checksums``)."""
    rows = run(wh.cursor(), f"SELECT {quote(pcol)}, count(*), sum(hash(_r)::HUGEINT) "
                            f"FROM {quote(name)} AS _r GROUP BY ALL ORDER BY 1")
    out = {}
    for value, n, h in rows:
        key = value.date() if hasattr(value, "date") and callable(value.date) else value
        out[parse_key(key)] = f"{int(n)}:{int(h)}"
    return out


@dataclass(repr=False)
class SimulationReport(PassFailReport):
    """The three outcome checks, and what was observed on the way."""

    results: list[RuleResult] = field(default_factory=list)
    max_in_flight: int = 0
    started_in_order: bool = True
    runs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: what the replay left in each box (:func:`~backfill_lab.course.replaygrid.replay_picture`)
    picture: dict[str, Any] | None = None

    css_class = "backfill-check"
    columns = RULE_COLUMNS

    @property
    def passed(self) -> bool:
        """True when every outcome check passed."""
        return all(r.passed for r in self.results)

    def rows(self) -> list[Row]:
        """One row per outcome check."""
        return rule_rows(self.results)

    def title(self) -> str:
        """``outcomes: 4/6 points``."""
        return (f"outcomes: {sum(r.points for r in self.results):g}/"
                f"{sum(r.max_points for r in self.results):g} points")

    def summary(self) -> str:
        """What was observed: the most steps in flight, the start order, the time it took."""
        seen = [f"at most {self.max_in_flight} steps in flight"] if self.max_in_flight else []
        seen.append("steps started in the plan's order" if self.started_in_order
                    else "steps did not start in the plan's order")
        return f"observed: {'; '.join(seen)} ({self.seconds:.1f} s)"


def _state(st: Staged, known: dict[str, dict[str, str]] | None = None,
           written: set[str] | None = None) -> dict[str, dict[str, str]]:
    """The checksums of every table (and of the view), read from the warehouse, except those
    of a table the run since ``known`` was read could not write (not in ``written``): the
    same as in ``known``."""
    kept = known if known is not None and written is not None else {}
    state = {t: kept[t] if t in kept and t not in (written or ()) else st.warehouse.checksums(t)
             for t in st.warehouse.tables() if not t.startswith("_bl_")}
    if st.view is not None:
        state[f"view:{st.view}"] = relation_checksums(st.warehouse, st.view)
    return state


def _no_sleep(_: float) -> None:
    pass


def simulate(plan: Plan, sc: Scenario, *, replay_twice: bool = False) -> SimulationReport:
    """Stage ``sc``, run ``plan`` on it twice, and judge the three outcomes.

    The second run is replayed unless the first one proves it would change nothing (see
    :func:`rewrites_the_same`); ``replay_twice=True`` replays it anyway.
    """
    import time

    t0 = time.perf_counter()
    report = SimulationReport()
    context = staged(sc, plan)
    with context as st:
        before = _before(sc, st)
        written = written_tables(plan, sc, st)
        runs: list[PlanRun] = []
        states: list[dict[str, dict[str, str]]] = []
        invalid_after_first: set[str] = set()
        for i in (1, 2):
            if i == 2 and not replay_twice and rewrites_the_same(plan, sc, st, runs[0]):
                states.append(states[0])
                report.runs.append(f"backfill sim-2: not replayed: {SAME_AGAIN}")
                break
            if i == 2 and not replay_twice and rerun_lands_the_same(
                    plan, sc, st, runs[0], states[0], truth_of(sc, st)):
                states.append(states[0])
                report.runs.append(f"backfill sim-rerun: not replayed: {LANDS_AGAIN}")
                break
            try:
                if sc.late and i == 2:
                    runs.append(_rerun_range(plan, sc, st))
                else:
                    runs.append(run_plan(plan, st.warehouse, st.pipeline,
                                         faults=Faults(sc.backfill_faults), sleep=_no_sleep,
                                         backfill_id=f"sim-{i}"))
            except BackfillLabError as exc:
                message = f"the plan could not run: {exc}"
                report.results = [result(n, False, message) for n in OUTCOMES]
                after = _state(st)
                report.picture = _picture(plan, sc, st, before, after, len(runs) + 1)
                context.ran(before, after)
                report.seconds = time.perf_counter() - t0
                return report
            states.append(_state(st, states[-1] if states else before, written))
            report.runs.append(str(runs[-1]))
            if i == 1:
                invalid_after_first = _invalid(plan, sc, st)
        first = runs[0]
        if first.backfill is not None and not sc.late:
            report.max_in_flight = first.backfill.max_in_flight
            keys = [p for _, p in first.backfill.started_order]
            ranked = plan.backfill.partitions.ordered(plan.backfill.order)
            pos = {k: i for i, k in enumerate(ranked)}
            firsts = list(dict.fromkeys(keys))
            report.started_in_order = [pos[k] for k in firsts] == sorted(pos[k] for k in firsts)
        report.results = [
            complete(plan, sc, st, states[0], runs[0], invalid_after_first),
            idempotent(states[0], states[1], truth_of(sc, st)),
            untouched(plan, sc, before, states[1]),
        ]
        report.picture = _picture(plan, sc, st, before, states[-1], len(states))
        context.ran(before, states[-1])
    report.seconds = time.perf_counter() - t0
    return report


def _picture(plan: Plan, sc: Scenario, st: Staged, before: dict[str, dict[str, str]],
             after: dict[str, dict[str, str]], runs: int) -> dict[str, Any] | None:
    """The replay's grid, or None: drawing it never changes a verdict."""
    from .replaygrid import replay_picture

    try:
        return replay_picture(plan, sc, st, before, after, runs)
    except Exception:  # a picture is feedback, not a verdict
        return None


# the state of each scenario's staged incident before any plan ran (every copy starts there)
_BEFORE: dict[Scenario, dict[str, dict[str, str]]] = {}


def _before(sc: Scenario, st: Staged) -> dict[str, dict[str, str]]:
    known = _BEFORE.get(sc)
    if known is None:
        if len(_BEFORE) >= 16:  # a few scenarios per process: the oldest go first
            del _BEFORE[next(iter(_BEFORE))]
        known = _BEFORE[sc] = _state(st)
    return known


def _rerun_range(plan: Plan, sc: Scenario, st: Staged) -> PlanRun:
    """A schedule's second run: a mini-backfill of the whole range once every event arrived,
    with the plan's write mode (what an on-call engineer's rerun would do)."""
    b = plan.backfill
    result = run_backfill(
        st.pipeline, st.warehouse, b.partitions, layers=b.layers, mode=b.mode,
        merge_keys=b.merge_keys or None, code_version=plan.code_version,
        backfill_id="sim-rerun", clock=FixedClock(sc.simulated_until), sleep=_no_sleep)
    assert isinstance(result, BackfillResult)
    return PlanRun(plan, backfill=result)


def _invalid(plan: Plan, sc: Scenario, st: Staged) -> set[str]:
    """Partitions of the range whose latest validation (by the plan's checks) failed."""
    if not plan.validations.enabled:
        return set()
    table = plan.backfill.target or st.pipeline.layer(sc.layers[-1]).default_table
    return verdicts(st.warehouse, [table])[table].invalid() & set(sc.partitions)


# -- staging -------------------------------------------------------------------------------
def staged_copy(sc: Scenario) -> Staged:
    """``sc`` staged on a private in-memory copy of its template (what
    :meth:`Scenario.stage` returns)."""
    return sc.restage(copy_template(template(sc)))


class staged:
    """A scenario staged on a private in-memory copy of its cached template, throttled to the
    scenario's capacity for ``plan`` (see :func:`throttle`); closed on exit.

    Given the ``plan``, a table it cannot write (:func:`written_tables`) is not copied: it is a
    view of the template's table, read in place (the template stays attached, read only, until
    the copy is closed).
    """

    def __init__(self, sc: Scenario, plan: Plan | None = None) -> None:
        self.sc = sc
        self.plan = plan
        self.st: Staged | None = None
        self._layout: Layout | None = None
        self._states: tuple[State, State] | None = None

    def __enter__(self) -> Staged:
        self.st, self._layout = open_copy(self.sc, self.plan, self._new, template(self.sc))
        if self.plan is not None and not reusable(self.plan):
            self.st.warehouse.fence()  # the plan's own SQL runs on it: no files, no network
        throttle(self.st.warehouse, self.sc, self.plan)
        return self.st

    def _new(self) -> Staged:
        if self.plan is None or self.sc.late or self.plan.late_data is not None:
            return staged_copy(self.sc)  # a schedule can write any table: copy them all
        return _staged_for(self.sc, self.plan)

    def ran(self, before: State, after: State) -> None:
        """The replay is over: the copy was in state ``before`` and is in ``after`` (the
        checksums of every table), so on exit it can be put back and kept for the next plan."""
        self._states = (before, after)

    def __exit__(self, *exc: Any) -> None:
        if self.st is None:
            return
        if exc[0] is None and self._layout is not None and self._states is not None:
            put_back(self.sc, self.st, self._layout, *self._states)
        else:
            self.st.warehouse.close()


def _staged_for(sc: Scenario, plan: Plan) -> Staged:
    """``sc`` staged for ``plan``: the template's schema and system tables copied, then the
    rows of each table the plan can write; every other table a view of the template's."""
    wh = Warehouse()
    try:
        cur = wh.cursor()
        run(cur, "SET threads=1")
        for (name,) in run(cur, "SELECT table_name FROM duckdb_tables() "
                                "WHERE database_name = 'memory'"):
            run(cur, f"DROP TABLE {quote(name)}")
        literal = str(template(sc)).replace("'", "''")
        run(cur, f"ATTACH '{literal}' AS _bl_template (READ_ONLY)")
        run(cur, "COPY FROM DATABASE _bl_template TO memory (SCHEMA)")
        names = [r[0] for r in run(cur, "SELECT table_name FROM duckdb_tables() "
                                        "WHERE database_name = '_bl_template' ORDER BY table_name")]
        for name in names:
            if name.startswith("_bl_"):
                run(cur, f"INSERT INTO memory.main.{quote(name)} "
                         f"SELECT * FROM _bl_template.main.{quote(name)}")
        st = sc.restage(wh)
        written = written_tables(plan, sc, st)
        shared = 0
        for name in names:
            if name.startswith("_bl_"):
                continue
            if written is None or name in written:
                run(cur, f"INSERT INTO memory.main.{quote(name)} "
                         f"SELECT * FROM _bl_template.main.{quote(name)}")
            else:
                run(cur, f"DROP TABLE memory.main.{quote(name)}")
                run(cur, f"CREATE VIEW memory.main.{quote(name)} AS "
                         f"SELECT * FROM _bl_template.main.{quote(name)}")
                shared += 1
        if not shared:
            run(cur, "DETACH _bl_template")
        return st
    except BaseException:
        wh.close()
        raise
