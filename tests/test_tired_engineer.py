"""What a tired engineer typed, found by a helper given that role: each got a traceback, an exit
code of 1 for a refusal, advice that could not be followed, or wrote before it was refused.

The standard: one line on stderr naming what was wrong, what was received and how to fix it;
exit code 2; the warehouse file byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import backfill_lab.cli.guard as guard
from backfill_lab import Warehouse
from backfill_lab.cli import commands
from backfill_lab.cli.commands import main
from backfill_lab.errors import ConfigError, PartitionError
from backfill_lab.partitions import parse_key

from .test_cli import SMALL_DEMO


@pytest.fixture
def db(tmp_path, capsys):
    path = tmp_path / "lab.duckdb"
    assert main(["demo", "--db", str(path), *SMALL_DEMO]) == 0
    capsys.readouterr()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_refusal(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backfill-lab: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_rerunning_an_edited_plan_is_refused_in_one_line_and_can_be_given_its_own_id(
        db, tmp_path, capsys):
    first, second = tmp_path / "p1.yaml", tmp_path / "p2.yaml"
    first.write_text("backfill: {start: 2024-12-01, end: 2024-12-03, concurrency: 2}\n"
                     "rollback: {strategy: snapshot}\n")
    second.write_text("backfill: {start: 2024-12-01, end: 2024-12-04, concurrency: 2}\n"
                      "rollback: {strategy: snapshot}\n")
    assert main(["run", str(first), "--db", str(db), "--quiet"]) == 0
    capsys.readouterr()
    before = _digest(db)
    code = main(["run", str(second), "--db", str(db), "--quiet"])
    _one_line_refusal(capsys, code, "plan-2024-12-01", "--backfill-id")
    assert _digest(db) == before  # its snapshots were taken before the refusal: put back
    assert main(["run", str(second), "--db", str(db), "--quiet", "--backfill-id",
                 "dec-fix-2"]) == 0
    assert "success" in capsys.readouterr().out


def test_a_warehouse_that_cannot_be_copied_aside_is_refused_in_one_line(db, capsys,
                                                                        monkeypatch):
    """As a user who may read but not copy it (mode 000, an unsearchable folder): the guard's
    copy raised PermissionError with an 18-line traceback, and left its folder behind."""
    def denied(src, dst, **_):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(guard.shutil, "copy2", denied)
    leftovers = set(Path(guard.tempfile.gettempdir()).glob("backfill-lab-kept-*"))
    code = main(["status", "--db", str(db)])
    _one_line_refusal(capsys, code, "lab.duckdb", "Permission denied")
    assert set(Path(guard.tempfile.gettempdir()).glob("backfill-lab-kept-*")) == leftovers


def test_a_refusal_on_a_read_only_warehouse_does_not_crash_putting_it_back(
        db, capsys, monkeypatch):
    """A read-only file: the command was refused, then putting the file back raised
    PermissionError with a traceback (the file had not changed: there was nothing to put back)."""
    real = shutil.copy2

    def read_only(src, dst, **kw):
        if Path(dst) == db:
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst, **kw)

    monkeypatch.setattr(guard.shutil, "copy2", read_only)
    before = _digest(db)
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-01", "--order", "asc"])
    _one_line_refusal(capsys, code, "order")
    assert _digest(db) == before


def test_ctrl_c_during_a_backfill_is_one_line_and_names_what_to_resume(db, capsys,
                                                                       monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands.BackfillRunner, "run", interrupted)
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-01..2024-12-04",
                 "--backfill-id", "dec-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and len(err) == 1, err
    assert "interrupted" in err[0] and "--backfill-id dec-1" in err[0]


@pytest.mark.parametrize(("typed", "why"), [
    ("2024-02-30", "day is out of range for month"),
    ("2024-13-01", r"month must be in 1\.\.12"),
])
def test_an_impossible_date_says_why(typed, why):
    with pytest.raises(PartitionError, match=why):
        parse_key(typed)


def test_opening_a_warehouse_says_what_is_really_wrong(tmp_path):
    with pytest.raises(ConfigError, match=r"folder .* does not exist") as missing:
        Warehouse(tmp_path / "nodir" / "x.duckdb")
    assert "not a DuckDB database file" not in str(missing.value)


def test_a_plan_for_another_pipeline_is_refused_before_it_writes(db, tmp_path, capsys):
    plan = tmp_path / "late.yaml"
    plan.write_text("pipeline: late_features\nbackfill: {start: 2024-12-01, end: 2024-12-03}\n")
    before = _digest(db)
    code = main(["run", str(plan), "--db", str(db), "--quiet"])
    _one_line_refusal(capsys, code, "'late_features'", "'daily_features'",
                      "set pipeline: daily_features")
    assert _digest(db) == before


def test_merge_keys_without_a_merge_are_refused(db, capsys):
    before = _digest(db)
    code = main(["backfill", "--db", str(db), "--partitions", "2024-12-01",
                 "--merge-keys", "entity_id,date"])
    _one_line_refusal(capsys, code, "--merge-keys", "--write-mode merge", "overwrite")
    assert _digest(db) == before


def test_a_schedule_that_ends_before_it_starts_is_refused(db, capsys):
    before = _digest(db)
    code = main(["schedule", "--db", str(db), "--start", "2025-02-05", "--until", "2025-02-01"])
    _one_line_refusal(capsys, code, "before '--start' 2025-02-05")
    assert _digest(db) == before


def test_rolling_back_a_view_that_does_not_exist_names_the_views(db, capsys):
    assert main(["switchover", "--db", str(db), "--view", "features_live", "--to", "features",
                 "--create"]) == 0
    capsys.readouterr()
    code = main(["rollback", "--db", str(db), "--view", "features_lve"])
    _one_line_refusal(capsys, code, "unknown view 'features_lve'", "Did you mean 'features_live'")


def test_switching_a_view_to_a_typo_names_the_tables(db, capsys):
    assert main(["switchover", "--db", str(db), "--view", "features_live", "--to", "features",
                 "--create"]) == 0
    capsys.readouterr()
    code = main(["switchover", "--db", str(db), "--view", "features_live", "--to", "featurs"])
    _one_line_refusal(capsys, code, "unknown table 'featurs'", "Did you mean 'features'")


@pytest.mark.parametrize("name", ["plan.txt", "/tmp/x/GOOD.YAML"])
def test_a_plan_file_name_that_is_not_yaml_says_it_was_read_as_text(name):
    from backfill_lab import load_plan

    with pytest.raises(ConfigError, match="YAML text") as refused:
        load_plan(name)
    assert "Path(" in str(refused.value)


def test_the_wrong_arguments_to_a_backfill_are_one_line_before_anything_is_written():
    from backfill_lab import EventSource, daily_features, run_backfill

    wh = Warehouse()
    pipeline = daily_features(EventSource(seed=3, entities=20, events_per_day=50))
    before = wh.tables()
    for args, kwargs, needle in [
        ((pipeline, "lab.duckdb", "2024-12-01"), {}, "'warehouse' must be a Warehouse"),
        (("daily_features", wh, "2024-12-01"), {}, "'pipeline' must be a Pipeline"),
        ((wh, pipeline, "2024-12-01"), {}, "'pipeline' must be a Pipeline"),
        ((pipeline, wh, "2024-12-01", {"concurrency": 2}), {}, "'options' must be"),
        ((pipeline, wh, "2024-12-01"), {"audit_tags": ["a"]}, "'audit_tags' must be"),
        ((pipeline, wh, "2024-12-01"), {"clock": "now"}, "'clock' must have a now()"),
        ((pipeline, wh, "2024-12-01"), {"on_event": "print"}, "'on_event' must be a function"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            run_backfill(*args, **kwargs)
    assert wh.tables() == before
    assert not wh.sql("SELECT * FROM duckdb_tables() WHERE table_name LIKE '_bl_ledger'").shape[0]
