"""The cheaper validations (issue 15) give exactly what the pandas ones gave: the same
:class:`CheckResult` values, float for float, and the same errors, on the demo's partitions and
on partitions of every column type with NULLs, NaN, empty, single-row and constant columns.

The reference is ``tests/legacy_validations.py``, a verbatim copy of the checks before.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from backfill_lab import EventSource, Fault, Warehouse, daily_features, run_backfill
from backfill_lab._db import run
from backfill_lab.distributions import Rows, drift_measures, ks_statistic, psi
from backfill_lab.partitions import key_range
from backfill_lab.validations import (
    SCHEMA,
    DownstreamRead,
    Drift,
    NullRate,
    RowCount,
    UniqueKeys,
    Validations,
    latest_validations,
    record_results,
    validate,
    validate_partition,
)
from tests import legacy_validations as legacy

HISTORY = "2024-11-20..2024-12-12"
MEDIUM = EventSource(seed=3, entities=400, events_per_day=1600)
FAULTS = [
    Fault.nulls("features", "2024-12-03", column="amount_1d", fraction=0.3),
    Fault.duplicates("features", "2024-12-05", fraction=0.1),
    Fault.shift("features", "2024-12-07", column="amount_7d", factor=1.6),
    Fault.drop_rows("features", "2024-12-09", fraction=0.7),
]


def outcome(fn, *args, **kwargs):
    """What a call gave, comparable exactly: each result's fields with floats as ``repr`` (NaN
    equals NaN, -0.0 differs from 0.0), or the exception's type and message."""
    try:
        results = fn(*args, **kwargs)
    except Exception as exc:  # the same error is part of the same behaviour
        return ("raised", type(exc).__name__, str(exc))
    return [(r.check, r.table, r.partition, repr(r.measured), r.threshold, r.passed, r.detail)
            for r in results]


def same(wh, table, key, checks, reference=None):
    new = outcome(validate_partition, wh, table, key, checks, reference=reference)
    old = outcome(legacy.validate_partition, wh, table, key, checks, reference=reference)
    assert new == old, f"{table} {key} {checks}"
    return new


@pytest.fixture(scope="module")
def demo():
    """The demo's history with each kind of bad data planted, a second version of the features,
    and failed verdicts recorded for two partitions (so the history skips them)."""
    wh = Warehouse()
    assert run_backfill(daily_features(MEDIUM), wh, HISTORY, concurrency=2, faults=FAULTS).ok
    other = daily_features(EventSource(seed=4, entities=400, events_per_day=1500),
                           features_table="features_v2")
    assert run_backfill(other, wh, HISTORY, concurrency=2).ok
    validate(wh, "features", "2024-12-05", Validations.recommended(),
             now=dt.datetime(2030, 1, 1))
    validate(wh, "features", "2024-12-09", Validations.recommended(),
             now=dt.datetime(2030, 1, 1))
    yield wh
    wh.close()


DEMO_CHECKS = {
    "recommended": Validations.recommended(),
    "ex1": Validations.from_dict({"row_count": {"min": 900, "max": 1100},
                                  "null_rate": {"max": 0.01}, "unique_keys": ["entity_id", "date"],
                                  "drift": {"max_psi": 0.2}, "downstream_read": True}),
    "ks": Validations(drift=Drift(max_psi=None, max_ks=0.05, reference_window=3)),
    "psi_and_ks": Validations(drift=Drift(max_psi=0.05, max_ks=0.04)),
    "windows": Validations(row_count=RowCount(relative=0.1, window=9),
                           drift=Drift(reference_window=2)),
    "short_count": Validations(row_count=RowCount(relative=0.3, window=2),
                               drift=Drift(reference_window=5)),
    "columns": Validations(null_rate=NullRate(max=0.2, columns=("amount_1d", "events_1d")),
                           drift=Drift(columns=("amount_1d", "entity_id"))),
    "baseline": Validations(drift=Drift(baseline="features_v2", max_ks=0.1)),
    "custom_read": Validations(downstream_read=DownstreamRead(
        "SELECT count(*) FROM {table} WHERE date = $partition AND amount_1d > 50")),
    "bad_null_column": Validations(null_rate=NullRate(columns=("amount_1d", "nope"))),
    "bad_key": Validations(unique_keys=UniqueKeys(("entity_id", "day"))),
    "bad_drift_column": Validations(drift=Drift(columns=("nope",))),
    "bad_baseline": Validations(drift=Drift(baseline="features_v9")),
}


@pytest.mark.parametrize("name", sorted(DEMO_CHECKS))
def test_demo_partitions_judged_the_same(demo, name):
    keys = [*key_range("2024-11-20", "2024-12-12"), "2024-12-20"]  # and an empty partition
    verdicts = [same(demo, "features", key, DEMO_CHECKS[name]) for key in keys]
    assert any(v and v[0] != "raised" for v in verdicts) or name.startswith("bad_")


def test_planted_faults_fail_the_same_checks(demo):
    judged = {key: same(demo, "features", key, Validations.recommended())
              for key in ("2024-12-03", "2024-12-05", "2024-12-07", "2024-12-09", "2024-12-12")}
    failed = {key: {r[0] for r in results if not r[5]} for key, results in judged.items()}
    assert "null_rate" in failed["2024-12-03"] and "unique_keys" in failed["2024-12-05"]
    assert "drift" in failed["2024-12-07"] and "row_count" in failed["2024-12-09"]


def test_history_of_another_table_and_a_missing_one(demo):
    for key in ("2024-11-20", "2024-11-25", "2024-12-10"):
        same(demo, "features", key, Validations.recommended(), reference="features_v2")
        same(demo, "features", key, Validations.recommended(), reference="no_such_table")
        same(demo, "no_such_table", key, Validations.recommended())
        same(demo, "no_such_table", key, Validations(row_count=RowCount(min=1),
                                                      drift=Drift()))


def test_recorded_rows_are_the_same(demo):
    when = dt.datetime(2031, 1, 1)
    for key in ("2024-12-07", "2024-12-12"):
        for label, fn in (("new", validate_partition), ("old", legacy.validate_partition)):
            record_results(demo, fn(demo, "features", key, Validations.recommended()),
                           label, when)
    rows = run(demo.cursor(), "SELECT backfill_id, partition, \"check\", measured, threshold, "
                              "passed, detail FROM _bl_validations WHERE checked_at = ? "
                              "ORDER BY rowid", [when])
    new = [r[1:] for r in rows if r[0] == "new"]
    old = [r[1:] for r in rows if r[0] == "old"]
    assert new == old and len(new) == 10
    assert not latest_validations(demo, "features").empty


# -- every column type, and the partitions that break naive code ------------------------------
KINDS = {  # column: SQL of its value for row i of partition p (p = 0..8)
    "i8": "CAST((i * 7 + p) % 100 AS TINYINT)",
    "i32": "CASE WHEN i % 9 = 0 THEN NULL ELSE CAST((i * 37 + p * 11) % 1001 AS INTEGER) END",
    "big": "CASE WHEN i % 13 = 0 THEN NULL ELSE 9007199254740993 + (i % 5) * 2 END",
    "u16": "CASE WHEN p = 5 AND i % 4 = 0 THEN NULL ELSE CAST(i % 300 AS USMALLINT) END",
    "f32": "CASE WHEN i % 11 = 0 THEN NULL WHEN i % 17 = 0 THEN 'nan'::FLOAT "
           "ELSE CAST(i / 7 + p AS FLOAT) END",
    "f64": "CASE WHEN i % 5 = 0 THEN NULL WHEN i % 6 = 0 THEN 'nan'::DOUBLE WHEN i % 23 = 0 "
           "THEN -0.0 WHEN i % 29 = 0 THEN 'inf'::DOUBLE ELSE sin(i + p) * 100 END",
    "dec": "CAST((i * 13 % 997) / 7.0 + p AS DECIMAL(18, 3))",
    "huge": "CAST(i * 1000003 AS HUGEINT) * 1000000007",
    "b": "CASE WHEN p = 6 AND i % 3 = 0 THEN NULL ELSE i % 2 = 0 END",
    "s": "CASE WHEN i % 7 = 0 THEN NULL ELSE 's' || (i % 40) END",
    "ts": "CASE WHEN i % 19 = 0 THEN NULL WHEN i = 3 THEN 'infinity'::TIMESTAMP "
          "ELSE TIMESTAMP '2024-01-01' + INTERVAL (i) MINUTE END",
    "mood": "CASE WHEN i % 8 = 0 THEN NULL ELSE (['sad', 'ok', 'happy'])[i % 3 + 1]::mood END",
    "fk": "CASE WHEN i % 10 = 0 THEN NULL WHEN i % 10 = 1 THEN 'nan'::DOUBLE "
          "WHEN i % 10 = 2 THEN -0.0 WHEN i % 10 = 3 THEN 0.0 ELSE (i % 50)::DOUBLE END",
    "const": "42.5",
    "allnull": "CAST(NULL AS DOUBLE)",
}
DAYS = key_range("2024-03-01", "2024-03-09")
ROWS = {0: 400, 1: 1, 2: 0, 3: 350, 4: 2, 5: 500, 6: 420, 7: 380, 8: 390}  # rows per day


@pytest.fixture(scope="module")
def typed():
    """A table of every column type: day 2 is built empty, day 1 is one row, the rest are a few
    hundred rows of NULLs, NaN, -0.0, infinities, repeats and constants."""
    wh = Warehouse()
    run(wh.cursor(), "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    for p, day in enumerate(DAYS):
        columns = ", ".join(f"{sql} AS {name}" for name, sql in KINDS.items())
        wh.write_partition("typed", day, f"SELECT DATE '{day}' AS date, {columns} FROM "
                                         f"(SELECT range AS i, {p} AS p FROM range({ROWS[p]}))")
    wh.ensure("_bl_validations", SCHEMA)
    yield wh
    wh.close()


NUMBERS = ("i8", "i32", "big", "f32", "f64", "dec", "huge", "fk", "const")  # no all-NULL one
TYPED_CHECKS = {
    "all": Validations(row_count=RowCount(relative=0.5, window=3), null_rate=NullRate(max=0.3),
                       unique_keys=UniqueKeys(("fk", "s")),
                       drift=Drift(max_psi=0.2, max_ks=0.3, reference_window=3),
                       downstream_read=DownstreamRead()),
    "keys_float": Validations(unique_keys=UniqueKeys(("fk",))),
    "keys_mixed": Validations(unique_keys=UniqueKeys(("big", "mood", "b"))),
    "keys_ts": Validations(unique_keys=UniqueKeys(("ts", "u16", "date"))),
    "keys_many": Validations(unique_keys=UniqueKeys(("fk", "s", "big", "mood", "b", "ts", "date",
                                                     "i8", "u16"))),
    "drift_ks": Validations(drift=Drift(max_psi=None, max_ks=0.2, reference_window=4)),
    "drift_numbers": Validations(drift=Drift(columns=NUMBERS, max_psi=0.05, reference_window=2)),
    "drift_numbers_ks": Validations(drift=Drift(columns=NUMBERS, max_psi=None, max_ks=0.1)),
    "nulls_numbers": Validations(null_rate=NullRate(max=0.15, columns=NUMBERS)),
    "drift_bool": Validations(drift=Drift(columns=("b",))),
    "drift_unsigned": Validations(drift=Drift(columns=("u16", "const", "allnull"))),
    "drift_text": Validations(drift=Drift(columns=("s",))),
    "drift_time": Validations(drift=Drift(columns=("ts",))),
    "drift_enum": Validations(drift=Drift(columns=("mood",))),
    "nulls_some": Validations(null_rate=NullRate(columns=("f64", "ts", "mood", "s", "b"))),
}


@pytest.mark.parametrize("name", sorted(TYPED_CHECKS))
def test_every_column_type_judged_the_same(typed, name):
    for day in [*DAYS, "2024-03-20"]:
        same(typed, "typed", day, TYPED_CHECKS[name])


def test_history_skips_the_failed_partitions_the_same(typed):
    checks = Validations(row_count=RowCount(relative=0.1, window=2),
                         drift=Drift(reference_window=2))
    validate(typed, "typed", DAYS[5], Validations(unique_keys=UniqueKeys(("fk",))),
             now=dt.datetime(2030, 1, 1))  # day 5's keys repeat: it fails
    for day in DAYS[5:]:
        same(typed, "typed", day, checks)


def test_rows_see_what_pandas_sees(typed):
    """Per column: numeric or not, missing values, duplicates: as in the DataFrame."""
    for day in DAYS:
        sql = f"SELECT * FROM typed WHERE date = DATE '{day}'"
        rows, df = Rows.read(typed.cursor(), sql), typed.sql(sql)
        assert rows.columns == list(df.columns) and len(rows) == len(df)
        for c in df.columns:
            assert rows.numeric(c) == (df[c].dtype.kind in "if"), c
            assert rows.missing(c).tolist() == df[c].isna().tolist(), (day, c)
            if rows.numeric(c):
                assert np.array_equal(rows.sample(c), np.asarray(df[c].to_numpy(), "float64"),
                                      equal_nan=True), (day, c)
        many = ["fk", "s", "big", "mood", "b", "ts", "date", "i8", "u16"]  # codes too wide to pack
        for keys in (["fk"], ["fk", "s"], ["big", "mood", "b"], ["ts", "date"], ["const"], many):
            assert rows.duplicates(keys) == int(df.duplicated(keys).sum()), (day, keys)


def test_measures_equal_the_old_ones_float_for_float():
    rng = np.random.default_rng(15)
    samples = [np.array([]), np.array([np.nan, np.nan]), np.array([3.0]), np.full(50, 2.0),
               rng.normal(size=300), rng.normal(0.4, 1.3, size=120),
               rng.integers(0, 6, 800).astype(float), np.array([0.0, -0.0, 1.0, np.inf]),
               np.where(rng.random(200) < 0.2, np.nan, rng.exponential(size=200))]
    for e in samples:
        for a in samples:
            for bins in (10, 4, 1):
                with np.errstate(invalid="ignore"):  # infinities: inf - inf in a quantile
                    old = (legacy.psi(e, a, bins=bins), legacy.ks_statistic(e, a))
                    new = drift_measures(e, a, bins=bins)
                    alone = (psi(e, a, bins=bins), ks_statistic(e, a))
                assert [repr(x) for x in new] == [repr(x) for x in old] == [repr(x) for x in alone]
            with np.errstate(invalid="ignore"):
                assert repr(psi(list(e), list(a))) == repr(legacy.psi(list(e), list(a)))


def test_a_column_named_like_the_read_flag(wh):
    """The partition and its history are read together, told apart by a flag column; a table
    with a column of that name is read the other way, with the same results."""
    for p, day in enumerate(DAYS[:5]):
        wh.write_partition("odd", day, f'SELECT DATE \'{day}\' AS date, range % 7 + {p} AS x, '
                                       f'range % 3 = 0 AS "_bl this?" FROM range(50)')
    for day in DAYS[:6]:
        same(wh, "odd", day, Validations(null_rate=NullRate(), drift=Drift(max_ks=0.5)))


def test_hourly_and_timestamp_partitions(wh):
    """Hourly partitions, and daily ones held in a TIMESTAMP column: judged the same."""
    for h in range(12):
        hour = f"2024-03-01T{h:02d}:00"
        wh.write_partition("clicks", hour, f"SELECT TIMESTAMP '2024-03-01 {h:02d}:00' AS ts, "
                                           f"range % (5 + {h}) AS n, range * 1.5 AS v "
                                           f"FROM range({40 + h * 3})", partition_column="ts")
    for d, day in enumerate(DAYS):
        wh.write_partition("stamped", day, f"SELECT TIMESTAMP '{day}' AS date, range % 9 + {d} "
                                           f"AS n FROM range(60)")
    checks = Validations(row_count=RowCount(relative=0.5, window=4), drift=Drift(max_ks=0.3,
                                                                                reference_window=3))
    for h in range(13):
        same(wh, "clicks", f"2024-03-01T{h:02d}:00", checks)
    for day in DAYS:
        same(wh, "stamped", day, checks)


def test_a_range_read_that_would_take_in_another_partition(demo):
    """History read as a range is checked against the partitions it was meant to hold: one
    written in between (here: a history that skips a day) is read the exact way instead."""
    from backfill_lab import validations

    keys = ["2024-12-11", "2024-12-10", "2024-12-08"]  # a range would take in 2024-12-09
    for this in ("2024-12-11", None):
        as_range = validations._read_keys(demo, "features", keys, True, this)
        exact = validations._read_keys(demo, "features", keys, False, this)
        assert len(as_range) == len(exact) > 0 and as_range.columns == exact.columns
        for c in exact.columns:
            assert sorted(as_range.arrays[c].tolist()) == sorted(exact.arrays[c].tolist())


def test_history_of_a_versioned_table_read_as_a_range(demo):
    """A new version's partitions judged against the old version's history (as a backfill into
    ``features_v2`` does): the history is read as a range, with the same results."""
    for key in key_range("2024-11-21", "2024-12-12"):
        for checks in (Validations.recommended(), DEMO_CHECKS["columns"], DEMO_CHECKS["ks"]):
            same(demo, "features_v2", key, checks, reference="features")
