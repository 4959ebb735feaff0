"""A generic DAG executor: threads, a cap on work in flight, upstream before downstream.

:func:`run_dag` knows nothing about partitions, DuckDB or ledgers (like SQLMesh's
``concurrent_apply_to_dag``): the runner gives it step keys, what each waits for, a priority and a
function to call, and gets back what happened. It can be tested with plain functions.

>>> order = []
>>> def build(node):
...     order.append(node)
...     return node != "b"          # "b" fails
>>> run = run_dag(["a", "b", "c", "d"], {"c": ["a"], "d": ["b"]}, priority=str, workers=1,
...               fn=build, succeeded=bool)
>>> order, sorted(run.results), run.skipped
(['a', 'b', 'c'], ['a', 'b', 'c'], {'d': 'b'})
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ConfigError

__all__ = ["DagRun", "run_dag"]

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@dataclass
class DagRun(Generic[K, R]):
    """What :func:`run_dag` did, counted for this run only.

    ``results`` holds every node that ran (its return value), ``errors`` the nodes whose
    function raised, ``skipped`` the nodes not run because an upstream node did not succeed
    (node -> that upstream node), ``not_started`` the nodes left when ``may_start`` said stop.
    ``started`` is the order nodes started; ``max_in_flight`` the most that ran at once.
    """

    results: dict[K, R] = field(default_factory=dict)
    errors: dict[K, BaseException] = field(default_factory=dict)
    skipped: dict[K, K] = field(default_factory=dict)
    not_started: list[K] = field(default_factory=list)
    started: list[K] = field(default_factory=list)
    max_in_flight: int = 0


class _Counter:
    """How many calls run right now, and the most there ever were (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def call(self, fn: Callable[[Any], R], node: Any) -> R:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return fn(node)
        finally:
            with self._lock:
                self.now -= 1


def run_dag(
    nodes: Iterable[K],
    waits_for: Mapping[K, Iterable[K]],
    priority: Callable[[K], Any],
    workers: int,
    fn: Callable[[K], R],
    *,
    succeeded: Callable[[R], bool] = lambda _: True,
    on_skip: Callable[[K, K], None] | None = None,
    may_start: Callable[[K], bool] | None = None,
    pool: Executor | None = None,
) -> DagRun[K, R]:
    """Call ``fn(node)`` for every node, in threads, never more than ``workers`` at once.

    A node starts only when every node it ``waits_for`` (among ``nodes``; others count as done)
    has run and ``succeeded``; among ready nodes the lowest ``priority`` starts first. When a
    node fails (``succeeded`` is false, or ``fn`` raised), everything downstream of it is
    skipped (``on_skip(node, failed_upstream)`` is called for each, in this thread). When
    ``may_start(node)`` is false, no further node starts: those left are ``not_started``.
    ``pool`` runs the calls in its threads (a caller running DAGs back to back keeps its
    threads); without one, a pool of its own is started and shut down here.
    """
    workers = max(1, int(workers))
    order = list(nodes)
    pending = set(order)
    waits = {n: [w for w in waits_for.get(n, ()) if w in pending] for n in order}
    dependents: dict[K, list[K]] = {}
    for node, ups in waits.items():
        for up in ups:
            dependents.setdefault(up, []).append(node)
    left = {n: len(ups) for n, ups in waits.items()}
    seq = {n: i for i, n in enumerate(order)}
    ready = [(priority(n), seq[n], n) for n in order if not left[n]]
    heapq.heapify(ready)
    out: DagRun[K, R] = DagRun()
    counter = _Counter()
    stopped = False

    def skip_below(failed: K) -> None:
        todo = [(d, failed) for d in dependents.get(failed, ())]
        while todo:
            node, cause = todo.pop()
            if node not in pending:
                continue
            pending.discard(node)
            out.skipped[node] = cause
            if on_skip is not None:
                on_skip(node, cause)
            todo.extend((d, node) for d in dependents.get(node, ()))

    with _executor(pool, max(1, min(workers, len(order)))) as executor:
        running: dict[Future[R], K] = {}
        while pending or running:
            while ready and len(running) < workers and not stopped:
                node = heapq.heappop(ready)[2]
                if node not in pending:
                    continue
                if may_start is not None and not may_start(node):
                    stopped = True
                    break
                pending.discard(node)
                out.started.append(node)
                running[executor.submit(counter.call, fn, node)] = node
            if not running:
                if stopped or not pending:
                    break
                stuck = sorted(map(str, pending))[:3]
                raise ConfigError(f"steps can never start (a dependency cycle?): {stuck}")
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: seq[running[f]]):
                node = running.pop(future)
                error = future.exception()
                if error is not None:
                    out.errors[node] = error
                else:
                    out.results[node] = future.result()
                if error is not None or not succeeded(out.results[node]):
                    skip_below(node)
                    continue
                for down in dependents.get(node, ()):
                    left[down] -= 1
                    if left[down] == 0 and down in pending:
                        heapq.heappush(ready, (priority(down), seq[down], down))
    out.not_started = [n for n in order if n in pending]
    out.max_in_flight = counter.peak
    return out


def _executor(pool: Executor | None, threads: int) -> AbstractContextManager[Executor]:
    """``pool`` (left running), or a new pool of ``threads`` threads, shut down on exit: never
    more threads than could ever run at once (the cap, and the nodes there are)."""
    if pool is not None:
        return nullcontext(pool)
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="backfill")
