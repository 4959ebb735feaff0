"""A simulated scheduler: a schedule, catchup, a watermark delay and a rolling reprocessing window.

The scheduler fills the newest box of the partition grid each period, the way an orchestrator
does, on an injectable clock, so a notebook can replay two weeks of nightly runs in a second.
When runs start and which partition each processes (the schedule, the watermark delay, the
rolling reprocessing window) is :mod:`backfill_lab.schedule`.

**Catchup.** The scheduler remembers (in the warehouse) the last scheduled run it finished. When it
is next ticked, every scheduled time since then is *missed*: with ``catchup=True`` they all run,
oldest first, each processing its own partition; with ``catchup=False`` only the latest runs and
the others are recorded as ``skipped``. A failed run stops that tick (later runs would build on
its hole) and is retried, resuming its unfinished steps, on the next tick.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ._db import one, run
from .clock import Clock, FixedClock
from .errors import ConfigError, MergeKeyError, UnknownNameError
from .faults import Faults
from .ledger import RUN_STATUSES, RunStatus, StepStatus
from .options import BackfillOptions, check, check_mode, flag
from .partitions import grain_of, parse_key
from .pipeline import Pipeline
from .runner import RUN_CONTEXT, BackfillRunner, SharedRuns, shared_runs
from .schedule import (
    LateDataPolicy,
    Schedule,
    first_run,
    instant,
    parse_delay,
    partition_close,
    partition_due,
    run_partitions,
)
from .warehouse import Warehouse

__all__ = [
    "RUN_STATUSES",
    "LateDataPolicy",
    "Schedule",
    "ScheduledRun",
    "Scheduler",
    "first_run",
    "parse_delay",
    "partition_close",
    "partition_due",
    "run_partitions",
]

_TABLE = "_bl_schedule_runs"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    scheduler VARCHAR, seq BIGINT, run_time TIMESTAMP, executed_at TIMESTAMP,
    partition VARCHAR, reprocessed VARCHAR[], status VARCHAR, backfill_id VARCHAR,
    error VARCHAR
)
"""
_COLUMNS = ("run_time", "executed_at", "partition", "reprocessed", "status", "backfill_id",
            "error")
# Options of the runner that the scheduler decides itself, run by run.
_OWN_OPTIONS = ("partitions", "layers", "mode", "merge_keys", "backfill_id", "clock")
_PASSED_ON = tuple(n for n in (*BackfillOptions.names(), *RUN_CONTEXT) if n not in _OWN_OPTIONS)


@dataclass(frozen=True)
class ScheduledRun:
    """What one scheduled run did (or that it was skipped)."""

    run_time: dt.datetime
    executed_at: dt.datetime
    partition: str
    reprocessed: tuple[str, ...]
    status: str
    backfill_id: str | None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        """The run as a row of ``Scheduler.runs()``."""
        return {c: getattr(self, c) for c in _COLUMNS} | {"reprocessed": list(self.reprocessed)}


def _frame(rows: Sequence[Mapping[Any, Any]]) -> pd.DataFrame:
    """Runs as a DataFrame with the columns of ``Scheduler.runs()``."""
    df = pd.DataFrame(list(rows), columns=list(_COLUMNS))
    for column in ("run_time", "executed_at"):
        df[column] = pd.to_datetime(df[column])
    return df


def _done_after(done: dt.datetime, records: Sequence[ScheduledRun]) -> dt.datetime:
    """The last instant done once ``records`` are recorded: what :meth:`Scheduler.last_done`
    would read back."""
    finished = [r.run_time for r in records if r.status in (RunStatus.SUCCESS, RunStatus.SKIPPED)]
    return max([done, *finished])


class Scheduler:
    """Run ``pipeline`` on ``schedule`` against ``warehouse``, on ``clock``.

    Each run is a real backfill (:func:`backfill_lab.run_backfill`) with backfill id
    ``scheduled-<run time>``, over the partition due plus the ``reprocess_window`` before it, in
    write mode ``mode``. In ``merge`` mode a layer merges on its own declared
    ``Layer.merge_keys``; ``merge_keys`` are used for the layers that declare none (layers whose
    keys differ run as consecutive backfills ``scheduled-<run time>/<layer>``).

    Progress is stored in the warehouse (table ``_bl_schedule_runs``), so a new ``Scheduler``
    with the same ``name`` (default: the pipeline's name) continues where the last one stopped.
    ``start`` is the first partition the schedule owns (default: the newest one due now); nothing
    before it is built. Other keyword options (``concurrency``, ``retries``, ``faults``,
    ``audit_tags``, ``target``, ...) go to every backfill.

    Taught in notebooks/01_mental_model.ipynb (A scheduler fills the newest box each period),
    notebooks/04_late_data.ipynb (The naive nightly job: D+0, no reprocessing) and
    notebooks/06_practical_projects.ipynb (Project 3: a late-data policy with a metrics dashboard).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        warehouse: Warehouse,
        schedule: Schedule | str = "daily 02:00 UTC",
        *,
        clock: Clock,
        catchup: bool = True,
        watermark_delay: str | dt.timedelta = "0d",
        reprocess_window: int = 0,
        mode: str = "overwrite",
        merge_keys: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
        start: str | dt.date | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        self.pipeline = pipeline
        self.warehouse = warehouse
        self.schedule = Schedule.parse(schedule)
        self.clock = clock
        self.catchup = flag("catchup", catchup)
        self.policy = LateDataPolicy(parse_delay(watermark_delay), reprocess_window)
        self.mode = check_mode(mode)
        self.merge_keys: tuple[str, ...] = check("merge_keys", merge_keys)
        self.layers = pipeline.check_layers(check("layers", layers) or pipeline.layer_names)
        self.groups = self._groups()
        self.options, self.context = self._options(options)
        self._of_group: dict[tuple[tuple[str, ...], tuple[str, ...]],
                             tuple[BackfillOptions, BackfillOptions]] = {}
        self.name = name or pipeline.name
        self._id_prefix = "scheduled-" if name is None else f"scheduled-{name}-"
        warehouse.ensure(_TABLE, _SCHEMA)
        stored = warehouse.get_meta(self._meta("start"))
        if start is not None:
            self.start = parse_key(start)
        elif stored is not None:
            self.start = stored
        else:
            self.start = partition_due(clock.now(), self.schedule, self.watermark_delay)
        if grain_of(self.start) != self.schedule.grain:
            raise ConfigError(
                f"start {self.start!r} must be a {self.schedule.grain} partition, like the "
                f"schedule {str(self.schedule)!r}"
            )
        if self.start != stored:
            warehouse.set_meta(self._meta("start"), self.start)

    # -- configuration --------------------------------------------------------------------
    @property
    def watermark_delay(self) -> dt.timedelta:
        """How long after a partition closes its first run waits."""
        return self.policy.watermark_delay

    @property
    def reprocess_window(self) -> int:
        """How many partitions before the one due each run rebuilds."""
        return self.policy.reprocess_window

    def _meta(self, key: str) -> str:
        return f"schedule.{self.name}.{key}"

    def _groups(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Consecutive layers that share merge keys: ``[(keys, layers), ...]``."""
        groups: list[tuple[tuple[str, ...], list[str]]] = []
        for name in self.layers:
            keys: tuple[str, ...] = ()
            if self.mode == "merge":
                keys = self.pipeline.layer(name).merge_keys or self.merge_keys
                if not keys:
                    raise MergeKeyError(
                        f"write mode 'merge' needs merge_keys: layer {name!r} declares none and "
                        f"none were given (got merge_keys={list(self.merge_keys)}); pass e.g. "
                        f"merge_keys=['entity_id', 'date']"
                    )
            if groups and groups[-1][0] == keys:
                groups[-1][1].append(name)
            else:
                groups.append((keys, [name]))
        return [(keys, tuple(names)) for keys, names in groups]

    def _options(self, options: dict[str, Any]) -> tuple[BackfillOptions, dict[str, Any]]:
        """The options every run's backfill gets, and the rest of its context (faults, ...)."""
        for name in options:
            if name in _OWN_OPTIONS:
                raise ConfigError(
                    f"the scheduler chooses {name!r} for each run itself (got {name}="
                    f"{options[name]!r}); set start, layers, mode or merge_keys on the Scheduler"
                )
            if name not in _PASSED_ON:
                raise UnknownNameError.of("scheduler option", name, _PASSED_ON)
        settings = {k: v for k, v in options.items() if k not in RUN_CONTEXT}
        keys, layers = self.groups[0]
        base = BackfillOptions.parse({**settings, "mode": self.mode, "merge_keys": keys,
                                      "layers": layers})
        context = {k: v for k, v in options.items() if k in RUN_CONTEXT}
        if "faults" in context and not isinstance(context["faults"], Faults):
            # one Faults for every run, so "fail 2 times" counts attempts across runs
            context["faults"] = Faults(context["faults"] or ())
        return base, context

    def _group_options(self, keys: tuple[str, ...], layers: tuple[str, ...]) -> BackfillOptions:
        """The options of a group's backfill: :attr:`options` with the group's layers and merge
        keys (checked once, then kept while :attr:`options` stays the same frozen value)."""
        kept = self._of_group.get((keys, layers))
        if kept is None or kept[0] is not self.options:
            kept = self._of_group[keys, layers] = (
                self.options, self.options.replace(layers=layers, merge_keys=keys))
        return kept[1]

    # -- planning -------------------------------------------------------------------------
    def plan(self, run_time: str | dt.datetime) -> tuple[str, list[str]]:
        """``(partition due, partitions reprocessed)`` for the run at ``run_time``."""
        due = partition_due(run_time, self.schedule, self.watermark_delay)
        window = run_partitions(due, self.reprocess_window, self.start)
        return due, window[:-1]

    def last_done(self) -> dt.datetime:
        """The last scheduled instant that succeeded or was skipped (before the first run when
        nothing has run yet): runs after it are missed.

        Read from the warehouse; :meth:`run_until` reads it once, then follows its own runs."""
        origin = first_run(self.start, self.schedule, self.watermark_delay) - self.schedule.period
        row = one(
            self.warehouse.cursor(),
            f"SELECT max(run_time) FROM {_TABLE} WHERE scheduler = ? "
            f"AND status IN ('success', 'skipped')",
            [self.name],
        )
        done = row[0] if row and row[0] is not None else None
        return origin if done is None else max(instant(done), origin)

    def pending(self, now: str | dt.datetime | None = None) -> list[dt.datetime]:
        """Scheduled instants not yet done at ``now`` (default: the clock's time), oldest first."""
        when = self.clock.now() if now is None else instant(now, "now")
        return self.schedule.run_times(self.last_done(), when)

    # -- running --------------------------------------------------------------------------
    def tick(self) -> pd.DataFrame:
        """Perform every run due at the clock's time: all missed runs (catchup) or the latest.

        Returns the runs performed (see :meth:`runs` for the columns).
        """
        done = self.last_done()
        with shared_runs(self.warehouse, self.options.concurrency) as shared:
            records = self._tick(done, shared)
        return _frame([r.row() for r in records])

    def _tick(self, done: dt.datetime, shared: SharedRuns) -> list[ScheduledRun]:
        """The runs due at the clock's time after ``done`` (the last instant done): perform
        them, record each as it ends, and return them."""
        due = self.schedule.run_times(done, self.clock.now())
        records: list[ScheduledRun] = []
        if not due:
            return records
        if not self.catchup and len(due) > 1:
            now = self.clock.now()
            for t in due[:-1]:
                part, _ = self.plan(t)
                records.append(ScheduledRun(t, now, part, (), RunStatus.SKIPPED, None,
                                            "catchup is off: only the latest interval runs"))
            self._record(records)
            due = due[-1:]
        for t in due:
            record = self._run(t, shared)
            self._record([record])
            records.append(record)
            if record.status != RunStatus.SUCCESS:
                break  # later runs would build on its hole; the next tick retries it
        return records

    def run_until(self, when: str | dt.datetime) -> pd.DataFrame:
        """Advance the clock run by run to ``when``, ticking at every scheduled instant.

        Runs that are already due (a gap) go first, at the clock's current time. Returns every
        run performed. Needs a clock that can be set (:class:`backfill_lab.FixedClock`).
        """
        end = instant(when, "when")
        if not isinstance(self.clock, FixedClock):
            raise ConfigError.invalid(
                "clock", "a FixedClock (run_until moves the clock)", self.clock
            )
        done = self.last_done()  # then followed run by run: only these ticks record runs
        with shared_runs(self.warehouse, self.options.concurrency) as shared:
            records = self._tick(done, shared)
            done = _done_after(done, records)
            for t in self.schedule.run_times(self.clock.now(), end):
                if self.clock.now() < t:
                    self.clock.set(t)
                ran = self._tick(done, shared)
                done = _done_after(done, ran)
                records += ran
        if self.clock.now() < end:
            self.clock.set(end)
        return _frame([r.row() for r in records])

    def runs(self) -> pd.DataFrame:
        """Every recorded run of this scheduler, in the order they happened: ``run_time``,
        ``executed_at`` (later than run_time for catchup runs), ``partition`` (the one due),
        ``reprocessed`` (earlier partitions rerun), ``status`` (success | failed | skipped),
        ``backfill_id`` and ``error``."""
        df = self.warehouse.sql(
            f"SELECT {', '.join(_COLUMNS)} FROM {_TABLE} WHERE scheduler = ? ORDER BY seq",
            [self.name],
        )
        df["reprocessed"] = [list(v) if v is not None else [] for v in df["reprocessed"]]
        return _frame(df.to_dict("records"))

    def _id(self, run_time: dt.datetime) -> str:
        return f"{self._id_prefix}{run_time.isoformat(timespec='minutes')}"

    def _run(self, run_time: dt.datetime, shared: SharedRuns) -> ScheduledRun:
        executed_at = self.clock.now()
        due, reprocessed = self.plan(run_time)
        partitions = [*reprocessed, due]
        backfill_id = self._id(run_time)
        context = dict(self.context)
        tags = {"trigger": "schedule", "run_time": run_time.isoformat(timespec="minutes"),
                **{str(k): str(v) for k, v in (context.pop("audit_tags", None) or {}).items()}}
        errors: list[str] = []
        written: set[tuple[str, str]] = set()  # what the run's earlier backfills committed
        for keys, layers in self.groups:
            bid = backfill_id if len(self.groups) == 1 else f"{backfill_id}/{layers[0]}"
            runner = BackfillRunner.sharing(
                shared, self.pipeline, self.warehouse, partitions,
                self._group_options(keys, layers), backfill_id=bid,
                clock=self.clock, audit_tags=tags, **context,
            )
            runner.written = written
            result = runner.run()
            if not result.ok:  # later layers wait for the retry (which resumes this backfill)
                errors = [f"{s.layer} {s.partition}: {s.error}" for s in result.steps
                          if s.status != StepStatus.SUCCESS] or [f"backfill {bid} {result.status}"]
                break
        status = RunStatus.FAILED if errors else RunStatus.SUCCESS
        return ScheduledRun(run_time, executed_at, due, tuple(reprocessed), status, backfill_id,
                            errors[0] if errors else None)

    def _record(self, records: Sequence[ScheduledRun]) -> None:
        cur = self.warehouse.cursor()
        for r in records:  # one statement each: the next seq is read by the INSERT itself
            run(cur, f"INSERT INTO {_TABLE} SELECT ?, (SELECT coalesce(max(seq), 0) + 1 FROM "
                f"{_TABLE}), ?, ?, ?, ?, ?, ?, ?",
                [self.name, r.run_time, r.executed_at, r.partition, list(r.reprocessed),
                 r.status, r.backfill_id, r.error])

    def __repr__(self) -> str:
        return (
            f"Scheduler({self.pipeline.name!r}, {str(self.schedule)!r}, catchup={self.catchup}, "
            f"watermark_delay={self.watermark_delay!r}, reprocess_window="
            f"{self.reprocess_window}, mode={self.mode!r}, start={self.start!r})"
        )
