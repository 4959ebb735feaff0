"""The warehouse's write modes, atomicity and capacity, on real DuckDB tables."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pandas as pd
import pytest

from backfill_lab import (
    ConfigError,
    MergeKeyError,
    UnknownNameError,
    Warehouse,
    WarehouseOverloaded,
)

DAY = "2024-12-01"


def rows(day: str = DAY, n: int = 5, start: int = 0, value: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({
        "date": [pd.Timestamp(day).date()] * n,
        "entity_id": range(start, start + n),
        "value": [value] * n,
    })


def test_overwrite_twice_gives_identical_table(wh):
    wh.write_partition("t", DAY, rows(), "overwrite")
    first = wh.read_partition("t", DAY)
    wh.write_partition("t", DAY, rows(), "overwrite")
    pd.testing.assert_frame_equal(first, wh.read_partition("t", DAY))
    assert wh.partition_counts("t") == {DAY: 5}


def test_overwrite_replaces_exactly_one_partition(wh):
    wh.write_partition("t", DAY, rows(), "overwrite")
    wh.write_partition("t", "2024-12-02", rows("2024-12-02"), "overwrite")
    other = wh.checksum("t", "2024-12-02")
    wh.write_partition("t", DAY, rows(n=3, value=9.0), "overwrite")
    assert wh.partition_counts("t") == {DAY: 3, "2024-12-02": 5}
    assert wh.checksum("t", "2024-12-02") == other


def test_append_twice_duplicates_on_purpose(wh):
    wh.write_partition("t", DAY, rows(), "append")
    wh.write_partition("t", DAY, rows(), "append")
    assert wh.partition_counts("t") == {DAY: 10}


def test_merge_upserts_and_is_idempotent(wh):
    wh.write_partition("t", DAY, rows(n=3), "merge", merge_keys=["entity_id", "date"])
    update = rows(n=4, start=1, value=2.0)  # ids 1..4: 1,2 updated, 3,4 new, 0 kept
    wh.write_partition("t", DAY, update, "merge", merge_keys=["entity_id", "date"])
    once = wh.read_partition("t", DAY)
    assert once["entity_id"].tolist() == [0, 1, 2, 3, 4]
    assert once["value"].tolist() == [1.0, 2.0, 2.0, 2.0, 2.0]
    wh.write_partition("t", DAY, update, "merge", merge_keys=["entity_id", "date"])
    pd.testing.assert_frame_equal(once, wh.read_partition("t", DAY))


def test_merge_refuses_duplicate_null_and_unknown_keys(wh):
    dup = pd.concat([rows(n=2), rows(n=1)], ignore_index=True)
    with pytest.raises(MergeKeyError, match="not unique in partition 2024-12-01: 1 duplicate"):
        wh.write_partition("t", DAY, dup, "merge", merge_keys=["entity_id", "date"])
    nulls = rows(n=2).astype({"entity_id": "float64"})
    nulls.loc[0, "entity_id"] = None
    with pytest.raises(MergeKeyError, match="NULL in 1 rows"):
        wh.write_partition("t", DAY, nulls, "merge", merge_keys=["entity_id", "date"])
    with pytest.raises(UnknownNameError, match="Did you mean 'entity_id'"):
        wh.write_partition("t", DAY, rows(), "merge", merge_keys=["entity", "date"])
    with pytest.raises(MergeKeyError, match="needs merge_keys"):
        wh.write_partition("t", DAY, rows(), "merge")
    assert wh.partition_counts("t") == {}


def test_rows_of_another_partition_are_refused_and_nothing_changes(wh):
    wh.write_partition("t", DAY, rows(), "overwrite")
    before = wh.checksums("t")
    stray = pd.concat([rows(), rows("2024-12-02", n=1)], ignore_index=True)
    for mode in ("overwrite", "append", "merge"):
        with pytest.raises(ConfigError, match="must all have"):
            wh.write_partition("t", DAY, stray, mode, merge_keys=["entity_id", "date"])
    assert wh.checksums("t") == before


def test_sql_source_with_parameters(wh):
    wh.write_partition("src", DAY, rows(n=4), "overwrite")
    wh.write_partition(
        "t", DAY, 'SELECT date, entity_id, value * 10 AS value FROM "src" WHERE date = $day',
        params={"day": pd.Timestamp(DAY).date(), "unused": 1},
    )
    assert wh.read_partition("t", DAY)["value"].tolist() == [10.0] * 4


def test_unknown_mode_and_table_names_are_clear(wh):
    with pytest.raises(UnknownNameError, match=r"unknown write mode 'upsert'.*known"):
        wh.write_partition("t", DAY, rows(), "upsert")
    with pytest.raises(UnknownNameError, match="Did you mean 'features'"):
        wh.write_partition("features", DAY, rows())
        wh.partition_column("featurse")
    with pytest.raises(ConfigError, match="table or column name"):
        wh.write_partition("t; DROP TABLE x", DAY, rows())
    with pytest.raises(ConfigError, match="'capacity' must be an integer >= 1"):
        Warehouse(capacity=0)


def test_overwrite_is_atomic_for_a_concurrent_reader(wh):
    """A reader polling the partition never sees it empty or half written."""
    big, small = 200_000, 150_000
    wh.write_partition("t", DAY, rows(n=big), "overwrite")
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        cur = wh.cursor()
        while not stop.is_set():
            seen.add(cur.execute(
                "SELECT count(*) FROM t WHERE date = DATE '2024-12-01'").fetchall()[0][0])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(6):
            wh.write_partition("t", DAY, rows(n=small if i % 2 == 0 else big), "overwrite")
    finally:
        stop.set()
        thread.join()
    assert seen <= {big, small}
    assert len(seen) == 2  # the reader really overlapped the writes


def test_capacity_throttles_and_fails_excess_writes():
    wh = Warehouse(capacity=2, queue_timeout=0.05)
    errors: list[Exception] = []

    def write(i: int) -> None:
        try:
            wh.write_partition(f"t{i}", DAY, rows())
        except WarehouseOverloaded as exc:
            errors.append(exc)

    for name in range(6):  # create the tables first: only the writes race
        wh.write_partition(f"t{name}", DAY, rows())
    wh.write_latency = 0.2  # every write now holds its slot for 0.2 s, like a slow warehouse
    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wh.peak_writes == 2
    assert len(errors) >= 3
    assert "warehouse overloaded" in str(errors[0])
    assert "capacity of 2" in str(errors[0]) and "at most 2" in str(errors[0])
    assert wh.overloaded == len(errors)


def test_writes_within_capacity_never_fail():
    wh = Warehouse(capacity=2, write_latency=0.05, queue_timeout=0.5)
    done: list[int] = []

    def write(i: int) -> None:
        wh.write_partition("t", f"2024-12-{i + 1:02d}", rows(f"2024-12-{i + 1:02d}"))
        done.append(i)

    wh.write_partition("t", "2024-12-31", rows("2024-12-31"))
    start = time.perf_counter()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done) == [0, 1]
    assert time.perf_counter() - start < 0.5


def test_file_warehouse_keeps_tables_across_reopen(tmp_path):
    path = tmp_path / "lab.duckdb"
    with Warehouse(path) as wh:
        wh.write_partition("t", DAY, rows(), partition_column="date")
        wh.set_meta("demo.seed", "7")
        before = wh.checksums("t")
    with Warehouse(path) as wh:
        assert wh.tables() == ["t"]
        assert wh.checksums("t") == before
        assert wh.get_meta("demo.seed") == "7"


def test_checksums_see_any_change(wh):
    wh.write_partition("t", DAY, rows(), "overwrite")
    before = wh.checksum("t", DAY)
    changed = rows()
    changed.loc[4, "value"] = 1.5
    wh.write_partition("t", DAY, changed, "overwrite")
    assert wh.checksum("t", DAY) != before
    wh.write_partition("t", DAY, rows(), "overwrite")
    assert wh.checksum("t", DAY) == before


def test_a_batch_overwrites_several_partitions_in_one_transaction(wh):
    wh.write_partition("t", "2024-12-05", rows("2024-12-05"), "overwrite")
    other = wh.checksum("t", "2024-12-05")
    both = pd.concat([rows(DAY, n=3), rows("2024-12-02", n=4)], ignore_index=True)
    counts = wh.write_batch("t", [DAY, "2024-12-02"], both)
    assert counts == {DAY: 3, "2024-12-02": 4}
    gap = pd.concat([rows(DAY, n=1), rows("2024-12-03", n=2)], ignore_index=True)
    assert wh.write_batch("t", [DAY, "2024-12-03"], gap) == {DAY: 1, "2024-12-03": 2}
    assert wh.partition_counts("t") == {DAY: 1, "2024-12-02": 4, "2024-12-03": 2,
                                        "2024-12-05": 5}
    assert wh.checksum("t", "2024-12-05") == other
    before = wh.checksums("t")
    stray = pd.concat([rows(DAY, n=2), rows("2024-12-04", n=1)], ignore_index=True)
    with pytest.raises(ConfigError, match="must all belong to the batch"):
        wh.write_batch("t", [DAY, "2024-12-03"], stray)
    assert wh.checksums("t") == before  # nothing of the failed batch landed


# -- partitions that are legitimately empty (issue 14) -------------------------------------------
def _quiet_source(quiet_day: str):
    """The demo pipeline over a source with no events at all on ``quiet_day``."""
    from backfill_lab import daily_features
    from backfill_lab.pipeline import Layer

    from .conftest import SMALL

    base = daily_features(SMALL)

    def raw(ctx):
        df = SMALL.events(ctx.partition)
        return df.iloc[0:0] if ctx.partition == quiet_day else df

    layers = [Layer("raw", raw, merge_keys=("event_id", "date")),
              *[base.layer(n) for n in ("staging", "features")]]
    return type(base)(base.name, layers, code_version=base.code_version)


@pytest.mark.parametrize("quiet_day", ["2024-12-01", "2024-12-03"])
def test_a_day_with_zero_events_is_present_not_a_hole(wh, quiet_day):
    from backfill_lab import Ledger, run_backfill

    result = run_backfill(_quiet_source(quiet_day), wh, "2024-12-01..2024-12-06")
    assert result.ok, result.frame()[["layer", "partition", "status", "error"]]
    assert quiet_day not in wh.partition_counts("raw")  # it holds no rows...
    assert wh.existing_partitions("raw", [quiet_day]) == {quiet_day}  # ...but it was built
    assert wh.existing_partitions("staging", [quiet_day]) == {quiet_day}
    ledger = Ledger(wh).frame()
    raw = ledger[(ledger.layer == "raw") & (ledger.partition == quiet_day)]
    assert raw.status.tolist() == ["success"] and raw.rows.tolist() == [0]
    # the table's types come from the layer's columns, not from the empty first batch
    types = dict(wh.sql("DESCRIBE raw")[["column_name", "column_type"]].values)
    assert types["date"] == "DATE"
    assert '"NULL"' not in types.values()


def test_an_empty_first_write_does_not_fix_a_null_type(wh):
    empty = pd.DataFrame({"date": pd.Series([], dtype="object"),
                          "note": pd.Series([], dtype="object")})
    assert wh.write_partition("t", "2024-12-01", empty).rows == 0
    assert wh.existing_partitions("t", ["2024-12-01", "2024-12-02"]) == {"2024-12-01"}
    full = pd.DataFrame({"date": [dt.date(2024, 12, 2)], "note": [dt.date(2024, 1, 1)]})
    assert wh.write_partition("t", "2024-12-02", full).rows == 1
    types = dict(wh.sql("DESCRIBE t")[["column_name", "column_type"]].values)
    assert types == {"date": "DATE", "note": "DATE"}
    hourly = pd.DataFrame({"hour": pd.Series([], dtype="object")})
    wh.write_partition("h", "2024-12-01T05", hourly, partition_column="hour")
    assert wh.sql("DESCRIBE h")["column_type"].tolist() == ["TIMESTAMP"]
    assert wh.first_partition("h") == "2024-12-01T05:00"
