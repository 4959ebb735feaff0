"""A simulated scheduler: a schedule, catchup, a watermark delay and a rolling reprocessing window.

The scheduler fills the newest box of the partition grid each period, the way an orchestrator
does, on an injectable clock, so a notebook can replay two weeks of nightly runs in a second.

**Schedule.** ``daily 02:00 UTC`` runs once a day at 02:00; ``hourly :15`` every hour at a quarter
past. Partitions have the schedule's grain (a daily schedule builds daily partitions).

**Watermark.** Partition D *closes* when its period ends (day D closes at D+1 00:00). A run at
time R processes the newest partition whose close plus the watermark delay has passed by R. With
delay 0 the 02:00 run on D+1 processes D: the naive nightly job ("D+0"), which misses every event
of D that arrives after 02:00 on D+1. With delay ``2d`` D is processed by the first run at or after
D's close + 2 days (02:00 on D+3): an event of D that is at most 48 hours late has arrived by then.

>>> s = Schedule.parse("daily 02:00 UTC")
>>> partition_due("2025-01-02T02:00", s)            # D+0: the nightly run processes yesterday
'2025-01-01'
>>> partition_due("2025-01-04T02:00", s, "2d")      # D+2: three nights later, D is complete
'2025-01-01'
>>> first_run("2025-01-01", s, "2d")
datetime.datetime(2025, 1, 4, 2, 0)

**Rolling reprocessing window.** With ``reprocess_window=K`` each run also reruns the K partitions
before the one due, so events that arrived after a partition was first processed are picked up.
That is only safe when the write is idempotent (``overwrite``, or ``merge`` on keys that identify
a row); with ``append`` every rerun adds the partition's rows again.

>>> run_partitions("2025-01-05", 3)
['2025-01-02', '2025-01-03', '2025-01-04', '2025-01-05']

**Catchup.** The scheduler remembers (in the warehouse) the last scheduled run it finished. When it
is next ticked, every scheduled time since then is *missed*: with ``catchup=True`` they all run,
oldest first, each processing its own partition; with ``catchup=False`` only the latest runs and
the others are recorded as ``skipped``. A failed run stops that tick (later runs would build on
its hole) and is retried, resuming its unfinished steps, on the next tick.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from ._db import one, run
from .clock import Clock, FixedClock
from .errors import ConfigError, UnknownNameError
from .faults import Faults
from .partitions import grain_of, key_range, parse_key, shift, to_value
from .pipeline import Pipeline
from .runner import BackfillResult, BackfillRunner, run_backfill
from .warehouse import WRITE_MODES, Warehouse

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

RUN_STATUSES: tuple[str, ...] = ("success", "failed", "skipped")
MAX_RUNS = 100_000
_PERIOD = {"daily": dt.timedelta(days=1), "hourly": dt.timedelta(hours=1)}
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DELAY = re.compile(r"(\d+)\s*([dhms])")
_SCHEDULE_HELP = "schedule must look like 'daily 02:00 UTC' or 'hourly :15'"
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


def parse_delay(value: str | dt.timedelta, name: str = "watermark_delay") -> dt.timedelta:
    """A non-negative duration from ``'2d'``, ``'48h'``, ``'0d'``, ``'1d12h'``, ``'90m'``.

    >>> parse_delay("2d") == parse_delay("48h") == dt.timedelta(days=2)
    True
    >>> parse_delay("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_delay("two days")
    Traceback (most recent call last):
    ...
    backfill_lab.errors.ConfigError: 'watermark_delay' must be a duration like ... (got 'two days')
    """
    expected = "a duration like '2d', '48h' or '0d'"
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0):
            raise ConfigError.invalid(name, "a duration >= 0", value)
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError.invalid(name, expected, value)
    text = value.strip().lower().replace(" ", "")
    if not text or _DELAY.sub("", text):
        raise ConfigError.invalid(name, expected, value)
    total = dt.timedelta(0)
    for amount, unit in _DELAY.findall(text):
        total += dt.timedelta(**{_UNITS[unit]: int(amount)})
    return total


def _instant(value: str | dt.datetime | dt.date | pd.Timestamp, name: str = "time") -> dt.datetime:
    """A naive UTC datetime from text, a date, a datetime or a Timestamp."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError.invalid(name, "a time like '2025-01-04T02:00'", value) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise ConfigError.invalid(name, "a time like '2025-01-04T02:00'", value)


@dataclass(frozen=True)
class Schedule:
    """When runs start: every day at ``hour:minute`` UTC, or every hour at ``:minute``.

    >>> s = Schedule.parse("daily 02:00 UTC")
    >>> s, str(s)
    (Schedule(grain='daily', hour=2, minute=0), 'daily 02:00 UTC')
    >>> s.run_times("2025-01-01T02:00", "2025-01-03T02:00")   # after < t <= until
    [datetime.datetime(2025, 1, 2, 2, 0), datetime.datetime(2025, 1, 3, 2, 0)]
    >>> Schedule.parse("hourly :15").next_at_or_after("2025-01-01T05:20")
    datetime.datetime(2025, 1, 1, 6, 15)
    """

    grain: Literal["daily", "hourly"] = "daily"
    hour: int = 0
    minute: int = 0

    def __post_init__(self) -> None:
        if self.grain not in _PERIOD:
            raise UnknownNameError.of("schedule grain", str(self.grain), _PERIOD)
        if not isinstance(self.hour, int) or not 0 <= self.hour <= 23:
            raise ConfigError.invalid("schedule hour", "an integer from 0 to 23", self.hour)
        if not isinstance(self.minute, int) or not 0 <= self.minute <= 59:
            raise ConfigError.invalid("schedule minute", "an integer from 0 to 59", self.minute)
        if self.grain == "hourly" and self.hour:
            raise ConfigError.invalid("hour of an hourly schedule", "0", self.hour)

    @classmethod
    def daily(cls, at: str = "00:00") -> Schedule:
        return cls.parse(f"daily {at}")

    @classmethod
    def hourly(cls, minute: int = 0) -> Schedule:
        return cls("hourly", 0, minute)

    @classmethod
    def parse(cls, spec: str | Schedule) -> Schedule:
        """From ``'daily 02:00 UTC'``, ``'daily 02:00'``, ``'daily'``, ``'hourly :15'``,
        ``'hourly'`` (``@daily`` and ``@hourly`` too). Only UTC: the lab's clock is UTC.

        >>> Schedule.parse("nightly")
        Traceback (most recent call last):
        ...
        backfill_lab.errors.ConfigError: schedule must look like 'daily 02:00 UTC' or ...'nightly')
        """
        if isinstance(spec, Schedule):
            return spec
        if not isinstance(spec, str):
            raise ConfigError(f"{_SCHEDULE_HELP} (got {spec!r})")
        words = spec.strip().split()
        if words and words[-1].upper() in ("UTC", "Z"):
            words = words[:-1]
        elif len(words) >= 2 and re.fullmatch(r"[A-Za-z][A-Za-z_/+-]*", words[-1]):
            raise ConfigError(
                f"schedule times are UTC only (got {spec!r}); convert the time to UTC and "
                f"write e.g. 'daily 02:00 UTC'"
            )
        kind = words[0].lower().lstrip("@") if words else ""
        rest = words[1:]
        if kind == "daily" and len(rest) <= 1:
            match = re.fullmatch(r"(\d{1,2}):(\d{2})", rest[0]) if rest else None
            if rest and match is None:
                raise ConfigError(f"{_SCHEDULE_HELP} (got {spec!r})")
            hour, minute = (int(match[1]), int(match[2])) if match else (0, 0)
            if hour > 23 or minute > 59:
                raise ConfigError(
                    f"schedule time must be between 00:00 and 23:59 (got {spec!r})"
                )
            return cls("daily", hour, minute)
        if kind == "hourly" and len(rest) <= 1:
            match = re.fullmatch(r":(\d{2})", rest[0]) if rest else None
            if rest and match is None:
                raise ConfigError(f"{_SCHEDULE_HELP} (got {spec!r})")
            minute = int(match[1]) if match else 0
            if minute > 59:
                raise ConfigError(f"schedule minute must be from :00 to :59 (got {spec!r})")
            return cls("hourly", 0, minute)
        raise ConfigError(f"{_SCHEDULE_HELP} (got {spec!r})")

    @property
    def period(self) -> dt.timedelta:
        return _PERIOD[self.grain]

    def next_at_or_after(self, when: str | dt.datetime) -> dt.datetime:
        """The first scheduled instant at or after ``when``."""
        t = _instant(when)
        if self.grain == "daily":
            candidate = t.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        else:
            candidate = t.replace(minute=self.minute, second=0, microsecond=0)
        return candidate if candidate >= t else candidate + self.period

    def previous(self, when: str | dt.datetime) -> dt.datetime:
        """The last scheduled instant at or before ``when``.

        >>> Schedule.parse("daily 02:00").previous("2025-01-03T01:59")
        datetime.datetime(2025, 1, 2, 2, 0)
        """
        t = _instant(when)
        nxt = self.next_at_or_after(t)
        return nxt if nxt == t else nxt - self.period

    def run_times(self, after: str | dt.datetime, until: str | dt.datetime) -> list[dt.datetime]:
        """Every scheduled instant ``t`` with ``after < t <= until``, oldest first."""
        start, end = _instant(after, "after"), _instant(until, "until")
        t = self.next_at_or_after(start)
        if t == start:
            t += self.period
        if end < t:
            return []
        count = int((end - t) / self.period) + 1
        if count > MAX_RUNS:
            raise ConfigError(
                f"{count} scheduled runs between {start} and {end} is more than {MAX_RUNS}; "
                f"advance the clock in smaller steps"
            )
        return [t + i * self.period for i in range(count)]

    def __str__(self) -> str:
        if self.grain == "daily":
            return f"daily {self.hour:02d}:{self.minute:02d} UTC"
        return f"hourly :{self.minute:02d}"


def partition_close(partition: str) -> dt.datetime:
    """When a partition's period ends (day D closes at D+1 00:00).

    >>> partition_close("2025-01-01"), partition_close("2025-01-01T05:00")
    (datetime.datetime(2025, 1, 2, 0, 0), datetime.datetime(2025, 1, 1, 6, 0))
    """
    return _instant(to_value(shift(parse_key(partition), 1)))


def partition_due(
    run_time: str | dt.datetime, schedule: Schedule | str = "daily",
    watermark_delay: str | dt.timedelta = "0d",
) -> str:
    """The newest partition whose close + ``watermark_delay`` is at or before ``run_time``.

    >>> partition_due("2025-01-02T02:00", "daily 02:00 UTC")
    '2025-01-01'
    >>> partition_due("2025-01-03T02:00", "daily 02:00 UTC", "2d")   # D+2 not reached for 01-01
    '2024-12-31'
    >>> partition_due("2025-01-01T05:15", "hourly :15")
    '2025-01-01T04:00'
    """
    sched = Schedule.parse(schedule)
    t = _instant(run_time, "run_time") - parse_delay(watermark_delay)
    if sched.grain == "daily":
        floor = dt.datetime(t.year, t.month, t.day)
    else:
        floor = t.replace(minute=0, second=0, microsecond=0)
    return parse_key(_key_value(floor - sched.period, sched.grain))


def _key_value(value: dt.datetime, grain: str) -> dt.date | dt.datetime:
    return value.date() if grain == "daily" else value


def first_run(
    partition: str, schedule: Schedule | str, watermark_delay: str | dt.timedelta = "0d"
) -> dt.datetime:
    """The scheduled run that processes ``partition`` for the first time.

    >>> first_run("2025-01-01", "daily 02:00 UTC")
    datetime.datetime(2025, 1, 2, 2, 0)
    """
    sched = Schedule.parse(schedule)
    return sched.next_at_or_after(partition_close(partition) + parse_delay(watermark_delay))


def run_partitions(due: str, reprocess_window: int = 0, start: str | None = None) -> list[str]:
    """The partitions one run builds: the ``reprocess_window`` before ``due``, then ``due``,
    never before ``start`` (the first partition the schedule owns).

    >>> run_partitions("2025-01-02", 3, start="2025-01-01")
    ['2025-01-01', '2025-01-02']
    """
    keys = key_range(shift(due, -reprocess_window), due)
    return [k for k in keys if start is None or k >= start]


def _window(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError.invalid(
            "reprocess_window", "a number of partitions >= 0, e.g. 3", value
        )
    return value


@dataclass(frozen=True)
class LateDataPolicy:
    """The plan's ``late_data: {watermark_delay: 2d, reprocess_window: 3}``.

    >>> LateDataPolicy.parse({"watermark_delay": "2d", "reprocess_window": 3})
    LateDataPolicy(watermark_delay=datetime.timedelta(days=2), reprocess_window=3)
    >>> LateDataPolicy.parse({"watermark": "2d"})
    Traceback (most recent call last):
    ...
    backfill_lab.errors.UnknownNameError: unknown late_data key 'watermark'; ... 'watermark_delay'?
    """

    watermark_delay: dt.timedelta = dt.timedelta(0)
    reprocess_window: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "watermark_delay", parse_delay(self.watermark_delay))
        object.__setattr__(self, "reprocess_window", _window(self.reprocess_window))

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | LateDataPolicy | None) -> LateDataPolicy:
        if spec is None:
            return cls()
        if isinstance(spec, LateDataPolicy):
            return spec
        if not isinstance(spec, Mapping):
            raise ConfigError.invalid(
                "late_data", "a mapping like {watermark_delay: 2d, reprocess_window: 3}", spec
            )
        known = ("watermark_delay", "reprocess_window")
        for key in spec:
            if key not in known:
                raise UnknownNameError.of("late_data key", str(key), known)
        return cls(spec.get("watermark_delay", "0d"), spec.get("reprocess_window", 0))

    def __str__(self) -> str:
        hours = self.watermark_delay / dt.timedelta(hours=1)
        return f"watermark {hours:g}h, reprocess window {self.reprocess_window}"


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
        return {c: getattr(self, c) for c in _COLUMNS} | {"reprocessed": list(self.reprocessed)}


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(_COLUMNS))
    for column in ("run_time", "executed_at"):
        df[column] = pd.to_datetime(df[column])
    return df


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
        if not isinstance(catchup, bool):
            raise ConfigError.invalid("catchup", "true or false", catchup)
        self.catchup = catchup
        self.policy = LateDataPolicy(watermark_delay, reprocess_window)
        if mode not in WRITE_MODES:
            raise UnknownNameError.of("write mode", str(mode), WRITE_MODES)
        self.mode = mode
        self.merge_keys = tuple(merge_keys or ())
        self.layers = pipeline.check_layers(layers if layers is not None else pipeline.layer_names)
        if not self.layers:
            raise ConfigError.invalid("layers", "at least one layer name", list(layers or []))
        self.groups = self._groups()
        self.options = self._options(options)
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
        return self.policy.watermark_delay

    @property
    def reprocess_window(self) -> int:
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
                    raise ConfigError(
                        f"write mode 'merge' needs merge_keys: layer {name!r} declares none and "
                        f"none were given (got merge_keys={list(self.merge_keys)}); pass e.g. "
                        f"merge_keys=['entity_id', 'date']"
                    )
            if groups and groups[-1][0] == keys:
                groups[-1][1].append(name)
            else:
                groups.append((keys, [name]))
        return [(keys, tuple(names)) for keys, names in groups]

    @staticmethod
    def _options(options: dict[str, Any]) -> dict[str, Any]:
        fixed = ("self", "pipeline", "warehouse")
        known = [p for p in inspect.signature(BackfillRunner.__init__).parameters
                 if p not in fixed and p not in _OWN_OPTIONS]
        for name in options:
            if name in _OWN_OPTIONS:
                raise ConfigError(
                    f"the scheduler chooses {name!r} for each run itself (got {name}="
                    f"{options[name]!r}); set start, layers, mode or merge_keys on the Scheduler"
                )
            if name not in known:
                raise UnknownNameError.of("scheduler option", name, known)
        out = dict(options)
        if "faults" in out and not isinstance(out["faults"], Faults):
            # one Faults for every run, so "fail 2 times" counts attempts across runs
            out["faults"] = Faults(out["faults"] or ())
        return out

    # -- planning -------------------------------------------------------------------------
    def plan(self, run_time: str | dt.datetime) -> tuple[str, list[str]]:
        """``(partition due, partitions reprocessed)`` for the run at ``run_time``."""
        due = partition_due(run_time, self.schedule, self.watermark_delay)
        window = run_partitions(due, self.reprocess_window, self.start)
        return due, window[:-1]

    def last_done(self) -> dt.datetime:
        """The last scheduled instant that succeeded or was skipped (before the first run when
        nothing has run yet): runs after it are missed."""
        origin = first_run(self.start, self.schedule, self.watermark_delay) - self.schedule.period
        row = one(
            self.warehouse.cursor(),
            f"SELECT max(run_time) FROM {_TABLE} WHERE scheduler = ? "
            f"AND status IN ('success', 'skipped')",
            [self.name],
        )
        done = row[0] if row and row[0] is not None else None
        return origin if done is None else max(_instant(done), origin)

    def pending(self, now: str | dt.datetime | None = None) -> list[dt.datetime]:
        """Scheduled instants not yet done at ``now`` (default: the clock's time), oldest first."""
        when = self.clock.now() if now is None else _instant(now, "now")
        return self.schedule.run_times(self.last_done(), when)

    # -- running --------------------------------------------------------------------------
    def tick(self) -> pd.DataFrame:
        """Perform every run due at the clock's time: all missed runs (catchup) or the latest.

        Returns the runs performed (see :meth:`runs` for the columns).
        """
        due = self.pending()
        records: list[ScheduledRun] = []
        if not due:
            return _frame([])
        if not self.catchup and len(due) > 1:
            now = self.clock.now()
            for t in due[:-1]:
                part, _ = self.plan(t)
                records.append(ScheduledRun(t, now, part, (), "skipped", None,
                                            "catchup is off: only the latest interval runs"))
            self._record(records)
            due = due[-1:]
        for t in due:
            record = self._run(t)
            self._record([record])
            records.append(record)
            if record.status != "success":
                break  # later runs would build on its hole; the next tick retries it
        return _frame([r.row() for r in records])

    def run_until(self, when: str | dt.datetime) -> pd.DataFrame:
        """Advance the clock run by run to ``when``, ticking at every scheduled instant.

        Runs that are already due (a gap) go first, at the clock's current time. Returns every
        run performed. Needs a clock that can be set (:class:`backfill_lab.FixedClock`).
        """
        end = _instant(when, "when")
        if not isinstance(self.clock, FixedClock):
            raise ConfigError.invalid(
                "clock", "a FixedClock (run_until moves the clock)", self.clock
            )
        frames = [self.tick()]
        for t in self.schedule.run_times(self.clock.now(), end):
            if self.clock.now() < t:
                self.clock.set(t)
            frames.append(self.tick())
        if self.clock.now() < end:
            self.clock.set(end)
        rows = [r for f in frames for r in f.to_dict("records")]
        return _frame(rows)

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

    def _run(self, run_time: dt.datetime) -> ScheduledRun:
        executed_at = self.clock.now()
        due, reprocessed = self.plan(run_time)
        partitions = [*reprocessed, due]
        backfill_id = self._id(run_time)
        options = dict(self.options)
        tags = {"trigger": "schedule", "run_time": run_time.isoformat(timespec="minutes"),
                **{str(k): str(v) for k, v in (options.pop("audit_tags", None) or {}).items()}}
        errors: list[str] = []
        for keys, layers in self.groups:
            bid = backfill_id if len(self.groups) == 1 else f"{backfill_id}/{layers[0]}"
            result = run_backfill(
                self.pipeline, self.warehouse, partitions, layers=list(layers), mode=self.mode,
                merge_keys=list(keys) or None, backfill_id=bid, clock=self.clock,
                audit_tags=tags, **options,
            )
            assert isinstance(result, BackfillResult)
            if not result.ok:  # later layers wait for the retry (which resumes this backfill)
                errors = [f"{s.layer} {s.partition}: {s.error}" for s in result.steps
                          if s.status != "success"] or [f"backfill {bid} {result.status}"]
                break
        status = "success" if not errors else "failed"
        return ScheduledRun(run_time, executed_at, due, tuple(reprocessed), status, backfill_id,
                            errors[0] if errors else None)

    def _record(self, records: Sequence[ScheduledRun]) -> None:
        cur = self.warehouse.cursor()
        row = one(cur, f"SELECT coalesce(max(seq), 0) FROM {_TABLE}")
        seq = int(row[0]) if row else 0
        for i, r in enumerate(records, start=1):
            run(cur, f"INSERT INTO {_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.name, seq + i, r.run_time, r.executed_at, r.partition,
                 list(r.reprocessed), r.status, r.backfill_id, r.error])

    def __repr__(self) -> str:
        return (
            f"Scheduler({self.pipeline.name!r}, {str(self.schedule)!r}, catchup={self.catchup}, "
            f"watermark_delay={self.watermark_delay!r}, reprocess_window="
            f"{self.reprocess_window}, mode={self.mode!r}, start={self.start!r})"
        )
