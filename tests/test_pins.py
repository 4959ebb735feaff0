"""Config and runtime pins: fingerprints, plan keys, refusals before any write, resume, ledger."""

from __future__ import annotations

import sys

import duckdb
import pytest

from backfill_lab import (
    ConfigError,
    Fault,
    Ledger,
    PinMismatch,
    Pipeline,
    Warehouse,
    __version__,
    daily_features,
    load_plan,
    run_backfill,
    run_plan,
)
from backfill_lab import pins as pins_module
from backfill_lab.cli.commands import main
from backfill_lab.pins import canonical_json, check_runtime, config_hash, parse_runtime, runtime

from .conftest import SMALL, all_checksums

DAYS = "2024-12-01..2024-12-03"


def _plan(pipeline: Pipeline, **pins: str) -> str:
    lines = "".join(f"{k}: {v}\n" for k, v in pins.items())
    return (f"pipeline: daily_features\n{lines}backfill:\n  start: 2024-12-01\n"
            f"  end: 2024-12-03\n")


def _state(wh: Warehouse) -> tuple[object, ...]:
    rows = len(Ledger(wh).frame())
    tables = sorted(wh.sql("SELECT table_name FROM information_schema.tables").table_name)
    return all_checksums(wh), rows, tables


# -- fingerprints --------------------------------------------------------------------------
def test_the_config_hash_is_short_stable_and_ignores_key_order():
    a = config_hash({"window": 7, "source": {"seed": 3, "entities": 40}})
    b = config_hash({"source": {"entities": 40, "seed": 3}, "window": 7})
    assert a == b and a.startswith("sha256:") and len(a) == len("sha256:") + 8
    assert config_hash({"window": 14, "source": {"seed": 3, "entities": 40}}) != a
    assert canonical_json({"b": [1, 2.5], "a": None}) == '{"a":null,"b":[1,2.5]}'


@pytest.mark.parametrize("config", [{"f": object()}, {1: "x"}, {"x": float("nan")}])
def test_a_config_must_be_json_data(config):
    with pytest.raises(ConfigError, match="'config"):
        Pipeline("p", [], config=config)


def test_the_pipeline_shows_its_config_hash_and_runtime():
    p = daily_features(SMALL)
    assert p.config == {"features_window": 7,
                        "source": {"seed": 3, "entities": 40, "events_per_day": 160}}
    assert p.config_hash == config_hash(p.config)
    assert p.config_hash != daily_features(SMALL, window=14).config_hash
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert p.runtime == runtime() == (f"python {python} / duckdb {duckdb.__version__} / "
                                      f"backfill_lab {__version__}")
    assert p.pins == {"code_version": "v1.4.2", "config_hash": p.config_hash,
                      "runtime": p.runtime}
    p.config["features_window"] = 99  # a copy: the pipeline's config cannot change under a run
    assert p.config["features_window"] == 7


def test_a_runtime_pin_may_name_some_parts_and_is_normalized():
    assert parse_runtime("duckdb 2.0.1 / python 3.11") == {"python": "3.11", "duckdb": "2.0.1"}
    assert check_runtime("runtime", "  duckdb   2.0.1 /python 3.11") == \
        "python 3.11 / duckdb 2.0.1"


# -- plans ---------------------------------------------------------------------------------
def test_a_plan_pins_all_three_and_prints_them_back():
    p = daily_features(SMALL)
    plan = load_plan(_plan(p, **p.pins))
    assert (plan.code_version, plan.config_hash, plan.runtime) == tuple(p.pins.values())
    text = plan.to_yaml()
    assert text.index("code_version") < text.index("config_hash") < text.index("runtime")
    assert load_plan(text) == plan
    upper = load_plan(_plan(p, config_hash=p.config_hash.upper().replace("SHA256", "sha256")))
    assert upper.config_hash == p.config_hash


@pytest.mark.parametrize(("pins", "message"), [
    ({"config_hash": "1a2b3c4d"},
     "'config_hash' must be 'sha256:' and 8 hex digits, like 'sha256:1a2b3c4d' (the pipeline's "
     "config_hash) (got '1a2b3c4d')"),
    ({"config_hash": "sha256:xyz"}, "(got 'sha256:xyz')"),
    ({"runtime": "duckdb"}, "'runtime' must be parts like 'python 3.11 / duckdb 2.0.1 / "
                            "backfill_lab 0.1.0' (got 'duckdb')"),
    ({"runtime": "pyhton 3.11"}, "unknown runtime part 'pyhton'; known: 'backfill_lab', "
                                 "'duckdb', 'python'. Did you mean 'python'?"),
    ({"runtime": "duckdb 2.0.1 / duckdb 2.0.0"}, "'runtime' names duckdb twice"),
    ({"config_hsh": "sha256:1a2b3c4d"}, "Did you mean 'config_hash'?"),
    ({"runtim": "duckdb 2.0.1"}, "Did you mean 'runtime'?"),
])
def test_a_bad_pin_in_a_plan_is_refused_in_one_line(pins, message):
    with pytest.raises(ConfigError) as info:
        load_plan(_plan(daily_features(SMALL), **pins))
    assert message in str(info.value) and "\n" not in str(info.value)


# -- refusals before anything is written -----------------------------------------------------
def test_a_plan_pinning_another_config_is_refused_before_anything_is_written(wh):
    old = daily_features(SMALL)
    run_backfill(old, wh, "2024-11-24..2024-11-30")
    before = _state(wh)
    plan = _plan(old, **old.pins) + "rollback: {strategy: snapshot}\n"
    changed = daily_features(SMALL, window=14)
    with pytest.raises(PinMismatch) as info:
        run_plan(plan, wh, changed)
    assert str(info.value) == (
        f"backfill pinned to config {old.config_hash} but pipeline 'daily_features' runs config "
        f"{changed.config_hash}; deploy the config that hashes to {old.config_hash} first, or "
        f"pin config_hash {changed.config_hash}")
    assert _state(wh) == before  # no snapshot, no ledger row, no partition


def test_a_runtime_pin_the_process_does_not_match_is_refused_before_writing(wh, pipeline):
    before = _state(wh)
    with pytest.raises(PinMismatch) as info:
        run_backfill(pipeline, wh, DAYS, runtime="python 3.11 / duckdb 0.9.2")
    text = str(info.value)
    assert "pinned to runtime 'python 3.11 / duckdb 0.9.2'" in text
    assert f"(duckdb {duckdb.__version__}, not 0.9.2)" in text
    assert f"or pin runtime {runtime()!r}" in text
    assert _state(wh) == before


def test_a_late_data_plan_checks_its_pins_too(wh):
    from backfill_lab import late_features

    plan = ("pipeline: late_features\nconfig_hash: sha256:00000000\nbackfill:\n"
            "  start: 2024-12-01\n  end: 2024-12-02\nlate_data: {watermark_delay: 1d, "
            "reprocess_window: 1}\n")
    result = run_plan(plan, wh, late_features())
    assert result.error is not None and "pinned to config sha256:00000000" in result.error
    assert wh.tables() == []


# -- the ledger ------------------------------------------------------------------------------
def test_every_ledger_row_records_the_config_and_runtime_it_ran_with(wh, pipeline):
    result = run_backfill(pipeline, wh, DAYS, backfill_id="pinned", retries=1, backoff=0,
                          faults=[Fault.fail("raw", "2024-12-02", times=1)], **pipeline.pins)
    assert result.ok
    ledger = Ledger(wh).frame("pinned")
    assert list(ledger.columns[-2:]) == ["config_hash", "runtime"]
    assert set(ledger["status"]) == {"success", "failed"}  # failed attempts are recorded too
    assert set(ledger["config_hash"]) == {pipeline.config_hash}
    assert set(ledger["runtime"]) == {runtime()}


def test_an_unpinned_backfill_records_what_it_ran_with(wh, pipeline):
    run_backfill(pipeline, wh, "2024-12-01", backfill_id="free")
    ledger = Ledger(wh).frame("free")
    assert set(ledger["config_hash"]) == {pipeline.config_hash}
    assert set(ledger["runtime"]) == {runtime()}


def test_a_warehouse_from_before_the_pins_opens_and_gets_the_columns(tmp_path, pipeline):
    db = tmp_path / "old.duckdb"
    with Warehouse(db) as wh:
        run_backfill(pipeline, wh, "2024-12-01", backfill_id="old")
    con = duckdb.connect(str(db))  # make it a ledger written before config and runtime existed
    con.execute("ALTER TABLE _bl_ledger DROP COLUMN config_hash")
    con.execute("ALTER TABLE _bl_ledger DROP COLUMN runtime")
    con.execute("UPDATE _bl_backfills SET params = CAST(json_remove(json_remove("
                "CAST(params AS JSON), '$.config_hash'), '$.runtime') AS VARCHAR)")
    con.close()
    with Warehouse(db) as wh:
        ledger = Ledger(wh).frame()
        assert ledger["config_hash"].isna().all() and ledger["runtime"].isna().all()
        again = run_backfill(pipeline, wh, "2024-12-01", backfill_id="old")  # resumes: done
        assert again.ok and again.resumed == 3
        run_backfill(pipeline, wh, "2024-12-02", backfill_id="new", **pipeline.pins)
        new = Ledger(wh).frame("new")
        assert set(new["config_hash"]) == {pipeline.config_hash}


# -- resume ----------------------------------------------------------------------------------
def test_a_resume_with_another_config_is_refused(wh, pipeline):
    first = run_backfill(pipeline, wh, DAYS, backfill_id="bf-1",
                         faults=[Fault.fail("raw", "2024-12-03")])
    assert not first.ok
    before = _state(wh)
    changed = daily_features(SMALL, window=14)
    with pytest.raises(PinMismatch) as info:
        run_backfill(changed, wh, DAYS, backfill_id="bf-1")
    assert str(info.value) == (
        f"backfill 'bf-1' was started with config {pipeline.config_hash!r}; resuming it with "
        f"{changed.config_hash!r} would mix configs in one range; restore "
        f"{pipeline.config_hash!r} or start a new backfill id")
    assert _state(wh) == before
    assert run_backfill(pipeline, wh, DAYS, backfill_id="bf-1").ok  # the same config resumes


def test_a_resume_on_another_runtime_is_refused(wh, pipeline, monkeypatch):
    run_backfill(pipeline, wh, DAYS, backfill_id="bf-2", faults=[Fault.fail("raw", "2024-12-03")])
    upgraded = runtime().replace(f"duckdb {duckdb.__version__}", "duckdb 9.9.9")
    monkeypatch.setattr(pins_module, "runtime", lambda: upgraded)
    before = _state(wh)
    with pytest.raises(PinMismatch, match=r"was started with runtime .* would mix runtimes"):
        run_backfill(pipeline, wh, DAYS, backfill_id="bf-2")
    assert _state(wh) == before


# -- exports and the command line -------------------------------------------------------------
@pytest.mark.parametrize("tool", ["airflow", "dbt", "dagster", "sqlmesh"])
def test_every_export_carries_the_pins_as_comments(tool):
    p = daily_features(SMALL)
    plan = load_plan(_plan(p, **p.pins))
    lines = plan.export(tool)
    assert any(line.startswith(f"# config_hash {p.config_hash}: ") for line in lines)
    assert any(line.startswith(f"# runtime {p.runtime}: ") for line in lines)
    bare = load_plan(_plan(p, code_version=p.code_version)).export(tool)
    assert not any("config_hash" in line or "# runtime" in line for line in bare)


def test_the_cli_shows_the_pins_and_accepts_them(tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    assert main(["demo", "--db", str(db), "--history", "2024-11-25..2024-12-05", "--outage",
                 "2024-12-01..2024-12-02", "--entities", "20", "--events-per-day", "60"]) == 0
    out = capsys.readouterr().out
    with Warehouse(db) as wh:
        from backfill_lab import demo_pipeline

        deployed = demo_pipeline(wh)
    assert f"config {deployed.config_hash}, runtime {runtime()}" in out
    assert main(["backfill", "--db", str(db), "--partitions", "2024-12-01..2024-12-02",
                 "--quiet", "--backfill-id", "cli-pinned", "--code-version", "v1.4.2",
                 "--config-hash", deployed.config_hash, "--runtime", runtime()]) == 0
    with Warehouse(db) as wh:
        assert set(Ledger(wh).frame("cli-pinned")["config_hash"]) == {deployed.config_hash}
    assert main(["backfill", "--db", str(db), "--partitions", "2024-12-01", "--config-hash",
                 "sha256:0000000"]) == 2
    assert "'config-hash' must be 'sha256:' and 8 hex digits" in capsys.readouterr().err
