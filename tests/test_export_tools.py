"""The exports run as printed against the mirror projects and say what each tool does differently.

``make orchestrators`` runs them on the real tools; these tests need none of them installed:
they pin the flags a real run showed each tool needs, the ``#`` caveat lines, and that the
mirror projects are laid out under the names the exports print.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backfill_lab.demo.daily import _AMOUNT, FEATURES_SQL, STAGING_SQL
from backfill_lab.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
MIRRORS = ROOT / "orchestrators"
TOOLS = ("airflow", "dbt", "dagster", "sqlmesh")

PROOF = """
pipeline: daily_features
code_version: v1.4.2
backfill: {start: 2024-12-01, end: 2024-12-13, concurrency: 2, retries: 2, mode: overwrite}
"""
EVERYTHING = """
pipeline: daily_features
code_version: v2.0.0
backfill:
  partitions: [2024-12-01, 2024-12-02, 2024-12-05]
  order: descending
  layers: [features]
  concurrency: 3
  retries: 1
  mode: merge
  merge_keys: [entity_id, date]
  target: features_v2
validations: {unique_keys: [entity_id, date]}
switchover: {view: features, when: validated}
"""


def split(lines: list[str]) -> tuple[list[str], str]:
    """The commands, and the caveat comments as one text."""
    commands = [line for line in lines if not line.startswith("#")]
    caveats = "\n".join(line for line in lines if line.startswith("#"))
    assert lines[:len(commands)] == commands, "commands come first, then the caveats"
    return commands, caveats


@pytest.mark.parametrize("tool", TOOLS)
def test_every_export_is_commands_then_one_line_comments(tool):
    for plan in (PROOF, EVERYTHING):
        lines = load_plan(plan).export(tool)
        commands, caveats = split(lines)
        assert commands and caveats
        assert all("\n" not in line for line in lines)


def test_airflow_keeps_the_pinned_version_and_warns_about_runs_in_flight():
    commands, caveats = split(load_plan(PROOF).export("airflow"))
    assert commands == [
        "airflow backfill create --dag-id daily_features --from-date 2024-12-01 --to-date "
        "2024-12-13 --max-active-runs 2 --reprocess-behavior failed --no-run-on-latest-version"]
    assert "airflow dags unpause daily_features" in caveats
    assert "runs in flight wait for nothing in each other" in caveats
    assert "features reads trailing 7 partitions of staging" in caveats
    assert "silently reads a partial window" in caveats
    assert "default_args={'retries': 2}" in caveats
    assert "deploy v1.4.2 first" in caveats


def test_airflow_without_a_pin_or_parallel_runs_says_less():
    plan = load_plan("backfill: {start: 2024-12-01, end: 2024-12-03}")
    commands, caveats = split(plan.export("airflow"))
    assert "--no-run-on-latest-version" not in commands[0]
    assert "--max-active-runs 1" in commands[0]
    assert "in flight" not in caveats and "retries" not in caveats


def test_airflow_caveats_for_merge_target_layers_and_validations():
    commands, caveats = split(load_plan(EVERYTHING).export("airflow"))
    assert len(commands) == 2 and all("--run-backwards" in c for c in commands)
    assert all("--reprocess-behavior completed" in c for c in commands)
    for text in ("layers ['features'] cannot be selected", "mode merge on ['entity_id', 'date']",
                 "target features_v2", "validations and the switchover"):
        assert text in caveats


def test_dbt_caveats():
    commands, caveats = split(load_plan(PROOF).export("dbt"))
    assert commands == ["dbt run --select raw staging features --event-time-start 2024-12-01 "
                        "--event-time-end 2024-12-14 --threads 2"]
    assert "runs 2 models at once" in caveats and "one at a time" in caveats
    assert "dbt retry" in caveats and "check out v1.4.2 first" in caveats
    commands, caveats = split(load_plan(EVERYTHING).export("dbt"))
    assert [c.split("--event-time-start ")[1] for c in commands] == [
        "2024-12-01 --event-time-end 2024-12-03 --threads 3",
        "2024-12-05 --event-time-end 2024-12-06 --threads 3"]
    for text in ("order descending cannot be expressed",
                 "ignores it and rewrites its whole history", "model version (features_v2)",
                 "dbt test --select features", "switchover: dbt has no view switch"):
        assert text in caveats


def test_dagster_names_its_code_location_and_says_one_run():
    commands, caveats = split(load_plan(PROOF).export("dagster"))
    assert commands == ["dagster asset materialize -m daily_features --select "
                        "raw,staging,features --partition-range 2024-12-01...2024-12-13"]
    assert "BackfillPolicy.single_run()" in caveats
    assert "concurrency: 2 is not applied" in caveats
    assert "a retry redoes every partition of the range" in caveats
    _, caveats = split(load_plan(EVERYTHING).export("dagster"))
    for text in ("order descending", "deploy v2.0.0 first", "mode merge",
                 "select features_v2 instead", "asset checks"):
        assert text in caveats


def test_sqlmesh_names_models_exactly_and_applies():
    commands, caveats = split(load_plan(PROOF).export("sqlmesh"))
    assert commands == [
        "sqlmesh plan --restate-model daily_features.raw --restate-model daily_features.staging "
        "--restate-model daily_features.features --start 2024-12-01 --end 2024-12-13 "
        "--auto-apply"]
    assert "concurrent_tasks: 2" in caveats and "does not retry" in caveats
    assert "downstream" in caveats
    _, caveats = split(load_plan(EVERYTHING).export("sqlmesh"))
    for text in ("restates its whole history", "versions models itself", "check out v2.0.0",
                 "audits", "order descending"):
        assert text in caveats


# -- the mirror projects carry the names the exports print -------------------------------------
def _body(path: Path) -> str:
    return "".join(line for line in path.read_text().splitlines(keepends=True)
                   if not line.startswith("--"))


def test_the_dagster_and_airflow_mirrors_run_the_labs_sql_word_for_word():
    assert _body(MIRRORS / "sql" / "staging.sql") == STAGING_SQL.lstrip("\n")
    assert _body(MIRRORS / "sql" / "features.sql") == FEATURES_SQL.format(
        amount=_AMOUNT["v1"]).lstrip("\n")


def test_the_mirror_projects_are_named_as_the_exports_say():
    layers = ("raw", "staging", "features")
    assert {p.stem for p in (MIRRORS / "dbt" / "models").glob("*.sql")} == set(layers)
    assert "incremental_strategy: microbatch" in (MIRRORS / "dbt" / "dbt_project.yml").read_text()
    sqlmesh = {re.search(r"name (\S+),", p.read_text()).group(1)  # type: ignore[union-attr]
               for p in (MIRRORS / "sqlmesh" / "models").glob("*.sql")}
    assert sqlmesh == {f"daily_features.{layer}" for layer in layers}
    assert all("INCREMENTAL_BY_TIME_RANGE" in p.read_text()
               for p in (MIRRORS / "sqlmesh" / "models").glob("*.sql"))
    dagster = (MIRRORS / "dagster" / "daily_features.py").read_text()
    assert all(f"def {layer}(" in dagster for layer in layers)
    assert dagster.count("backfill_policy=ONE_RUN") == 3
    airflow = (MIRRORS / "airflow" / "dags" / "daily_features.py").read_text()
    assert 'dag_id="daily_features"' in airflow and "staging_window" in airflow


@pytest.mark.slow
def test_the_shared_layer_writes_rebuild_the_outage_as_the_lab_does(tmp_path, monkeypatch):
    """orchestrators/layers.py (what the Dagster assets and Airflow tasks run) on the project's
    own DuckDB: the staged outage refilled day by day equals the lab's backfill."""
    import importlib.util

    import duckdb
    import pandas as pd

    import backfill_lab as bl

    history, outage = "2024-11-25..2024-12-10", "2024-12-01..2024-12-02"
    lab = bl.Warehouse(str(tmp_path / "lab.duckdb"))
    bl.build_demo(lab, history=history, outage=outage, entities=20, events_per_day=60)
    lab.close()
    source = bl.EventSource(7, 20, 60)
    events = pd.concat([source.events(day) for day in bl.parse_partitions(history)])
    con = duckdb.connect(str(tmp_path / "mirror.duckdb"))  # the mirror starts from the outage
    con.execute(f"ATTACH '{tmp_path / 'lab.duckdb'}' AS lab (READ_ONLY)")
    for table in ("raw", "staging", "features"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM lab.main.{table}")
    con.register("events", events)
    con.execute(f"COPY (SELECT * FROM events) TO '{tmp_path / 'source.parquet'}'")
    con.close()
    monkeypatch.setenv("BACKFILL_WAREHOUSE", str(tmp_path / "mirror.duckdb"))
    monkeypatch.setenv("BACKFILL_SOURCE", str(tmp_path / "source.parquet"))
    spec = importlib.util.spec_from_file_location("mirror_layers", MIRRORS / "layers.py")
    layers = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(layers)  # type: ignore[union-attr]

    days = list(bl.parse_partitions("2024-12-01..2024-12-07"))
    assert layers.window_missing("2024-12-04") == ["2024-12-01", "2024-12-02"]
    for layer in ("raw", "staging", "features"):
        for day in days:
            layers.write_partition(layer, day)
    assert layers.window_missing("2024-12-04") == []

    lab = bl.Warehouse(str(tmp_path / "lab.duckdb"))
    assert bl.run_plan({"backfill": {"partitions": "2024-12-01..2024-12-07"}}, lab).ok
    lab.close()
    con = duckdb.connect(str(tmp_path / "lab.duckdb"), read_only=True)
    con.execute(f"ATTACH '{tmp_path / 'mirror.duckdb'}' AS mirror (READ_ONLY)")
    for table in ("raw", "staging", "features"):
        n = con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]
        assert n > 0
        for a, b in ((f"main.{table}", f"mirror.{table}"), (f"mirror.{table}", f"main.{table}")):
            extra = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()
            assert extra == (0,), f"{table}: {extra[0]} rows only in {a}"
    con.close()
