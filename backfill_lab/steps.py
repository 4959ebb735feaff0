"""Planning a backfill: its steps (layer x partition, or x batch), what each waits for, the order.

A backfill is a set of steps, one per (layer, partition); with ``batch_size`` > 1 a step writes a
run of ``batch_size`` partitions of one layer. A step waits for the steps of this backfill that
build what it reads (upstream before downstream, per partition). Among ready steps the earliest
partition starts first (``ascending``) or the latest (``descending``), upstream layers first.

Planning is O(n log n) in the number of steps: ranks are looked up in dicts and the one-at-a-time
start order comes from a heap, so a dry run of 10,000 daily partitions takes well under a second.

>>> from backfill_lab.pipeline import Dependency, Layer, Pipeline
>>> p = Pipeline("p", [Layer("raw", "SELECT 1"),
...                   Layer("out", "SELECT 1", (Dependency.window("raw", 2),))])
>>> steps = plan_steps(p, ["raw", "out"], PartitionSet.parse("2024-12-01..2024-12-02"),
...                    "descending", 1, {"raw": "raw", "out": "out"})
>>> [f"{s.layer}:{s.partition}" for s in start_order(steps, priorities(steps))]
['raw:2024-12-02', 'raw:2024-12-01', 'out:2024-12-02', 'out:2024-12-01']
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .partitions import PartitionSet
from .pipeline import Pipeline

__all__ = ["Step", "StepEvent", "StepKey", "StepResult", "plan_steps", "priorities", "start_order"]

StepKey = tuple[str, str]
"""``(layer, partition)``; a batch step is keyed by its first partition."""


@dataclass(frozen=True)
class Step:
    """One layer's partition (or batch of partitions) to build, and the steps it waits for."""

    layer: str
    partition: str
    table: str
    waits_for: tuple[StepKey, ...] = ()
    batch: tuple[str, ...] = ()  # every partition this step writes (a batch), first = partition

    @property
    def key(self) -> StepKey:
        """``(layer, partition)``: how other steps name this one."""
        return (self.layer, self.partition)

    @property
    def partitions(self) -> tuple[str, ...]:
        """Every partition the step writes (one, unless it is a batch)."""
        return self.batch or (self.partition,)

    def one(self, partition: str) -> Step:
        """The part of this step that writes ``partition`` alone."""
        return Step(self.layer, partition, self.table, self.waits_for)


@dataclass(frozen=True)
class StepEvent:
    """A change of a step's state, sent to ``on_event`` (the live grid listens to these).

    ``status`` is a :class:`backfill_lab.status.StepStatus` (running, success, invalid, failed,
    retrying, skipped, cancelled). Taught in notebooks/02_daily_backfill.ipynb (Step 4: run it
    and watch the grid).
    """

    layer: str
    partition: str
    status: str
    attempt: int
    rows: int | None = None
    error: str | None = None
    total: int | None = None  # steps this run executes (a progress bar's denominator)


@dataclass(frozen=True)
class StepResult:
    """How one partition's step ended: final status, attempts so far, rows written, error."""

    layer: str
    partition: str
    table: str
    status: str
    attempts: int
    rows: int | None = None
    error: str | None = None


def plan_steps(pipeline: Pipeline, layers: Sequence[str], partitions: PartitionSet, order: str,
               batch_size: int, tables: Mapping[str, str]) -> list[Step]:
    """Every step of the backfill, batch by batch in run order, upstream layers first.

    With batches, each layer's partitions go in runs of ``batch_size``, in run order; a
    partition's step is the batch that holds it.
    """
    ordered = partitions.ordered(order)
    rank = {p: i for i, p in enumerate(ordered)}
    batches = [tuple(ordered[i:i + batch_size]) for i in range(0, len(ordered), batch_size)]
    owner = {(layer, p): (layer, batch[0]) for layer in layers for batch in batches
             for p in batch}
    steps = []
    for batch in batches:
        for layer in layers:
            waits = {owner[key] for p in batch for key in pipeline.upstream(layer, p)
                     if key in owner} - {(layer, batch[0])}
            steps.append(Step(layer, batch[0], tables[layer],
                              tuple(sorted(waits, key=lambda k: (rank[k[1]], k[0]))),
                              batch if batch_size > 1 else ()))
    return steps


def priorities(steps: Sequence[Step]) -> dict[StepKey, tuple[int, int]]:
    """``step key -> (partition rank in run order, layer rank)``: lower starts first.

    ``steps`` as :func:`plan_steps` returns them (batches in run order, upstream layers first),
    so both ranks are the order of first appearance.
    """
    partition_rank: dict[str, int] = {}
    layer_rank: dict[str, int] = {}
    for s in steps:
        partition_rank.setdefault(s.partition, len(partition_rank))
        layer_rank.setdefault(s.layer, len(layer_rank))
    return {s.key: (partition_rank[s.partition], layer_rank[s.layer]) for s in steps}


def start_order(steps: Sequence[Step], priority: Mapping[StepKey, tuple[int, int]]) -> list[Step]:
    """The order a one-at-a-time run starts the steps (a heap of ready steps: O(n log n))."""
    by_key = {s.key: s for s in steps}
    left = dict.fromkeys(by_key, 0)
    dependents: dict[StepKey, list[StepKey]] = {}
    for key, s in by_key.items():
        for w in s.waits_for:
            if w in by_key:
                left[key] += 1
                dependents.setdefault(w, []).append(key)
    ready = [(priority[k], k) for k, n in left.items() if n == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, key = heapq.heappop(ready)
        out.append(by_key[key])
        for down in dependents.get(key, ()):
            left[down] -= 1
            if left[down] == 0:
                heapq.heappush(ready, (priority[down], down))
    return out
