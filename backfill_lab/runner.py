"""The backfill runner: steps (layer x partition), real parallel execution under a cap, retries.

A backfill is a set of steps, one per (layer, partition). A step may start only when every step it
reads from in the same backfill has succeeded (upstream before downstream, per partition); when one
of those failed, the step is skipped rather than built on a hole. Among ready steps the runner
starts the earliest partition first (``ascending``) or the latest (``descending``), never more than
``concurrency`` at a time, each in its own thread with its own DuckDB cursor.

Every attempt goes to the ledger. A successful attempt's ledger row commits in the same
transaction as its partition, so a backfill killed at any instant and resumed with the same
``backfill_id`` reruns exactly the steps that had not committed.
"""

from __future__ import annotations

import datetime as dt
import heapq
import inspect
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ._db import quote
from .clock import Clock, SystemClock
from .errors import (
    BackfillLabError,
    CodeVersionMismatch,
    ConfigError,
    UnknownNameError,
    UpstreamMissing,
)
from .faults import Fault, Faults
from .ledger import BackfillRecord, Ledger, LedgerEntry
from .partitions import ORDERS, PartitionSet
from .pipeline import Layer, Pipeline, SamePartition, StepContext
from .validations import Validations, record_results, validate_partition
from .warehouse import WRITE_MODES, Warehouse

__all__ = ["BackfillResult", "BackfillRunner", "Step", "StepEvent", "StepResult", "run_backfill"]

# Errors that the same attempt would hit again: retrying them only burns time.
_PERMANENT = (UpstreamMissing, CodeVersionMismatch, ConfigError)


@dataclass(frozen=True)
class Step:
    """One layer's partition to build, and the steps of this backfill it waits for."""

    layer: str
    partition: str
    table: str
    waits_for: tuple[tuple[str, str], ...] = ()
    batch: tuple[str, ...] = ()  # every partition this step writes (a batch), first = partition

    @property
    def key(self) -> tuple[str, str]:
        return (self.layer, self.partition)

    @property
    def partitions(self) -> tuple[str, ...]:
        return self.batch or (self.partition,)


@dataclass(frozen=True)
class StepEvent:
    """A change of a step's state, sent to ``on_event`` (the live grid listens to these)."""

    layer: str
    partition: str
    status: str  # running | success | invalid | failed | retrying | skipped | cancelled
    attempt: int
    rows: int | None = None
    error: str | None = None
    total: int | None = None  # steps this run executes (a progress bar's denominator)


@dataclass(frozen=True)
class StepResult:
    layer: str
    partition: str
    table: str
    status: str
    attempts: int
    rows: int | None = None
    error: str | None = None


@dataclass
class BackfillResult:
    """What a backfill did: every step's outcome, the order steps started, peak concurrency."""

    backfill_id: str
    status: str  # success | failed | aborted | dry_run
    steps: list[StepResult]
    started_order: list[tuple[str, str]] = field(default_factory=list)
    max_in_flight: int = 0
    resumed: int = 0  # partitions already done by an earlier run of this backfill id (skipped)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the user may want to know, one line each

    def counts(self) -> dict[str, int]:
        """Steps per final status (statuses no step ended in are left out)."""
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.status] = out.get(s.status, 0) + 1
        return out

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([s.__dict__ for s in self.steps])

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items()) if v)
        return (
            f"BackfillResult({self.backfill_id!r}, status={self.status!r}, {counts}, "
            f"max_in_flight={self.max_in_flight}, resumed={self.resumed}, "
            f"seconds={self.seconds:.2f})"
        )


def _int_option(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            raise ConfigError.invalid(name, f"an integer >= {minimum}", value)
    if value < minimum:
        raise ConfigError.invalid(name, f"an integer >= {minimum}", value)
    return value


class BackfillRunner:
    """Plan and run one backfill. :func:`run_backfill` is the one-call form."""

    def __init__(
        self,
        pipeline: Pipeline,
        warehouse: Warehouse,
        partitions: object,
        *,
        layers: Sequence[str] | None = None,
        order: str = "ascending",
        concurrency: int = 1,
        retries: int = 0,
        backoff: float = 0.05,
        mode: str = "overwrite",
        merge_keys: Sequence[str] | None = None,
        target: str | Mapping[str, str] | None = None,
        code_version: str | None = None,
        backfill_id: str | None = None,
        faults: Faults | Sequence[Fault] | None = None,
        audit_tags: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[StepEvent], None] | None = None,
        validations: Validations | Mapping[str, Any] | None = None,
        batch_size: int = 1,
    ) -> None:
        self.pipeline = pipeline
        self.warehouse = warehouse
        self.partitions = PartitionSet.parse(partitions)  # type: ignore[arg-type]
        self.layers = pipeline.check_layers(layers if layers is not None else pipeline.layer_names)
        if not self.layers:
            raise ConfigError.invalid("layers", "at least one layer name", list(layers or []))
        if order not in ORDERS:
            raise UnknownNameError.of("order", str(order), ORDERS)
        self.order = order
        self.concurrency = _int_option("concurrency", concurrency, 1)
        self.retries = _int_option("retries", retries, 0)
        if not isinstance(backoff, int | float) or backoff < 0:
            raise ConfigError.invalid("backoff", "a number of seconds >= 0", backoff)
        self.backoff = float(backoff)
        if mode not in WRITE_MODES:
            raise UnknownNameError.of("write mode", str(mode), WRITE_MODES)
        self.mode = mode
        self.merge_keys = tuple(merge_keys or ())
        if mode == "merge" and not self.merge_keys:
            raise ConfigError(
                "write mode 'merge' needs merge_keys, e.g. ['entity_id', 'date'] (got none)"
            )
        self.tables = self._tables(target)
        self.batch_size = _int_option("batch_size", batch_size, 1)
        if self.batch_size > 1 and mode != "overwrite":
            raise ConfigError(
                f"'batch_size' > 1 needs mode 'overwrite' (got {mode!r}): a batch replaces its "
                f"partitions in one transaction"
            )
        deployed = pipeline.code_version
        self.code_version = code_version if code_version is not None else deployed
        if self.code_version != deployed:
            raise CodeVersionMismatch(
                f"backfill pinned to code version {self.code_version!r} but pipeline "
                f"{pipeline.name!r} runs {deployed!r}; deploy {self.code_version!r} first, "
                f"or pin {deployed!r}"
            )
        self.backfill_id = backfill_id or f"bf-{uuid.uuid4().hex[:8]}"
        if isinstance(faults, Faults):
            self.faults = faults
        else:
            self.faults = Faults(faults or (), sleep=sleep)
        self.audit_tags = {str(k): str(v) for k, v in (audit_tags or {}).items()}
        self.clock: Clock = clock or SystemClock()
        self.sleep = sleep
        self.on_event = on_event
        self.ledger = Ledger(warehouse)
        self.validations = self._validations(validations)
        self.steps = self._build_steps()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self._total: int | None = None
        self._batch_results: dict[tuple[str, str], StepResult] = {}

    # -- planning ------------------------------------------------------------------------
    def _tables(self, target: str | Mapping[str, str] | None) -> dict[str, str]:
        tables = {n: self.pipeline.layer(n).default_table for n in self.pipeline.layer_names}
        if target is None:
            return tables
        if isinstance(target, str):
            quote(target)
            tables[self.layers[-1]] = target
            return tables
        for layer, table in dict(target).items():
            if layer not in self.layers:
                raise UnknownNameError.of("layer in target", layer, self.layers)
            quote(table)
            tables[layer] = table
        return tables

    def _validations(self, spec: object) -> dict[str, Validations]:
        """``{layer: Validations}``; a bare Validations (or plan section) checks the last layer."""
        if spec is None:
            return {}
        if isinstance(spec, Validations):
            return {self.layers[-1]: spec}
        if not isinstance(spec, Mapping):
            raise ConfigError.invalid("validations", "a Validations or a mapping", spec)
        if spec and all(k in self.pipeline.layer_names for k in spec):
            out = {}
            for layer, value in spec.items():
                if layer not in self.layers:
                    raise UnknownNameError.of("layer in validations", layer, self.layers)
                out[layer] = value if isinstance(value, Validations) else \
                    Validations.from_dict(value)
            return out
        return {self.layers[-1]: Validations.from_dict(spec)}

    def _build_steps(self) -> list[Step]:
        ordered = self.partitions.ordered(self.order)
        # with batches, each layer's partitions go in runs of batch_size, in run order; a
        # partition's step is the batch that holds it
        batches = [tuple(ordered[i:i + self.batch_size])
                   for i in range(0, len(ordered), self.batch_size)]
        owner = {(layer, p): (layer, batch[0]) for layer in self.layers
                 for batch in batches for p in batch}
        steps = []
        for batch in batches:
            for layer in self.layers:
                waits = {owner[key] for p in batch for key in self.pipeline.upstream(layer, p)
                         if key in owner} - {(layer, batch[0])}
                steps.append(Step(layer, batch[0], self.tables[layer],
                                  tuple(sorted(waits, key=lambda k: (ordered.index(k[1]), k[0]))),
                                  batch if self.batch_size > 1 else ()))
        return steps

    def _priority(self) -> dict[tuple[str, str], tuple[int, int]]:
        rank = {p: i for i, p in enumerate(self.partitions.ordered(self.order))}
        layer_rank = {name: i for i, name in enumerate(self.layers)}
        return {s.key: (rank[s.partition], layer_rank[s.layer]) for s in self.steps}

    def dry_run(self) -> pd.DataFrame:
        """The steps in the order a one-at-a-time run would start them; nothing is written."""
        done: set[tuple[str, str]] = set()
        pending = {s.key: s for s in self.steps}
        prio = self._priority()
        rows = []
        while pending:
            ready = sorted(
                (s for s in pending.values() if all(w in done for w in s.waits_for)),
                key=lambda s: prio[s.key],
            )
            step = ready[0]
            del pending[step.key]
            done.add(step.key)
            row = {"seq": len(rows) + 1, "layer": step.layer, "partition": step.partition}
            if self.batch_size > 1:  # a step writes its whole batch: show which partitions
                row["writes"] = str(PartitionSet.of(step.partitions))
            rows.append({
                **row, "table": step.table, "mode": self.mode,
                "code_version": self.code_version,
                "waits_for": ", ".join(f"{layer}:{p}" for layer, p in step.waits_for),
            })
        return pd.DataFrame(rows)

    def params(self) -> dict[str, Any]:
        """What identifies this backfill, stored so a resume can be checked against it."""
        return {
            "partitions": str(self.partitions), "layers": self.layers, "order": self.order,
            "mode": self.mode, "merge_keys": list(self.merge_keys), "tables": self.tables,
            "concurrency": self.concurrency, "retries": self.retries,
            "batch_size": self.batch_size,
            "audit_tags": self.audit_tags,
            "validations": {k: v.to_dict() for k, v in self.validations.items()},
        }

    # -- running -------------------------------------------------------------------------
    def _emit(self, event: StepEvent) -> None:
        if self.on_event is not None:
            if event.total is None and self._total is not None:
                event = replace(event, total=self._total)
            self.on_event(event)

    def _start_or_resume(self) -> dict[tuple[str, str], tuple[str, int]]:
        record = self.ledger.backfill(self.backfill_id)
        if record is None:
            self.ledger.start_backfill(BackfillRecord(
                self.backfill_id, self.pipeline.name, self.code_version, self.params(),
                self.clock.now(),
            ))
            return {}
        if record.code_version != self.code_version:
            raise CodeVersionMismatch(
                f"backfill {self.backfill_id!r} was started at code version "
                f"{record.code_version!r}; resuming it at {self.code_version!r} would mix "
                f"versions; deploy {record.code_version!r} or start a new backfill id"
            )
        mine = self.params()
        for key in ("partitions", "layers", "mode", "merge_keys", "tables", "batch_size"):
            if record.params.get(key) != mine[key]:
                raise ConfigError(
                    f"backfill {self.backfill_id!r} was started with {key}="
                    f"{record.params.get(key)!r} (got {mine[key]!r}); resume it with the same "
                    f"{key}, or start a new backfill id"
                )
        return self.ledger.last_status(self.backfill_id)

    def run(self) -> BackfillResult:
        """Run every unfinished step; return what happened."""
        t0 = time.perf_counter()
        previous = self._start_or_resume()
        prio = self._priority()
        results: dict[tuple[str, str], StepResult] = {}
        attempts_before: dict[tuple[str, str], int] = {}
        for step in self.steps:
            seen = [previous.get((step.layer, p), ("", 0)) for p in step.partitions]
            attempts = max(n for _, n in seen)
            attempts_before[step.key] = attempts
            if all(status == "success" for status, _ in seen):
                results[step.key] = StepResult(step.layer, step.partition, step.table,
                                               "success", attempts)
        resumed = sum(len(s.partitions) for s in self.steps if s.key in results)
        done = {k for k, r in results.items() if r.status == "success"}
        pending = {s.key: s for s in self.steps if s.key not in results}
        self._total = sum(len(s.partitions) for s in pending.values())
        # each pending step counts the steps it still waits for; a heap holds the ready ones,
        # so choosing the next step costs log(n), not a scan of every pending step
        waits_left: dict[tuple[str, str], int] = {}
        dependents: dict[tuple[str, str], list[tuple[str, str]]] = {}
        ready: list[tuple[tuple[int, int], tuple[str, str]]] = []
        for key, step in pending.items():
            left = [w for w in step.waits_for if w not in done]
            waits_left[key] = len(left)
            for w in left:
                dependents.setdefault(w, []).append(key)
            if not left:
                heapq.heappush(ready, (prio[key], key))
        running: dict[Future[StepResult], Step] = {}
        started_order: list[tuple[str, str]] = []
        aborted: str | None = None

        def skip_downstream(failed: tuple[str, str]) -> None:
            todo = list(dependents.get(failed, []))
            while todo:
                key = todo.pop()
                if key not in pending:
                    continue
                step = pending.pop(key)
                bad = next(w for w in step.waits_for if w in results and
                           results[w].status != "success")
                error = f"upstream {bad[0]} {bad[1]} did not succeed"
                results[key] = self._finish_without_run(step, "skipped", error,
                                                        attempts_before[key])
                todo.extend(dependents.get(key, []))

        with ThreadPoolExecutor(max_workers=self.concurrency,
                                thread_name_prefix="backfill") as pool:
            while pending or running:
                while ready and len(running) < self.concurrency and aborted is None:
                    _, key = heapq.heappop(ready)
                    if key not in pending:
                        continue
                    step = pending[key]
                    deployed = self.pipeline.code_version
                    if deployed != self.code_version:
                        aborted = (
                            f"code version changed from {self.code_version!r} to {deployed!r} "
                            f"during backfill {self.backfill_id!r}; stopped to avoid mixing "
                            f"versions; resume after deploying {self.code_version!r}"
                        )
                        heapq.heappush(ready, (prio[key], key))
                        break
                    del pending[key]
                    started_order.append(key)
                    running[pool.submit(self._execute, step, attempts_before[key])] = step
                if aborted is not None and not running:
                    for key, step in list(pending.items()):
                        del pending[key]
                        results[key] = self._finish_without_run(step, "cancelled", aborted,
                                                                attempts_before[key])
                    break
                if not running:
                    if pending:  # nothing runnable and nothing running: a dependency cycle
                        raise ConfigError(f"steps can never start: {sorted(pending)[:3]}")
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    step = running.pop(fut)
                    result = fut.result()
                    results[step.key] = result
                    if result.status != "success":
                        skip_downstream(step.key)
                        continue
                    for key in dependents.get(step.key, []):
                        waits_left[key] -= 1
                        if waits_left[key] == 0 and key in pending:
                            heapq.heappush(ready, (prio[key], key))
        ordered = [self._batch_results.get((s.layer, p)) or replace(results[s.key], partition=p)
                   for s in self.steps for p in s.partitions]
        if aborted is not None:
            status = "aborted"
        elif all(r.status == "success" for r in ordered):
            status = "success"
        else:
            status = "failed"
        return BackfillResult(
            self.backfill_id, status, ordered, started_order, self.max_in_flight, resumed,
            time.perf_counter() - t0, self._notes(),
        )

    def _notes(self) -> list[str]:
        """Why batches were slower than they could be: layers that cannot build a batch at once."""
        if self.batch_size == 1:
            return []
        slow = [n for n in self.layers
                if self.pipeline.layer(n).is_sql and not self.pipeline.layer(n).range_aware]
        if not slow:
            return []
        return [f"layers {', '.join(slow)} filter on $partition, so each batch ran one SELECT "
                f"per partition; filter on $batch_start and $batch_end to build a batch with one"]

    def _finish_without_run(
        self, step: Step, status: str, error: str, attempts: int
    ) -> StepResult:
        now = self.clock.now()
        for p in step.partitions:
            one = replace(step, partition=p, batch=())
            self.ledger.record(self._entry(one, attempts + 1, status, None, now, now, error, ()))
            self._emit(StepEvent(step.layer, p, status, attempts + 1, error=error))
        return StepResult(step.layer, step.partition, step.table, status, attempts, error=error)

    def _entry(
        self, step: Step, attempt: int, status: str, rows: int | None,
        started: dt.datetime, finished: dt.datetime, error: str | None,
        upstream: Sequence[str],
    ) -> LedgerEntry:
        return LedgerEntry(
            self.backfill_id, step.layer, step.partition, step.table, self.mode,
            self.code_version, attempt, status, rows, started, finished, error,
            tuple(upstream), self.audit_tags,
        )

    def _execute(self, step: Step, attempts_before: int) -> StepResult:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._attempts(step, attempts_before)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _check_version(self, step: Step) -> None:
        """Refuse to start a step once the deployed code differs from the pinned version."""
        if self.pipeline.code_version != self.code_version:
            raise CodeVersionMismatch(
                f"code version changed to {self.pipeline.code_version!r} before "
                f"{step.layer} {step.partition} ran (pinned {self.code_version!r})")

    def _attempts(self, step: Step, attempts_before: int) -> StepResult:
        """Try a step (one partition, or a batch) until it succeeds, fails for good, or runs out
        of retries; every failed attempt gets a ledger row per partition, then a backoff."""
        once = self._once_batch if len(step.partitions) > 1 else self._once
        last = attempts_before + 1 + self.retries
        attempt = attempts_before
        error = ""
        while attempt < last:
            attempt += 1
            started = self.clock.now()
            for p in step.partitions:
                self._emit(StepEvent(step.layer, p, "running", attempt))
            reads: dict[str, list[str]] = {}  # upstream partitions read, per partition
            try:
                self._check_version(step)
                return once(step, attempt, started, reads)
            except Exception as exc:  # every failure is recorded; none escapes a worker
                error = _one_line(exc)
                now = self.clock.now()
                self.ledger.record_many(
                    [self._entry(replace(step, partition=p, batch=()), attempt, "failed", None,
                                 started, now, error, reads.get(p, []))
                     for p in step.partitions])
                if isinstance(exc, _PERMANENT) or attempt >= last:
                    break
                for p in step.partitions:
                    self._emit(StepEvent(step.layer, p, "retrying", attempt, error=error))
                self.sleep(self.backoff * 2 ** (attempt - attempts_before - 1))
        for p in step.partitions:
            self._emit(StepEvent(step.layer, p, "failed", attempt, error=error))
        return StepResult(step.layer, step.partition, step.table, "failed", attempt,
                          error=error)

    def _once(self, step: Step, attempt: int, started: dt.datetime,
              reads: dict[str, list[str]]) -> StepResult:
        """One attempt at one partition, in the run's write mode."""
        layer = self.pipeline.layer(step.layer)
        upstream = reads[step.partition] = self._check_upstream(layer, step)
        self.faults.before_attempt(step.layer, step.partition)
        rows = self._build(layer, step)
        params = rows[1] if isinstance(rows, tuple) else None
        source = rows[0] if isinstance(rows, tuple) else rows

        def on_commit(cur: Any, written: int) -> None:
            self.ledger.record(self._entry(step, attempt, "success", written, started,
                                           self.clock.now(), None, upstream), cur)

        result = self.warehouse.write_partition(
            step.table, step.partition, source, self.mode,
            merge_keys=self._merge_keys(layer), params=params,
            partition_column=layer.partition_column, on_commit=on_commit,
        )
        failed = self._validate(step)
        status = "invalid" if failed else "success"
        self._emit(StepEvent(step.layer, step.partition, status, attempt,
                             rows=result.rows, error=failed))
        return StepResult(step.layer, step.partition, step.table, status, attempt,
                          rows=result.rows, error=failed)

    def _once_batch(self, step: Step, attempt: int, started: dt.datetime,
                    reads: dict[str, list[str]]) -> StepResult:
        """One attempt at a batch of partitions of one layer, built and written in one
        transaction."""
        layer = self.pipeline.layer(step.layer)
        for p in step.partitions:
            reads[p] = self._check_upstream(layer, replace(step, partition=p, batch=()))
            self.faults.before_attempt(step.layer, p)
        source, params = self._build_batch(layer, step)

        def on_commit(cur: Any, counts: dict[str, int]) -> None:
            finished = self.clock.now()
            self.ledger.record_many(
                [self._entry(replace(step, partition=p, batch=()), attempt, "success",
                             counts[p], started, finished, None, reads[p])
                 for p in step.partitions], cur)

        counts = self.warehouse.write_batch(
            step.table, step.partitions, source, params=params,
            partition_column=layer.partition_column, on_commit=on_commit)
        worst: str | None = None
        for p in step.partitions:
            failed = self._validate(replace(step, partition=p, batch=()))
            status = "invalid" if failed else "success"
            worst = worst or failed
            self._batch_results[(step.layer, p)] = StepResult(
                step.layer, p, step.table, status, attempt, rows=counts[p], error=failed)
            self._emit(StepEvent(step.layer, p, status, attempt, rows=counts[p], error=failed))
        return StepResult(step.layer, step.partition, step.table,
                          "invalid" if worst else "success", attempt,
                          rows=sum(counts.values()), error=worst)

    def _merge_keys(self, layer: Layer) -> tuple[str, ...]:
        """The backfill's merge keys apply to its last layer (the output the plan names); an
        upstream layer merges on the keys it declares, which identify its own rows."""
        if layer.name == self.layers[-1] and self.merge_keys:
            return self.merge_keys
        return layer.merge_keys or self.merge_keys

    def _validate(self, step: Step) -> str | None:
        """Run the layer's checks on the partition just written; the failures, or None."""
        checks = self.validations.get(step.layer)
        if checks is None or not checks.enabled:
            return None
        reference = self.pipeline.layer(step.layer).default_table
        results = validate_partition(self.warehouse, step.table, step.partition, checks,
                                     reference=reference)
        record_results(self.warehouse, results, self.backfill_id, self.clock.now())
        failed = [r for r in results if not r.passed]
        if not failed:
            return None
        return "validation failed: " + "; ".join(f"{r.check}: {r.detail}" for r in failed)

    def _check_upstream(self, layer: Layer, step: Step) -> list[str]:
        """The upstream partitions this step reads; a hole among them is an error.

        A trailing window that reaches back before the upstream table's first partition reads
        what exists (the start of history); a missing partition after that is a hole, and
        building on it would silently produce wrong features.
        """
        read: list[str] = []
        for dep in layer.depends_on:
            table = self.tables[dep.layer]
            keys = dep.mapping.upstream(step.partition)
            present = self.warehouse.existing_partitions(table, keys)
            first = self.warehouse.first_partition(table)
            for key in keys:
                if key in present:
                    read.append(f"{dep.layer}:{key}")
                elif isinstance(dep.mapping, SamePartition) or (first is not None and key > first):
                    raise UpstreamMissing(
                        f"upstream {dep.layer} {key} is missing, so {step.layer} "
                        f"{step.partition} ({dep.mapping} of {dep.layer}) cannot be built; "
                        f"backfill {dep.layer} {key} first (include it in 'layers' and the range)"
                    )
        return read

    def _build_batch(self, layer: Layer, step: Step) -> tuple[str | pd.DataFrame, dict[str, Any]]:
        """One source for a batch: a single range SELECT when the layer is range-aware and the
        batch contiguous (the fast path), else every partition built alone and glued together."""
        keys = step.partitions
        if (layer.range_aware and PartitionSet.of(keys).is_contiguous
                and not any(self.faults.corrupts(step.layer, p) for p in keys)):
            return self.pipeline.sql_for(layer, step.partition, self.tables, batch=keys)
        parts = [self._build(layer, replace(step, partition=p, batch=())) for p in keys]
        return _union(parts, self.warehouse)

    def _build(self, layer: Layer, step: Step) -> pd.DataFrame | tuple[str, dict[str, Any]]:
        if layer.is_sql:
            sql, params = self.pipeline.sql_for(layer, step.partition, self.tables)
            if not self.faults.corrupts(step.layer, step.partition):
                return sql, params
            df = self.warehouse.sql(sql, params)
        else:
            ctx = StepContext(self.pipeline, layer, step.partition, self.tables,
                              self.warehouse, self.code_version, now=self.clock.now())
            df = layer.transform(ctx)  # type: ignore[operator]
            if not isinstance(df, pd.DataFrame):
                raise ConfigError.invalid(f"result of layer {layer.name!r}", "a DataFrame",
                                          type(df).__name__)
        return self.faults.corrupt(step.layer, step.partition, df)


def _union(parts: list[str | pd.DataFrame | tuple[str, dict[str, Any]]],
           warehouse: Warehouse) -> tuple[str | pd.DataFrame, dict[str, Any]]:
    """One source for a batch: the partitions' SELECTs glued with UNION ALL BY NAME (each with
    its parameters renamed apart), or, when some partition is a DataFrame (a Python layer, or
    injected bad data), every part as a DataFrame, concatenated."""
    if all(isinstance(src, tuple) for src in parts):
        selects, params = [], {}
        for i, src in enumerate(parts):
            sql, p_params = src  # type: ignore[misc]
            renamed = sql
            for name in sorted(p_params, key=len, reverse=True):
                renamed = re.sub(rf"\${name}\b", f"$b{i}_{name}", renamed)
                params[f"b{i}_{name}"] = p_params[name]
            selects.append(f"SELECT * FROM ({renamed})")
        return " UNION ALL BY NAME ".join(selects), params
    frames = [src if isinstance(src, pd.DataFrame) else warehouse.sql(*src)  # type: ignore[misc]
              for src in parts]
    return pd.concat(frames, ignore_index=True), {}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, BackfillLabError):
        return first
    return f"{type(exc).__name__}: {first}"


def run_backfill(
    pipeline: Pipeline, warehouse: Warehouse, partitions: object, *, dry_run: bool = False,
    **options: Any,
) -> BackfillResult | pd.DataFrame:
    """Run a backfill (or, with ``dry_run=True``, return its ordered steps and write nothing).

    Options are those of :class:`BackfillRunner`: ``layers``, ``order``, ``concurrency``,
    ``retries``, ``backoff``, ``mode``, ``merge_keys``, ``target``, ``code_version``,
    ``backfill_id``, ``faults``, ``audit_tags``, ``clock``, ``sleep``, ``on_event``.
    """
    fixed = ("self", "pipeline", "warehouse", "partitions")
    known = [p for p in inspect.signature(BackfillRunner.__init__).parameters if p not in fixed]
    for name in options:
        if name not in known:
            raise UnknownNameError.of("backfill option", name, known)
    runner = BackfillRunner(pipeline, warehouse, partitions, **options)
    return runner.dry_run() if dry_run else runner.run()
