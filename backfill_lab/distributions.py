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

__all__ = ["Rows", "Sample", "drift_by_column", "drift_measures", "ks_statistic", "psi"]

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


def _quantiles(x: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    """The inner quantile edges of each row of ``x`` (rows sorted, finite, non-empty): the
    floats ``np.quantile(row, np.linspace(0, 1, bins + 1)[1:-1])`` gives, by the same steps as
    numpy's default (linear) method, without its overhead (numpy's ``_quantile``,
    ``_get_indexes`` and ``_lerp``: the same operations on the same floats)."""
    n = x.shape[1]
    virtual = (n - 1) * np.linspace(0, 1, bins + 1)[1:-1]
    below = np.floor(virtual).astype(np.intp)
    above = below + 1
    top = virtual >= n - 1  # numpy takes the last value there (and measures gamma from -1)
    below[top] = -1
    above[top] = -1
    t = virtual - below
    a, b = x[:, below], x[:, above]
    diff = b - a
    out: npt.NDArray[np.float64] = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


def _run_ends(x: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which values of each sorted row of ``x`` end a run of equal ones: at the ``p``-th, its
    row's CDF counts ``p + 1`` values (what ``searchsorted(row, value, side="right")`` says)."""
    last = np.ones(x.shape, dtype=bool)
    last[:, :-1] = x[:, 1:] != x[:, :-1]
    return last


def _sorted_rows(arrays: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
    """The arrays (numbers, one length) as float64, each sorted, one a row: integers of a
    narrow range by counting them (the same floats: converting keeps their order)."""
    rows = np.array(arrays, dtype="float64")
    rest = []
    for i, x in enumerate(arrays):
        if x.dtype.kind in "iu" and len(x):
            x = x.astype(np.int64 if x.dtype.kind == "i" else np.uint64)  # x - lo: no overflow
            lo, hi = x.min(), x.max()
            if int(hi) - int(lo) <= 4 * len(x):
                values = (np.arange(int(hi) - int(lo) + 1, dtype=x.dtype) + lo).astype("float64")
                rows[i] = np.repeat(values, np.bincount((x - lo).astype(np.intp)))
                continue
        rest.append(i)
    if len(rest) == len(arrays):
        rows.sort(axis=1)
    elif rest:
        rows[rest] = np.sort(rows[rest], axis=1)
    return rows


def _measures_sorted(e2: npt.NDArray[np.float64], a2: npt.NDArray[np.float64],
                     bins: int) -> list[tuple[float, float]]:
    """``(_psi_sorted(e, a, bins), _ks_sorted(e, a))`` for each pair of rows of ``e2`` and
    ``a2`` (sorted, finite, non-empty), the same floats by fewer numpy calls.

    PSI: the bins of all 9 edges (repeated ones too) are counted; those between two equal edges
    (empty: not bins once ``np.unique`` drops the repeat) are left out of the sum, whose terms
    are the same floats in the same order. KS: the gaps at every value rather than at each
    distinct one, the last of each run of equal values: they have the same gaps."""
    ne, na = e2.shape[1], a2.shape[1]
    edges = np.sort(_quantiles(e2, bins), axis=1)  # np.unique: sorted, then distinct
    keep = np.ones((len(e2), bins), dtype=bool)  # bin j lies below edge j (the last: above all)
    keep[:, 1:-1] = edges[:, 1:] != edges[:, :-1]
    at_e = np.zeros((len(e2), bins + 1), dtype=np.intp)  # values below each edge: 0, ..., n
    at_a = np.zeros((len(e2), bins + 1), dtype=np.intp)
    at_e[:, -1], at_a[:, -1] = ne, na
    a_below_e = np.empty((len(e2), ne + 1), dtype=np.intp)  # a's values below e's values
    e_upto_a = np.empty(a2.shape, dtype=np.intp)  # e's values at or below a's values
    for i, (e, a) in enumerate(zip(e2, a2, strict=True)):
        at_e[i, 1:-1] = e.searchsorted(edges[i])
        at_a[i, 1:-1] = a.searchsorted(edges[i])
        a_below_e[i] = np.bincount(e.searchsorted(a), minlength=ne + 1)
        e_upto_a[i] = e.searchsorted(a, side="right")
    floor = 1e-4  # as in _psi_sorted
    ep = np.maximum((at_e[:, 1:] - at_e[:, :-1]) / ne, floor)
    ap = np.maximum((at_a[:, 1:] - at_a[:, :-1]) / na, floor)
    terms = (ap - ep) * np.log(ap / ep)
    # a value a_k is at or below e[p] exactly when a_k's place in e is at or below p
    a_upto_e = np.cumsum(a_below_e, axis=1)[:, :-1]
    gap_e = np.max(np.abs(np.arange(1, ne + 1) / ne - a_upto_e / na), axis=1,
                   where=_run_ends(e2), initial=-1.0)
    gap_a = np.max(np.abs(e_upto_a / ne - np.arange(1, na + 1) / na), axis=1,
                   where=_run_ends(a2), initial=-1.0)
    out = []
    for i in range(len(e2)):
        value = float(np.sum(terms[i][keep[i]]))
        out.append((0.0 if abs(value) < 1e-12 else value, float(max(gap_e[i], gap_a[i]))))
    return out


def _plain(rows: Rows, column: str) -> npt.NDArray[Any] | None:
    """The column's values when :meth:`Rows.sample` would just convert them to float64 (a
    numeric column of numbers, no NULL): what the fast path of :func:`drift_by_column` takes."""
    array = rows.arrays.get(column)  # None: renamed (a name shared), sample() says so in turn
    if isinstance(array, np.ma.MaskedArray):
        if np.ma.getmask(array) is not np.ma.nomask and np.ma.getmask(array).any():
            return None
        array = np.ma.getdata(array)
    ok = isinstance(array, np.ndarray) and array.ndim == 1 and array.dtype.kind in "iuf"
    return array if ok and rows.numeric(column) else None


def drift_by_column(expected: Rows, actual: Rows, columns: Sequence[str], *,
                    bins: int = 10) -> list[tuple[float, float]]:
    """``drift_measures(expected.sample(c), actual.sample(c))`` for each of ``columns``, in
    order, up to the first one either lacks: for it, ``(nan, nan)``, and no more. Columns of
    finite numbers without NULL are sorted together, their quantiles taken in one go (the
    same floats); any other is measured on its own, in turn.

    >>> e = Rows({"x": "BIGINT"}, {"x": np.arange(100)})
    >>> a = Rows({"x": "BIGINT"}, {"x": np.arange(100) + 50})
    >>> drift_by_column(e, a, ["x"]) == [drift_measures(range(100), range(50, 150))]
    True
    >>> drift_by_column(e, a, ["y", "x"])
    [(nan, nan)]
    """
    known = []
    for c in columns:
        if c not in expected.types or c not in actual.types:
            break
        known.append(c)
    fast: dict[str, tuple[float, float]] = {}
    plain = {c: (e, a) for c in dict.fromkeys(known) if bins > 1
             and (e := _plain(expected, c)) is not None and (a := _plain(actual, c)) is not None}
    both = list(plain)
    if both and (not len(expected) or not len(actual)):
        fast = {c: (float("nan"), float("nan")) for c in both}
    elif both:  # each sample's columns sorted at once, finite ones measured together
        e2 = _sorted_rows([plain[c][0] for c in both])
        a2 = _sorted_rows([plain[c][1] for c in both])
        finite = np.asarray(np.isfinite(e2).all(axis=1) & np.isfinite(a2).all(axis=1))
        if not finite.all():
            both = [c for c, ok in zip(both, list(finite), strict=True) if ok]
            e2, a2 = e2[finite], a2[finite]
        fast = {} if not both else dict(zip(both, _measures_sorted(e2, a2, bins), strict=True))
    out = [fast[c] if c in fast else drift_measures(expected.sample(c), actual.sample(c),
                                                    bins=bins) for c in known]
    return out + [(float("nan"), float("nan"))] * (len(known) < len(columns))


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
            array = self.arrays[column]
            if type(array) is np.ndarray and array.dtype.kind in "iuf":  # no mask: no NULL
                return array.astype("float64")
            return np.ma.filled(np.ma.asarray(array).astype("float64"), np.nan)
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
