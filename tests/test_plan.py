"""Plans load from YAML, dicts and files, reject typos with a suggestion, round-trip, export."""

from __future__ import annotations

import datetime as dt

import pytest

from backfill_lab import ConfigError
from backfill_lab.plan import Plan, load_plan

GUIDE_SNIPPET = """
# Pseudocode-style configuration
schedule: daily 02:00 UTC
catchup: true
backfill:
start: 2025-03-01
end: 2025-03-07
concurrency: 2
retries: 2
mode: overwrite # partition overwrite to ensure idempotent writes
"""

FULL = """
pipeline: daily_features
code_version: v1.4.2
schedule: daily 02:00 UTC
catchup: true
backfill:
  start: 2024-12-01
  end: 2024-12-31
  order: ascending
  layers: [raw, staging, features]
  concurrency: 2
  retries: 2
  mode: merge
  merge_keys: [entity_id, date]
  target: features_v2
validations:
  row_count: {min: 900, max: 1100}
  null_rate: {max: 0.01}
  unique_keys: [entity_id, date]
  drift: {baseline: features_v1, max_psi: 0.2}
  downstream_read: true
rollback: {strategy: snapshot}
lineage: {audit_tags: {ticket: INC-1234, owner: data-platform}}
switchover: {view: features, when: validated}
late_data: {watermark_delay: 2d, reprocess_window: 3}
"""


def test_the_guides_snippet_loads_as_written_flat_or_nested():
    flat = load_plan(GUIDE_SNIPPET)
    nested = load_plan(GUIDE_SNIPPET.replace("\nstart", "\n  start").replace(
        "\nend", "\n  end").replace("\nconcurrency", "\n  concurrency").replace(
        "\nretries", "\n  retries").replace("\nmode", "\n  mode"))
    assert flat == nested
    assert (flat.schedule, flat.catchup) == ("daily 02:00 UTC", True)
    b = flat.backfill
    assert (len(b.partitions), b.partitions.start, b.concurrency, b.retries, b.mode) == (
        7, "2025-03-01", 2, 2, "overwrite")


def test_the_full_format_loads_every_section():
    plan = load_plan(FULL)
    assert plan.code_version == "v1.4.2" and plan.backfill.target == "features_v2"
    assert plan.backfill.merge_keys == ("entity_id", "date")
    assert plan.validations.enabled == ["row_count", "null_rate", "unique_keys", "drift",
                                        "downstream_read"]
    assert plan.rollback.strategy == "snapshot"
    assert plan.audit_tags == {"ticket": "INC-1234", "owner": "data-platform"}
    assert plan.switchover.view == "features"
    assert plan.late_data.watermark_delay == dt.timedelta(days=2)
    assert plan.late_data.reprocess_window == 3


def test_round_trip_through_yaml_and_dict(tmp_path):
    plan = load_plan(FULL)
    assert load_plan(plan.to_yaml()) == plan
    assert Plan.from_dict(plan.to_dict()) == plan
    path = tmp_path / "plan.yaml"
    path.write_text(plan.to_yaml())
    assert load_plan(path) == plan and load_plan(str(path)) == plan
    targeted = load_plan({"backfill": {"partitions": ["2025-01-10..2025-01-12", "2025-01-14"]}})
    assert load_plan(targeted.to_yaml()) == targeted
    assert "partitions: 2025-01-10..2025-01-12, 2025-01-14" in targeted.to_yaml()
    assert "  layers: [raw, staging, features]\n" in plan.to_yaml()


def test_aliases_and_lists():
    plan = load_plan({"backfill": {"partitions": "2024-12-01..2024-12-03", "max_parallel": 3,
                                   "write_mode": "append"}})
    assert (plan.backfill.concurrency, plan.backfill.mode) == (3, "append")
    dates = load_plan({"backfill": {"partitions": [dt.date(2025, 1, 10), dt.date(2025, 1, 12)]}})
    assert list(dates.backfill.partitions) == ["2025-01-10", "2025-01-12"]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"backfil": {}}, "unknown key in plan 'backfil'; known: "),
        ({"backfil": {}}, "Did you mean 'backfill'?"),
        ({"backfill": {"start": "2024-12-01", "end": "2024-12-31", "concurency": 2}},
         "unknown key in backfill 'concurency'"),
        ({"backfill": {"start": "2024-12-01", "end": "2024-12-31", "concurrency": "two"}},
         "'backfill.concurrency' must be an integer >= 1 (got 'two')"),
        ({"backfill": {"start": "2024-12-01", "end": "2024-12-31", "concurrency": 0}},
         "'backfill.concurrency' must be an integer >= 1 (got 0)"),
        ({"backfill": {"start": "2024-12-01", "end": "2024-12-31", "mode": "upsert"}},
         "unknown backfill.mode 'upsert'"),
        ({"backfill": {"start": "2024-12-01", "end": "2024-12-31", "order": "oldest"}},
         "unknown backfill.order 'oldest'"),
        ({"backfill": {"start": "2024-12-31", "end": "2024-12-01"}}, "is reversed"),
        ({"backfill": {"start": "2024-12-01"}}, "backfill has no 'end'"),
        ({"backfill": {}}, "backfill needs a range"),
        ({"backfill": {"start": "2024-12-01", "end": "2024-12-02", "partitions": "2024-12-01"}},
         "use one of them"),
        ({"backfill": {"partitions": "2024-12-01", "concurrency": 2, "max_parallel": 2}},
         "its alias 'max_parallel'"),
        ({"backfill": {"partitions": "2024-12-01"}, "rollback": {"strategy": "undo"}},
         "unknown rollback.strategy 'undo'"),
        ({"backfill": {"partitions": "2024-12-01"}, "late_data": {"watermark_delay": "2 days"}},
         "'watermark_delay' must be a duration like '2d', '48h' or '0d' (got '2 days')"),
        ({"backfill": {"partitions": "2024-12-01"}, "validations": {"nul_rate": {}}},
         "Did you mean 'null_rate'?"),
        ({"backfill": {"partitions": "2024-12-01"}, "switchover": {"when": "validated"}},
         "'switchover.view' must be the name of the view readers use (got None)"),
        ({"backfill": {"partitions": "2024-12-01"}, "catchup": "yes"},
         "'catchup' must be true or false (got 'yes')"),
        ({"backfill": {"partitions": "2024-12-01"}, "start": "2024-12-01"},
         "indent them under 'backfill:'"),
        ({"backfill": {"partitions": "2024-12-01", "batch_size": "week"}},
         "'backfill.batch_size' must be an integer >= 1 (got 'week')"),
        ({"backfill": {"partitions": "2024-12-01", "batch_size": 7, "mode": "merge"}},
         "backfill.batch_size > 1 needs mode: overwrite (got 'merge')"),
        ("backfill: [1, 2", "plan is not valid YAML at line"),
        ("- just a list", "'plan' must be a mapping with a 'backfill' section (got 'list')"),
        ("missing.yaml", "plan file 'missing.yaml' does not exist"),
    ],
)
def test_every_validation_error_is_one_clear_line(plan, message):
    with pytest.raises(ConfigError) as info:
        load_plan(plan)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_exports_use_each_tools_flags_and_boundaries():
    plan = load_plan(FULL)
    commands = {tool: [c for c in plan.export(tool) if not c.startswith("#")]
                for tool in ("airflow", "dbt", "dagster", "sqlmesh")}
    assert commands["airflow"] == [
        "airflow backfill create --dag-id daily_features --from-date 2024-12-01 "
        "--to-date 2024-12-31 --max-active-runs 2 --reprocess-behavior completed "
        "--no-run-on-latest-version"]
    assert commands["dbt"] == [
        "dbt run --select raw staging features --event-time-start 2024-12-01 "
        "--event-time-end 2025-01-01 --threads 2"]  # dbt's end is exclusive
    assert commands["dagster"] == [
        "dagster asset materialize -m daily_features --select raw,staging,features "
        "--partition-range 2024-12-01...2024-12-31"]
    assert commands["sqlmesh"] == [
        "sqlmesh plan --restate-model daily_features.raw --restate-model daily_features.staging "
        "--restate-model daily_features.features --start 2024-12-01 --end 2024-12-31 "
        "--auto-apply"]


def test_exports_of_a_targeted_set_and_descending_order():
    plan = load_plan({"backfill": {"partitions": "2025-01-10..2025-01-11, 2025-01-14",
                                   "order": "descending", "concurrency": 1,
                                   "layers": ["features"]}})
    airflow = plan.export("airflow")
    assert len([c for c in airflow if not c.startswith("#")]) == 2
    assert all(c.endswith("--run-backwards") for c in airflow[:2])
    assert ("# airflow reruns whole DAG runs: layers ['features'] cannot be selected by a "
            "backfill") in airflow
    assert "--reprocess-behavior failed" in airflow[0]
    assert plan.to_dbt()[1].endswith("--event-time-start 2025-01-14 --event-time-end "
                                     "2025-01-15 --threads 1")
    with pytest.raises(ConfigError, match="Did you mean 'dbt'"):
        plan.export("dtb")


def test_a_plan_can_batch_its_writes_and_run_does_so(tmp_path):
    from backfill_lab import Fault, Warehouse, build_demo
    from backfill_lab.planrun import run_plan

    plan = load_plan({"code_version": "v1.4.2", "backfill": {
        "partitions": "2024-12-01..2024-12-14", "layers": ["raw"], "batch_size": 7}})
    assert plan.backfill.batch_size == 7 and "batch_size: 7" in plan.to_yaml()
    assert load_plan(plan.to_yaml()) == plan
    assert "batch_size" not in load_plan(GUIDE_SNIPPET).to_yaml()  # the default stays quiet
    with Warehouse() as wh:
        build_demo(wh)
        run = run_plan(plan, wh, faults=[Fault.fail("raw", "2024-12-10")], sleep=lambda _: None)
        statuses = run.backfill.frame().set_index("partition")["status"]
        assert set(statuses["2024-12-01":"2024-12-07"]) == {"success"}
        assert set(statuses["2024-12-08":"2024-12-14"]) == {"failed"}  # the whole batch
