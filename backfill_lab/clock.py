"""Injectable clocks: the lab never reads the wall clock where a test or a notebook needs repeatable
numbers."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol

__all__ = ["Clock", "FixedClock", "SystemClock", "utc"]


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` as a naive UTC datetime: an aware one is converted, a naive one is UTC already.

    >>> import zoneinfo
    >>> utc(dt.datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("Europe/London")))
    datetime.datetime(2024, 10, 27, 1, 30)
    """
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value


class Clock(Protocol):
    """What the engine reads the time from (injectable: a notebook replays a fortnight in a
    second). Taught in notebooks/01_mental_model.ipynb (Setup) with :class:`FixedClock`."""

    def now(self) -> dt.datetime:
        """The current time, a naive UTC datetime."""
        ...


class SystemClock:
    """The real time, in UTC, without tzinfo (DuckDB TIMESTAMP)."""

    def now(self) -> dt.datetime:
        """The machine's current time (naive UTC)."""
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that starts at ``start`` and moves ``tick`` forward on every reading.

    Like every clock of the lab it reads naive UTC: an aware ``start`` (or :meth:`set` value) is
    converted to UTC first, so a clock set in local time works everywhere a clock does.

    >>> clock = FixedClock("2025-01-01T02:00", tick=dt.timedelta(seconds=1))
    >>> clock.now(), clock.now()
    (datetime.datetime(2025, 1, 1, 2, 0), datetime.datetime(2025, 1, 1, 2, 0, 1))
    >>> clock.advance(dt.timedelta(days=1)); clock.now()
    datetime.datetime(2025, 1, 2, 2, 0, 2)

    Taught in notebooks/01_mental_model.ipynb (Setup) and notebooks/04_late_data.ipynb (The naive
    nightly job: D+0, no reprocessing).
    """

    def __init__(
        self, start: str | dt.datetime, tick: dt.timedelta = dt.timedelta(0)
    ) -> None:
        self._now = utc(dt.datetime.fromisoformat(start) if isinstance(start, str) else start)
        self._tick = tick
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        """The clock's time (then moved on by ``tick``, when one was given)."""
        with self._lock:
            value = self._now
            self._now = value + self._tick
            return value

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock forward by ``delta``."""
        with self._lock:
            self._now += delta

    def set(self, value: dt.datetime) -> None:
        """Set the clock to ``value``."""
        with self._lock:
            self._now = utc(value)

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()!r}, tick={self._tick!r})"
