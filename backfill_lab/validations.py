"""Per-partition validations: the guide's five checks run, recorded and queried, each verdict with
its measured value and threshold.

1. row count within bounds (absolute, or relative to the mean of the previous partitions)
2. no null-rate spike in any column
3. key uniqueness
4. feature distribution drift against a baseline (a previous version's same partition, or a
   reference window of earlier partitions), as PSI and/or the KS statistic
5. a downstream read test: the partition can be read the way a consumer reads it

What each check tests is configured in :mod:`backfill_lab.validation_config` (re-exported here);
the drift measures are in :mod:`backfill_lab.distributions`. A check never raises for bad data:
it returns a :class:`CheckResult` whose verdict says what it measured against what threshold.
Results are recorded in the warehouse (``_bl_validations``) so the grid can mark a partition
``invalid`` and a switchover can refuse to expose it. Taught in notebooks/01_mental_model.ipynb,
notebooks/03_versioned_recompute.ipynb and notebooks/05_designing_safe_backfills.ipynb.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._db import quote, run, run_select
from .distributions import Rows, drift_by_column, ks_statistic, psi
from .errors import ConfigError, UnknownNameError
from .partitions import PartitionSet, grain_of, parse_key, to_value
from .report import Column, PassFailReport, Row
from .validation_config import (
    CHECKS,
    DownstreamRead,
    Drift,
    NullRate,
    RowCount,
    UniqueKeys,
    Validations,
)
from .warehouse import Warehouse

__all__ = [
    "CHECKS",
    "SCHEMA",
    "CheckResult",
    "DownstreamRead",
    "Drift",
    "NullRate",
    "RowCount",
    "UniqueKeys",
    "ValidationReport",
    "Validations",
    "invalid_partitions",
    "ks_statistic",
    "latest_validations",
    "psi",
    "record_results",
    "validate",
    "validate_partition",
    "validated_partitions",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _bl_validations (
    backfill_id VARCHAR, "table" VARCHAR, partition VARCHAR, "check" VARCHAR,
    measured DOUBLE, threshold VARCHAR, passed BOOLEAN, detail VARCHAR, checked_at TIMESTAMP
)
"""
SCHEMA = _SCHEMA
"""The DDL of ``_bl_validations`` (create it before a transaction that records results)."""
# the partitions of $table whose latest verdict of some check is a failure
_INVALID = ('SELECT DISTINCT partition FROM (SELECT partition, arg_max(passed, rowid) AS passed '
            'FROM _bl_validations WHERE "table" = $table GROUP BY partition, "check") '
            "WHERE NOT coalesce(passed, false)")


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """One check of one partition: what was measured, against what, and the verdict."""

    check: str
    table: str
    partition: str
    measured: float | None
    threshold: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict} {self.check:<15} {self.table} {self.partition}: {self.detail}"


@dataclass(repr=False)
class ValidationReport(PassFailReport):
    """Every check of every validated partition: text, and a table in a notebook.

    Taught in notebooks/01_mental_model.ipynb.
    """

    results: list[CheckResult] = field(default_factory=list)

    css_class = "backfill-validations"
    columns = (Column("check"), Column("partition"), Column("measured"), Column("threshold"),
               Column("detail"))
    marks = ("pass", "FAIL")
    verdict_header = "verdict"

    @property
    def passed(self) -> bool:
        """True when there are results and every one passed."""
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        """The results that failed."""
        return [r for r in self.results if not r.passed]

    def invalid_partitions(self) -> list[str]:
        """The partitions with at least one failed check, sorted."""
        return sorted({r.partition for r in self.failed})

    def frame(self) -> pd.DataFrame:
        """One row per result, one column per :class:`CheckResult` field."""
        cols = ["check", "table", "partition", "measured", "threshold", "passed", "detail"]
        return pd.DataFrame([asdict(r) for r in self.results], columns=cols)

    def rows(self) -> list[Row]:
        """One row per check of a partition."""
        return [Row(r.passed, (r.check, r.partition,
                               "" if r.measured is None else f"{r.measured:.4g}", r.threshold,
                               r.detail), str(r))
                for r in self.results]

    def summary(self) -> str:
        """``7/10 checks passed; invalid partitions: ...``."""
        bad = self.invalid_partitions()
        return (f"{len(self.results) - len(self.failed)}/{len(self.results)} checks passed"
                + (f"; invalid partitions: {', '.join(bad)}" if bad else ""))


# -- reading partitions --------------------------------------------------------------------
def _partition(wh: Warehouse, table: str, key: str) -> Rows:
    pcol = quote(wh.partition_column(table))
    return Rows.read(wh.cursor(), f"SELECT * FROM {quote(table)} WHERE {pcol} = ?",
                     [to_value(key)])


_THIS = "_bl this?"  # the flag column of a read of a partition together with its history


def _read_keys(wh: Warehouse, table: str, keys: list[str], span: bool, this: str | None = None
               ) -> Rows:
    """The rows of partitions ``keys`` (newest first) of ``table``; with ``this``, a first column
    ``_THIS`` flags the rows of that partition. ``span``: no other partition lies between them,
    so a range selects them (cheaper), if the rows say it still does."""
    pcol, values = wh.partition_column(table), [to_value(k) for k in keys]
    flag = f'{quote(pcol)} = $this AS "{_THIS}", ' if this else ""
    where = "BETWEEN $lo AND $hi" if span else "IN (SELECT unnest($k))"
    params = {"lo": values[-1], "hi": values[0]} if span else {"k": values}
    rows = Rows.read(wh.cursor(), f"SELECT {flag}* FROM {quote(table)} WHERE {quote(pcol)} {where}",
                     {**params, "this": to_value(this)} if this else params)
    got = np.ma.getdata(rows.arrays.get(pcol, np.array([])))
    if span and not (got.dtype.kind == "M" and np.isin(got, np.array(values, got.dtype)).all()):
        return _read_keys(wh, table, keys, False, this)  # another partition came in between
    return rows


def _trusted_before(wh: Warehouse, reference: str, key: str, n: int) -> tuple[list[str], int]:
    """The ``n`` newest partitions of ``reference`` before ``key`` that hold rows and whose latest
    validation did not fail: the history a new partition is compared with; and how many of the
    first are the newest partitions of all (no failed one between), their values keys exactly.

    Counting existing partitions (not calendar days) keeps the comparison the same whether the
    days just before are already rebuilt or still in flight in a parallel backfill.
    """
    if not wh.has_table(reference):
        return [], 0
    wh.ensure("_bl_validations", _SCHEMA)
    pcol = quote(wh.partition_column(reference))
    daily = wh.grain(reference) == "daily"
    newest = (f"SELECT {pcol}, NULL FROM {quote(reference)} WHERE {pcol} < $key "
              f"GROUP BY {pcol} ORDER BY {pcol} DESC LIMIT $n")
    # one query: the newest partitions, and whether any verdict of the table failed at all
    # (the usual answer is no: then none is bad, and the newest n are the history)
    rows = run(wh.cursor(), f"(SELECT NULL, true FROM _bl_validations WHERE \"table\" = $table "
                            f"AND NOT coalesce(passed, false) LIMIT 1) UNION ALL ({newest})",
               {"table": reference, "key": to_value(key), "n": n})
    bad = invalid_partitions(wh, reference) if any(f for _, f in rows) else set()
    if bad:
        rows = run(wh.cursor(), newest, {"key": to_value(key), "n": n + len(bad)})
    found = sorted((v for v, f in rows if not f), reverse=True)
    keys = [parse_key(v.date() if daily and hasattr(v, "hour") else v) for v in found]
    trusted = [k for k in keys if k not in bad][:n]
    plain = next((i for i, (k, v) in enumerate(zip(keys, found, strict=True)) if k in bad
                  or type(to_value(k)) is not type(v) or to_value(k) != v), len(keys))
    return trusted, min(plain, len(trusted))


# -- running checks --------------------------------------------------------------------------
def _row_count(wh: Warehouse, table: str, key: str, n: int, cfg: RowCount, reference: str,
               earlier: list[str]) -> CheckResult:
    problems, limits = [], []
    if cfg.min is not None:
        limits.append(f">= {cfg.min}")
        if n < cfg.min:
            problems.append(f"{n} rows < min {cfg.min}")
    if cfg.max is not None:
        limits.append(f"<= {cfg.max}")
        if n > cfg.max:
            problems.append(f"{n} rows > max {cfg.max}")
    if cfg.relative is not None:
        counts: dict[Any, int] = {}
        if earlier:
            pcol = quote(wh.partition_column(reference))
            counts = dict(run(
                wh.cursor(),
                f"SELECT {pcol}, count(*) FROM {quote(reference)} "
                f"WHERE {pcol} IN (SELECT unnest(?)) GROUP BY {pcol}",
                [[to_value(k) for k in earlier]]))
        history = [n for n in counts.values() if n]
        if history:
            mean = sum(history) / len(history)
            low, high = mean * (1 - cfg.relative), mean * (1 + cfg.relative)
            limits.append(f"within {cfg.relative:.0%} of trailing mean {mean:.0f}")
            if not low <= n <= high:
                problems.append(f"{n} rows is {abs(n - mean) / mean:.0%} off the trailing "
                                f"{len(history)}-partition mean {mean:.0f}")
        else:
            limits.append("trailing mean (no history yet)")
    if n == 0:
        problems.append("partition is empty")
    detail = "; ".join(problems) if problems else f"{n} rows"
    return CheckResult("row_count", table, key, float(n), ", ".join(limits) or "> 0",
                       not problems, detail)


def _null_rate(table: str, key: str, rows: Rows, cfg: NullRate) -> CheckResult:
    columns = list(cfg.columns) if cfg.columns else rows.columns
    for c in columns:
        if c not in rows.types:
            raise UnknownNameError.of(f"column of {table} in validations.null_rate", c,
                                      rows.columns)
    n = len(rows)
    rates = {c: int(rows.missing(c).sum()) / n if n else 0.0 for c in columns}
    worst = max(rates, key=lambda c: rates[c]) if rates else ""
    rate = rates.get(worst, 0.0)
    ok = rate <= cfg.max
    if rate == 0:
        detail = f"no nulls in {len(columns)} columns"
    else:
        detail = f"worst column {worst}: {rate:.2%} nulls" + ("" if ok else f" > max {cfg.max:.2%}")
    return CheckResult("null_rate", table, key, rate, f"<= {cfg.max:.2%} per column", ok, detail)


def _unique(table: str, key: str, rows: Rows, cfg: UniqueKeys) -> CheckResult:
    for c in cfg.keys:
        if c not in rows.types:
            raise UnknownNameError.of(f"column of {table} in validations.unique_keys", c,
                                      rows.columns)
    dups = rows.duplicates(cfg.keys)
    detail = f"{dups} duplicate rows on ({', '.join(cfg.keys)})" if dups else \
        f"({', '.join(cfg.keys)}) unique over {len(rows)} rows"
    return CheckResult("unique_keys", table, key, float(dups), "0 duplicates", dups == 0, detail)


def _drift(wh: Warehouse, table: str, key: str, rows: Rows, cfg: Drift, skip: Sequence[str],
           reference: str, history: Rows | None) -> CheckResult:
    if cfg.baseline is not None:
        if not wh.has_table(cfg.baseline):
            raise UnknownNameError.of("baseline table in validations.drift", cfg.baseline,
                                      wh.tables())
        base = _partition(wh, cfg.baseline, key)
        source = f"{cfg.baseline} {key}"
    else:
        # the reference is what readers trust: earlier partitions of the table they read,
        # minus any whose latest validation failed (known-bad data is no baseline)
        base = Rows() if history is None else history
        source = f"previous {cfg.reference_window} partitions of {reference}"
    skipped = set(skip)
    columns = list(cfg.columns) if cfg.columns else \
        [c for c in rows.columns if c not in skipped and rows.numeric(c)]
    limits = []
    if cfg.max_psi is not None:
        limits.append(f"PSI <= {cfg.max_psi:g}")
    if cfg.max_ks is not None:
        limits.append(f"KS <= {cfg.max_ks:g}")
    if not len(base):
        return CheckResult("drift", table, key, None, ", ".join(limits), False,
                           f"no baseline rows in {source}: cannot show the distribution held")
    worst_col, worst_psi, worst_ks, failed = "", 0.0, 0.0, False
    # drift_measures(base.sample(c), rows.sample(c)) of each column, up to an unknown one
    for c, (p, k) in zip(columns, drift_by_column(base, rows, columns), strict=False):
        if c not in rows.types or c not in base.types:
            raise UnknownNameError.of(f"column of {table} in validations.drift", c, rows.columns)
        bad = (cfg.max_psi is not None and not p <= cfg.max_psi) or \
              (cfg.max_ks is not None and not k <= cfg.max_ks)
        score = p if cfg.max_psi is not None else k
        best = worst_psi if cfg.max_psi is not None else worst_ks
        if (bad and not failed) or (bad == failed and (score > best or math.isnan(score))):
            worst_col, worst_psi, worst_ks, failed = c, p, k, bad
    measured = worst_psi if cfg.max_psi is not None else worst_ks
    detail = f"worst column {worst_col}: PSI {worst_psi:.3f}, KS {worst_ks:.3f} vs {source}"
    return CheckResult("drift", table, key, measured, ", ".join(limits), not failed, detail)


def _downstream(wh: Warehouse, table: str, key: str, cfg: DownstreamRead,
                read: Rows | None) -> CheckResult:
    """``read``: the partition's rows as the checks read them (every column fetched and
    converted), which is the default consumer's read: no second query for it."""
    pcol = quote(wh.partition_column(table))
    query = cfg.query or f"SELECT * FROM {{table}} WHERE {pcol} = $partition"
    text = query.replace("{table}", quote(table))
    try:  # fetch what the consumer fetches: every column is really read and converted
        rows = len(read) if read is not None and cfg.query is None else len(
            (run_select if cfg.query else run)(
                wh.cursor(), text, {"partition": to_value(key)} if "$partition" in text else None))
    except Exception as exc:  # the point of the check: a consumer's query failing is a verdict
        first = str(exc).splitlines()[0]
        return CheckResult("downstream_read", table, key, None, "query runs, >= 1 row", False,
                           f"consumer query failed: {first}")
    ok = rows > 0
    detail = f"consumer query returned {rows} rows" if ok else "consumer query returned no rows"
    return CheckResult("downstream_read", table, key, float(rows), "query runs, >= 1 row", ok,
                       detail)


def validate_partition(wh: Warehouse, table: str, partition: str, validations: Validations,
                       *, reference: str | None = None) -> list[CheckResult]:
    """Run every enabled check on one partition of ``table``.

    Checks that compare with earlier partitions (the row count's trailing mean, drift without a
    baseline) read them from ``reference`` (default: ``table``): when a backfill writes
    ``features_v2`` beside ``features_v1``, the history readers trust is in ``features_v1``.
    The partition is read once, into numpy; the history is found once, for both checks.
    """
    key = parse_key(partition)
    reference = reference or table
    count, drift = validations.row_count, validations.drift
    windows = [count.window] if count is not None and count.relative is not None else []
    windows += [drift.reference_window] if drift is not None and drift.baseline is None else []
    earlier, plain = _trusted_before(wh, reference, key, max(windows)) if windows else ([], 0)
    rows: Rows | None = None
    history: Rows | None = None  # the drift's, without a baseline
    if drift is not None and drift.baseline is None and earlier[:drift.reference_window]:
        refs = earlier[:drift.reference_window]
        span = plain >= len(refs)  # the history is a range of partitions: read it as one
        if reference == table and drift.columns is None:  # and with the partition, in one read
            both = _read_keys(wh, table, [key, *refs], span, this=key).split(_THIS)
            rows, history = both if both is not None else (None, None)
        if history is None:
            history = _read_keys(wh, reference, refs, span)
    exists = wh.has_table(table)
    if rows is None:
        rows = _partition(wh, table, key) if exists else Rows()
    skip = [wh.partition_column(table)] if wh.has_table(table) else []
    if validations.unique_keys is not None:
        skip += [k for k in validations.unique_keys.keys if k not in skip]
    out: list[CheckResult] = []
    if validations.row_count is not None:
        out.append(_row_count(wh, table, key, len(rows), validations.row_count, reference,
                              earlier[:validations.row_count.window]))
    if validations.null_rate is not None:
        out.append(_null_rate(table, key, rows, validations.null_rate))
    if validations.unique_keys is not None:
        out.append(_unique(table, key, rows, validations.unique_keys))
    if validations.drift is not None:
        out.append(_drift(wh, table, key, rows, validations.drift, skip, reference, history))
    if validations.downstream_read is not None:
        out.append(_downstream(wh, table, key, validations.downstream_read,
                               rows if exists else None))
    return out


def record_results(wh: Warehouse, results: Sequence[CheckResult], backfill_id: str | None,
                   when: dt.datetime) -> None:
    """Append check results to ``_bl_validations`` (the grid and switchover read them there)."""
    wh.ensure("_bl_validations", _SCHEMA)
    if not results:
        return
    values = [v for r in results for v in (
        backfill_id, r.table, r.partition, r.check,
        None if r.measured is None or math.isnan(r.measured) else r.measured,
        r.threshold, r.passed, r.detail, when)]
    row = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"  # one statement, rows in order: one round trip
    run(wh.cursor(), "INSERT INTO _bl_validations VALUES " + ", ".join(row for _ in results),
        values)


def validate(wh: Warehouse, table: str, partitions: object,
             validations: Validations | Mapping[str, Any], *,
             backfill_id: str | None = None, record: bool = True,
             now: dt.datetime | None = None, reference: str | None = None) -> ValidationReport:
    """Validate each partition, record the results, and return the report.

    ``validations`` is a :class:`Validations`, or a plan's ``validations:`` mapping. Taught in
    notebooks/01_mental_model.ipynb, notebooks/03_versioned_recompute.ipynb and
    notebooks/05_designing_safe_backfills.ipynb.
    """
    if not isinstance(validations, Validations):
        validations = Validations.from_dict(validations)
    if not validations.enabled:
        raise ConfigError("no validations enabled; configure at least one of " + ", ".join(CHECKS))
    results: list[CheckResult] = []
    keys = PartitionSet.parse(partitions)  # type: ignore[arg-type]
    if wh.has_table(table) and keys.start and grain_of(keys.start) != wh.grain(table):
        raise ConfigError(f"table {table!r} has {wh.grain(table)} partitions; "
                          f"{keys.start!r} is {grain_of(keys.start)}")
    for key in keys:
        results.extend(validate_partition(wh, table, key, validations, reference=reference))
    if record:
        when = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        record_results(wh, results, backfill_id, when)
    return ValidationReport(results)


def latest_validations(wh: Warehouse, table: str) -> pd.DataFrame:
    """The newest recorded verdict of each check of each partition of ``table``."""
    wh.ensure("_bl_validations", _SCHEMA)
    return wh.sql(
        'SELECT partition, "check", arg_max(passed, rowid) AS passed, '
        'arg_max(detail, rowid) AS detail, max(checked_at) AS checked_at '
        'FROM _bl_validations WHERE "table" = ? GROUP BY partition, "check" '
        'ORDER BY partition, "check"', [table])


def invalid_partitions(wh: Warehouse, table: str) -> set[str]:
    """Partitions of ``table`` whose latest validation has a failed check."""
    wh.ensure("_bl_validations", _SCHEMA)  # the verdicts of latest_validations, without pandas
    rows = run(wh.cursor(), _INVALID, {"table": table})
    return {r[0] for r in rows}


def validated_partitions(wh: Warehouse, table: str) -> set[str]:
    """Partitions of ``table`` whose latest validation passed every check."""
    df = latest_validations(wh, table)
    if df.empty:
        return set()
    ok = df.groupby("partition")["passed"].all()
    return set(ok[ok].index)

