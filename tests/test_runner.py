"""The backfill runner: idempotency, the concurrency cap, retries, order, dependencies, versions."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from backfill_lab import (
    BackfillRunner,
    CodeVersionMismatch,
    ConfigError,
    Fault,
    Layer,
    Ledger,
    Pipeline,
    UnknownNameError,
    Warehouse,
    daily_features,
    run_backfill,
)

from .conftest import SMALL, all_checksums

WEEK = "2024-12-01..2024-12-07"


def no_sleep(_seconds: float) -> None:
    pass


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_rerun_is_idempotent(wh, pipeline, mode):
    opts = {"mode": mode, "merge_keys": ["event_id", "date"] if mode == "merge" else None}
    # merge keys differ per layer in real life; raw/staging are unique on event_id + date and
    # features on entity_id + date, so merge the event layers here and features below.
    run_backfill(pipeline, wh, WEEK, layers=["raw", "staging"], **opts)
    first = all_checksums(wh)
    assert run_backfill(pipeline, wh, WEEK, layers=["raw", "staging"], **opts).ok
    assert all_checksums(wh) == first


def test_features_merge_twice_is_identical(wh, pipeline):
    run_backfill(pipeline, wh, WEEK, layers=["raw", "staging"])
    for _ in range(2):
        result = run_backfill(pipeline, wh, WEEK, layers=["features"], mode="merge",
                              merge_keys=["entity_id", "date"])
        assert result.ok
        if _ == 0:
            first = wh.checksums("features")
    assert wh.checksums("features") == first


def test_append_rerun_duplicates(wh, pipeline):
    run_backfill(pipeline, wh, WEEK, layers=["raw"], mode="append")
    once = wh.partition_counts("raw")
    run_backfill(pipeline, wh, WEEK, layers=["raw"], mode="append")
    assert wh.partition_counts("raw") == {k: 2 * n for k, n in once.items()}


def tracking_pipeline(seconds: float = 0.05) -> tuple[Pipeline, dict[str, int]]:
    """A one-layer pipeline whose transform measures how many copies of itself run at once."""
    lock = threading.Lock()
    stats = {"now": 0, "peak": 0}

    def build(ctx):
        with lock:
            stats["now"] += 1
            stats["peak"] = max(stats["peak"], stats["now"])
        time.sleep(seconds)
        with lock:
            stats["now"] -= 1
        return pd.DataFrame({"date": [pd.Timestamp(ctx.partition).date()], "x": [1]})

    return Pipeline("tracked", [Layer("only", build)]), stats


@pytest.mark.parametrize("cap", [1, 3])
def test_never_more_in_flight_than_the_cap_and_really_parallel(wh, cap):
    pipeline, stats = tracking_pipeline()
    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-12", concurrency=cap)
    assert result.ok
    # the transforms themselves saw ``cap`` of them running at once (no timing involved)
    assert stats["peak"] == cap  # reached: the steps really ran in parallel ...
    assert result.max_in_flight == cap  # ... and never beyond the cap


def test_transient_failures_recover_with_retries(wh, pipeline):
    sleeps: list[float] = []
    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-02", retries=2, backoff=0.1,
                          sleep=sleeps.append,
                          faults=[Fault.fail("staging", "2024-12-02", times=2)],
                          backfill_id="retry")
    assert result.ok
    ledger = Ledger(wh).frame("retry")
    tries = ledger[(ledger.layer == "staging") & (ledger.partition == "2024-12-02")]
    assert tries[["attempt", "status"]].values.tolist() == [
        [1, "failed"], [2, "failed"], [3, "success"]]
    assert "injected failure" in tries.error.iloc[0]
    assert sleeps == [0.1, 0.2]  # exponential backoff


def test_retries_stop_at_the_limit_and_downstream_is_skipped(wh, pipeline):
    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-03", retries=1, sleep=no_sleep,
                          faults=[Fault.fail("staging", "2024-12-02", times=5)])
    status = {(s.layer, s.partition): (s.status, s.attempts) for s in result.steps}
    assert result.status == "failed"
    assert status[("staging", "2024-12-02")] == ("failed", 2)
    # features of 12-02 and 12-03 read staging 12-02 (7-day window): skipped, not built on a hole
    assert status[("features", "2024-12-02")][0] == "skipped"
    assert status[("features", "2024-12-03")][0] == "skipped"
    assert status[("features", "2024-12-01")] == ("success", 1)
    assert status[("staging", "2024-12-03")] == ("success", 1)
    assert "2024-12-02" not in wh.partition_counts("features")


def test_upstream_before_downstream_in_ascending_order(wh, pipeline):
    events: list[tuple[str, str, str]] = []
    runner = BackfillRunner(pipeline, wh, WEEK, concurrency=1,
                            on_event=lambda e: events.append((e.status, e.layer, e.partition)))
    planned = runner.dry_run()
    result = runner.run()
    assert result.started_order == list(zip(planned.layer, planned.partition, strict=True))
    assert result.started_order[:3] == [
        ("raw", "2024-12-01"), ("staging", "2024-12-01"), ("features", "2024-12-01")]
    finished = [(layer, p) for status, layer, p in events if status == "success"]
    for i, (layer, p) in enumerate(finished):
        for upstream in pipeline.upstream(layer, p):
            if upstream[1] >= "2024-12-01":
                assert upstream in finished[:i], f"{layer} {p} finished before {upstream}"


def test_descending_order_with_parallel_steps_still_respects_dependencies(wh, pipeline):
    result = run_backfill(pipeline, wh, WEEK, order="descending", concurrency=2)
    assert result.ok
    raws = [p for layer, p in result.started_order if layer == "raw"]
    assert raws == sorted(raws, reverse=True)
    assert result.started_order[0] == ("raw", "2024-12-07")


def test_missing_upstream_fails_at_once_without_retries(wh, pipeline):
    result = run_backfill(pipeline, wh, "2024-12-05", layers=["staging"], retries=3,
                          sleep=no_sleep)
    step = result.steps[0]
    assert (step.status, step.attempts) == ("failed", 1)
    assert "upstream raw 2024-12-05 is missing" in step.error


def test_pinned_code_version_refuses_another_deployed_version(wh, pipeline):
    with pytest.raises(CodeVersionMismatch, match=r"pinned to code version 'v1\.3\.0'"):
        run_backfill(pipeline, wh, WEEK, code_version="v1.3.0")


def deploying_pipeline(at: str, version: str) -> Pipeline:
    """The demo pipeline, where building raw for ``at`` deploys ``version`` (a release lands)."""
    base = daily_features(SMALL)
    raw = base.layer("raw")

    def build(ctx):
        if ctx.partition == at:
            ctx.pipeline.deploy(version)
        return raw.transform(ctx)

    layers = [Layer("raw", build)] + [base.layer(n) for n in ("staging", "features")]
    return Pipeline("daily_features", layers, code_version=base.code_version)


def test_a_deploy_mid_backfill_stops_it_and_resume_finishes_on_the_pinned_version(wh):
    pipeline = deploying_pipeline("2024-12-03", "v1.5.0")
    result = run_backfill(pipeline, wh, WEEK, backfill_id="b1")
    assert result.status == "aborted"
    statuses = {s.status for s in result.steps}
    assert "cancelled" in statuses
    ledger = Ledger(wh).frame("b1")
    assert set(ledger[ledger.status == "success"].code_version) == {"v1.4.2"}
    with pytest.raises(CodeVersionMismatch, match=r"started at code version 'v1\.4\.2'"):
        run_backfill(pipeline, wh, WEEK, backfill_id="b1", code_version="v1.5.0")
    pipeline.deploy("v1.4.2")  # roll the release back, then resume
    resumed = run_backfill(pipeline, wh, WEEK, backfill_id="b1")
    assert resumed.ok and resumed.resumed > 0


def test_dry_run_writes_nothing(wh, pipeline):
    plan = run_backfill(pipeline, wh, WEEK, dry_run=True, concurrency=2)
    assert len(plan) == 21
    assert list(plan.columns[:3]) == ["seq", "layer", "partition"]
    assert wh.tables() == []
    assert Ledger(wh).backfill_ids() == []


def test_ledger_records_lineage_tags_and_versions(wh, pipeline):
    run_backfill(pipeline, wh, "2024-11-20..2024-12-02", backfill_id="hist")
    run_backfill(pipeline, wh, "2024-12-02", layers=["features"], backfill_id="one",
                 audit_tags={"ticket": "INC-1234", "owner": "data-platform"})
    row = Ledger(wh).frame("one").iloc[0]
    assert row.status == "success" and row.code_version == "v1.4.2"
    assert list(row.upstream) == [f"staging:2024-11-{d}" for d in range(26, 31)] + [
        "staging:2024-12-01", "staging:2024-12-02"]
    assert '"ticket": "INC-1234"' in row.audit_tags
    assert row.rows == wh.partition_counts("features")["2024-12-02"]
    assert row.started <= row.finished


def test_unlimited_parallelism_overloads_a_small_warehouse(pipeline):
    wh = Warehouse(capacity=2, queue_timeout=0.01)
    wh.write_latency = 0.05
    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-08", layers=["raw"],
                          concurrency=8, retries=0)
    assert result.status == "failed"
    assert any("warehouse overloaded" in (s.error or "") for s in result.steps)
    capped = run_backfill(pipeline, wh, "2024-12-01..2024-12-08", layers=["raw"], concurrency=2)
    assert capped.ok


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": "two"}, "'concurrency' must be an integer >= 1 (got 'two')"),
        ({"concurrency": 0}, "'concurrency' must be an integer >= 1 (got 0)"),
        ({"retries": -1}, "'retries' must be an integer >= 0 (got -1)"),
        ({"order": "asc"}, "unknown order 'asc'"),
        ({"mode": "upsert"}, "unknown write mode 'upsert'"),
        ({"mode": "merge"}, "needs merge_keys"),
        ({"layers": ["stagin"]}, "Did you mean 'staging'?"),
        ({"concurency": 2}, "unknown backfill option 'concurency'"),
        ({"target": {"feature": "features_v2"}}, "Did you mean 'features'?"),
    ],
)
def test_bad_options_get_one_clear_line(wh, pipeline, options, message):
    with pytest.raises(ConfigError) as info:
        run_backfill(pipeline, wh, WEEK, **options)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_target_redirects_the_last_layer(wh, pipeline):
    run_backfill(pipeline, wh, WEEK)
    v1 = wh.checksums("features")
    v2 = daily_features(SMALL, feature_version="v2")
    result = run_backfill(v2, wh, WEEK, layers=["features"], target="features_v2")
    assert result.ok
    assert wh.checksums("features") == v1  # readers of v1 untouched
    assert set(wh.partition_counts("features_v2")) == set(v1)
    with pytest.raises(UnknownNameError):
        run_backfill(v2, wh, WEEK, layers=["features"], target={"raw": "raw_v2"})


def test_batches_write_the_same_rows_in_fewer_transactions(wh, pipeline):
    run_backfill(pipeline, wh, "2024-12-01..2024-12-20", concurrency=2)
    reference = all_checksums(wh)
    batched = Warehouse()
    result = run_backfill(pipeline, batched, "2024-12-01..2024-12-20", concurrency=2,
                          batch_size=7, backfill_id="b7")
    assert result.ok and len(result.steps) == 60
    assert all_checksums(batched) == reference
    ledger = Ledger(batched).frame("b7")
    assert len(ledger) == 60 and set(ledger.status) == {"success"}  # one row per partition


def test_a_batch_is_all_or_nothing_and_retried_whole(wh, pipeline):
    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-07", layers=["raw"],
                          batch_size=7, retries=0,
                          faults=[Fault.fail("raw", "2024-12-04", times=1)])
    assert result.status == "failed" and wh.partition_counts("raw") == {}
    retried = run_backfill(pipeline, wh, "2024-12-01..2024-12-07", layers=["raw"],
                           batch_size=7, retries=1, sleep=no_sleep,
                           faults=[Fault.fail("raw", "2024-12-04", times=1)])
    assert retried.ok and len(wh.partition_counts("raw")) == 7


def test_a_resumed_batched_backfill_counts_partitions_not_batches(wh, pipeline):
    fortnight = "2024-12-01..2024-12-14"
    first = run_backfill(pipeline, wh, fortnight, layers=["raw"], batch_size=7, retries=0,
                         backfill_id="b", faults=[Fault.fail("raw", "2024-12-10", times=1)])
    assert first.counts() == {"success": 7, "failed": 7}
    second = run_backfill(pipeline, wh, fortnight, layers=["raw"], batch_size=7,
                          backfill_id="b")
    assert second.ok and second.resumed == 7 and second.counts() == {"success": 14}


MONTH = "2024-12-01..2024-12-20"
EVENT_COLS = "date, event_id, entity_id, amount, amount * 2 AS amount_x2"


def range_pipeline(where: str) -> Pipeline:
    """raw as in the demo, then a SQL layer ``doubled`` filtered by ``where``."""
    raw = daily_features(SMALL).layer("raw")
    doubled = Layer("doubled", f"SELECT {EVENT_COLS} FROM {{raw}} WHERE {where}",
                    depends_on=("raw",))
    return Pipeline("ranges", [raw, doubled])


@pytest.fixture
def sources(monkeypatch):
    """What every batch was built from: the SQL (or DataFrame) handed to write_batch."""
    seen: list[object] = []
    original = Warehouse.write_batch

    def spy(self, table, partitions, rows, **kwargs):
        if table == "doubled":
            seen.append(rows)
        return original(self, table, partitions, rows, **kwargs)

    monkeypatch.setattr(Warehouse, "write_batch", spy)
    return seen


def test_a_range_aware_layer_builds_each_batch_with_one_select(sources):
    by_day = Warehouse()
    run_backfill(range_pipeline("date = $partition"), by_day, MONTH, concurrency=2)
    ranged = Warehouse()
    result = run_backfill(range_pipeline("date BETWEEN $batch_start AND $batch_end"), ranged,
                          MONTH, concurrency=2, batch_size=7, backfill_id="r7")
    assert result.ok
    assert all_checksums(ranged) == all_checksums(by_day)
    assert len(sources) == 3 and all("UNION" not in sql for sql in sources)
    ledger = Ledger(ranged).frame("r7")
    doubled = ledger[ledger.layer == "doubled"]
    assert len(doubled) == 20 and set(doubled.status) == {"success"}
    assert dict(zip(doubled.partition, doubled.rows, strict=True)) == {
        k: n for k, n in ranged.partition_counts("doubled").items()}


def test_a_gap_in_the_batch_falls_back_to_one_select_per_partition(sources):
    targeted = ["2024-12-01", "2024-12-02", "2024-12-05", "2024-12-09"]
    wh = Warehouse()
    result = run_backfill(range_pipeline("date BETWEEN $batch_start AND $batch_end"), wh,
                          targeted, batch_size=4)
    assert result.ok and sorted(wh.partition_counts("doubled")) == targeted
    assert len(sources) == 1 and sources[0].count("UNION ALL") == 3  # type: ignore[union-attr]
    assert result.notes == []  # the layer is range-aware; only the gap made it fall back


def test_batches_of_a_per_partition_layer_say_why_they_were_not_one_select(wh, pipeline):
    result = run_backfill(pipeline, wh, WEEK, batch_size=7)
    assert result.ok and len(result.notes) == 1
    assert result.notes[0].startswith("layers staging, features filter on $partition")
    assert run_backfill(pipeline, Warehouse(), WEEK).notes == []


def test_a_range_that_spills_outside_its_batch_writes_nothing():
    wh = Warehouse()
    run_backfill(range_pipeline("date >= $batch_start"), wh, MONTH, layers=["raw"])
    result = run_backfill(range_pipeline("date >= $batch_start"), wh, WEEK,
                          layers=["doubled"], batch_size=7, retries=0)
    assert result.status == "failed"
    assert "must all belong to the batch" in result.steps[0].error
    assert wh.partition_counts("doubled") == {}


def test_bad_data_planted_in_a_range_batch_lands_in_its_partition_only():
    wh = Warehouse()
    result = run_backfill(range_pipeline("date BETWEEN $batch_start AND $batch_end"), wh,
                          "2024-12-01..2024-12-07", batch_size=7,
                          faults=[Fault.duplicates("doubled", "2024-12-03", fraction=0.5)])
    assert result.ok
    counts = wh.partition_counts("doubled")
    assert counts["2024-12-03"] > wh.partition_counts("raw")["2024-12-03"]
    assert counts["2024-12-04"] == wh.partition_counts("raw")["2024-12-04"]


def test_a_per_partition_layer_cannot_be_asked_for_a_batch_select(pipeline):
    staging = pipeline.layer("staging")
    tables = {n: n for n in pipeline.layer_names}
    with pytest.raises(ConfigError, match=r"builds one \$partition at a time.*\$batch_start"):
        pipeline.sql_for(staging, "2024-12-01", tables, batch=["2024-12-01", "2024-12-02"])



def test_a_batch_select_reads_the_whole_span_its_partitions_need():
    ranged = Layer("weekly", "SELECT * FROM {staging} WHERE date BETWEEN $window_start AND "
                   "$window_end AND $batch_start <= $batch_end", depends_on=(
                       daily_features(SMALL).layer("features").depends_on))
    pipe = Pipeline("p", [daily_features(SMALL).layer("raw"),
                          daily_features(SMALL).layer("staging"), ranged])
    tables = {n: n for n in pipe.layer_names}
    _, params = pipe.sql_for(ranged, "2024-12-08", tables,
                             batch=["2024-12-08", "2024-12-09", "2024-12-10"])
    assert {k: str(v) for k, v in params.items()} == {
        "window_start": "2024-12-02", "window_end": "2024-12-10",
        "batch_start": "2024-12-08", "batch_end": "2024-12-10"}


def test_batch_options_are_checked(wh, pipeline):
    with pytest.raises(ConfigError, match="'batch_size' > 1 needs mode 'overwrite'"):
        run_backfill(pipeline, wh, WEEK, batch_size=3, mode="append")
    with pytest.raises(ConfigError, match="'batch_size' must be an integer >= 1"):
        run_backfill(pipeline, wh, WEEK, batch_size=0)
    run_backfill(pipeline, wh, WEEK, layers=["raw"], backfill_id="same", batch_size=7,
                 faults=[Fault.fail("raw", "2024-12-02")])
    with pytest.raises(ConfigError, match="started with batch_size=7"):
        run_backfill(pipeline, wh, WEEK, layers=["raw"], backfill_id="same", batch_size=1)


# -- scale (issue 14) --------------------------------------------------------------------------
def test_cursors_and_threads_are_released_when_a_backfill_ends(wh, pipeline):
    threads_before = threading.active_count()
    for i in range(40):
        result = run_backfill(pipeline, wh, "2024-12-01..2024-12-03", concurrency=8,
                              backfill_id=f"bf-{i}")
        assert result.ok
    assert len(wh._cursors) <= 1  # only this thread's own cursor stays open
    assert wh.open_cursors == len(wh._cursors)
    assert threading.active_count() <= threads_before


def test_the_pool_is_never_larger_than_the_steps(wh, pipeline, monkeypatch):
    from concurrent import futures

    from backfill_lab import _dag

    sizes = []
    real = futures.ThreadPoolExecutor

    def recording(max_workers=None, **kwargs):
        sizes.append(max_workers)
        return real(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(_dag, "ThreadPoolExecutor", recording)
    run_backfill(pipeline, wh, "2024-12-01..2024-12-02", concurrency=10_000)
    assert sizes == [6]  # 2 partitions x 3 layers, not 10,000 threads


def test_a_dry_run_of_10000_daily_partitions_plans_in_under_2_seconds(wh, pipeline):
    timings = []
    for _ in range(3):  # the best of three: the machine may be busy with other work
        t0 = time.perf_counter()
        plan = run_backfill(pipeline, wh, "1996-01-01..2023-05-18", dry_run=True)
        timings.append(time.perf_counter() - t0)
        if timings[-1] < 2.0:
            break
    assert len(plan) == 3 * 10_000
    assert min(timings) < 2.0, f"{min(timings):.2f}s"
