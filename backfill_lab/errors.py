"""Every error the lab raises, in one place.

Each class refines the builtin a caller would naturally catch (``ValueError`` for bad input,
``RuntimeError`` for a failed run, ``LookupError`` for something missing), and each message is
one line that says what was wrong, what was received and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BackfillLabError",
    "CodeVersionMismatch",
    "ConfigError",
    "InjectedFault",
    "MergeKeyError",
    "PartitionError",
    "PinMismatch",
    "SwitchoverBlocked",
    "UnknownNameError",
    "UpstreamMissing",
    "WarehouseOverloaded",
    "did_you_mean",
]


def did_you_mean(received: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close.

    >>> did_you_mean("concurency", ["concurrency", "retries"])
    " Did you mean 'concurrency'?"
    >>> did_you_mean("zzz", ["concurrency"])
    ''
    >>> did_you_mean("asc", ["ascending", "descending"]), did_you_mean("EX1", ["ex1", "ex2"])
    (" Did you mean 'ascending'?", " Did you mean 'ex1'?")
    """
    names, typed = [str(c) for c in choices], str(received)
    folded = [c for c in names if c.lower() == typed.lower()]  # the case was all that was off
    prefixed = [c for c in names if len(typed) >= 3 and c.lower().startswith(typed.lower())]
    close = folded or (prefixed if len(prefixed) == 1 else []) or \
        difflib.get_close_matches(typed, names, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class BackfillLabError(Exception):
    """Base class: catch this to handle every error the lab raises on purpose."""


class ConfigError(BackfillLabError, ValueError):
    """A setting has a value the lab cannot use."""

    @classmethod
    def invalid(cls, name: str, expected: str, received: object) -> ConfigError:
        """``'concurrency' must be an integer >= 1 (got 'two')``."""
        return cls(f"'{name}' must be {expected} (got {received!r})")


class UnknownNameError(ConfigError):
    """A name (layer, table, mode, fault kind, ...) that does not exist."""

    @classmethod
    def of(cls, what: str, received: str, choices: Iterable[str]) -> UnknownNameError:
        """``unknown write mode 'upsert'; known: 'append', ... Did you mean 'x'?``."""
        choices = sorted(choices)
        known = ", ".join(repr(c) for c in choices) or "none"
        return cls(
            f"unknown {what} {received!r}; known: {known}.{did_you_mean(received, choices)}"
        )


class PartitionError(ConfigError):
    """A partition key, range or list that cannot be parsed, or is empty or reversed."""


class MergeKeyError(ConfigError):
    """Merge keys missing, unknown, or not unique in the rows being merged."""


class UpstreamMissing(BackfillLabError, LookupError):
    """A step's upstream partition does not exist: refusing to build on a hole."""


class WarehouseOverloaded(BackfillLabError, RuntimeError):
    """More concurrent writes than the warehouse's capacity: the write was throttled and failed."""


class CodeVersionMismatch(BackfillLabError, RuntimeError):
    """A backfill pinned to one code version saw another: it stops instead of mixing outputs."""


class PinMismatch(BackfillLabError, RuntimeError):
    """A backfill pinned to a config or runtime saw another: it refuses rather than mix outputs.

    Taught in notebooks/02_daily_backfill.ipynb (Step 2: freeze the code version)."""


class SwitchoverBlocked(BackfillLabError, RuntimeError):
    """A view switch refused: targeted partitions invalid, unvalidated, or failing the canary."""


class InjectedFault(BackfillLabError, RuntimeError):
    """A failure planted on purpose by fault injection (it behaves like a real crash)."""
