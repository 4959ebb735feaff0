"""The DAG executor on its own: plain functions, no DuckDB."""

from __future__ import annotations

import threading
import time

import pytest

from backfill_lab._dag import run_dag
from backfill_lab.errors import ConfigError


def test_a_node_starts_only_after_what_it_waits_for_succeeded():
    done: list[str] = []
    lock = threading.Lock()

    def fn(node: str) -> bool:
        time.sleep(0.01)
        with lock:
            done.append(node)
        return True

    waits = {"b": ["a"], "c": ["a"], "d": ["b", "c"]}
    run = run_dag(["a", "b", "c", "d"], waits, priority=str, workers=3, fn=fn)
    assert done[0] == "a" and done[-1] == "d"
    assert set(run.results) == {"a", "b", "c", "d"} and not run.skipped and not run.errors


def test_never_more_than_workers_in_flight_and_really_parallel():
    now = [0]
    peak = [0]
    lock = threading.Lock()

    def fn(_node: int) -> None:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.02)
        with lock:
            now[0] -= 1

    run = run_dag(range(12), {}, priority=lambda n: n, workers=3, fn=fn)
    assert peak[0] == 3 and run.max_in_flight == 3
    assert run.started == list(range(12))  # lowest priority first


def test_priority_chooses_among_ready_nodes():
    run = run_dag(["x1", "x2", "y1"], {"y1": ["x1"]}, priority=lambda n: (-int(n[1]), n),
                  workers=1, fn=lambda n: True)
    assert run.started == ["x2", "x1", "y1"]


def test_a_failure_skips_everything_downstream_and_nothing_else():
    skipped: list[tuple[str, str]] = []

    def fn(node: str) -> bool:
        if node == "boom":
            raise RuntimeError("no")
        return node != "bad"

    waits = {"after_bad": ["bad"], "after_after": ["after_bad"], "after_boom": ["boom"]}
    run = run_dag(["bad", "boom", "ok", "after_bad", "after_after", "after_boom"], waits,
                  priority=str, workers=2, fn=fn, succeeded=bool,
                  on_skip=lambda n, cause: skipped.append((n, cause)))
    assert run.skipped == {"after_bad": "bad", "after_after": "after_bad", "after_boom": "boom"}
    assert sorted(skipped) == sorted(run.skipped.items())
    assert isinstance(run.errors["boom"], RuntimeError)
    assert set(run.results) == {"bad", "ok"}


def test_may_start_stops_new_work_and_reports_what_never_started():
    calls: list[int] = []
    run = run_dag(range(5), {}, priority=lambda n: n, workers=1, fn=calls.append,
                  may_start=lambda n: n < 2)
    assert calls == [0, 1] and run.not_started == [2, 3, 4]


def test_waits_outside_the_nodes_count_as_done():
    run = run_dag(["b"], {"b": ["a"]}, priority=str, workers=1, fn=lambda n: n)
    assert run.results == {"b": "b"}


def test_a_cycle_is_refused_with_one_line():
    with pytest.raises(ConfigError, match="can never start"):
        run_dag(["a", "b"], {"a": ["b"], "b": ["a"]}, priority=str, workers=1, fn=lambda n: n)
