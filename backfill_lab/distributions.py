"""How far apart two samples' distributions are: the population stability index and the
Kolmogorov-Smirnov statistic, the two measures of the drift validation.

Used by :class:`backfill_lab.validations.Drift` and by the canary comparison of
:func:`backfill_lab.versions.canary_compare`. :class:`Rows` holds samples read from DuckDB
straight into numpy, and answers what pandas would about them (numeric? missing? equal?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["Rows", "Sample", "drift_measures", "ks_statistic", "psi"]

#: numbers to compare: a list, a pandas column's values or a numpy array (NaN is ignored)
Sample = Sequence[float] | npt.NDArray[np.generic]


def _clean(sample: Sample) -> npt.NDArray[np.float64]:
    """The sample as float64, NaN left out, sorted."""
    values = np.asarray(sample, dtype="float64")
    return np.sort(values[~np.isnan(values)])


def _psi_sorted(e: npt.NDArray[np.float64], a: npt.NDArray[np.float64], bins: int) -> float:
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    # a value's bin is the number of edges at or below it: on sorted samples, the bins' counts
    # are the gaps between where the edges fall (the same integers as a bincount of each value)
    e_share = np.diff(np.searchsorted(e, edges, side="left"), prepend=0, append=len(e))
    a_share = np.diff(np.searchsorted(a, edges, side="left"), prepend=0, append=len(a))
    floor = 1e-4  # an empty bin would make the index infinite
    ep = np.maximum(e_share / len(e), floor)
    ap = np.maximum(a_share / len(a), floor)
    value = float(np.sum((ap - ep) * np.log(ap / ep)))
    return 0.0 if abs(value) < 1e-12 else value


def _steps(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Where the CDF of a non-empty sorted array steps: its distinct values, and how many values
    are at or below each (what ``searchsorted(x, value, side="right")`` would say)."""
    ends = np.flatnonzero(x[1:] != x[:-1])
    return x[np.append(ends, len(x) - 1)], np.append(ends + 1, len(x))


def _ks_sorted(e: npt.NDArray[np.float64], a: npt.NDArray[np.float64]) -> float:
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    # both CDFs only step at sample values: the gap is widest at one of the distinct ones
    ue, at_e = _steps(e)
    ua, at_a = _steps(a)
    gap_e = np.abs(at_e / len(e) - np.searchsorted(a, ue, side="right") / len(a))
    gap_a = np.abs(np.searchsorted(e, ua, side="right") / len(e) - at_a / len(a))
    return float(max(gap_e.max(), gap_a.max()))


def psi(expected: Sample, actual: Sample, *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins of expected).

    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant drift.

    >>> base = list(range(100))
    >>> psi(base, base)
    0.0
    >>> round(psi(base, [x + 50 for x in base]), 2)
    4.35
    """
    return _psi_sorted(_clean(expected), _clean(actual), bins)


def ks_statistic(expected: Sample, actual: Sample) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs (0..1).

    >>> ks_statistic([1, 2, 3, 4], [1, 2, 3, 4])
    0.0
    >>> ks_statistic([1, 2, 3, 4], [11, 12, 13, 14])
    1.0
    """
    return _ks_sorted(_clean(expected), _clean(actual))


def drift_measures(expected: Sample, actual: Sample, *, bins: int = 10) -> tuple[float, float]:
    """``(psi(expected, actual), ks_statistic(expected, actual))``, each sample sorted once.

    >>> drift_measures([1, 2, 3, 4], [11, 12, 13, 14]) == (psi([1, 2, 3, 4], [11, 12, 13, 14]), 1.0)
    True
    """
    e, a = _clean(expected), _clean(actual)
    return _psi_sorted(e, a, bins), _ks_sorted(e, a)


# -- samples read from DuckDB ----------------------------------------------------------------
# DuckDB types that pandas holds as numbers (dtype kind "i" or "f"), with NULLs or without: the
# columns a drift check compares by default. Unsigned integers (kind "u") and booleans are not.
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")


@dataclass(frozen=True)
class Rows:
    """Rows read with ``fetchnumpy``: each column's DuckDB type and values, and what pandas would
    make of them (which columns are numbers, which values are missing, which are equal) without
    building a DataFrame, the costly part of a read. Read by :mod:`backfill_lab.validations`.
    """

    types: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)  # numpy arrays, masked where NULL
    query: tuple[Any, str, Any] | None = None  # (cursor, sql, params): to read it into pandas

    @classmethod
    def read(cls, cur: Any, sql: str, params: Any = None) -> Rows:
        """The rows ``sql`` selects, read on the DuckDB cursor ``cur``."""
        result = cur.execute(sql, params)
        types = {d[0]: str(d[1]) for d in result.description}
        return cls(types, result.fetchnumpy(), (cur, sql, params))

    @property
    def columns(self) -> list[str]:
        """The column names, in the table's order."""
        return list(self.types)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def numeric(self, column: str) -> bool:
        """Would pandas hold ``column`` as numbers (dtype kind ``i`` or ``f``)?"""
        kind = self.types[column]
        return kind in _NUMERIC or kind.startswith("DECIMAL(")

    def sample(self, column: str) -> Sample:
        """The column as :func:`psi` gets it from pandas (``df[column].to_numpy()``): a numeric
        one as float64 with NULL as NaN; any other as pandas holds it (read again, rarely)."""
        if self.numeric(column):
            return np.ma.filled(np.ma.asarray(self.arrays[column]).astype("float64"), np.nan)
        if self.query is None:
            raise ValueError(f"no query to read {column!r} again")
        cur, sql, params = self.query
        return cur.execute(sql, params).df()[column].to_numpy()  # type: ignore[no-any-return]

    def split(self, flag: str) -> tuple[Rows, Rows] | None:
        """The rows where the boolean column ``flag`` is true, and the others, without ``flag``;
        None if a column shares its name (then the arrays were renamed)."""
        if list(self.arrays) != list(self.types) or flag not in self.types:
            return None
        mask = np.ma.filled(self.arrays[flag], False).astype(bool)
        types = {c: t for c, t in self.types.items() if c != flag}
        return (Rows(types, {c: self.arrays[c][mask] for c in types}),
                Rows(types, {c: self.arrays[c][~mask] for c in types}))

    def missing(self, column: str) -> npt.NDArray[np.bool_]:
        """Which values pandas' ``isna`` calls missing: NULL, and NaN or NaT."""
        array = self.arrays[column]
        data, mask = np.ma.getdata(array), np.ma.getmaskarray(array)
        if data.dtype.kind == "f":
            return mask | np.isnan(data)
        if data.dtype.kind in "mM":
            return mask | np.isnat(data)
        return mask | pd.isna(data) if data.dtype.kind == "O" else mask

    def duplicates(self, columns: Sequence[str]) -> int:
        """How many rows repeat an earlier row's values of ``columns`` (pandas' ``duplicated``:
        missing values are equal to each other)."""
        if not len(self):
            return 0
        codes = []
        for c in columns:
            found, _ = pd.factorize(np.ma.getdata(self.arrays[c]))  # NaN, NaT, None: -1
            found[np.ma.getmaskarray(self.arrays[c])] = -1
            codes.append(found.astype(np.int64) + 1)
        if (len(self) + 1) ** len(codes) < 2 ** 62:  # each row's codes as one number: it fits
            row = np.zeros(len(self), dtype=np.int64)
            for found in codes:
                row = row * (len(self) + 1) + found
            return len(self) - len(np.unique(row))
        return len(self) - len(np.unique(np.stack(codes, axis=1), axis=0))
