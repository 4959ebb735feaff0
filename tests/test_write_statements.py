"""The write path in few statements, with every guarantee kept: one transaction per partition
write (data, the built marker of an empty partition and the ledger row together or not at all),
the partition guard, the merge key checks and their messages, and upstream checks that skip
what the run itself committed.

Statements are counted with DuckDB's own query log, so the counts hold whatever wraps a cursor.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from backfill_lab import (
    ConfigError,
    Ledger,
    MergeKeyError,
    UnknownNameError,
    Warehouse,
    run_backfill,
)
from backfill_lab.ledger import LedgerEntry

DAY = "2024-12-01"


def rows(day: str = DAY, n: int = 5, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"date": [pd.Timestamp(day).date()] * n,
                         "entity_id": range(start, start + n), "value": [1.0] * n})


def statements(wh: Warehouse, action) -> list[str]:
    """The SQL statements ``action()`` ran on ``wh`` (DuckDB's query log)."""
    con = wh._con
    run = con.execute
    run("CALL truncate_duckdb_logs()")
    run("CALL enable_logging('QueryLog')")
    try:
        action()
    finally:
        run("CALL disable_logging()")
    logged = [r[0].strip() for r in run(
        "SELECT message FROM duckdb_logs WHERE type = 'QueryLog' ORDER BY timestamp").fetchall()]
    return [s for s in logged if s and not s.startswith("CALL ")]


def table_from(wh: Warehouse, name: str, frame: pd.DataFrame) -> None:
    """A plain (not partitioned) table holding ``frame``."""
    cur = wh.cursor()
    cur.register("_frame", frame)
    cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _frame")
    cur.unregister("_frame")


def built(wh: Warehouse, table: str = "t") -> list[str]:
    return [r[0] for r in wh.cursor().execute(
        "SELECT partition FROM _bl_built WHERE tbl = ? ORDER BY ALL", [table]).fetchall()]


def temp_tables(wh: Warehouse) -> list[str]:
    return [r[0] for r in wh.cursor().execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()]


def ledger_entry(partition: str = DAY, rows_: int = 5) -> LedgerEntry:
    return LedgerEntry("bf-1", "t", partition, "t", "overwrite", "v1", 1, "success", rows_)


@pytest.mark.parametrize("mode", ["overwrite", "append", "merge"])
@pytest.mark.parametrize("n", [5, 0])
def test_a_write_failing_inside_its_transaction_leaves_no_trace(wh, mode, n):
    """Data, the built marker (of a partition built empty) and the ledger row commit together
    or not at all: a ledger insert failing at the end of the transaction leaves neither rows
    nor a marker behind."""
    ledger = Ledger(wh)
    wh.write_partition("t", "2024-12-02", rows("2024-12-02", n=0))  # built empty: marked
    wh.write_partition("t", "2024-12-03", rows("2024-12-03"))  # present by its rows
    before = wh.checksums("t")

    def failing_commit(cur: duckdb.DuckDBPyConnection, written: int) -> None:
        ledger.record(ledger_entry(rows_=written), cur)
        cur.execute("SELECT error('the ledger is full')").fetchall()

    with pytest.raises(duckdb.Error, match="the ledger is full"):
        wh.write_partition("t", DAY, rows(n=n), mode, merge_keys=["entity_id", "date"],
                           on_commit=failing_commit)
    assert wh.checksums("t") == before
    assert built(wh) == ["2024-12-02"]
    assert wh.existing_partitions("t", [DAY, "2024-12-02", "2024-12-03"]) == {
        "2024-12-02", "2024-12-03"}
    assert ledger.frame().empty
    assert temp_tables(wh) == []
    # and the same write then succeeds, with one ledger row (and a marker if it was empty)
    wh.write_partition("t", DAY, rows(n=n), mode, merge_keys=["entity_id", "date"],
                       on_commit=lambda cur, written: ledger.record(ledger_entry(rows_=written),
                                                                    cur))
    assert built(wh) == ([DAY] if n == 0 else []) + ["2024-12-02"]
    assert DAY in wh.existing_partitions("t", [DAY])
    assert len(ledger.frame()) == 1


@pytest.mark.parametrize("mode", ["overwrite", "append", "merge"])
@pytest.mark.parametrize("source", ["frame", "sql"])
def test_the_partition_guard_message_is_unchanged(wh, mode, source):
    stray = pd.concat([rows(), rows("2024-12-02", n=1)], ignore_index=True)
    wh.write_partition("t", DAY, rows())
    before = wh.checksums("t")
    table_from(wh, "stray", stray)
    given = stray if source == "frame" else "SELECT * FROM stray"
    message = ('rows written to partition 2024-12-01 of "t" must all have "date" = 2024-12-01 '
               '(some rows fell in other partitions); filter the transform to its partition')
    with pytest.raises(ConfigError) as caught:
        wh.write_partition("t", DAY, given, mode, merge_keys=["entity_id", "date"])
    assert str(caught.value) == message
    assert wh.checksums("t") == before
    assert temp_tables(wh) == []


@pytest.mark.parametrize("source", ["frame", "sql"])
def test_merge_key_errors_keep_their_messages(wh, source):
    wh.write_partition("t", DAY, rows(n=2), "merge", merge_keys=["entity_id", "date"])
    before = wh.checksums("t")
    cases = {
        "dup": (pd.concat([rows(n=2), rows(n=1)], ignore_index=True), MergeKeyError,
                "merge keys ['entity_id', 'date'] are not unique in partition 2024-12-01: 1 "
                "duplicate rows (MERGE would silently keep one); dedupe upstream or choose keys "
                "that identify a row", ["entity_id", "date"]),
        "null": (rows(n=2).astype({"entity_id": "float64"}).assign(
                    entity_id=[None, 1.0]), MergeKeyError,
                 "merge keys ['entity_id', 'date'] are NULL in 1 rows of partition 2024-12-01; "
                 "NULL keys never match, so every rerun would add them again: fix the rows "
                 "upstream", ["entity_id", "date"]),
        "unknown": (rows(), UnknownNameError, "Did you mean 'entity_id'", ["entity", "date"]),
        "odd": (rows(), UnknownNameError, "unknown merge key 'entity-id'", ["entity-id"]),
    }
    for name, (frame, error, message, keys) in cases.items():
        table_from(wh, f"src_{name}", frame)
        given = frame if source == "frame" else f"SELECT * FROM src_{name}"
        with pytest.raises(error) as caught:
            wh.write_partition("t", DAY, given, "merge", merge_keys=keys)
        assert message in str(caught.value), name
    assert wh.checksums("t") == before
    assert temp_tables(wh) == []


def test_a_partition_write_is_a_handful_of_statements(wh):
    """Overwrite: BEGIN, DELETE, guarded INSERT, COMMIT (plus what on_commit adds); merge of
    a DataFrame: BEGIN, one guarded MERGE, COMMIT; merge of a SELECT: BEGIN, scratch table,
    one key check, MERGE, DROP, COMMIT. A write of zero rows adds its built marker."""
    wh.write_partition("t", DAY, rows())  # creates the table
    assert wh.has_table("t")  # and reads its registration once
    table_from(wh, "src", rows())
    for mode, most in (("overwrite", 4), ("append", 3), ("merge", 6)):
        for given in (rows(), "SELECT * FROM src"):
            ran = statements(wh, lambda given=given, mode=mode: wh.write_partition(
                "t", DAY, given, mode, merge_keys=["entity_id", "date"]))
            plain_frame = mode == "merge" and not isinstance(given, str)
            assert len(ran) <= (3 if plain_frame else most), (mode, ran)
            assert ran[0].upper().startswith("BEGIN") and ran[-1].upper() == "COMMIT"
    assert built(wh) == []  # present by its rows: no marker needed
    for _ in range(2):
        ran = statements(wh, lambda: wh.write_partition("t", DAY, rows(n=0)))
        assert len(ran) == 5, ran
    assert built(wh) == [DAY]  # recorded once, however often it was rewritten empty
    assert len(statements(wh, lambda: wh.existing_partitions("t", [DAY, "2024-12-02"]))) == 1


def test_existing_partitions_are_rows_or_built_empty(wh):
    wh.write_partition("t", DAY, rows())
    wh.write_partition("t", "2024-12-03", rows("2024-12-03", n=0))  # a quiet day: built, empty
    keys = [DAY, "2024-12-02", "2024-12-03", "2024-12-04"]
    assert wh.existing_partitions("t", keys) == {DAY, "2024-12-03"}
    assert wh.existing_partitions("t", ["2024-12-03"]) == {"2024-12-03"}
    assert wh.existing_partitions("nope", keys) == set()
    assert wh.existing_partitions("t", []) == set()


def test_upstream_checks_skip_what_the_run_committed(pipeline):
    """A layer whose upstream partitions the same run wrote asks the warehouse nothing; only a
    window reaching before the run's range is looked up."""
    days = [f"2024-12-{d:02d}" for d in range(1, 13)]
    reaching_back = [p for p in days if min(k for _, k in pipeline.upstream("features", p)) < DAY]
    assert 0 < len(reaching_back) < len(days)
    with Warehouse() as wh:
        ran = statements(wh, lambda: run_backfill(pipeline, wh, "2024-12-01..2024-12-12",
                                                  sleep=lambda _s: None))
        looked_up = [s for s in ran if "_bl_built WHERE tbl" in s and "UNION ALL" in s]
        assert not [s for s in looked_up if 'FROM "raw"' in s]  # staging reads raw: all written
        assert len(looked_up) == len(reaching_back)
        ledger = Ledger(wh).frame()
        staging = ledger[ledger.layer == "staging"]
        assert all(list(u) == [f"raw:{p}"] for u, p in zip(staging.upstream, staging.partition,
                                                           strict=True))


@pytest.mark.parametrize("keys, frame", [
    # float keys (-0.0 and 0.0), and nanoseconds DuckDB's microseconds fold into one value:
    # the in-memory check cannot be sure, so DuckDB's own check decides
    (["k", "date"], pd.DataFrame({"date": [pd.Timestamp(DAY).date()] * 2, "k": [0.0, -0.0]})),
    (["t", "date"], pd.DataFrame({"date": [pd.Timestamp(DAY).date()] * 2,
                                  "t": pd.to_datetime(["2024-12-01 00:00:00.000000001",
                                                       "2024-12-01 00:00:00.000000002"])})),
    (["k", "date"], pd.DataFrame({"date": [pd.Timestamp(DAY).date()] * 2, "k": [1, "1"]})),
])
def test_a_merge_the_memory_check_cannot_vouch_for_is_checked_by_duckdb(wh, keys, frame):
    from backfill_lab._writes import frame_keys_plain

    assert not frame_keys_plain(frame, keys)
    wh.write_partition("t", DAY, frame.iloc[:1], "merge", merge_keys=keys)
    before = wh.checksums("t")
    try:
        wh.write_partition("t", DAY, frame, "merge", merge_keys=keys)
    except (MergeKeyError, duckdb.Error, ConfigError) as exc:  # what DuckDB's check says
        assert "not unique" in str(exc) or "Conversion" in str(exc) or "type" in str(exc)
        assert wh.checksums("t") == before
    else:  # DuckDB saw two distinct keys: both rows are there
        assert sum(wh.partition_counts("t").values()) == 2


def test_a_merge_of_a_plain_dataframe_is_one_statement_and_upserts(wh):
    wh.write_partition("t", DAY, rows(n=3), "merge", merge_keys=["entity_id", "date"])
    assert wh.has_table("t")  # its registration is read once
    changed = rows(n=4).assign(value=[2.0, 2.0, 2.0, 2.0])
    ran = statements(wh, lambda: wh.write_partition("t", DAY, changed, "merge",
                                                    merge_keys=["entity_id", "date"]))
    assert [s.split()[0].upper() for s in ran] == ["BEGIN", "MERGE", "COMMIT"]
    got = wh.read_partition("t", DAY)
    assert list(got["entity_id"]) == [0, 1, 2, 3] and set(got["value"]) == {2.0}
