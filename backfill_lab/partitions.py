"""Partition keys and ranges: small pure functions over canonical key strings.

A partition key is a string: ``2024-12-01`` for a daily partition, ``2024-12-01T05:00`` for an
hourly one. Strings sort chronologically within one grain, print the way people write them, and
go into the ledger unchanged; :func:`to_value` turns one into the ``date``/``datetime`` a DuckDB
column holds.

Partition keys are UTC. A naive ``datetime`` (or key text) is taken as UTC; an aware one is
converted to UTC first, so the two 01:00 hours of a daylight-saving fall-back are two partitions
(``00:00`` and ``01:00`` UTC in Europe, say), never one, and a spring-forward skips none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .errors import ConfigError, PartitionError, UnknownNameError

__all__ = [
    "ORDERS",
    "Grain",
    "Order",
    "PartitionSet",
    "PartitionsLike",
    "grain_of",
    "key_range",
    "parse_key",
    "parse_partitions",
    "shift",
    "to_value",
    "trailing_window",
]

Grain = Literal["daily", "hourly"]
Order = Literal["ascending", "descending"]
ORDERS: tuple[str, ...] = ("ascending", "descending")
MAX_PARTITIONS = 100_000
_STEP = {"daily": dt.timedelta(days=1), "hourly": dt.timedelta(hours=1)}
_HOURLY_FORMS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H", "%Y-%m-%d %H")


def _format(value: dt.datetime, grain: Grain) -> str:
    if value.year < 1000:  # strftime's unpadded years, as keys always had them
        return value.strftime("%Y-%m-%d") if grain == "daily" else value.strftime("%Y-%m-%dT%H:00")
    day = value.date().isoformat()  # the same text as strftime, several times faster
    return day if grain == "daily" else f"{day}T{value.hour:02d}:00"


def _parse(text: str) -> tuple[dt.datetime, Grain]:
    text = text.strip()
    if not text.isascii():  # strptime reads full-width and other scripts' digits as digits
        raise PartitionError(
            f"partition key must be written in ASCII digits like '2024-12-01' or "
            f"'2024-12-01T05:00' (got {_short(text)})"
        )
    if len(text) == 10 and text[4] == text[7] == "-" and text.replace("-", "").isascii() \
            and text.replace("-", "").isdigit():
        try:  # the common case, ~20x faster than strptime (planning parses every key it maps)
            return dt.datetime.fromisoformat(text), "daily"
        except ValueError as exc:  # date-shaped, but no such day: say why
            raise PartitionError(f"partition key is not a real date: {exc}; check the month "
                                 f"and the day (got {_short(text)})") from None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d"), "daily"
    except ValueError:
        pass
    for form in _HOURLY_FORMS:
        try:
            value = dt.datetime.strptime(text, form)
        except ValueError:
            continue
        if value.minute:
            raise PartitionError(
                f"hourly partition {text!r} must start on the hour (got minute {value.minute}); "
                f"write {_format(value, 'hourly')!r}"
            )
        return value, "hourly"
    raise PartitionError(
        f"partition key must be a date like '2024-12-01' or an hour like '2024-12-01T05:00' "
        f"(got {_short(text)})"
    )


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error line stays one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_key(key: str | dt.date) -> str:
    """Return the canonical key string for a date, datetime or key text.

    >>> parse_key("2024-12-01")
    '2024-12-01'
    >>> parse_key("2024-12-01 05:00")
    '2024-12-01T05:00'
    >>> parse_key(dt.date(2025, 1, 10))
    '2025-01-10'
    """
    if isinstance(key, dt.datetime):
        if key.tzinfo is not None:  # keys are UTC: an aware time is converted, a naive one is UTC
            key = key.astimezone(dt.UTC).replace(tzinfo=None)
        if key.minute or key.second or key.microsecond:
            raise PartitionError(f"hourly partition must start on the hour (got {key!r})")
        return _format(key, "hourly")
    if isinstance(key, dt.date):
        return key.isoformat()
    if not isinstance(key, str):
        raise PartitionError(
            f"partition key must be a string or a date (got {type(key).__name__} {key!r})"
        )
    value, grain = _parse(key)
    return _format(value, grain)


def grain_of(key: str) -> Grain:
    """``daily`` or ``hourly``, read from a canonical key.

    >>> grain_of("2024-12-01"), grain_of("2024-12-01T05:00")
    ('daily', 'hourly')
    """
    return "hourly" if "T" in key else "daily"


def to_value(key: str) -> dt.date | dt.datetime:
    """The ``date`` (daily) or ``datetime`` (hourly) that a partition column holds.

    >>> to_value("2024-12-01")
    datetime.date(2024, 12, 1)
    """
    value, grain = _parse(key)
    return value.date() if grain == "daily" else value


def shift(key: str, n: int) -> str:
    """The key ``n`` partitions after ``key`` (before it when ``n`` is negative).

    >>> shift("2024-12-31", 1)
    '2025-01-01'
    >>> shift("2024-12-01T00:00", -1)
    '2024-11-30T23:00'
    """
    value, grain = _parse(key)
    return _format(value + n * _STEP[grain], grain)


def key_range(start: str, end: str) -> list[str]:
    """Every key from ``start`` to ``end``, both inclusive, oldest first.

    >>> key_range("2024-12-30", "2025-01-02")
    ['2024-12-30', '2024-12-31', '2025-01-01', '2025-01-02']
    """
    first, grain = _parse(start)
    last, end_grain = _parse(end)
    if grain != end_grain:
        raise PartitionError(
            f"range '{start}..{end}' mixes a {grain} and an {end_grain} key; "
            f"write both ends at the same grain"
        )
    if last < first:
        raise PartitionError(
            f"range '{start}..{end}' is reversed: its end is before its start; "
            f"write it as '{end}..{start}' (use order: descending to run newest first)"
        )
    count = int((last - first) / _STEP[grain]) + 1
    if count > MAX_PARTITIONS:
        raise PartitionError(
            f"range '{start}..{end}' holds {count} partitions, more than {MAX_PARTITIONS}; "
            f"split it into smaller backfills"
        )
    return [_format(first + i * _STEP[grain], grain) for i in range(count)]


def trailing_window(key: str, size: int) -> list[str]:
    """The ``size`` keys ending at ``key`` (itself included), oldest first.

    >>> trailing_window("2024-12-02", 3)
    ['2024-11-30', '2024-12-01', '2024-12-02']
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError.invalid("window", "an integer >= 1", size)
    value, grain = _parse(key)
    return [_format(value - i * _STEP[grain], grain) for i in range(size - 1, -1, -1)]


def _expand(item: object) -> list[str]:
    if isinstance(item, dt.date):
        return [parse_key(item)]
    if not isinstance(item, str):
        raise PartitionError(
            f"partitions must be a range 'A..B', a key, or a list of them "
            f"(got {type(item).__name__} {item!r})"
        )
    keys: list[str] = []
    for part in item.split(","):
        part = part.strip()
        if not part:
            continue
        if ".." in part:
            start, _sep, end = part.partition("..")
            if (not start.strip() or not end.strip() or ".." in end
                    or end.startswith(".") or start.endswith(".")):
                raise PartitionError(
                    f"range must be written 'START..END', e.g. '2024-12-01..2024-12-31' "
                    f"(got {_short(part)})"
                )
            try:
                ends = parse_key(start), parse_key(end)
            except PartitionError as exc:
                raise PartitionError(f"range {_short(part)}: {exc}") from None
            keys.extend(key_range(*ends))
        else:
            keys.append(parse_key(part))
    return keys


@dataclass(frozen=True)
class PartitionSet:
    """An ordered-by-time set of partition keys of one grain: what a backfill targets.

    >>> ps = PartitionSet.parse("2025-01-10..2025-01-12, 2025-01-20")
    >>> len(ps), ps.start, ps.end
    (4, '2025-01-10', '2025-01-20')
    >>> str(ps)
    '2025-01-10..2025-01-12, 2025-01-20'
    >>> ps.ordered("descending")[:2]
    ['2025-01-20', '2025-01-12']

    Taught in notebooks/03_versioned_recompute.ipynb (Plan the recompute).
    """

    keys: tuple[str, ...]
    grain: Grain

    @classmethod
    def parse(cls, spec: PartitionsLike) -> PartitionSet:
        """From ``'A..B'``, ``'A, B, C..D'``, a key, a date, or a list of any of these."""
        if isinstance(spec, PartitionSet):
            return spec
        items: list[object] = [spec]  # anything else is rejected by _expand, named
        if not isinstance(spec, str | dt.date) and isinstance(spec, Iterable):
            items = list(spec)
        keys: list[str] = []
        for item in items:
            keys.extend(_expand(item))
        return cls.of(keys, spec=spec, canonical=True)

    @classmethod
    def range(cls, start: str | dt.date, end: str | dt.date) -> PartitionSet:
        """Every partition from ``start`` to ``end`` inclusive."""
        return cls.of(key_range(parse_key(start), parse_key(end)), canonical=True)

    @classmethod
    def of(cls, keys: Iterable[str], *, spec: object = None,
           canonical: bool = False) -> PartitionSet:
        """From keys: deduplicated, sorted, of one grain, at most ``MAX_PARTITIONS`` of them
        (``canonical``: the keys are already canonical key strings, so not parsed again)."""
        unique = sorted(set(keys) if canonical else {parse_key(k) for k in keys})
        if not unique:
            shown = spec if spec is not None else []
            raise PartitionError(
                f"partitions must name at least one partition, e.g. '2024-12-01..2024-12-31' "
                f"(got {shown!r})"
            )
        grains = {grain_of(k) for k in unique}
        if len(grains) > 1:
            raise PartitionError(
                f"partitions mix daily and hourly keys ({unique[0]!r} and {unique[-1]!r}); "
                f"one backfill targets one grain"
            )
        if len(unique) > MAX_PARTITIONS:
            raise PartitionError(
                f"{len(unique)} partitions is more than {MAX_PARTITIONS}; split the backfill"
            )
        return cls(tuple(unique), grains.pop())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in set(self.keys)

    @property
    def start(self) -> str:
        """The oldest partition."""
        return self.keys[0]

    @property
    def end(self) -> str:
        """The newest partition."""
        return self.keys[-1]

    def ordered(self, order: str = "ascending") -> list[str]:
        """Keys in run order: ``ascending`` (oldest first) or ``descending``."""
        if order not in ORDERS:
            raise UnknownNameError.of("order", str(order), ORDERS)
        return list(self.keys) if order == "ascending" else list(reversed(self.keys))

    def runs(self) -> list[tuple[str, str]]:
        """Contiguous runs as ``(first, last)`` pairs: how a targeted set becomes ranges.

        >>> PartitionSet.parse(["2025-01-10", "2025-01-11", "2025-01-13"]).runs()
        [('2025-01-10', '2025-01-11'), ('2025-01-13', '2025-01-13')]
        """
        runs: list[tuple[str, str]] = []
        first = prev = self.keys[0]
        for key in self.keys[1:]:
            if key != shift(prev, 1):
                runs.append((first, prev))
                first = key
            prev = key
        runs.append((first, prev))
        return runs

    @property
    def is_contiguous(self) -> bool:
        """Is it one unbroken run of partitions?"""
        return len(self.runs()) == 1

    def __str__(self) -> str:
        return ", ".join(a if a == b else f"{a}..{b}" for a, b in self.runs())


PartitionsLike: TypeAlias = str | dt.date | Iterable[str | dt.date] | PartitionSet
"""What every function that takes partitions accepts: ``'A..B'``, ``'A, B, C..D'``, a key, a
date, a list of any of these, or a :class:`PartitionSet`."""


def parse_partitions(spec: PartitionsLike) -> PartitionSet:
    """Shorthand for :meth:`PartitionSet.parse`."""
    return PartitionSet.parse(spec)
