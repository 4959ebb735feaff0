"""A learner's own SQL in the grader's process: a plan's ``downstream_read.query``.

That query is the one piece of a plan the judge runs as SQL, in the grader's own process (root,
outside the kernel's sandbox). A helper acting as a hostile learner used it to read the quiz
key from the project's files (and had the grader quote it back in the feedback), and to write
a ``.pth`` file into the kernels' site-packages that rewrote every later classmate's plan.
Each test below is one of those attacks (or a variant) and asserts it gains nothing: the query
runs as one SELECT statement, in a transaction rolled back after it, on a warehouse that reads
no files (DuckDB's ``enable_external_access`` off, its configuration locked).
"""

from __future__ import annotations

import json
from pathlib import Path

import grader.score as score
from backfill_lab import EventSource, Warehouse, daily_features, run_backfill
from backfill_lab.validation_config import DownstreamRead, Validations
from backfill_lab.validations import validate

from .plans import PERFECT_EX1

SECRET = "SECRET-KEY-cadbbdacdacb"


def _with_query(query: str) -> str:
    return PERFECT_EX1.replace("  downstream_read: true\n",
                               "  downstream_read:\n    query: " + json.dumps(query) + "\n")


def _judged(plan: str) -> list[score.TestResult]:
    score._judge_here.cache_clear()
    return score.judge("ex1", json.dumps(plan))


def test_a_consumer_query_that_reads_a_file_never_gets_it_into_the_feedback(tmp_path: Path):
    """The helper's attack: copy a file into a table the lab thinks is partitioned, so that a
    partition error quotes its "partition key": the key, in the learner's own feedback."""
    secret = tmp_path / "quick_test.ipynb"
    secret.write_text(SECRET)
    query = (f"CREATE TABLE IF NOT EXISTS leak AS SELECT content AS date FROM "
             f"read_text('{secret}'); INSERT INTO _bl_tables SELECT 'leak', 'date', 'daily' "
             "WHERE NOT EXISTS (SELECT 1 FROM _bl_tables WHERE name = 'leak'); SELECT 1")
    tests = _judged(_with_query(query))
    assert not any(SECRET in t.output for t in tests)
    # one SELECT that reads the file: it fails, so the consumer check cannot pass on it
    alone = _judged(_with_query(f"SELECT content FROM read_text('{secret}') "
                                f"WHERE content LIKE '%SECRET%'"))
    assert not any(SECRET in t.output for t in alone)


def test_a_consumer_query_cannot_write_a_file(tmp_path: Path):
    hook = tmp_path / "zz_grader_hook.pth"
    _judged(_with_query(f"COPY (SELECT 'import os') TO '{hook}' (HEADER false); SELECT 1"))
    _judged(_with_query(f"SELECT * FROM (SELECT 1) WHERE (SELECT count(*) FROM "
                        f"read_text('{tmp_path}/*')) >= 0"))
    assert not hook.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def _loaded() -> Warehouse:
    wh = Warehouse()
    pipeline = daily_features(EventSource(seed=3, entities=50, events_per_day=200))
    assert run_backfill(pipeline, wh, "2024-11-25..2024-12-03").ok
    return wh


def test_a_consumer_query_cannot_change_the_warehouse():
    """A data-modifying CTE is a SELECT to DuckDB's parser, and a string of statements could
    drop a table after its SELECT: neither changes a thing."""
    wh = _loaded()
    before = wh.partition_counts("features"), wh.partition_counts("raw")
    for query in ("WITH gone AS (DELETE FROM features RETURNING *) SELECT count(*) FROM gone",
                  "SELECT 1; DROP TABLE raw",
                  "SELECT 1; COMMIT; DELETE FROM features",
                  "DELETE FROM features WHERE date = $partition RETURNING *"):
        report = validate(wh, "features", "2024-12-02",
                          Validations(downstream_read=DownstreamRead(query)), record=False)
        assert (wh.partition_counts("features"), wh.partition_counts("raw")) == before, query
        if "gone" not in query:  # not one SELECT: the check fails and says why
            assert not report.passed
            assert "one SELECT statement" in report.results[0].detail, report.results[0].detail


def test_an_honest_consumer_query_still_reads_its_partition():
    wh = _loaded()
    report = validate(wh, "features", "2024-12-02", Validations(downstream_read=DownstreamRead(
        "SELECT entity_id, amount_7d FROM {table} WHERE date = $partition")), record=False)
    assert report.passed and (report.results[0].measured or 0) >= 40


def test_a_plan_with_an_honest_consumer_query_keeps_full_marks_on_a_fenced_copy():
    """The judge fences the copy for such a plan: its DataFrame writes (raw) and SQL writes
    (staging, features) and the consumer query itself all still run."""
    plan = _with_query('SELECT entity_id FROM {table} WHERE "date" = $partition')
    tests = _judged(plan)
    assert sum(t.score for t in tests) == sum(t.max_score for t in tests), \
        [t.output for t in tests if not t.passed]
