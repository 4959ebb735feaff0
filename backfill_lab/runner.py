"""The backfill runner: steps (layer x partition), real parallel execution under a cap, retries.

Built like SQLMesh's scheduler, from three parts: planning (:mod:`backfill_lab.steps`: the steps,
their batches, what each waits for, the order), a generic DAG executor
(:func:`backfill_lab._dag.run_dag`: threads, never more than ``concurrency`` in flight, a step
starts only when what it waits for succeeded, a step whose upstream failed is skipped) and step
evaluation (:class:`backfill_lab.evaluate.StepEvaluator`: the attempt/retry loop, writing a step
and its ledger rows in one transaction). The settings are one validated
:class:`~backfill_lab.options.BackfillOptions`.

Every attempt goes to the ledger, so a backfill killed at any instant and resumed with the same
``backfill_id`` reruns exactly the steps that had not committed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, overload

import pandas as pd

from ._dag import DagRun, run_dag
from .clock import Clock, SystemClock
from .errors import CodeVersionMismatch, ConfigError, UnknownNameError
from .evaluate import StepEvaluator
from .faults import Fault, Faults
from .ledger import BackfillRecord, BackfillStatus, Ledger, StepStatus
from .options import BackfillOptions
from .partitions import PartitionSet, PartitionsLike
from .pins import check_deployed, check_resume
from .pipeline import Pipeline
from .preflight import check_arguments, check_backfill_id, check_columns, check_tables
from .steps import Step, StepEvent, StepKey, StepResult, plan_steps, priorities, start_order
from .validations import Validations
from .warehouse import Warehouse

__all__ = ["RUN_CONTEXT", "BackfillResult", "BackfillRunner", "SharedRuns", "Step", "StepEvent",
           "StepResult", "run_backfill", "shared_runs"]

RUN_CONTEXT = ("backfill_id", "faults", "audit_tags", "clock", "sleep", "on_event",
               "validations")
"""The runner's keywords that are not :class:`BackfillOptions`: what a run is, not how it runs."""

# what identifies a backfill: a resume with other values would be another backfill
_IDENTITY = ("partitions", "layers", "mode", "merge_keys", "tables", "batch_size")


@dataclass
class BackfillResult:
    """What a backfill did: every step's outcome, the order steps started, peak concurrency.

    What ``run_backfill`` returns: taught in notebooks/01_mental_model.ipynb (Backfill: refill
    the boxes you choose), notebooks/02_daily_backfill.ipynb (Step 4: run it and watch the grid)
    and notebooks/03_versioned_recompute.ipynb (Run it, with a bug planted).
    """

    backfill_id: str
    status: str  # a BackfillStatus: success | failed | aborted | dry_run
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
        """One row per partition's step: layer, partition, table, status, attempts, rows, error."""
        return pd.DataFrame([s.__dict__ for s in self.steps])

    @property
    def ok(self) -> bool:
        """Did every step succeed?"""
        return self.status == BackfillStatus.SUCCESS

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items()) if v)
        return (
            f"BackfillResult({self.backfill_id!r}, status={self.status!r}, {counts}, "
            f"max_in_flight={self.max_in_flight}, resumed={self.resumed}, "
            f"seconds={self.seconds:.2f})"
        )


@dataclass
class SharedRuns:
    """What backfills run back to back by one caller (a scheduler's runs) share, so none pays
    again for what cannot have changed since the last: the worker threads (``pool``), the
    columns of existing tables (``columns``: a backfill never alters them) and the backfill ids
    recorded (``ids``: read once, then kept up to date by the backfills started).

    Valid only while nothing but these backfills writes to the warehouse: make one with
    :func:`shared_runs` for a stretch of runs, never keep one between calls.
    """

    pool: Executor | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)
    ids: set[str] | None = None


@contextmanager
def shared_runs(warehouse: Warehouse, workers: int) -> Iterator[SharedRuns]:
    """A :class:`SharedRuns` whose pool has at most ``workers`` threads (started as steps
    need them); on exit the threads end and their cursors are closed."""
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers),
                                thread_name_prefix="backfill") as pool:
            yield SharedRuns(pool)
    finally:
        warehouse.release_cursors()


class BackfillRunner:
    """Plan and run one backfill. :func:`run_backfill` is the one-call form.

    How it runs is a :class:`BackfillOptions` (``options``, and/or its settings as keywords:
    ``layers``, ``order``, ``concurrency``, ``retries``, ``backoff``, ``mode``, ``merge_keys``,
    ``target``, ``batch_size``, and the pins ``code_version``, ``config_hash``, ``runtime``);
    what the run is are the other keywords
    (:data:`RUN_CONTEXT`). The notebooks call it through :func:`run_backfill`. A caller running
    backfills back to back may make them with :meth:`sharing`.
    """

    shared: SharedRuns | None = None  # what it shares with the backfills run before and after

    def __init__(
        self,
        pipeline: Pipeline,
        warehouse: Warehouse,
        partitions: PartitionsLike,
        options: BackfillOptions | None = None,
        *,
        backfill_id: str | None = None,
        faults: Faults | Sequence[Fault] | None = None,
        audit_tags: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[StepEvent], None] | None = None,
        validations: Validations | Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        check_arguments(pipeline, warehouse, options, audit_tags, clock, sleep, on_event)
        self.options = BackfillOptions.parse(settings, base=options, also_known=RUN_CONTEXT)
        self.pipeline = pipeline
        self.warehouse = warehouse
        self.partitions = PartitionSet.parse(partitions)
        self.layers = pipeline.check_layers(self.options.layers or pipeline.layer_names)
        self.tables = self._tables(self.options.target)
        deployed = pipeline.code_version
        self.code_version = self.options.code_version or deployed
        if self.code_version != deployed:
            raise CodeVersionMismatch(
                f"backfill pinned to code version {self.code_version!r} but pipeline "
                f"{pipeline.name!r} runs {deployed!r}; deploy {self.code_version!r} first, "
                f"or pin {deployed!r}"
            )
        self.config_hash, self.runtime = check_deployed(
            pipeline.name, pipeline.config_hash, self.options.config_hash, self.options.runtime)
        self.backfill_id = check_backfill_id(backfill_id) or f"bf-{uuid.uuid4().hex[:8]}"
        pipeline.check_partitions(self.partitions)
        self.faults = faults if isinstance(faults, Faults) else Faults(faults or (), sleep=sleep)
        self.audit_tags = {str(k): str(v) for k, v in (audit_tags or {}).items()}
        self.clock: Clock = clock or SystemClock()
        self.sleep = sleep
        self.on_event = on_event
        self.ledger = Ledger(warehouse)
        shared = self.shared
        self.validations = self._validations(validations)
        # everything knowable before the first write is checked before it
        check_tables(pipeline, warehouse, self.layers, self.tables, self.partitions)
        check_columns(pipeline, warehouse, self.options, self.layers, self.tables,
                      self.partitions, self.validations,
                      shared.columns if shared is not None else None)
        self.steps = plan_steps(pipeline, self.layers, self.partitions, self.options.order,
                                self.options.batch_size, self.tables)
        # (table, partition) committed by this run, so present without a query for the steps
        # reading them; a caller running backfills back to back may share one set between them
        self.written: set[tuple[str, str]] = set()

    @classmethod
    def sharing(cls, shared: SharedRuns, pipeline: Pipeline, warehouse: Warehouse,
                partitions: PartitionsLike, options: BackfillOptions | None = None,
                **keywords: Any) -> BackfillRunner:
        """A runner (the arguments of :class:`BackfillRunner`) that shares ``shared`` with the
        backfills run before and after it, from its first check on."""
        runner = cls.__new__(cls)
        runner.shared = shared
        cls.__init__(runner, pipeline, warehouse, partitions, options, **keywords)
        return runner

    # -- planning ----------------------------------------------------------------------------
    def _tables(self, target: str | Mapping[str, str] | None) -> dict[str, str]:
        """Every layer's table: its default, or the one ``target`` names for it."""
        tables = {n: self.pipeline.layer(n).default_table for n in self.pipeline.layer_names}
        if isinstance(target, str):
            tables[self.layers[-1]] = target
        for layer, table in (target.items() if isinstance(target, Mapping) else ()):
            if layer not in self.layers:
                raise UnknownNameError.of("layer in target", layer, self.layers)
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
        if not spec or not all(k in self.pipeline.layer_names for k in spec):
            return {self.layers[-1]: Validations.from_dict(spec)}
        out = {}
        for layer, value in spec.items():
            if layer not in self.layers:
                raise UnknownNameError.of("layer in validations", layer, self.layers)
            out[layer] = value if isinstance(value, Validations) else Validations.from_dict(value)
        return out

    def dry_run(self) -> pd.DataFrame:
        """The steps in the order a one-at-a-time run would start them; nothing is written.

        Taught in notebooks/02_daily_backfill.ipynb (Step 3: dry run first) and
        notebooks/05_designing_safe_backfills.ipynb (1. Range and order).
        """
        rows = []
        for seq, step in enumerate(start_order(self.steps, priorities(self.steps)), start=1):
            row: dict[str, Any] = {"seq": seq, "layer": step.layer, "partition": step.partition}
            if self.options.batch_size > 1:  # a step writes its whole batch: show which
                row["writes"] = str(PartitionSet.of(step.partitions))
            rows.append({
                **row, "table": step.table, "mode": self.options.mode,
                "code_version": self.code_version,
                "waits_for": ", ".join(f"{layer}:{p}" for layer, p in step.waits_for),
            })
        return pd.DataFrame(rows)

    def params(self) -> dict[str, Any]:
        """What identifies this backfill, stored so a resume can be checked against it."""
        o = self.options
        return {
            "partitions": str(self.partitions), "layers": self.layers, "order": o.order,
            "mode": o.mode, "merge_keys": list(o.merge_keys), "tables": self.tables,
            "concurrency": o.concurrency, "retries": o.retries, "batch_size": o.batch_size,
            "audit_tags": self.audit_tags,
            "validations": {k: v.to_dict() for k, v in self.validations.items()},
            "config_hash": self.config_hash, "runtime": self.runtime,
        }

    # -- running -----------------------------------------------------------------------------
    def _start_or_resume(self) -> dict[StepKey, tuple[str, int]]:
        """Record a new backfill, or check a resumed one matches: ``{step: (status, attempts)}``
        of what earlier runs of this backfill id did."""
        record = self._recorded()
        if record is None:
            self.ledger.start_backfill(BackfillRecord(
                self.backfill_id, self.pipeline.name, self.code_version, self.params(),
                self.clock.now(),
            ))
            if self.shared is not None and self.shared.ids is not None:
                self.shared.ids.add(self.backfill_id)
            return {}
        if record.code_version != self.code_version:
            raise CodeVersionMismatch(
                f"backfill {self.backfill_id!r} was started at code version "
                f"{record.code_version!r}; resuming it at {self.code_version!r} would mix "
                f"versions; deploy {record.code_version!r} or start a new backfill id"
            )
        mine = self.params()
        check_resume(self.backfill_id, record.params, mine)
        for key in _IDENTITY:
            if record.params.get(key) != mine[key]:
                raise ConfigError(
                    f"backfill {self.backfill_id!r} was started with {key}="
                    f"{record.params.get(key)!r} (got {mine[key]!r}); resume it with the same "
                    f"{key}, or start a new backfill id"
                )
        return self.ledger.last_status(self.backfill_id)

    def _recorded(self) -> BackfillRecord | None:
        """What this backfill id was started with, or None: not looked up when the shared ids
        (read once for every backfill sharing them) prove it new."""
        shared = self.shared
        if shared is not None:
            if shared.ids is None:
                shared.ids = set(self.ledger.backfill_ids())
            if self.backfill_id not in shared.ids:
                return None
        return self.ledger.backfill(self.backfill_id)

    def run(self) -> BackfillResult:
        """Run every unfinished step; return what happened."""
        t0 = time.perf_counter()
        previous = self._start_or_resume()
        attempts = {s.key: max(previous.get((s.layer, p), ("", 0))[1] for p in s.partitions)
                    for s in self.steps}
        done = {s.key: [StepResult(s.layer, p, s.table, StepStatus.SUCCESS, attempts[s.key])
                        for p in s.partitions] for s in self.steps
                if all(previous.get((s.layer, p), ("",))[0] == StepStatus.SUCCESS
                       for p in s.partitions)}
        this = _Run(self, {s.key: s for s in self.steps if s.key not in done}, attempts)
        try:
            dag = this.execute(priorities(self.steps))
        finally:  # the workers have ended: their cursors go with them
            self.warehouse.release_cursors()
        outcome = {**done, **this.outcome}
        steps = [r for s in self.steps for r in outcome[s.key]]
        return BackfillResult(
            self.backfill_id, this.status(steps), steps, dag.started, dag.max_in_flight,
            sum(len(s.partitions) for s in self.steps if s.key in done),
            time.perf_counter() - t0, self._notes())

    def _evaluator(self, total: int) -> StepEvaluator:
        """What evaluates this run's steps; its events carry ``total`` (steps this run executes)."""
        def emit(event: StepEvent) -> None:
            if self.on_event is not None:
                self.on_event(event if event.total is not None else replace(event, total=total))

        return StepEvaluator(
            self.pipeline, self.warehouse, replace(self.options, layers=tuple(self.layers),
                                                   config_hash=self.config_hash,
                                                   runtime=self.runtime),
            self.tables, self.backfill_id, self.code_version, self.ledger, self.faults,
            self.clock, self.sleep, emit, self.validations, self.audit_tags, self.written)

    def _notes(self) -> list[str]:
        """Why batches were slower than they could be: layers that cannot build a batch at once."""
        if self.options.batch_size == 1:
            return []
        slow = [n for n in self.layers
                if self.pipeline.layer(n).is_sql and not self.pipeline.layer(n).range_aware]
        if not slow:
            return []
        return [f"layers {', '.join(slow)} filter on $partition, so each batch ran one SELECT "
                f"per partition; filter on $batch_start and $batch_end to build a batch with one"]


class _Run:
    """One run of a backfill: its steps still to do, what became of them, why it stopped.

    Everything a run counts lives here, not on the runner, so two runs never share counters.
    """

    def __init__(self, runner: BackfillRunner, todo: dict[StepKey, Step],
                 attempts: Mapping[StepKey, int]) -> None:
        self.runner = runner
        self.todo = todo
        self.attempts = attempts
        self.evaluator = runner._evaluator(total=sum(len(s.partitions) for s in todo.values()))
        self.outcome: dict[StepKey, list[StepResult]] = {}
        self.aborted: str | None = None

    def execute(self, priority: Mapping[StepKey, tuple[int, int]]
                ) -> DagRun[StepKey, list[StepResult]]:
        """Run the steps through the DAG executor; cancel what a code change stopped."""
        dag = run_dag(
            list(self.todo), {k: s.waits_for for k, s in self.todo.items()}, priority.__getitem__,
            self.runner.options.concurrency, self.evaluate, succeeded=_all_succeeded,
            on_skip=self.skip, may_start=self.may_start,
            pool=self.runner.shared.pool if self.runner.shared is not None else None)
        for error in dag.errors.values():
            raise error
        self.outcome.update(dag.results)
        for key in dag.not_started:
            self.finish(key, StepStatus.CANCELLED, self.aborted or "backfill stopped")
        return dag

    def evaluate(self, key: StepKey) -> list[StepResult]:
        """Build and write one step (in a worker thread)."""
        return self.evaluator.evaluate(self.todo[key], self.attempts[key])

    def skip(self, key: StepKey, cause: StepKey) -> None:
        """A step whose upstream ``cause`` did not succeed is not built on the hole."""
        self.finish(key, StepStatus.SKIPPED, f"upstream {cause[0]} {cause[1]} did not succeed")

    def finish(self, key: StepKey, status: StepStatus, error: str) -> None:
        """Record a step that never ran."""
        self.outcome[key] = self.evaluator.finish_without_run(self.todo[key], status, error,
                                                              self.attempts[key])

    def may_start(self, _key: StepKey) -> bool:
        """Start no step once the deployed code differs from the pinned version."""
        runner = self.runner
        deployed = runner.pipeline.code_version
        if self.aborted is None and deployed != runner.code_version:
            self.aborted = (
                f"code version changed from {runner.code_version!r} to {deployed!r} during "
                f"backfill {runner.backfill_id!r}; stopped to avoid mixing versions; resume "
                f"after deploying {runner.code_version!r}")
        return self.aborted is None

    def status(self, steps: Sequence[StepResult]) -> BackfillStatus:
        """aborted (a code change stopped it), success (every step), or failed."""
        if self.aborted is not None:
            return BackfillStatus.ABORTED
        return BackfillStatus.SUCCESS if _all_succeeded(steps) else BackfillStatus.FAILED


def _all_succeeded(results: Sequence[StepResult]) -> bool:
    return all(r.status == StepStatus.SUCCESS for r in results)


@overload
def run_backfill(pipeline: Pipeline, warehouse: Warehouse, partitions: PartitionsLike,
                 options: BackfillOptions | None = None, *, dry_run: Literal[True],
                 **settings: Any) -> pd.DataFrame: ...


@overload
def run_backfill(pipeline: Pipeline, warehouse: Warehouse, partitions: PartitionsLike,
                 options: BackfillOptions | None = None, *, dry_run: Literal[False] = False,
                 **settings: Any) -> BackfillResult: ...


def run_backfill(
    pipeline: Pipeline, warehouse: Warehouse, partitions: PartitionsLike,
    options: BackfillOptions | None = None, *, dry_run: bool = False, **settings: Any,
) -> BackfillResult | pd.DataFrame:
    """Run a backfill (or, with ``dry_run=True``, return its ordered steps and write nothing).

    Keywords are :class:`BackfillOptions` settings (``layers``, ``order``, ``concurrency``,
    ``retries``, ``backoff``, ``mode``, ``merge_keys``, ``target``, ``batch_size``,
    ``code_version``, ``config_hash``, ``runtime``) and the run's context (``backfill_id``,
    ``faults``, ``audit_tags``, ``clock``, ``sleep``, ``on_event``, ``validations``); an unknown
    name is refused with the closest known one. Taught in notebooks/01_mental_model.ipynb
    (Backfill: refill the boxes you choose), notebooks/02_daily_backfill.ipynb (Step 2: freeze
    the code version; Step 4: run it and watch the grid) and
    notebooks/06_practical_projects.ipynb (Project 1: a parameterized backfill job).
    """
    runner = BackfillRunner(pipeline, warehouse, partitions, options, **settings)
    return runner.dry_run() if dry_run else runner.run()
