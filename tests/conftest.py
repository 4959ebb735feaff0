"""Shared fixtures: small, seeded demo data so the unit suite stays fast."""

from __future__ import annotations

import os

import pytest

# no cache folder of built incidents, here or in what the tests start (a CLI, a kernel): every
# test builds what it stages, as a fresh machine does; tests/test_template_cache.py turns one on
os.environ["BACKFILL_LAB_CACHE"] = "off"

from backfill_lab import EventSource, Warehouse, daily_features

SMALL = EventSource(seed=3, entities=40, events_per_day=160)


@pytest.fixture
def wh():
    warehouse = Warehouse()
    yield warehouse
    warehouse.close()


@pytest.fixture
def pipeline():
    return daily_features(SMALL)


@pytest.fixture(autouse=True)
def _progress_file(tmp_path, monkeypatch):
    """Self-checks record progress in a file: keep it out of the developer's home."""
    monkeypatch.setenv("BACKFILL_LAB_PROGRESS", str(tmp_path / "progress.json"))


def all_checksums(warehouse: Warehouse) -> dict[str, dict[str, str]]:
    return {t: warehouse.checksums(t) for t in warehouse.tables()}
