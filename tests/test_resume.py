"""Resume after a killed process: a real subprocess is SIGKILLed mid-backfill, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_lab import Ledger, Warehouse, daily_features, run_backfill

from .conftest import SMALL, all_checksums
from .resume_child import RANGE

ROOT = Path(__file__).resolve().parent.parent


def kill_after(db: Path, mode: str, commits: int) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.resume_child", str(db), mode, "bf-kill"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seen.append(line.strip())
            if len(seen) >= commits:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL, "the child finished before it was killed"
    assert "finished" not in seen
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["overwrite", "append", "merge"])
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, mode):
    db = tmp_path / "lab.duckdb"
    committed = kill_after(db, mode, commits=12)

    opts = {"concurrency": 2, "mode": mode}
    if mode == "merge":
        opts |= {"merge_keys": ["event_id", "date"], "layers": ["raw", "staging"]}
    with Warehouse(db) as wh:
        partial = sum(wh.partition_counts("raw").values())
        assert partial > 0  # the killed run had really written something
        result = run_backfill(daily_features(SMALL), wh, RANGE, backfill_id="bf-kill", **opts)
        assert result.ok
        assert result.resumed >= len(committed)  # committed steps were not rerun
        ledger = Ledger(wh).frame("bf-kill")
        wins = ledger[ledger.status == "success"].groupby(["layer", "partition"]).size()
        assert (wins == 1).all()  # no step ever committed twice
        resumed = all_checksums(wh)

    with Warehouse() as ref:
        run_backfill(daily_features(SMALL), ref, RANGE, **opts)
        assert all_checksums(ref) == resumed  # no duplicates, no holes


def kill_while_validating(db: Path, writes: int, mode: str = "validate") -> list[str]:
    """SIGKILL the child right after its ``writes``-th features write committed, before that
    partition's validations ran (``validate-inside``: while they ran inside its transaction)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.resume_child", str(db), mode, "bf-val"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seen.append(line.strip())
            if len([s for s in seen if s.startswith("written")]) >= writes:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL, "the child finished before it was killed"
    return [s.split()[-1] for s in seen if s.startswith("written")]


@pytest.mark.slow
@pytest.mark.parametrize("writes", [1, 3, 5])
def test_a_kill_between_write_and_validation_is_rerun_and_validated(tmp_path, writes):
    """Checks with a consumer's own query run after the write commits: a kill in between
    leaves a write the ledger holds as not validated, and the resume redoes it."""
    from backfill_lab.validations import validated_partitions

    from .resume_child import CHECKS_AFTER

    db = tmp_path / "lab.duckdb"
    written = kill_while_validating(db, writes)
    unvalidated = written[-1]
    with Warehouse(db) as wh:
        assert unvalidated in wh.partition_counts("features")  # the write had committed
        assert unvalidated not in validated_partitions(wh, "features")
        result = run_backfill(daily_features(SMALL), wh, RANGE, backfill_id="bf-val",
                              validations={"features": CHECKS_AFTER})
        assert result.ok
        # every partition of the range is both written and validated, the killed one included
        expected = set(run_backfill(daily_features(SMALL), wh, RANGE, dry_run=True,
                                    layers=["features"])["partition"])
        assert expected <= validated_partitions(wh, "features")
        ledger = Ledger(wh).frame("bf-val")
        last = ledger.drop_duplicates(["layer", "partition"], keep="last")
        assert (last.status == "success").all()
        features = ledger[(ledger.layer == "features") & (ledger.partition == unvalidated)]
        assert len(features) == 2  # the unvalidated write was redone, not trusted


@pytest.mark.slow
@pytest.mark.parametrize("writes", [1, 4])
def test_a_kill_while_checks_run_inside_the_write_leaves_nothing_half_done(tmp_path, writes):
    """The lab's own checks run inside the write's transaction: a kill while they run leaves
    neither the partition's rows nor a ledger row nor check results, and the resume builds and
    validates it."""
    from backfill_lab.validations import latest_validations, validated_partitions

    from .resume_child import CHECKS

    db = tmp_path / "lab.duckdb"
    killed = kill_while_validating(db, writes, "validate-inside")[-1]
    with Warehouse(db) as wh:
        assert killed not in wh.partition_counts("features")  # rolled back with the kill
        assert killed not in set(latest_validations(wh, "features").partition)
        ledger = Ledger(wh).frame("bf-val")
        assert ledger[(ledger.layer == "features") & (ledger.partition == killed)].empty
        result = run_backfill(daily_features(SMALL), wh, RANGE, backfill_id="bf-val",
                              validations={"features": CHECKS})
        assert result.ok
        expected = set(run_backfill(daily_features(SMALL), wh, RANGE, dry_run=True,
                                    layers=["features"])["partition"])
        assert expected <= validated_partitions(wh, "features")
        ledger = Ledger(wh).frame("bf-val")
        features = ledger[(ledger.layer == "features") & (ledger.partition == killed)]
        assert list(features.status) == ["success"]  # built once, by the resume


def test_a_failed_validation_is_rebuilt_on_resume_not_reported_as_success(wh):
    from backfill_lab import Fault
    from backfill_lab.validations import invalid_partitions

    from .resume_child import CHECKS

    bad = "2024-12-03"
    first = run_backfill(daily_features(SMALL), wh, "2024-12-01..2024-12-05",
                         backfill_id="bf-bad", validations={"features": CHECKS},
                         faults=[Fault.duplicates("features", bad)])
    assert not first.ok
    assert {(s.partition, s.status) for s in first.steps if s.layer == "features"
            and s.status != "success"} == {(bad, "invalid")}
    planted = wh.read_partition("features", bad)
    assert planted.duplicated(["entity_id", "date"]).any()
    assert Ledger(wh).last_status("bf-bad")[("features", bad)][0] == "invalid"

    again = run_backfill(daily_features(SMALL), wh, "2024-12-01..2024-12-05",
                         backfill_id="bf-bad", validations={"features": CHECKS})
    assert again.ok
    rebuilt = [s for s in again.steps if s.layer == "features" and s.partition == bad]
    assert rebuilt[0].attempts == 2  # rebuilt, not carried over as a success
    assert not wh.read_partition("features", bad).duplicated(["entity_id", "date"]).any()
    assert bad not in invalid_partitions(wh, "features")


def test_a_resumed_failed_validation_that_still_fails_stays_invalid(wh):
    from backfill_lab import Fault

    from .resume_child import CHECKS

    faults = [Fault.nulls("features", "2024-12-02", column="amount_1d", fraction=0.5)]
    for _ in range(2):
        result = run_backfill(daily_features(SMALL), wh, "2024-12-01..2024-12-03",
                              backfill_id="bf-still", validations={"features": CHECKS},
                              faults=faults)
        assert result.status == "failed"
        assert [s.status for s in result.steps if s.partition == "2024-12-02"
                and s.layer == "features"] == ["invalid"]


@pytest.mark.slow
@pytest.mark.parametrize("lines", [2, 5, 9])
def test_cli_validate_killed_and_resumed_never_reports_an_unvalidated_success(tmp_path, lines):
    """Real SIGKILLs of ``backfill-lab backfill --validate``; after the resume every partition
    the ledger calls a success has passing checks recorded, and none is left 'not validated'."""
    from backfill_lab.cli.commands import main
    from backfill_lab.evaluate import NOT_VALIDATED
    from backfill_lab.validations import latest_validations

    db = tmp_path / "lab.duckdb"
    assert main(["demo", "--db", str(db), "--history", "2024-11-20..2024-12-10", "--outage",
                 "2024-12-01..2024-12-06", "--entities", "30", "--events-per-day", "120"]) == 0
    argv = [sys.executable, "-m", "backfill_lab.cli", "backfill", "--db", str(db),
            "--partitions", "2024-12-01..2024-12-10", "--validate", "--max-parallel", "2",
            "--backfill-id", "bf-cli-val"]
    child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.split()[:1] in (["success"], ["invalid"]):
                seen += 1
                if seen >= lines:
                    child.send_signal(signal.SIGKILL)
                    break
    finally:
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    resumed = subprocess.run([*argv, "--quiet"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode in (0, 1), resumed.stderr
    with Warehouse(db) as wh:
        ledger = Ledger(wh).frame("bf-cli-val")
        last = ledger.drop_duplicates(["layer", "partition"], keep="last")
        assert not (last.error == NOT_VALIDATED).any()
        checks = latest_validations(wh, "features")
        passed = checks.groupby("partition")["passed"].all()
        for part in last[(last.layer == "features") & (last.status == "success")].partition:
            assert passed.get(part, False), f"{part} reported success without passing checks"


def test_a_broken_consumer_query_in_a_backfill_is_a_verdict_and_the_write_stays(wh):
    """A consumer's own query that fails is the check's verdict (invalid), never an error of
    the write: it runs outside the write's transaction, whose data commits."""
    from backfill_lab.validations import DownstreamRead, Validations, latest_validations

    broken = Validations(downstream_read=DownstreamRead(
        "SELECT entity_id, amount_30d FROM {table} WHERE date = $partition"))
    result = run_backfill(daily_features(SMALL), wh, "2024-12-01..2024-12-02",
                          backfill_id="bf-consumer", validations={"features": broken})
    features = [s for s in result.steps if s.layer == "features"]
    assert [s.status for s in features] == ["invalid", "invalid"]
    assert all("consumer query failed" in (s.error or "") for s in features)
    assert {"2024-12-01", "2024-12-02"} <= set(wh.partition_counts("features"))
    assert not latest_validations(wh, "features")["passed"].any()
