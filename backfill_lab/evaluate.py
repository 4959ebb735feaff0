"""Evaluating one step: the attempt/retry loop, building its rows, writing them, validating them.

A successful attempt's ledger row commits in the same transaction as its partition (or batch),
so a backfill killed at any instant and resumed with the same ``backfill_id`` reruns exactly the
steps that had not committed. Every failed attempt gets a ledger row per partition, then a wait
that doubles each time (``backoff``, capped at :data:`backfill_lab.options.MAX_BACKOFF`),
counted over every attempt of the step, so a resume continues the backoff, not restarts it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from ._writes import transaction
from .clock import Clock
from .errors import BackfillLabError, CodeVersionMismatch, ConfigError, UpstreamMissing
from .faults import Faults
from .ledger import Ledger, LedgerEntry, StepStatus
from .options import BackfillOptions
from .partitions import PartitionSet
from .pipeline import Layer, Pipeline, SamePartition, StepContext, union_all
from .steps import Step, StepEvent, StepResult
from .validations import SCHEMA as VALIDATIONS_SCHEMA
from .validations import CheckResult, Validations, record_results, validate_partition
from .warehouse import Warehouse

__all__ = ["NOT_VALIDATED", "StepEvaluator", "one_line"]

NOT_VALIDATED = "written, not validated yet"
"""The error of a validated layer's ledger row between its write and its validations: a step
is done only once its checks commit, so a run killed in between reruns it on resume."""

# Errors that the same attempt would hit again: retrying them only burns time.
_PERMANENT = (UpstreamMissing, CodeVersionMismatch, ConfigError)

Source = pd.DataFrame | tuple[str, dict[str, Any]]


def _in_transaction(checks: Validations) -> bool:
    """Whether ``checks`` can run inside a write's transaction: every query they run is the
    lab's own, on tables that exist, so none fails and aborts it (a consumer's own
    ``downstream_read`` query may)."""
    return checks.downstream_read is None or checks.downstream_read.query is None


def one_line(exc: BaseException) -> str:
    """An error as one line: the lab's own messages as they are, others with their type."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, BackfillLabError):
        return first
    return f"{type(exc).__name__}: {first}"


@dataclass
class StepEvaluator:
    """Runs the steps of one backfill (thread-safe: each call works on its own step)."""

    pipeline: Pipeline
    warehouse: Warehouse
    options: BackfillOptions
    tables: Mapping[str, str]
    backfill_id: str
    code_version: str
    ledger: Ledger
    faults: Faults
    clock: Clock
    sleep: Callable[[float], None]
    emit: Callable[[StepEvent], None]
    validations: Mapping[str, Validations]
    audit_tags: Mapping[str, str]
    # (table, partition) this run wrote and committed: present for the steps that read them,
    # with no query (a committed partition stays present: nothing in a run removes one)
    written: set[tuple[str, str]] = field(default_factory=set)

    @property
    def last_layer(self) -> str:
        """The layer the backfill's output is (its merge keys and validations apply there)."""
        return (self.options.layers or self.pipeline.layer_names)[-1]

    # -- ledger rows -------------------------------------------------------------------------
    def entry(self, step: Step, attempt: int, status: str, rows: int | None,
              started: dt.datetime, finished: dt.datetime, error: str | None,
              upstream: Sequence[str]) -> LedgerEntry:
        """The ledger row of one attempt at one partition of ``step``."""
        return LedgerEntry(
            self.backfill_id, step.layer, step.partition, step.table, self.options.mode,
            self.code_version, attempt, status, rows, started, finished, error,
            tuple(upstream), self.audit_tags, self.options.config_hash, self.options.runtime,
        )

    def finish_without_run(self, step: Step, status: StepStatus, error: str,
                           attempts: int) -> list[StepResult]:
        """Record ``step`` as skipped or cancelled (one ledger row and event per partition)."""
        now = self.clock.now()
        self.ledger.record_many([self.entry(step.one(p), attempts + 1, status, None, now, now,
                                            error, ()) for p in step.partitions])
        for p in step.partitions:
            self.emit(StepEvent(step.layer, p, status, attempts + 1, error=error))
        return [StepResult(step.layer, p, step.table, status, attempts, error=error)
                for p in step.partitions]

    # -- attempts ----------------------------------------------------------------------------
    def evaluate(self, step: Step, attempts_before: int) -> list[StepResult]:
        """Try ``step`` until it succeeds, fails for good, or runs out of retries; one result
        per partition it writes."""
        last = attempts_before + 1 + self.options.retries
        attempt, error = attempts_before, ""
        while attempt < last:
            attempt += 1
            started = self.clock.now()
            for p in step.partitions:
                self.emit(StepEvent(step.layer, p, StepStatus.RUNNING, attempt))
            reads: dict[str, list[str]] = {}  # upstream partitions read, per partition
            try:
                self._check_version(step)
                return self._once(step, attempt, started, reads)
            except Exception as exc:  # every failure is recorded; none escapes a worker
                error = one_line(exc)
                self.ledger.record_many(
                    [self.entry(step.one(p), attempt, StepStatus.FAILED, None, started,
                                self.clock.now(), error, reads.get(p, []))
                     for p in step.partitions])
                if isinstance(exc, _PERMANENT) or attempt >= last:
                    break
                for p in step.partitions:
                    self.emit(StepEvent(step.layer, p, StepStatus.RETRYING, attempt, error=error))
                self.sleep(self.options.wait_before(attempt))  # a resume goes on
        for p in step.partitions:
            self.emit(StepEvent(step.layer, p, StepStatus.FAILED, attempt, error=error))
        return [StepResult(step.layer, p, step.table, StepStatus.FAILED, attempt, error=error)
                for p in step.partitions]

    def _check_version(self, step: Step) -> None:
        """Refuse to start a step once the deployed code differs from the pinned version."""
        if self.pipeline.code_version != self.code_version:
            raise CodeVersionMismatch(
                f"code version changed to {self.pipeline.code_version!r} before "
                f"{step.layer} {step.partition} ran (pinned {self.code_version!r})")

    def _once(self, step: Step, attempt: int, started: dt.datetime,
              reads: dict[str, list[str]]) -> list[StepResult]:
        """One attempt: build the rows, write them and their ledger rows in one transaction,
        validating each partition written in that transaction when its checks allow it (see
        :meth:`_write`), else right after it."""
        layer = self.pipeline.layer(step.layer)
        for p in step.partitions:
            reads[p] = self._check_upstream(layer, step.one(p))
            self.faults.before_attempt(step.layer, p)
        counts, verdicts = self._write(layer, step, attempt, started, reads)
        self.written.update([(step.table, p) for p in step.partitions])
        results = []
        for p in step.partitions:
            failed = verdicts[p] if p in verdicts else self._validate(step.one(p), attempt)
            status = StepStatus.INVALID if failed else StepStatus.SUCCESS
            results.append(StepResult(step.layer, p, step.table, status, attempt,
                                      rows=counts[p], error=failed))
            self.emit(StepEvent(step.layer, p, status, attempt, rows=counts[p], error=failed))
        return results

    def _write(self, layer: Layer, step: Step, attempt: int, started: dt.datetime,
               reads: Mapping[str, list[str]]) -> tuple[dict[str, int], dict[str, str | None]]:
        """Write the step's partitions (one, or a batch in one transaction): rows per partition,
        and the verdict of each partition validated inside that transaction.

        Checks whose queries are all the lab's own (:func:`_in_transaction`) run inside the
        write's transaction, which sees its own rows: the results and the final ledger status
        commit with the data, in one go. A check that raises leaves the write committed as not
        validated (as when checks run after it), and the error is raised once it committed.
        """
        checks = self._checks(step.layer)
        inside = checks is not None and _in_transaction(checks)
        status = StepStatus.INVALID if checks is not None else StepStatus.SUCCESS
        error = NOT_VALIDATED if checks is not None else None
        verdicts: dict[str, str | None] = {}
        raised: list[Exception] = []
        if inside:
            self.warehouse.ensure("_bl_validations", VALIDATIONS_SCHEMA)  # no DDL inside

        def commit(cur: duckdb.DuckDBPyConnection, counts: Mapping[str, int]) -> None:
            finished = self.clock.now()
            final = {p: (status, error) for p in step.partitions}
            if inside and checks is not None:
                try:
                    for p in step.partitions:
                        failed = self._verdict(step.one(p), checks)
                        final[p] = (StepStatus.INVALID if failed else StepStatus.SUCCESS, failed)
                        verdicts[p] = failed
                except Exception as exc:  # the write commits, not validated; raised after
                    raised.append(exc)
                    verdicts.clear()
                    final = {p: (status, error) for p in step.partitions}
            self.ledger.record_many(
                [self.entry(step.one(p), attempt, final[p][0], counts[p], started,
                            finished, final[p][1], reads[p]) for p in step.partitions], cur)

        if len(step.partitions) > 1:
            source, params = self._build_batch(layer, step)
            counts = self.warehouse.write_batch(
                step.table, step.partitions, source, params=params,
                partition_column=layer.partition_column, on_commit=commit)
        else:
            built = self._build(layer, step)
            rows, params = built if isinstance(built, tuple) else (built, {})
            result = self.warehouse.write_partition(
                step.table, step.partition, rows, self.options.mode,
                merge_keys=self._merge_keys(layer), params=params,
                partition_column=layer.partition_column,
                on_commit=lambda cur, rows: commit(cur, {step.partition: rows}))
            counts = {step.partition: result.rows}
        if raised:
            raise raised[0]
        return counts, verdicts

    def _merge_keys(self, layer: Layer) -> tuple[str, ...]:
        """The backfill's merge keys apply to its last layer (the output the plan names); an
        upstream layer merges on the keys it declares, which identify its own rows."""
        if layer.name == self.last_layer and self.options.merge_keys:
            return self.options.merge_keys
        return layer.merge_keys or self.options.merge_keys

    def _checks(self, layer: str) -> Validations | None:
        """The enabled checks of ``layer``, or None."""
        checks = self.validations.get(layer)
        return checks if checks is not None and checks.enabled else None

    def _checked(self, step: Step, checks: Validations) -> tuple[list[CheckResult], str | None]:
        """Run ``checks`` on the partition of ``step`` (on this thread's cursor, so inside
        its open transaction if any): the results, and the failures as one error or None."""
        results = validate_partition(self.warehouse, step.table, step.partition, checks,
                                     reference=self.pipeline.layer(step.layer).default_table)
        failed = [r for r in results if not r.passed]
        return results, ("validation failed: " + "; ".join(f"{r.check}: {r.detail}"
                                                           for r in failed) if failed else None)

    def _verdict(self, step: Step, checks: Validations) -> str | None:
        """Run ``checks`` on the partition of ``step`` and record their results, inside the
        write's open transaction: the failures, or None."""
        results, error = self._checked(step, checks)
        record_results(self.warehouse, results, self.backfill_id, self.clock.now())
        return error

    def _validate(self, step: Step, attempt: int) -> str | None:
        """Run the layer's checks on the partition just written; the failures, or None.

        For checks that run a query of the plan's own (a consumer's ``downstream_read``, which
        may fail, and a failed statement aborts a DuckDB transaction): they run after the
        write, and their results and the step's final ledger status commit in one transaction
        of their own. Until they do, the ledger holds the write as not validated, so a resume
        reruns it, and a failed check is never mistaken for a success.
        """
        checks = self._checks(step.layer)
        if checks is None:
            return None
        results, error = self._checked(step, checks)
        self.warehouse.ensure("_bl_validations", VALIDATIONS_SCHEMA)
        cur = self.warehouse.cursor()
        with transaction(cur, "validation results"):
            record_results(self.warehouse, results, self.backfill_id, self.clock.now())
            self.ledger.settle(self.backfill_id, step.layer, step.partition, attempt,
                               StepStatus.INVALID if error else StepStatus.SUCCESS, error,
                               NOT_VALIDATED, cur)
        return error

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
            unknown = [k for k in keys if (table, k) not in self.written]
            present = set(keys).difference(unknown)
            if unknown:
                present |= self.warehouse.existing_partitions(table, unknown)
            first = None if len(present) == len(keys) else self.warehouse.first_partition(table)
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

    # -- building rows -----------------------------------------------------------------------
    def _build_batch(self, layer: Layer, step: Step) -> tuple[str | pd.DataFrame, dict[str, Any]]:
        """One source for a batch: a single range SELECT when the layer is range-aware and the
        batch contiguous (the fast path), else every partition built alone and glued together
        (with ``UNION ALL BY NAME``, or as DataFrames when some part is one)."""
        keys = step.partitions
        if (layer.range_aware and PartitionSet.of(keys).is_contiguous
                and not any(self.faults.corrupts(step.layer, p) for p in keys)):
            return self.pipeline.sql_for(layer, step.partition, self.tables, batch=keys)
        parts = [self._build(layer, step.one(p)) for p in keys]
        selects = [part for part in parts if isinstance(part, tuple)]
        if len(selects) == len(parts):
            return union_all(selects)
        frames = [part if isinstance(part, pd.DataFrame) else self.warehouse.sql(*part)
                  for part in parts]
        return pd.concat(frames, ignore_index=True), {}

    def _build(self, layer: Layer, step: Step) -> Source:
        """One partition's rows: its SELECT and parameters, or a DataFrame (a Python layer, or
        bad data a fault plants)."""
        if isinstance(layer.transform, str):
            sql, params = self.pipeline.sql_for(layer, step.partition, self.tables)
            if not self.faults.corrupts(step.layer, step.partition):
                return sql, params
            df = self.warehouse.sql(sql, params)
        else:
            ctx = StepContext(self.pipeline, layer, step.partition, self.tables,
                              self.warehouse, self.code_version, now=self.clock.now())
            df = layer.transform(ctx)
            if not isinstance(df, pd.DataFrame):
                raise ConfigError.invalid(f"result of layer {layer.name!r}", "a DataFrame",
                                          type(df).__name__)
        return self.faults.corrupt(step.layer, step.partition, df)
