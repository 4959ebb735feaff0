"""Schedules and watermarks: when scheduled runs start and which partition each one processes.

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

Taught in notebooks/04_late_data.ipynb. :class:`backfill_lab.scheduler.Scheduler` runs them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from .errors import ConfigError, UnknownNameError
from .options import integer
from .partitions import key_range, parse_key, shift, to_value

__all__ = [
    "MAX_RUNS",
    "LateDataPolicy",
    "Schedule",
    "first_run",
    "instant",
    "parse_delay",
    "partition_close",
    "partition_due",
    "run_partitions",
]

MAX_RUNS = 100_000
_PERIOD = {"daily": dt.timedelta(days=1), "hourly": dt.timedelta(hours=1)}
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DELAY = re.compile(r"(\d+)\s*([dhms])")
_SCHEDULE_HELP = "schedule must look like 'daily 02:00 UTC' or 'hourly :15'"


def parse_delay(value: object, name: str = "watermark_delay") -> dt.timedelta:
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


def instant(value: str | dt.datetime | dt.date | pd.Timestamp, name: str = "time") -> dt.datetime:
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

    Taught in notebooks/01_mental_model.ipynb (A scheduler fills the newest box each period) and
    notebooks/04_late_data.ipynb (The naive nightly job: D+0, no reprocessing).
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
        """Every day at ``at`` (``'HH:MM'``, UTC)."""
        return cls.parse(f"daily {at}")

    @classmethod
    def hourly(cls, minute: int = 0) -> Schedule:
        """Every hour at ``:minute``."""
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
        """The time between two runs (a day or an hour)."""
        return _PERIOD[self.grain]

    def next_at_or_after(self, when: str | dt.datetime) -> dt.datetime:
        """The first scheduled instant at or after ``when``."""
        t = instant(when)
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
        t = instant(when)
        nxt = self.next_at_or_after(t)
        return nxt if nxt == t else nxt - self.period

    def run_times(self, after: str | dt.datetime, until: str | dt.datetime) -> list[dt.datetime]:
        """Every scheduled instant ``t`` with ``after < t <= until``, oldest first."""
        start, end = instant(after, "after"), instant(until, "until")
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
    return instant(to_value(shift(parse_key(partition), 1)))


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

    Taught in notebooks/04_late_data.ipynb (Watermark).
    """
    sched = Schedule.parse(schedule)
    t = instant(run_time, "run_time") - parse_delay(watermark_delay)
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

    Taught in notebooks/06_practical_projects.ipynb (Project 3: a late-data policy with a metrics
    dashboard).
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
        object.__setattr__(self, "reprocess_window",
                           integer("reprocess_window", self.reprocess_window, 0))

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | LateDataPolicy | None) -> LateDataPolicy:
        """From the plan's ``late_data`` mapping (None: no delay, no window)."""
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
