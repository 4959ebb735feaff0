"""Fault injection: make chosen partitions fail, run slowly, or write bad data, on purpose.

Faults are how the workbook stages outages for notebooks, exercises, drills and the grader. They
are deterministic: "fail 2 times" fails the first two attempts of each chosen step and no more, and
bad data is planted by a generator seeded from the layer and partition.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import ConfigError, InjectedFault, UnknownNameError
from .partitions import PartitionSet, PartitionsLike

__all__ = ["DATA_FAULTS", "FAULT_KINDS", "Fault", "Faults"]

FAULT_KINDS: tuple[str, ...] = ("fail", "slow", "nulls", "duplicates", "drop_rows", "shift")
DATA_FAULTS: tuple[str, ...] = ("nulls", "duplicates", "drop_rows", "shift")

Where = PartitionsLike | None
"""The partitions a fault targets (None: every partition of its layer)."""


@dataclass(frozen=True)
class Fault:
    """One planted problem on some partitions of one layer. Use the named constructors.

    Taught in notebooks/01_mental_model.ipynb (A scheduler fills the newest box each period),
    notebooks/02_daily_backfill.ipynb (Step 4: run it and watch the grid) and
    notebooks/03_versioned_recompute.ipynb (Run it, with a bug planted).
    """

    kind: str
    layer: str
    partitions: PartitionSet | None = None  # None: every partition
    times: int | None = None  # fail: this many attempts, then succeed; None: always
    seconds: float = 0.0  # slow
    column: str | None = None  # nulls, shift
    fraction: float = 0.5  # nulls, duplicates, drop_rows
    factor: float = 1.0  # shift: multiply the column by this

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise UnknownNameError.of("fault kind", self.kind, FAULT_KINDS)
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ConfigError.invalid("times", "an integer >= 1, or None for always", self.times)
        if not 0 < self.fraction <= 1:
            raise ConfigError.invalid("fraction", "a number in (0, 1]", self.fraction)
        if self.kind in ("nulls", "shift") and not self.column:
            raise ConfigError(f"fault {self.kind!r} needs a column (got none)")

    @staticmethod
    def _ps(partitions: Where) -> PartitionSet | None:
        return None if partitions is None else PartitionSet.parse(partitions)

    @classmethod
    def fail(cls, layer: str, partitions: Where = None, *, times: int | None = None) -> Fault:
        """Fail ``times`` attempts (a transient fault), or every attempt when ``times`` is None."""
        return cls("fail", layer, cls._ps(partitions), times=times)

    @classmethod
    def slow(cls, layer: str, partitions: Where = None, *, seconds: float = 0.5) -> Fault:
        """Make every attempt at the matching partitions take ``seconds`` longer."""
        return cls("slow", layer, cls._ps(partitions), seconds=seconds)

    @classmethod
    def nulls(
        cls, layer: str, partitions: Where = None, *, column: str, fraction: float = 0.3
    ) -> Fault:
        """Write the matching partitions with NULLs in ``column`` (bad data that commits)."""
        return cls("nulls", layer, cls._ps(partitions), column=column, fraction=fraction)

    @classmethod
    def duplicates(cls, layer: str, partitions: Where = None, *, fraction: float = 0.2) -> Fault:
        """Write the matching partitions with duplicated rows."""
        return cls("duplicates", layer, cls._ps(partitions), fraction=fraction)

    @classmethod
    def drop_rows(cls, layer: str, partitions: Where = None, *, fraction: float = 0.5) -> Fault:
        """Write the matching partitions with rows missing."""
        return cls("drop_rows", layer, cls._ps(partitions), fraction=fraction)

    @classmethod
    def shift(
        cls, layer: str, partitions: Where = None, *, column: str, factor: float = 1.5
    ) -> Fault:
        """Multiply a numeric column: a silent distribution drift."""
        return cls("shift", layer, cls._ps(partitions), column=column, factor=factor)

    def applies(self, layer: str, partition: str) -> bool:
        """Does this fault target ``layer`` ``partition``?"""
        return layer == self.layer and (self.partitions is None or partition in self.partitions)

    def __str__(self) -> str:
        where = "all partitions" if self.partitions is None else str(self.partitions)
        detail = {
            "fail": f"{self.times or 'every'} attempt(s)",
            "slow": f"{self.seconds:g}s",
            "nulls": f"{self.fraction:.0%} of {self.column}",
            "duplicates": f"{self.fraction:.0%} of rows",
            "drop_rows": f"{self.fraction:.0%} of rows",
            "shift": f"{self.column} x{self.factor:g}",
        }[self.kind]
        return f"{self.kind} {self.layer} [{where}]: {detail}"


def _rng(layer: str, partition: str, kind: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{layer}|{partition}|{kind}".encode()))


class Faults:
    """The active faults of one run, with the attempt counters "fail N times" needs."""

    def __init__(
        self, faults: Iterable[Fault] = (), *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.faults: tuple[Fault, ...] = tuple(faults)
        for f in self.faults:
            if not isinstance(f, Fault):
                raise ConfigError.invalid("faults", "a list of Fault objects", f)
        self._sleep = sleep
        self._failures: dict[tuple[int, str, str], int] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __repr__(self) -> str:
        return f"Faults({[str(f) for f in self.faults]})"

    def before_attempt(self, layer: str, partition: str) -> None:
        """Sleep for slow faults, then raise for a fail fault that has failures left."""
        for f in self.faults:
            if f.kind == "slow" and f.applies(layer, partition):
                self._sleep(f.seconds)
        for i, f in enumerate(self.faults):
            if f.kind != "fail" or not f.applies(layer, partition):
                continue
            with self._lock:
                done = self._failures.get((i, layer, partition), 0)
                if f.times is not None and done >= f.times:
                    continue
                self._failures[(i, layer, partition)] = done + 1
            planned = (f"failure {done + 1} of {f.times} planned" if f.times is not None
                       else "fails every attempt")
            raise InjectedFault(f"injected failure in {layer} {partition} ({planned})")

    def corrupts(self, layer: str, partition: str) -> bool:
        """Does a data fault change what ``layer`` ``partition`` writes?"""
        return any(f.kind in DATA_FAULTS and f.applies(layer, partition) for f in self.faults)

    def corrupt(self, layer: str, partition: str, df: pd.DataFrame) -> pd.DataFrame:
        """Plant every applicable bad-data fault in ``df`` (a copy is returned)."""
        out = df.copy()
        for f in self.faults:
            if f.kind not in DATA_FAULTS or not f.applies(layer, partition) or out.empty:
                continue
            rng = _rng(layer, partition, f.kind)
            n = max(1, round(len(out) * f.fraction))
            if f.kind == "nulls":
                if f.column not in out.columns:
                    raise UnknownNameError.of(f"column of {layer}", str(f.column), out.columns)
                rows = rng.choice(len(out), size=min(n, len(out)), replace=False)
                col = out[f.column].copy()
                if col.dtype.kind in "iub":  # integers cannot hold a null: widen first
                    col = col.astype("float64")
                col.iloc[rows] = None
                out[f.column] = col
            elif f.kind == "duplicates":
                rows = rng.choice(len(out), size=min(n, len(out)), replace=False)
                out = pd.concat([out, out.iloc[np.sort(rows)]], ignore_index=True)
            elif f.kind == "drop_rows":
                size = len(out) - min(n, len(out) - 1)
                keep = np.sort(rng.choice(len(out), size=size, replace=False))
                out = out.iloc[keep].reset_index(drop=True)
            elif f.kind == "shift":
                if f.column not in out.columns:
                    raise UnknownNameError.of(f"column of {layer}", str(f.column), out.columns)
                out[f.column] = out[f.column] * f.factor
        return out
