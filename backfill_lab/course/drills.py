"""Mock outages and timed drills: a fresh seeded incident to plan a backfill for, on the clock.

``drill(seed)`` draws an incident from the seed (the same seed always gives the same incident):
either an **outage** (the source was down for the last few nights, so raw failed and staging and
features were skipped) or **bad data** in features on a few days in the middle of the history
(drifted, null, duplicated or missing rows; sometimes behind a view readers use), a warehouse
capacity, and one or two transient failures that will hit the backfill. It is an ordinary
:class:`~backfill_lab.course.scenarios.Scenario` (exercise id ``drill-<seed>``), so
``bl.check(plan, drill.scenario)`` grades a plan with exactly the rules and outcome simulation of
the exercises. A drill stages small (300 entities, a few weeks) so checking stays quick.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from ..clock import Clock, SystemClock
from ..display.grid import PartitionGrid
from ..errors import ConfigError
from ..faults import Fault
from ..partitions import PartitionSet, shift
from ..report import PassFailReport, Row
from .exercises import Hints, Incident, incident_facts, incident_grid
from .exercises import hints as exercise_hints
from .progress import record
from .scenarios import Scenario, Staged
from .selfcheck import CheckReport, check

__all__ = ["BAD_DATA", "Drill", "DrillResult", "drill", "incident"]

ENTITIES = 300
EVENTS_PER_DAY = 1200
#: bad-data kinds: the fault planted in features, and the check that proves it (and its fix)
BAD_DATA: dict[str, tuple[str, str]] = {
    "drift": ("shift", "drift"),
    "nulls": ("nulls", "null_rate"),
    "duplicates": ("duplicates", "unique_keys"),
    "missing_rows": ("drop_rows", "row_count"),
}
_WHAT = {
    "drift": "a bad config multiplied amount_7d",
    "nulls": "a null spike in avg_amount_1d",
    "duplicates": "rows written twice by a retry",
    "missing_rows": "about half of each day's rows lost",
}


def _fault(kind: str, days: str) -> Fault:
    if kind == "drift":
        return Fault.shift("features", days, column="amount_7d", factor=1.8)
    if kind == "nulls":
        return Fault.nulls("features", days, column="avg_amount_1d", fraction=0.3)
    if kind == "duplicates":
        return Fault.duplicates("features", days, fraction=0.15)
    return Fault.drop_rows("features", days, fraction=0.5)


def incident(seed: int) -> Scenario:
    """The drill's incident for ``seed``, as a scenario (pure: the same seed, the same one).

    >>> incident(3) == incident(3), incident(3).exercise
    (True, 'drill-3')
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError.invalid("seed", "an integer >= 0", seed)
    rng = random.Random(f"backfill-lab-drill-{seed}")
    first = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(0, 700))
    capacity = rng.choice((2, 3, 4, 6))
    corrupt: tuple[Fault, ...] = ()
    monitor: str | None = None
    if rng.random() < 0.5:
        nights = rng.randint(3, 8)
        length = rng.randint(14, 21) + nights
        history = f"{first}..{first + dt.timedelta(days=length - 1)}"
        end = PartitionSet.parse(history).end
        broken = f"{shift(end, -(nights - 1))}..{end}"
        layers: tuple[str, ...] = ("raw", "staging", "features")
        kind, versioned = "outage", False
        required: tuple[str, ...] = ("row_count",)
        story = (f"The source of the nightly raw -> staging -> features pipeline was down for "
                 f"the last {nights} nights ({broken}): raw failed, staging and features were "
                 f"skipped. It is back this morning. Refill what is missing without "
                 f"overloading the warehouse (it takes {capacity} concurrent writes).")
        hints = ("Every layer is missing on the outage days, and only there.",
                 "Upstream before downstream for each day, oldest day first.",
                 "Cap concurrency at what the warehouse takes; retry transient failures.")
    else:
        kind = rng.choice(tuple(BAD_DATA))
        days = rng.randint(2, 5)
        start = first + dt.timedelta(days=14)
        history = f"{first}..{start + dt.timedelta(days=days + rng.randint(4, 10) - 1)}"
        broken = f"{start}..{start + dt.timedelta(days=days - 1)}"
        layers = ("features",)
        # behind a view only where the switch's canary (new vs old rows) can pass: a fix that
        # restores lost or removes duplicated rows differs from the old version by design
        versioned = rng.random() < 0.5 and kind in ("drift", "nulls")
        corrupt = (_fault(kind, broken),)
        monitor = f"{shift(broken.split('..')[0], -3)}..{shift(broken.split('..')[1], 3)}" \
            if kind == "drift" else None
        required = (BAD_DATA[kind][1],)
        readers = " Readers query the view 'features' over 'features_v1'." if versioned else ""
        story = (f"Monitoring found bad data in features for {broken} only: "
                 f"{_WHAT[kind]}. Staging is fine.{readers} Fix exactly those days, prove the "
                 f"fix, and touch nothing else (the warehouse takes {capacity} concurrent "
                 f"writes).")
        hints = ("Target only the damaged days, and only the damaged layer.",
                 f"Include the check that catches this problem: {required[0]}.",
                 "Keep a way back: a snapshot, or a versioned target switched in after "
                 "validation.")
    faults = rng.sample([(layer, day) for layer in layers for day in PartitionSet.parse(broken)],
                        k=rng.randint(1, 2))
    title = f"Drill {seed}: " + ("source outage" if kind == "outage" else f"bad data ({kind})")
    return Scenario(
        exercise=f"drill-{seed}", title=title, story=story, history=history, broken=broken,
        layers=layers, capacity=capacity,
        outage=broken if kind == "outage" else None, corrupt=corrupt,
        backfill_faults=tuple(Fault.fail(layer, day, times=1) for layer, day in sorted(faults)),
        versioned=versioned, monitor=monitor, required_checks=required, seed=seed,
        entities=ENTITIES, events_per_day=EVENTS_PER_DAY, hints=hints,
    )


@dataclass(repr=False)
class DrillResult(PassFailReport):
    """A drill's self-check: the report, and how long the drill took against its target."""

    report: CheckReport
    elapsed: dt.timedelta
    minutes: float

    css_class = CheckReport.css_class
    columns = CheckReport.columns

    @property
    def in_time(self) -> bool:
        """True when the drill was finished within its target time."""
        return self.elapsed <= dt.timedelta(minutes=self.minutes)

    @property
    def score(self) -> float:
        """The self-check's points."""
        return self.report.score

    @property
    def max_score(self) -> float:
        """The points there are."""
        return self.report.max_score

    def headline(self) -> str:
        """``drill-3: 8/10 points in 12 min 04 s (within the 15-minute target)``."""
        secs = int(self.elapsed.total_seconds())
        when = f"{secs // 60} min {secs % 60:02d} s"
        verdict = "within" if self.in_time else "over"
        return (f"{self.report.exercise}: {self.score:g}/{self.max_score:g} points in {when} "
                f"({verdict} the {self.minutes:g}-minute target)")

    def rows(self) -> list[Row]:
        """The self-check's rows."""
        return self.report.rows()

    def title(self) -> str:
        """The headline, then the self-check's own first line."""
        return f"{self.headline()}\n{self.report.title()}"

    def html_title(self) -> str:
        """The headline."""
        return self.headline()

    def note(self) -> str:
        """Why nothing was checked, if so."""
        return self.report.note()


class Drill:
    """A timed drill: the incident staged and shown, a timer started, ``check(plan)`` to finish.

    The timer starts when the drill is created and reads ``clock`` (inject a
    :class:`~backfill_lab.clock.FixedClock` for repeatable times).
    """

    def __init__(self, seed: int, *, clock: Clock | None = None, minutes: float = 15,
                 stage: bool = True) -> None:
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
            raise ConfigError.invalid("minutes", "a number of minutes > 0", minutes)
        self.seed = seed
        self.scenario = incident(seed)
        self.clock = clock or SystemClock()
        self.minutes = float(minutes)
        self.staged: Staged | None = self.scenario.stage() if stage else None
        self.started = self.clock.now()

    @property
    def kind(self) -> str:
        """``outage`` or ``bad data``."""
        return "outage" if self.scenario.outage else "bad data"

    @property
    def story(self) -> str:
        """What happened, as the on-call engineer hears it."""
        return self.scenario.story

    @property
    def facts(self) -> list[str]:
        """What the staged warehouse shows, and the target time ([] before staging)."""
        if self.staged is None:
            return []
        return [*incident_facts(self.scenario, self.staged),
                f"Target time: {self.minutes:g} minutes from the start."]

    def grid(self) -> PartitionGrid:
        """The incident on its grid (damaged days found by monitoring are marked invalid)."""
        if self.staged is None:
            self.staged = self.scenario.stage()
        marked = None if self.scenario.outage else {"features": self.scenario.broken}
        return incident_grid(self.scenario, self.staged, invalid=marked)

    def incident(self) -> Incident:
        """The incident as the exercises show it: story, grid and facts."""
        if self.staged is None:
            self.staged = self.scenario.stage()
        return Incident(self.scenario, self.staged, self.grid(), self.facts)

    def elapsed(self) -> dt.timedelta:
        """Time since the drill started, on its clock."""
        return self.clock.now() - self.started

    def hints(self) -> Hints:
        """The drill's hints, revealed one at a time."""
        return exercise_hints(self.scenario)

    def check(self, plan: Any, *, simulate_outcomes: bool = True) -> DrillResult:
        """Grade ``plan`` like an exercise, stop the clock, and record it in your progress."""
        report = check(plan, self.scenario, simulate_outcomes=simulate_outcomes, record=False)
        result = DrillResult(report, self.elapsed(), self.minutes)
        if report.status != "not_answered":
            record(report, clock=self.clock)
        return result

    def __repr__(self) -> str:
        return self.incident().to_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.incident()._repr_mimebundle_(include, exclude)


def drill(seed: int, *, clock: Clock | None = None, minutes: float = 15) -> Drill:
    """A fresh seeded incident to practise on, staged and timed (see :class:`Drill`).

    Taught in notebooks/05_designing_safe_backfills.ipynb and notebooks/06_practical_projects.ipynb.
    """
    return Drill(seed, clock=clock, minutes=minutes)
