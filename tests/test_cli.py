"""The backfill-lab command line: the guide's pseudocode commands, with one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backfill_lab import Ledger, Warehouse
from backfill_lab.cli.commands import main

SMALL_DEMO = ["--history", "2024-11-25..2024-12-10", "--outage", "2024-12-01..2024-12-04",
              "--entities", "30", "--events-per-day", "120"]


@pytest.fixture
def db(tmp_path, capsys):
    path = tmp_path / "lab.duckdb"
    assert main(["demo", "--db", str(path), *SMALL_DEMO]) == 0
    return path


def test_demo_status_backfill_status(db, capsys):
    out = capsys.readouterr().out
    assert "outage 2024-12-01..2024-12-04" in out and "XXXX" in out
    # the outage days, and the features after them, whose 7-day windows reached into the hole
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-01..2024-12-10",
                 "--max-parallel", "2", "--write-mode", "overwrite", "--retries", "2",
                 "--backfill-id", "dec", "--audit-tag", "ticket=INC-1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "backfill dec: success (30 success; at most 2 in flight" in out
    assert main(["status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "X" not in out.split("legend")[0] and "." not in out.split("legend")[0].split("\n", 1)[1]
    assert "backfills: dec" in out
    with Warehouse(db) as wh:
        assert set(Ledger(wh).frame("dec").audit_tags) == {'{"ticket": "INC-1"}'}


def test_a_batched_dry_run_shows_what_each_step_writes(db, capsys):
    capsys.readouterr()
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-01..2024-12-09",
                 "--batch-size", "7", "--layers", "raw", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "dry run: 2 steps, nothing written" in out
    assert "2024-12-01..2024-12-07" in out and "2024-12-08..2024-12-09" in out


def test_dry_run_prints_steps_and_writes_nothing(db, capsys):
    capsys.readouterr()
    with Warehouse(db) as wh:
        before = {t: wh.checksums(t) for t in wh.tables()}
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-01..2024-12-02",
                 "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "dry run: 6 steps, nothing written" in out
    with Warehouse(db) as wh:
        assert {t: wh.checksums(t) for t in wh.tables()} == before
        assert Ledger(wh).backfill_ids() == [f"scheduled-2024-{d}" for d in (
            ["11-25", "11-26", "11-27", "11-28", "11-29", "11-30"]
            + [f"12-{i:02d}" for i in range(1, 11)])]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backfill", "--partitions", "2024-12-01", "--max-parallel", "two"],
         "'max-parallel' must be an integer >= 1 (got 'two')"),
        (["backfill", "--partitions", "2024-12-31..2024-12-01"], "is reversed"),
        (["backfill", "--partitions", "2024-12-01", "--write-mode", "upsert"],
         "invalid choice: 'upsert'"),
        (["backfill", "--partitions", "2024-12-01", "--max-paralel", "2"],
         "Did you mean '--max-parallel'?"),
        (["backfill", "--partitions", "2024-12-01", "--layers", "stagin"],
         "Did you mean 'staging'?"),
        (["backfill", "--partitions", "2024-12-01", "--write-mode", "merge"], "needs merge_keys"),
        (["backfill", "--partitions", "2024-12-01", "--audit-tag", "oops"], "KEY=VALUE"),
        (["backfill", "--partitions", "2024-12-01", "--write-mode", "merge", "--batch-size", "7"],
         "'--batch-size' > 1 needs '--write-mode overwrite' (got 'merge')"),
        (["backfil"], "Did you mean 'backfill'?"),
        (["backfill", "--partitions", "2024-12-01", "--code-version", "v9"],
         "pinned to code version 'v9'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(db, capsys, args, message):
    capsys.readouterr()
    argv = [*args[:1], "--db", str(db), *args[1:]] if args[0] != "backfil" else args
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("backfill-lab: error: ")


def test_missing_warehouse_and_existing_demo(tmp_path, db, capsys):
    capsys.readouterr()
    assert main(["status", "--db", str(tmp_path / "nope.duckdb")]) == 2
    assert "does not exist; create the demo with" in capsys.readouterr().err
    assert not (tmp_path / "nope.duckdb").exists()
    assert main(["demo", "--db", str(db)]) == 2
    assert "pass --force" in capsys.readouterr().err


def test_console_script_runs_as_a_real_process(db):
    proc = subprocess.run(
        [sys.executable, "-m", "backfill_lab.cli.commands", "backfill", "--db", str(db),
         "--partitions", "2024-12-32"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "got '2024-12-32'" in proc.stderr


def test_failed_steps_exit_1(db, capsys):
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-02",
                 "--layers", "features"])
    assert code == 1
    out = capsys.readouterr().out
    assert "upstream staging 2024-12-01 is missing, so features 2024-12-02" in out


def test_validate_switchover_rollback_commands(db, capsys):
    capsys.readouterr()
    base = ["--db", str(db)]
    assert main(["backfill", *base, "--partitions", "2024-12-01..2024-12-10", "--quiet"]) == 0
    assert main(["backfill", *base, "--partitions", "2024-12-01..2024-12-10", "--quiet",
                 "--layers", "features", "--target", "features_v2", "--feature-version", "v2",
                 "--code-version", "v2.0.0"]) == 0
    assert main(["switchover", *base, "--view", "features_view", "--to", "features",
                 "--create"]) == 0
    # never validated: the switch is refused and the view is unchanged
    assert main(["switchover", *base, "--view", "features_view", "--to", "features_v2"]) == 1
    assert "never validated: 2024-12-01..2024-12-10" in capsys.readouterr().err
    code = main(["validate", *base, "--table", "features_v2", "--partitions",
                 "2024-12-01..2024-12-10", "--drift-baseline", "features", "--max-psi", "5"])
    out = capsys.readouterr().out
    assert code == 0 and "50/50 checks passed" in out
    # 30 entities a day is too few rows for a tight PSI: loosen the canary for this tiny demo
    assert main(["switchover", *base, "--view", "features_view", "--to", "features_v2",
                 "--canary-max-psi", "5"]) == 0
    assert "view features_view -> features_v2" in capsys.readouterr().out
    assert main(["rollback", *base, "--view", "features_view"]) == 0
    assert "view features_view -> features" in capsys.readouterr().out
    code = main(["validate", *base, "--table", "features", "--partitions", "2024-12-05",
                 "--row-min", "100000"])
    assert code == 1 and "FAIL row_count" in capsys.readouterr().out
    assert main(["validate", *base, "--table", "featurs", "--partitions", "2024-12-05"]) == 2
    assert "Did you mean 'features'?" in capsys.readouterr().err


def test_check_export_and_run_a_plan_file(tmp_path, capsys):
    from .plans import MISTAKES, PERFECT

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(PERFECT["ex1"])
    bad.write_text(MISTAKES["append_on_rerun"][1])
    assert main(["check", str(good), "--exercise", "ex1", "--no-simulate"]) == 0
    assert "ex1: 10/10 points" in capsys.readouterr().out
    assert main(["check", str(bad), "--exercise", "ex1", "--no-simulate"]) == 1
    assert "FAIL  idempotent_writes" in capsys.readouterr().out
    assert main(["export", str(good), "--to", "airflow"]) == 0
    assert capsys.readouterr().out.startswith("airflow backfill create --dag-id daily_features")
    assert main(["export", str(good), "--to", "prefect"]) == 2
    assert "invalid choice: 'prefect'" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "none.yaml")]) == 2
    (tmp_path / "typo.yaml").write_text("backfil: {}\n")
    assert main(["check", str(tmp_path / "typo.yaml")]) == 2
    assert "Did you mean 'backfill'?" in capsys.readouterr().err


def test_run_a_plan_and_schedule_on_a_demo(db, tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text("code_version: v1.4.2\nbackfill: {partitions: 2024-12-01..2024-12-10,"
                    " concurrency: 2, retries: 1}\nrollback: {strategy: snapshot}\n")
    capsys.readouterr()
    assert main(["run", str(plan), "--db", str(db), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "success (30 success; at most 2 in flight)" in out
    assert "snapshot plan_2024_12_01_features of features" in out
    code = main(["schedule", "--db", str(db), "--start", "2024-12-11",
                 "--until", "2024-12-14T03:00", "--reprocess-window", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "2024-12-14 02:00:00 2024-12-13" in out and "[2024-12-12]" in out
    assert main(["schedule", "--db", str(db), "--start", "2024-12-11", "--until",
                 "soon"]) == 2
    assert "'until' must be a date" in capsys.readouterr().err
