"""The validations as they were before issue 15 made them cheaper: a reference implementation
that the faster checks must equal, result for result (tests/test_validation_speed_parity.py).

A verbatim copy of ``backfill_lab/validations.py``'s checks and ``backfill_lab/distributions.py``
at commit 1971f3a: each partition read into pandas, the reference partitions found with
``SELECT DISTINCT ... LIMIT`` plus :func:`invalid_partitions`, PSI and KS per column in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backfill_lab._db import quote, run
from backfill_lab.distributions import Sample
from backfill_lab.errors import UnknownNameError
from backfill_lab.partitions import parse_key, to_value
from backfill_lab.validations import (
    CheckResult,
    DownstreamRead,
    Drift,
    NullRate,
    RowCount,
    UniqueKeys,
    Validations,
    invalid_partitions,
)
from backfill_lab.warehouse import Warehouse


def psi(expected: Sample, actual: Sample, *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins of expected).

    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant drift.

    >>> base = list(range(100))
    >>> psi(base, base)
    0.0
    >>> round(psi(base, [x + 50 for x in base]), 2)
    4.35
    """
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_share = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    a_share = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    floor = 1e-4  # an empty bin would make the index infinite
    ep = np.maximum(e_share / len(e), floor)
    ap = np.maximum(a_share / len(a), floor)
    value = float(np.sum((ap - ep) * np.log(ap / ep)))
    return 0.0 if abs(value) < 1e-12 else value


def ks_statistic(expected: Sample, actual: Sample) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs (0..1).

    >>> ks_statistic([1, 2, 3, 4], [1, 2, 3, 4])
    0.0
    >>> ks_statistic([1, 2, 3, 4], [11, 12, 13, 14])
    1.0
    """
    e = np.sort(np.asarray(expected, dtype="float64"))
    a = np.sort(np.asarray(actual, dtype="float64"))
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    grid = np.concatenate([e, a])
    cdf_e = np.searchsorted(e, grid, side="right") / len(e)
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    return float(np.max(np.abs(cdf_e - cdf_a)))


# -- running checks --------------------------------------------------------------------------
def _numeric_columns(df: pd.DataFrame, skip: Iterable[str]) -> list[str]:
    skip = set(skip)
    return [c for c in df.columns if c not in skip and df[c].dtype.kind in "if"]


def _read(wh: Warehouse, table: str, keys: Sequence[str]) -> pd.DataFrame:
    pcol = quote(wh.partition_column(table))
    values = [to_value(k) for k in keys]
    return wh.sql(f"SELECT * FROM {quote(table)} WHERE {pcol} IN (SELECT unnest($k))",
                  {"k": values})


def _trusted_before(wh: Warehouse, reference: str, key: str, n: int) -> list[str]:
    """The ``n`` newest partitions of ``reference`` before ``key`` that hold rows and whose latest
    validation did not fail: the history a new partition is compared with.

    Counting existing partitions (not calendar days) keeps the comparison the same whether the
    days just before are already rebuilt or still in flight in a parallel backfill.
    """
    if not wh.has_table(reference):
        return []
    bad = invalid_partitions(wh, reference)
    pcol = quote(wh.partition_column(reference))
    daily = wh.grain(reference) == "daily"
    rows = run(wh.cursor(), f"SELECT DISTINCT {pcol} FROM {quote(reference)} WHERE {pcol} < ? "
                            f"ORDER BY {pcol} DESC LIMIT ?", [to_value(key), n + len(bad)])
    keys = [parse_key(r[0].date() if daily and hasattr(r[0], "hour") else r[0]) for r in rows]
    return [k for k in keys if k not in bad][:n]


def _row_count(wh: Warehouse, table: str, key: str, df: pd.DataFrame, cfg: RowCount,
               reference: str) -> CheckResult:
    n = len(df)
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
        earlier = _trusted_before(wh, reference, key, cfg.window)
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


def _null_rate(table: str, key: str, df: pd.DataFrame, cfg: NullRate) -> CheckResult:
    columns = list(cfg.columns) if cfg.columns else list(df.columns)
    for c in columns:
        if c not in df.columns:
            raise UnknownNameError.of(f"column of {table} in validations.null_rate", c, df.columns)
    rates = {c: float(df[c].isna().mean()) if len(df) else 0.0 for c in columns}
    worst = max(rates, key=lambda c: rates[c]) if rates else ""
    rate = rates.get(worst, 0.0)
    ok = rate <= cfg.max
    if rate == 0:
        detail = f"no nulls in {len(columns)} columns"
    else:
        detail = f"worst column {worst}: {rate:.2%} nulls" + ("" if ok else f" > max {cfg.max:.2%}")
    return CheckResult("null_rate", table, key, rate, f"<= {cfg.max:.2%} per column", ok, detail)


def _unique(table: str, key: str, df: pd.DataFrame, cfg: UniqueKeys) -> CheckResult:
    for c in cfg.keys:
        if c not in df.columns:
            raise UnknownNameError.of(f"column of {table} in validations.unique_keys", c,
                                      df.columns)
    dups = int(df.duplicated(list(cfg.keys)).sum())
    detail = f"{dups} duplicate rows on ({', '.join(cfg.keys)})" if dups else \
        f"({', '.join(cfg.keys)}) unique over {len(df)} rows"
    return CheckResult("unique_keys", table, key, float(dups), "0 duplicates", dups == 0, detail)


def _drift(wh: Warehouse, table: str, key: str, df: pd.DataFrame, cfg: Drift,
           skip: Sequence[str], reference: str) -> CheckResult:
    if cfg.baseline is not None:
        if not wh.has_table(cfg.baseline):
            raise UnknownNameError.of("baseline table in validations.drift", cfg.baseline,
                                      wh.tables())
        base = _read(wh, cfg.baseline, [key])
        source = f"{cfg.baseline} {key}"
    else:
        # the reference is what readers trust: earlier partitions of the table they read,
        # minus any whose latest validation failed (known-bad data is no baseline)
        earlier = _trusted_before(wh, reference, key, cfg.reference_window)
        base = _read(wh, reference, earlier) if earlier else pd.DataFrame()
        source = f"previous {cfg.reference_window} partitions of {reference}"
    columns = list(cfg.columns) if cfg.columns else _numeric_columns(df, skip)
    limits = []
    if cfg.max_psi is not None:
        limits.append(f"PSI <= {cfg.max_psi:g}")
    if cfg.max_ks is not None:
        limits.append(f"KS <= {cfg.max_ks:g}")
    if base.empty:
        return CheckResult("drift", table, key, None, ", ".join(limits), False,
                           f"no baseline rows in {source}: cannot show the distribution held")
    worst_col, worst_psi, worst_ks, failed = "", 0.0, 0.0, False
    for c in columns:
        if c not in df.columns or c not in base.columns:
            raise UnknownNameError.of(f"column of {table} in validations.drift", c, df.columns)
        p = psi(base[c].to_numpy(), df[c].to_numpy())
        k = ks_statistic(base[c].to_numpy(), df[c].to_numpy())
        bad = (cfg.max_psi is not None and not p <= cfg.max_psi) or \
              (cfg.max_ks is not None and not k <= cfg.max_ks)
        score = p if cfg.max_psi is not None else k
        best = worst_psi if cfg.max_psi is not None else worst_ks
        if (bad and not failed) or (bad == failed and (score > best or math.isnan(score))):
            worst_col, worst_psi, worst_ks, failed = c, p, k, bad
    measured = worst_psi if cfg.max_psi is not None else worst_ks
    detail = f"worst column {worst_col}: PSI {worst_psi:.3f}, KS {worst_ks:.3f} vs {source}"
    return CheckResult("drift", table, key, measured, ", ".join(limits), not failed, detail)


def _downstream(wh: Warehouse, table: str, key: str, cfg: DownstreamRead) -> CheckResult:
    pcol = quote(wh.partition_column(table))
    query = cfg.query or f"SELECT * FROM {{table}} WHERE {pcol} = $partition"
    text = query.replace("{table}", quote(table))
    try:  # fetch what the consumer fetches: every column is really read and converted
        rows = len(run(wh.cursor(), text,
                       {"partition": to_value(key)} if "$partition" in text else None))
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
    """
    key = parse_key(partition)
    reference = reference or table
    df = _read(wh, table, [key]) if wh.has_table(table) else pd.DataFrame()
    skip = [wh.partition_column(table)] if wh.has_table(table) else []
    if validations.unique_keys is not None:
        skip += [k for k in validations.unique_keys.keys if k not in skip]
    out: list[CheckResult] = []
    if validations.row_count is not None:
        out.append(_row_count(wh, table, key, df, validations.row_count, reference))
    if validations.null_rate is not None:
        out.append(_null_rate(table, key, df, validations.null_rate))
    if validations.unique_keys is not None:
        out.append(_unique(table, key, df, validations.unique_keys))
    if validations.drift is not None:
        out.append(_drift(wh, table, key, df, validations.drift, skip, reference))
    if validations.downstream_read is not None:
        out.append(_downstream(wh, table, key, validations.downstream_read))
    return out
