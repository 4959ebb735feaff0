"""The numpy fast paths give exactly what the code before them gave: the drift measures of
:func:`backfill_lab.distributions.drift_by_column` float for float (``repr``: NaN and the sign
of zero too) and :func:`backfill_lab._writes.frame_keys_plain` answer for answer, on seeded
random samples and frames (NaN, NULL, ties, constants, empty, infinities, many dtypes).

The references are verbatim copies of the functions as they were (``_old_*`` below).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from backfill_lab._writes import frame_keys_plain
from backfill_lab.distributions import Rows, _quantiles, drift_by_column, drift_measures

# -- the code before, verbatim -------------------------------------------------------------


def _old_clean(sample: Any) -> npt.NDArray[np.float64]:
    values = np.asarray(sample, dtype="float64")
    return np.sort(values[~np.isnan(values)])


def _old_psi_sorted(e: Any, a: Any, bins: int) -> float:
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_share = np.diff(np.searchsorted(e, edges, side="left"), prepend=0, append=len(e))
    a_share = np.diff(np.searchsorted(a, edges, side="left"), prepend=0, append=len(a))
    floor = 1e-4
    ep = np.maximum(e_share / len(e), floor)
    ap = np.maximum(a_share / len(a), floor)
    value = float(np.sum((ap - ep) * np.log(ap / ep)))
    return 0.0 if abs(value) < 1e-12 else value


def _old_steps(x: Any) -> tuple[Any, Any]:
    ends = np.flatnonzero(x[1:] != x[:-1])
    return x[np.append(ends, len(x) - 1)], np.append(ends + 1, len(x))


def _old_ks_sorted(e: Any, a: Any) -> float:
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    ue, at_e = _old_steps(e)
    ua, at_a = _old_steps(a)
    gap_e = np.abs(at_e / len(e) - np.searchsorted(a, ue, side="right") / len(a))
    gap_a = np.abs(np.searchsorted(e, ua, side="right") / len(e) - at_a / len(a))
    return float(max(gap_e.max(), gap_a.max()))


def _old_drift_measures(expected: Any, actual: Any, *, bins: int = 10) -> tuple[float, float]:
    e, a = _old_clean(expected), _old_clean(actual)
    return _old_psi_sorted(e, a, bins), _old_ks_sorted(e, a)


def _old_sample(self: Rows, column: str) -> Any:
    if self.numeric(column):
        return np.ma.filled(np.ma.asarray(self.arrays[column]).astype("float64"), np.nan)
    if self.query is None:
        raise ValueError(f"no query to read {column!r} again")
    cur, sql, params = self.query
    return cur.execute(sql, params).df()[column].to_numpy()


def _old_drift(base: Rows, rows: Rows, columns: Sequence[str], bins: int = 10) -> list[Any]:
    """What ``validations._drift`` computed per column, up to the first unknown one."""
    out: list[Any] = []
    for c in columns:
        if c not in rows.types or c not in base.types:
            return [*out, (float("nan"), float("nan"))]
        out.append(_old_drift_measures(_old_sample(base, c), _old_sample(rows, c), bins=bins))
    return out


def _old_frame_keys_plain(frame: pd.DataFrame, keys: Sequence[str]) -> bool:
    columns = list(frame.columns)
    if not keys or any(columns.count(k) != 1 for k in keys):
        return False
    for k in keys:
        values = frame[k]
        kind = values.dtype.kind
        if kind == "M":
            if isinstance(values.dtype, pd.DatetimeTZDtype):
                return False  # DuckDB's TIMESTAMPTZ: let it judge
            stamps = values.to_numpy()
            unit = getattr(values.dtype, "unit", None) or np.datetime_data(stamps.dtype)[0]
            if unit == "ns" and (stamps.view("i8") % 1000).any():
                return False  # DuckDB keeps microseconds: two values could become one
        elif kind == "O":
            if pd.api.types.infer_dtype(values, skipna=False) not in ("string", "date",
                                                                      "integer"):
                return False
        elif kind not in "iub" or isinstance(values.dtype, pd.CategoricalDtype):
            return False
    subset = frame[list(keys)]
    return not subset.isna().to_numpy().any() and not subset.duplicated().any()


# -- drift -----------------------------------------------------------------------------------


def _same(got: Sequence[tuple[float, float]], want: Sequence[tuple[float, float]]) -> bool:
    return [tuple(map(repr, g)) for g in got] == [tuple(map(repr, w)) for w in want]


def _values(rng: np.random.Generator, n: int,
            shape: int | None = None) -> tuple[str, npt.NDArray[Any]]:
    """A random column of ``n`` numbers of one of many shapes, and its DuckDB type."""
    shape = int(rng.integers(0, 12)) if shape is None else shape
    if shape == 0:
        return "DOUBLE", rng.normal(rng.normal(0, 5), rng.exponential(3) + 1e-9, n)
    if shape == 1:
        return "BIGINT", rng.integers(-3, 4, n)  # few values: ties
    if shape == 2:
        return "BIGINT", rng.integers(0, 10 ** int(rng.integers(1, 18)), n)  # wide range
    if shape == 3:
        return "DOUBLE", np.full(n, float(rng.normal()))  # constant
    if shape == 4:
        return "DECIMAL(10,2)", np.round(rng.exponential(50, n), 2)
    if shape == 5:
        return "INTEGER", rng.integers(-2 ** 31, 2 ** 31 - 1, n, dtype=np.int32)
    if shape == 6:
        return "TINYINT", rng.integers(-128, 127, n, dtype=np.int8)  # x - min overflows int8
    if shape == 7:
        return "FLOAT", rng.normal(0, 1, n).astype(np.float32)
    if shape == 8:
        values = rng.choice([0.0, -0.0, 1.0, 2.5, 1e300, -1e300], n)
        return "DOUBLE", values
    if shape == 9:
        return "BIGINT", rng.choice([-2 ** 63, 2 ** 63 - 1, 0, 7], n).astype(np.int64)
    if shape == 10:
        return "HUGEINT", rng.integers(0, 50, n).astype(np.float64) * 1e20
    return "SMALLINT", rng.integers(-5, 5, n, dtype=np.int16)


def _spoil(rng: np.random.Generator, values: npt.NDArray[Any]) -> Any:
    """Now and then NaN, infinities or NULL (a mask) in the column."""
    how = int(rng.integers(0, 8))
    if how == 0 and values.dtype.kind == "f" and len(values):
        values = values.copy()
        values[rng.random(len(values)) < rng.random()] = np.nan
    elif how == 1 and values.dtype.kind == "f" and len(values):
        values = values.copy()
        values[int(rng.integers(0, len(values)))] = rng.choice([np.inf, -np.inf])
    elif how == 2:
        return np.ma.masked_array(values, mask=rng.random(len(values)) < 0.2)
    elif how == 3:
        return np.ma.masked_array(values, mask=np.zeros(len(values), dtype=bool))
    elif how == 4:
        return np.ma.masked_array(values)  # nomask
    return values


def _rows(rng: np.random.Generator, n: int, shapes: dict[str, int], spoil: bool) -> Rows:
    types, arrays = {}, {}
    for c, shape in shapes.items():
        types[c], values = _values(rng, n, shape)
        arrays[c] = _spoil(rng, values) if spoil and rng.random() < 0.5 else values
    return Rows(types, arrays)


@pytest.mark.parametrize("seed", range(12))
def test_drift_by_column_equals_the_old_measures(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [0, 1, 2, 3, 5, 9, 10, 11, 50, 333, 1000, 5000]
    for _ in range(25):
        ne, na = (int(rng.choice(sizes)), int(rng.choice(sizes)))
        names = [f"c{i}" for i in range(int(rng.integers(1, 7)))]
        shapes = {c: int(rng.integers(0, 12)) for c in names}
        base = _rows(rng, ne, shapes, bool(rng.random() < 0.5))
        part = _rows(rng, na, shapes, bool(rng.random() < 0.5))  # each column: the same kind
        columns = list(rng.permutation(names))[: int(rng.integers(1, len(names) + 1))]
        if rng.random() < 0.2:
            columns = [*columns, columns[0]]  # a column named twice
        for bins in (10, 4, 2):
            with np.errstate(invalid="ignore", over="ignore"):  # infinities: inf - inf
                want = _old_drift(base, part, columns, bins)
                got = drift_by_column(base, part, columns, bins=bins)
            assert _same(got, want), (seed, ne, na, columns, bins)


def test_drift_by_column_stops_at_an_unknown_column_and_reads_others_again() -> None:
    rng = np.random.default_rng(7)
    base = Rows({"x": "DOUBLE", "s": "VARCHAR"}, {"x": rng.normal(size=40), "s": np.array(["a"])})
    part = Rows({"x": "DOUBLE", "s": "VARCHAR"}, {"x": rng.normal(size=30), "s": np.array(["b"])})
    want = _old_drift(base, part, ["x"])
    assert _same(drift_by_column(base, part, ["x", "nope", "s"]), [*want, (np.nan, np.nan)])
    with pytest.raises(ValueError, match="no query to read 's' again"):
        drift_by_column(base, part, ["x", "s"])  # as the old loop: sample() is asked, in turn
    empty = Rows({"x": "DOUBLE"}, {"x": np.array([])})
    assert _same(drift_by_column(empty, part, ["x"]), [(np.nan, np.nan)])
    assert _same(drift_by_column(part, empty, ["x"]), _old_drift(part, empty, ["x"]))


def test_demo_like_columns_equal_the_old_measures() -> None:
    """Counts, sums and means of many rows against a partition's: the judge's usual case."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        ne, na = int(rng.integers(500, 7000)), int(rng.integers(1, 1000))
        def cols(n: int) -> dict[str, Any]:
            events = rng.poisson(rng.uniform(1, 9), n)
            amount = np.round(rng.gamma(2, 30, n) * events, 2)
            return {"entity_id": rng.integers(1, 400, n), "events_1d": events,
                    "amount_1d": amount, "avg_amount_1d": amount / np.maximum(events, 1)}
        types = {"entity_id": "BIGINT", "events_1d": "BIGINT", "amount_1d": "DOUBLE",
                 "avg_amount_1d": "DOUBLE"}
        base, part = Rows(types, cols(ne)), Rows(types, cols(na))
        names = list(types)
        assert _same(drift_by_column(base, part, names), _old_drift(base, part, names))


def test_rows_sample_is_unchanged() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        kind, values = _values(rng, int(rng.integers(0, 30)))
        rows = Rows({"c": kind}, {"c": _spoil(rng, values)})
        got, want = rows.sample("c"), _old_sample(rows, "c")
        assert type(got) is type(want) and got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=True)
        assert got is not rows.arrays["c"]


def test_quantiles_are_numpys_float_for_float() -> None:
    rng = np.random.default_rng(5)
    for n in itertools.chain(range(1, 40), [99, 100, 101, 1000, 4999]):
        for _ in range(5):
            x = np.sort([rng.normal(0, 1e3, n), rng.integers(-9, 9, n) * 0.1,
                         rng.exponential(1e-300, n), np.full(n, 3.3)], axis=1)
            for bins in (10, 7, 3, 2):
                want = np.array([np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]) for r in x])
                got = _quantiles(x, bins)
                assert got.dtype == want.dtype and np.array_equal(got, want), (n, bins)
                assert [repr(v) for v in got[want != 0]] == [repr(v) for v in want[want != 0]]


def test_drift_measures_keeps_its_results() -> None:
    rng = np.random.default_rng(9)
    for _ in range(100):
        e = _values(rng, int(rng.integers(0, 300)))[1].astype("float64")
        a = _values(rng, int(rng.integers(0, 300)))[1].astype("float64")
        with np.errstate(invalid="ignore"):
            assert _same([drift_measures(e, a)], [_old_drift_measures(e, a)])


# -- frame_keys_plain ------------------------------------------------------------------------


def _key_column(rng: np.random.Generator, n: int) -> Any:
    """A random key column of ``n`` values: integers, booleans, times, text, nullable..."""
    shape = int(rng.integers(0, 16))
    few = int(rng.integers(1, max(2, 2 * n)))
    if shape == 0:
        return rng.permutation(n) if rng.random() < 0.5 else rng.integers(0, few, n)
    if shape == 1:
        return np.full(n, int(rng.integers(0, 9)))  # one value
    if shape == 2:
        return rng.integers(0, 2, n).astype(bool)
    if shape == 3:
        return rng.integers(0, 200, n, dtype=np.int16).astype(np.uint16)
    if shape in (4, 5):
        unit = str(rng.choice(["s", "ms", "us", "ns"]))
        stamps = (np.datetime64("2024-12-01", unit) + rng.integers(0, few, n)
                  * np.timedelta64(int(rng.choice([1, 1000, 86400])), unit))
        if rng.random() < 0.3 and n:
            stamps[int(rng.integers(0, n))] = np.datetime64("NaT")
        return pd.Series(stamps)
    if shape == 6:
        return pd.Series(np.full(n, np.datetime64("2024-12-05", "s")))
    if shape == 7:
        return pd.Series(pd.date_range("2024-12-01", periods=n, freq="h", tz="UTC"))
    if shape == 8:
        return [f"k{v}" for v in rng.integers(0, few, n)]
    if shape == 9:
        return pd.array(rng.integers(0, few, n), dtype="Int64")
    if shape == 10:
        values = pd.array(rng.integers(0, few, n), dtype="Int64")
        if n:
            values[int(rng.integers(0, n))] = pd.NA
        return values
    if shape == 11:
        return pd.Categorical(rng.integers(0, few, n))
    if shape == 12:
        return rng.integers(0, few, n).astype(float)
    if shape == 13:
        return np.array([int(v) for v in rng.integers(0, few, n)], dtype=object)
    if shape == 14:
        return rng.choice(np.array([-2 ** 63, 2 ** 63 - 1, 0], dtype=np.int64), n)
    return rng.integers(0, 2 ** 64 - 1, n, dtype=np.uint64, endpoint=True) // \
        np.uint64(int(rng.choice([1, 2 ** 60])))


@pytest.mark.parametrize("seed", range(8))
def test_frame_keys_plain_answers_as_before(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(150):
        n = int(rng.choice([0, 1, 2, 3, 7, 50, 600]))
        width = int(rng.integers(1, 6))
        names = [f"c{i}" for i in range(width)]
        frame = pd.DataFrame({c: _key_column(rng, n) for c in names})
        if rng.random() < 0.1:  # a name shared by two columns
            frame.columns = [*names[:-1], names[0]] if width > 1 else names
        if rng.random() < 0.2 and n > 1:  # repeat some rows
            frame = frame.iloc[rng.integers(0, n, n)].reset_index(drop=True)
        keys = list(rng.choice(names, int(rng.integers(1, min(width, 4) + 1)), replace=False))
        if rng.random() < 0.1:
            keys.append(keys[0])  # a key named twice
        if rng.random() < 0.05:
            keys.append("missing")
        want = _old_frame_keys_plain(frame, keys)
        assert frame_keys_plain(frame, keys) is want, (seed, frame.dtypes.to_dict(), keys)


def test_frame_keys_plain_on_edges() -> None:
    day = np.datetime64("2024-12-01", "ns")
    cases = [
        (pd.DataFrame({"k": [1, 2], "d": [day, day]}), ["k", "d"]),
        (pd.DataFrame({"k": [1, 1], "d": [day, day + np.timedelta64(1, "us")]}), ["k", "d"]),
        (pd.DataFrame({"k": [1, 1], "d": [day, day + np.timedelta64(1, "ns")]}), ["k", "d"]),
        (pd.DataFrame({"k": [1, 2], "d": [day, np.datetime64("NaT", "ns")]}), ["k", "d"]),
        (pd.DataFrame({"k": [1]}), ["k"]), (pd.DataFrame({"k": []}, dtype="int64"), ["k"]),
        (pd.DataFrame({"k": [5, 5]}), ["k"]), (pd.DataFrame({"k": [5, 5]}), []),
        (pd.DataFrame({"a": [1, 1, 2], "b": [1, 2, 1], "c": [True, True, True]}), ["a", "b"]),
        (pd.DataFrame({"a": [1, 1, 2], "b": [1, 1, 1]}), ["a", "b"]),
        (pd.DataFrame({"a": [True, False], "b": [True, False]}), ["a", "b", "a"]),
        (pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"]), ["a"]),
    ]
    wide = 10 ** 6 + np.arange(300)
    cases += [(pd.DataFrame({f"c{i}": (wide * (i + 1)) % 97 for i in range(9)}),
               [f"c{i}" for i in range(9)])]  # codes too wide to pack in one number
    for frame, keys in cases:
        assert frame_keys_plain(frame, keys) is _old_frame_keys_plain(frame, keys), (frame, keys)
