"""BackfillOptions: every rule once, one wording per caller, refused before anything is written."""

from __future__ import annotations

import inspect
import json
import math

import pytest

from backfill_lab import (
    BackfillOptions,
    BackfillRunner,
    ConfigError,
    Fault,
    FixedClock,
    MergeKeyError,
    UnknownNameError,
    Warehouse,
    load_plan,
    run_backfill,
)
from backfill_lab.cli.commands import main
from backfill_lab.ledger import BackfillStatus, StepStatus
from backfill_lab.options import CLI, MAX_BACKOFF, PLAN, check
from backfill_lab.runner import RUN_CONTEXT
from backfill_lab.scheduler import Scheduler


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"concurrency": "two"}, "'concurrency' must be an integer >= 1 (got 'two')"),
        ({"concurrency": True}, "'concurrency' must be an integer >= 1 (got True)"),
        ({"concurrency": "３"}, "'concurrency' must be an integer >= 1 (got '３')"),
        ({"retries": -1}, "'retries' must be an integer >= 0 (got -1)"),
        ({"batch_size": 0}, "'batch_size' must be an integer >= 1 (got 0)"),
        ({"order": "asc"}, "unknown order 'asc'"),
        ({"mode": "upsert"}, "unknown write mode 'upsert'"),
        ({"layers": []}, "'layers' must be at least one layer name (got [])"),
        ({"layers": [""]}, "'layers' must be a list of names (got [''])"),
        ({"target": "bad name"}, "'table or column name' must be letters, digits and '_'"),
        ({"target": 3}, "'target' must be a table name or {layer: table} (got 3)"),
        ({"code_version": ""}, "'code_version' must be a version string like 'v1.4.2' (got '')"),
        ({"batch_size": 7, "mode": "append"}, "'batch_size' > 1 needs mode 'overwrite' (got "
                                              "'append')"),
        ({"concurency": 2}, "unknown backfill option 'concurency'; known: "),
        ({"concurency": 2}, "Did you mean 'concurrency'?"),
    ],
)
def test_every_rule_is_one_clear_line(values, message):
    with pytest.raises(ConfigError) as info:
        BackfillOptions.parse(values)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("backoff", [float("nan"), float("inf"), 1e300, -0.5, MAX_BACKOFF + 1,
                                     True, "1"])
def test_backoff_is_a_finite_number_up_to_the_documented_maximum(backoff):
    with pytest.raises(ConfigError, match=r"'backoff' must be a number of seconds from 0 to 60"):
        BackfillOptions(backoff=backoff)


def test_the_wait_doubles_and_stops_at_the_maximum():
    options = BackfillOptions(backoff=0.5)
    assert [options.wait_before(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert options.wait_before(10_000) == MAX_BACKOFF  # no overflow, no 14-hour sleep
    assert BackfillOptions(backoff=MAX_BACKOFF).backoff == MAX_BACKOFF


def test_twenty_retries_never_sleep_longer_than_the_cap(wh, pipeline):
    sleeps: list[float] = []
    result = run_backfill(pipeline, wh, "2024-12-01", layers=["raw"], retries=20, backoff=10,
                          sleep=sleeps.append, faults=[Fault.fail("raw", "2024-12-01", times=50)])
    assert result.status == "failed" and len(sleeps) == 20
    assert max(sleeps) == MAX_BACKOFF and sum(sleeps) < 20 * MAX_BACKOFF


def test_a_resume_continues_the_backoff_instead_of_restarting_it(wh, pipeline):
    sleeps: list[float] = []
    down = [Fault.fail("raw", "2024-12-01", times=50)]
    for _ in range(2):
        run_backfill(pipeline, wh, "2024-12-01", layers=["raw"], retries=1, backoff=1,
                     sleep=sleeps.append, faults=down, backfill_id="bf-backoff")
    assert sleeps == [1.0, 4.0]  # before attempts 2 and 4: the resume did not start over at 1


def test_each_caller_gets_its_own_spelling():
    with pytest.raises(ConfigError, match=r"^'backfill.concurrency' must be an integer >= 1"):
        check("concurrency", 0, PLAN)
    with pytest.raises(ConfigError, match=r"^'max-parallel' must be an integer >= 1 \(got 'x'\)"):
        check("concurrency", "x", CLI)
    with pytest.raises(ConfigError, match=r"^'--batch-size' > 1 needs '--write-mode overwrite'"):
        BackfillOptions.parse({"batch_size": 2, "mode": "append"}, spelling=CLI)
    with pytest.raises(ConfigError, match=r"^backfill.batch_size > 1 needs mode: overwrite"):
        load_plan({"backfill": {"partitions": "2024-12-01", "batch_size": 2, "mode": "append"}})
    with pytest.raises(UnknownNameError, match=r"unknown backfill\.order 'up'"):
        check("order", "up", PLAN)


def test_named_constructors_and_replace_check_every_rule():
    assert BackfillOptions.serial().concurrency == 1
    assert BackfillOptions.parallel(4, retries=2) == BackfillOptions(concurrency=4, retries=2)
    assert BackfillOptions.batched(7).batch_size == 7
    merging = BackfillOptions.merging("entity_id, date")
    assert (merging.mode, merging.merge_keys) == ("merge", ("entity_id", "date"))
    versioned = BackfillOptions.versioned("features_v2", "v2.0.0", layers=["features"])
    assert (versioned.target, versioned.code_version, versioned.layers) == (
        "features_v2", "v2.0.0", ("features",))
    with pytest.raises(MergeKeyError, match="needs merge_keys"):
        BackfillOptions().replace(mode="merge")
    with pytest.raises(ConfigError, match="'batch_size' > 1 needs mode 'overwrite'"):
        BackfillOptions.batched(7).replace(mode="append")
    with pytest.raises(ConfigError, match="'concurrency' must be"):
        BackfillOptions.parallel(0)
    assert "concurrency=4" in repr(BackfillOptions.parallel(4))


def test_an_options_object_and_keywords_combine(wh, pipeline):
    options = BackfillOptions.parallel(2, layers=["raw"])
    plan = run_backfill(pipeline, wh, "2024-12-01..2024-12-03", options, dry_run=True,
                        order="descending")
    assert list(plan.partition) == ["2024-12-03", "2024-12-02", "2024-12-01"]
    assert set(plan.layer) == {"raw"}
    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-03", options)
    assert result.ok and result.max_in_flight <= 2


def test_bad_options_are_refused_before_anything_is_written(pipeline):
    wh = Warehouse()
    for bad in ({"backoff": float("nan")}, {"concurrency": 0}, {"mode": "merge"},
                {"batch_size": 2, "mode": "append"}, {"layers": []}, {"retries": "many"}):
        with pytest.raises(ConfigError):
            run_backfill(pipeline, wh, "2024-12-01", **bad)
    assert wh.tables() == [] and "_bl_ledger" not in set(wh.sql("SHOW TABLES")["name"])


def test_the_runner_keywords_are_the_options_and_the_run_context():
    params = set(inspect.signature(BackfillRunner.__init__).parameters)
    assert set(RUN_CONTEXT) == params - {"self", "pipeline", "warehouse", "partitions",
                                         "options", "settings"}
    assert not set(RUN_CONTEXT) & set(BackfillOptions.names())


def test_a_typo_of_a_context_keyword_is_suggested_too(wh, pipeline):
    with pytest.raises(UnknownNameError, match="Did you mean 'on_event'"):
        run_backfill(pipeline, wh, "2024-12-01", on_evnt=print)


def test_the_scheduler_checks_options_before_its_first_run(pipeline):
    wh = Warehouse()
    with pytest.raises(ConfigError, match="'concurrency' must be an integer >= 1"):
        Scheduler(pipeline, wh, clock=FixedClock("2025-01-01"), concurrency="two")
    with pytest.raises(ConfigError, match="'backoff' must be a number of seconds"):
        Scheduler(pipeline, wh, clock=FixedClock("2025-01-01"), backoff=math.inf)


def test_cli_refuses_bad_numbers_without_opening_the_warehouse(tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    db.write_bytes(b"")  # an empty file: opening it as a warehouse would fail differently
    assert main(["backfill", "--db", str(db), "--partitions", "2024-12-01",
                 "--retries", "-1"]) == 2
    err = capsys.readouterr().err
    assert "'retries' must be an integer >= 0 (got '-1')" in err
    assert db.read_bytes() == b""


def test_statuses_are_plain_strings_on_disk_and_in_json(wh, pipeline):
    result = run_backfill(pipeline, wh, "2024-12-01", layers=["raw"])
    assert result.status == BackfillStatus.SUCCESS == "success"
    assert result.steps[0].status is StepStatus.SUCCESS
    assert json.dumps({"s": result.steps[0].status}) == '{"s": "success"}'
    assert result.frame()["status"].tolist() == ["success"]
    assert set(wh.sql("SELECT status FROM _bl_ledger")["status"]) == {"success"}
