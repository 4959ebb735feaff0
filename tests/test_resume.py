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
