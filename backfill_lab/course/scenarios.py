"""The exercises' incidents, staged for real on a fresh warehouse.

A :class:`Scenario` says what broke (which layers and partitions), what the warehouse can take
(its capacity), which code version is deployed, and what else will go wrong during the learner's
backfill (transient failures). :meth:`Scenario.build` builds it: a new in-memory warehouse loaded
by the scheduler with the incident in it, one nightly run at a time (the slow part). That is done
once per process: :meth:`Scenario.stage` hands out in-memory copies of it (milliseconds). The
checklist rules read the scenario; the simulation runs the learner's plan on a staged copy.

The reference (:func:`truth`: what every table would hold had nothing broken) comes from a
correct backfill, never from a learner's plan: when this process has the incident staged
already, only its damaged boxes are rebuilt, by one batched backfill on a copy of it (everything
else the nightly runs wrote is what a clean history holds); otherwise the whole clean history is
one batched backfill, which writes the same rows as the nightly runs would. Both ways give the
same checksums (``tests/test_staging.py`` checks the exercises, the drills and more).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import FixedClock
from ..demo.daily import CODE_VERSIONS, EventSource, build_demo, daily_features, demo_pipeline
from ..demo.late import LateEventSource, late_features
from ..errors import UnknownNameError
from ..faults import Fault
from ..partitions import PartitionSet, shift
from ..pipeline import Pipeline
from ..runner import run_backfill
from ..validations import Drift, Validations, validate
from ..versions import point_view
from ..warehouse import Warehouse

__all__ = ["SCENARIOS", "Scenario", "Staged", "scenario"]


@dataclass
class Staged:
    """A scenario built on a warehouse: what the learner's plan runs against."""

    warehouse: Warehouse
    pipeline: Pipeline
    view: str | None = None  # the view readers use, when the scenario has one
    source: Any = None


@dataclass(frozen=True)
class Scenario:
    """One exercise's incident and the facts the checklist rules judge a plan against."""

    exercise: str
    title: str
    story: str
    history: str  # partitions the scheduler loaded before the incident
    broken: str  # the partitions a plan must refill: exactly these
    layers: tuple[str, ...]  # the layers that need refilling
    capacity: int = 4  # concurrent writes the warehouse takes
    code_version: str = CODE_VERSIONS["v1"]
    outage: str | None = None  # scheduled runs whose raw step failed
    corrupt: tuple[Fault, ...] = ()  # bad data written during the history
    backfill_faults: tuple[Fault, ...] = ()  # transient trouble during the learner's backfill
    versioned: bool = False  # readers use a view ``features`` over ``features_v1``
    late: bool = False  # events arrive late (the late_features pipeline)
    max_lateness: str = "48h"
    monitor: str | None = None  # partitions the monitoring's drift check ran on after history
    required_checks: tuple[str, ...] = ("row_count",)
    merge_keys: tuple[str, ...] = ("entity_id", "date")
    seed: int = 7
    entities: int = 1000
    events_per_day: int = 4000
    hints: tuple[str, ...] = field(default=())  # a drill's; an exercise's are in its registry

    @property
    def partitions(self) -> PartitionSet:
        """The partitions a plan must refill."""
        return PartitionSet.parse(self.broken)

    @property
    def features_table(self) -> str:
        """The table the features layer writes (``features_v1`` when readers use a view)."""
        return "features_v1" if self.versioned else "features"

    def stage(self) -> Staged:
        """A fresh in-memory warehouse with this incident in it: a private copy of this
        process's staged incident (built by :meth:`build` on first use)."""
        from .simulate import staged_copy  # simulate imports this module: resolved when called

        return staged_copy(self)

    def build(self) -> Staged:
        """Build this incident for real on a new in-memory warehouse: the scheduler loads the
        history one night at a time, with the outage, the bad data and the monitoring in it."""
        wh = Warehouse()
        if self.late:
            source = LateEventSource(self.seed, self.entities, self.events_per_day,
                                     max_lateness=self.max_lateness)
            pipeline = late_features(source, code_version=self.code_version)
            # the days before the period were processed long after all their events arrived
            run_backfill(pipeline, wh, self.history, backfill_id="history",
                         clock=FixedClock(dt.datetime(2030, 1, 1)))
            return Staged(wh, pipeline, source=source)
        pipeline, _ = build_demo(
            wh, history=self.history, outage=self.outage, seed=self.seed,
            entities=self.entities, events_per_day=self.events_per_day,
            faults=self.corrupt, features_table=self.features_table if self.versioned else None,
        )
        view = None
        if self.versioned:
            view = "features"
            point_view(wh, view, self.features_table)
        if self.monitor:
            # monitoring compares each day with the days before it that it still trusts, oldest
            # first, and records the verdicts: the drifted days show up as invalid
            watch = Validations(drift=Drift(reference_window=7))
            for day in PartitionSet.parse(self.monitor):
                validate(wh, self.features_table, day, watch, backfill_id="monitoring")
        return Staged(wh, pipeline, view=view,
                      source=EventSource(self.seed, self.entities, self.events_per_day))

    def restage(self, wh: Warehouse) -> Staged:
        """The staged objects around a warehouse that already holds this incident (a copy)."""
        if self.late:
            source = LateEventSource(self.seed, self.entities, self.events_per_day,
                                     max_lateness=self.max_lateness)
            return Staged(wh, late_features(source, code_version=self.code_version),
                          source=source)
        return Staged(wh, demo_pipeline(wh), view="features" if self.versioned else None,
                      source=EventSource(self.seed, self.entities, self.events_per_day))

    @property
    def simulated_until(self) -> dt.datetime:
        """For late data: when the simulated schedule stops (every event long arrived)."""
        end = dt.datetime.fromisoformat(shift(self.partitions.end, 1))
        return end + dt.timedelta(days=6, hours=3)


SCENARIOS: dict[str, Scenario] = {
    "ex1": Scenario(
        exercise="ex1",
        title="Plan a 31-day backfill with dependencies",
        story=(
            "The nightly raw -> staging -> features pipeline missed every run of December 2024: "
            "its source was down, so raw failed and staging and features were skipped. It is "
            "January 1st; refill all three layers for December without overloading the "
            "warehouse (it takes 4 concurrent writes). Two partitions will hiccup once while "
            "you backfill."
        ),
        history="2024-11-01..2024-12-31",
        broken="2024-12-01..2024-12-31",
        layers=("raw", "staging", "features"),
        outage="2024-12-01..2024-12-31",
        backfill_faults=(Fault.fail("raw", "2024-12-05", times=1),
                         Fault.fail("staging", "2024-12-18", times=1)),
        required_checks=("row_count",),
    ),
    "ex2": Scenario(
        exercise="ex2",
        title="Late data and rolling reprocessing",
        story=(
            "Events reach the warehouse up to 48 hours after they happen. The nightly job "
            "(02:00 UTC) must count every event of a day exactly once, without reprocessing "
            "everything. Design the schedule for 2024-12-01..2024-12-14: a watermark delay, a "
            "rolling mini-backfill window, and merge logic on the row's keys."
        ),
        history="2024-11-27..2024-11-30",
        broken="2024-12-01..2024-12-14",
        layers=("raw", "features"),
        late=True,
        required_checks=(),
        entities=150,
        events_per_day=600,
    ),
    "mini_challenge": Scenario(
        exercise="mini_challenge",
        title="Targeted fix for drifted features",
        story=(
            "Monitoring found feature drift in features for 2025-01-10..2025-01-14 only (a bad "
            "config multiplied amount_7d on those days). Readers query the view 'features' over "
            "the table 'features_v1'. Fix exactly those five days, prove the fix, and let "
            "downstream readers see only corrected partitions; touch no other date."
        ),
        history="2024-12-01..2025-01-31",
        broken="2025-01-10..2025-01-14",
        layers=("features",),
        corrupt=(Fault.shift("features", "2025-01-10..2025-01-14", column="amount_7d",
                             factor=1.8),),
        versioned=True,
        monitor="2025-01-03..2025-01-20",
        required_checks=("drift",),
    ),
}


def scenario(exercise: str | Scenario) -> Scenario:
    """The scenario of an exercise id (``ex1``, ``ex2``, ``mini_challenge``), or ``exercise``
    itself when it is already a Scenario (a drill's)."""
    if isinstance(exercise, Scenario):
        return exercise
    if exercise not in SCENARIOS:
        raise UnknownNameError.of("exercise", str(exercise), SCENARIOS)
    return SCENARIOS[exercise]


# truths already computed in this process (a grader's worker may also be handed one computed by
# another worker: see remember_truth); a few at most, so the oldest go first past _TRUTH_SLOTS
_TRUTHS: dict[Scenario, dict[str, dict[str, str]]] = {}
_TRUTH_SLOTS = 16


def truth(sc: Scenario) -> dict[str, dict[str, str]]:
    """Checksums of every table as they would be had nothing broken (computed once, or taken
    from the cache folder of :mod:`backfill_lab.course.templates`)."""
    from .templates import cached_truth, keep_truth, taken_from_cache, usable_here

    known = _TRUTHS.get(sc)
    if known is None or not usable_here("truth", sc):  # (taken from a cache now off)
        cached = cached_truth(sc)
        known = cached if cached is not None else _compute_truth(sc)
        if cached is None:
            keep_truth(sc, known)
        remember_truth(sc, known)
        taken_from_cache("truth", sc, cached is not None)
    return known


def remember_truth(sc: Scenario, checksums: dict[str, dict[str, str]]
                   ) -> dict[str, dict[str, str]]:
    """Keep ``checksums`` as the truth of ``sc`` in this process, and return them.

    For a process that was handed the truth computed elsewhere (the grader stages each
    exercise once per batch, in whichever worker is free): :func:`truth` then returns it
    without staging the scenario again.
    """
    from .templates import taken_from_cache  # it imports this module: resolved when called

    if sc not in _TRUTHS and len(_TRUTHS) >= _TRUTH_SLOTS:
        del _TRUTHS[next(iter(_TRUTHS))]
    _TRUTHS[sc] = checksums
    taken_from_cache("truth", sc, False)
    return checksums


def _compute_truth(sc: Scenario) -> dict[str, dict[str, str]]:
    """The checksums of the clean history: repaired from the staged incident when this process
    has built it already (:func:`_repaired_truth`, the cheap way), else rebuilt whole
    (:func:`_clean_truth`). Both give the same checksums (``tests/test_staging.py``)."""
    from .templates import built_template  # it imports this module: resolved when called

    path = built_template(sc)
    if path is not None and (sc.late or _damage(sc) is not None):
        return _repaired_truth(sc, path)
    return _clean_truth(sc)


def _clean_truth(sc: Scenario) -> dict[str, dict[str, str]]:
    """The checksums of the clean history (no outage, no bad data), built from nothing.

    A nightly scheduler builds one day at a time; here the whole history is one batched
    backfill (a step per layer, each writing every day in one transaction). The rows are the
    same: each day's transform reads the same upstream days either way (a trailing window
    reaches back only to the first day of history), and nothing in a clean history fails.
    """
    if sc.late:
        clean = Scenario(**{**sc.__dict__, "outage": None, "corrupt": (), "backfill_faults": ()})
        staged = clean.build()
        _late_truth_run(sc, staged)
    else:
        wh = Warehouse()
        source = EventSource(sc.seed, sc.entities, sc.events_per_day)
        history = PartitionSet.parse(sc.history)
        pipeline = daily_features(source,
                                  features_table=sc.features_table if sc.versioned else None)
        run_backfill(pipeline, wh, history, batch_size=len(history), backfill_id="truth",
                     clock=FixedClock(dt.datetime(2030, 1, 1)), backoff=0)
        staged = Staged(wh, pipeline)
    return _checksums_and_close(staged)


def _late_truth_run(sc: Scenario, staged: Staged) -> None:
    """Late data: the range processed once every event has long arrived."""
    run_backfill(staged.pipeline, staged.warehouse, sc.broken,
                 clock=FixedClock(dt.datetime(2030, 1, 1)))


def _checksums_and_close(staged: Staged) -> dict[str, dict[str, str]]:
    try:
        return {t: staged.warehouse.checksums(t) for t in staged.warehouse.tables()}
    finally:
        staged.warehouse.close()


def _damage(sc: Scenario) -> tuple[tuple[str, ...], PartitionSet] | None:
    """The boxes of a (not late) scenario's staged incident that may differ from the clean
    history: the layers from the first damaged one down, on the damaged days, and, below a
    layer that others read (a window reads days back), every later day of the history too.
    None when the incident is not one this can tell (then the truth is rebuilt whole).

    >>> for layers, days in map(_damage, map(scenario, ["ex1", "mini_challenge"])):
    ...     print(layers, days)
    ('raw', 'staging', 'features') 2024-12-01..2024-12-31
    ('features',) 2025-01-10..2025-01-14
    """
    names = ("raw", "staging", "features")  # daily_features, the only non-late pipeline
    history = PartitionSet.parse(sc.history)
    damaged: dict[str, set[str]] = {}
    if sc.outage:  # raw failed, everything below it was skipped (or refused: a hole upstream)
        damaged["raw"] = set(PartitionSet.parse(sc.outage))
    for fault in sc.corrupt:
        if fault.kind == "slow":
            continue  # late, not wrong
        if fault.layer not in names:
            return None
        hit = set(history) if fault.partitions is None else set(fault.partitions)
        damaged.setdefault(fault.layer, set()).update(hit)
    damaged = {layer: hit & set(history) for layer, hit in damaged.items()}
    damaged = {layer: hit for layer, hit in damaged.items() if hit}
    if not damaged:
        return None
    first = min(names.index(layer) for layer in damaged)
    days: set[str] = set()
    for layer, hit in damaged.items():
        if layer == names[-1]:  # nothing reads it: only its own days differ
            days |= hit
        else:
            days |= {d for d in history if d >= min(hit)}
    return names[first:], PartitionSet.of(sorted(days))


def _repaired_truth(sc: Scenario, template: Path) -> dict[str, dict[str, str]]:
    """The clean history's checksums from a copy of the staged incident (the file
    ``template``, never changed): the damaged boxes (:func:`_damage`) rebuilt by one batched
    backfill, everything else as the nightly runs left it (the same rows as a clean history:
    only the incident made them differ). Late data: the range processed as in
    :func:`_clean_truth`, on a copy of the history instead of a new one."""
    from .templates import copy_template

    staged = sc.restage(copy_template(template))
    if sc.late:
        _late_truth_run(sc, staged)
        return _checksums_and_close(staged)
    damage = _damage(sc)
    assert damage is not None  # the caller checked
    layers, days = damage
    pipeline = daily_features(EventSource(sc.seed, sc.entities, sc.events_per_day),
                              features_table=sc.features_table if sc.versioned else None)
    try:
        run_backfill(pipeline, staged.warehouse, days, layers=list(layers),
                     batch_size=len(days), backfill_id="truth",
                     clock=FixedClock(dt.datetime(2030, 1, 1)), backoff=0)
    except BaseException:
        staged.warehouse.close()
        raise
    return _checksums_and_close(staged)
