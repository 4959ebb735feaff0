"""Per-partition validations: the guide's five checks, each with its measured value and threshold.

1. row count within bounds (absolute, or relative to the mean of the previous partitions)
2. no null-rate spike in any column
3. key uniqueness
4. feature distribution drift against a baseline (a previous version's same partition, or a
   reference window of earlier partitions), as PSI and/or the KS statistic
5. a downstream read test: the partition can be read the way a consumer reads it

A check never raises for bad data: it returns a :class:`CheckResult` whose verdict says what it
measured against what threshold. Results are recorded in the warehouse (``_bl_validations``) so
the grid can mark a partition ``invalid`` and a switchover can refuse to expose it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._db import quote, run
from .errors import ConfigError, UnknownNameError
from .partitions import PartitionSet, parse_key, to_value

__all__ = [
    "CHECKS",
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

CHECKS: tuple[str, ...] = ("row_count", "null_rate", "unique_keys", "drift", "downstream_read")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _bl_validations (
    backfill_id VARCHAR, "table" VARCHAR, partition VARCHAR, "check" VARCHAR,
    measured DOUBLE, threshold VARCHAR, passed BOOLEAN, detail VARCHAR, checked_at TIMESTAMP
)
"""


# -- statistics ------------------------------------------------------------------------------
def psi(expected: Sequence[float], actual: Sequence[float], *, bins: int = 10) -> float:
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


def ks_statistic(expected: Sequence[float], actual: Sequence[float]) -> float:
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


# -- configuration -------------------------------------------------------------------------
def _number(name: str, value: object, *, minimum: float = 0.0, integer: bool = False) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value < minimum or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError.invalid(name, f"{kind} >= {minimum:g}", value)
    return value


def _keys(section: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            raise UnknownNameError.of(f"key in validations.{section}", str(key), allowed)


@dataclass(frozen=True)
class RowCount:
    """Rows within ``[min, max]``, and/or within ``relative`` (a share) of the trailing mean."""

    min: int | None = None
    max: int | None = None
    relative: float | None = None
    window: int = 7

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                _number(f"validations.row_count.{name}", value, integer=True)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(
                f"validations.row_count: min {self.min} is above max {self.max}; swap them"
            )
        if self.relative is not None:
            _number("validations.row_count.relative", self.relative)
        _number("validations.row_count.window", self.window, minimum=1, integer=True)

    @classmethod
    def between(cls, low: int, high: int) -> RowCount:
        return cls(min=low, max=high)

    @classmethod
    def near_trailing_mean(cls, share: float = 0.5, window: int = 7) -> RowCount:
        return cls(relative=share, window=window)


@dataclass(frozen=True)
class NullRate:
    """The share of nulls in each checked column stays at or below ``max``."""

    max: float = 0.01
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _number("validations.null_rate.max", self.max)
        if self.max > 1:
            raise ConfigError.invalid("validations.null_rate.max", "a share in [0, 1]", self.max)


@dataclass(frozen=True)
class UniqueKeys:
    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.keys or not all(isinstance(k, str) and k for k in self.keys):
            raise ConfigError.invalid("validations.unique_keys", "a list of column names",
                                      list(self.keys))


@dataclass(frozen=True)
class Drift:
    """Numeric columns compared with ``baseline`` (a table's same partition) or, without one, with
    the ``reference_window`` partitions before this one in the same table."""

    baseline: str | None = None
    max_psi: float | None = 0.2
    max_ks: float | None = None
    columns: tuple[str, ...] | None = None
    reference_window: int = 7

    def __post_init__(self) -> None:
        if self.baseline is not None:
            quote(self.baseline)
        if self.max_psi is None and self.max_ks is None:
            raise ConfigError("validations.drift needs max_psi or max_ks (got neither)")
        if self.max_psi is not None:
            _number("validations.drift.max_psi", self.max_psi)
        if self.max_ks is not None:
            _number("validations.drift.max_ks", self.max_ks)
        _number("validations.drift.reference_window", self.reference_window, minimum=1,
                integer=True)


@dataclass(frozen=True)
class DownstreamRead:
    """A consumer's query over the partition must run and return at least one row.

    ``query`` may use ``{table}`` and ``$partition``; the default reads every column.
    """

    query: str | None = None


_SECTIONS: dict[str, tuple[str, ...]] = {
    "row_count": ("min", "max", "relative", "window"),
    "null_rate": ("max", "columns"),
    "drift": ("baseline", "max_psi", "max_ks", "columns", "reference_window"),
    "downstream_read": ("query",),
}


@dataclass(frozen=True)
class Validations:
    """Which checks to run on each partition; ``None`` means the check is off."""

    row_count: RowCount | None = None
    null_rate: NullRate | None = None
    unique_keys: UniqueKeys | None = None
    drift: Drift | None = None
    downstream_read: DownstreamRead | None = None

    @classmethod
    def recommended(cls, keys: Sequence[str] = ("entity_id", "date"),
                    baseline: str | None = None) -> Validations:
        """All five checks with the lab's defaults: the guide's checklist, ready to use."""
        return cls(RowCount.near_trailing_mean(), NullRate(), UniqueKeys(tuple(keys)),
                   Drift(baseline=baseline), DownstreamRead())

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> Validations:
        """From a plan's ``validations:`` section. An empty mapping for a check means defaults.

        >>> Validations.from_dict({"row_count": {"min": 900, "max": 1100},
        ...                        "unique_keys": ["entity_id", "date"]}).enabled
        ['row_count', 'unique_keys']
        """
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise ConfigError.invalid("validations", "a mapping of check names", spec)
        _keys("", spec, CHECKS)
        made: dict[str, Any] = {}
        for name, value in spec.items():
            if value is None or value is False:
                continue
            if name == "unique_keys":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list | tuple):
                    raise ConfigError.invalid("validations.unique_keys", "a list of columns",
                                              value)
                made[name] = UniqueKeys(tuple(value))
                continue
            if value is True:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError.invalid(f"validations.{name}", "a mapping or true", value)
            _keys(name, value, _SECTIONS[name])
            args = {k: tuple(v) if k == "columns" and v is not None else v
                    for k, v in value.items()}
            made[name] = {"row_count": RowCount, "null_rate": NullRate, "drift": Drift,
                          "downstream_read": DownstreamRead}[name](**args)
        if "row_count" in made and made["row_count"] == RowCount():
            made["row_count"] = RowCount.near_trailing_mean()
        return cls(**made)

    @property
    def enabled(self) -> list[str]:
        return [name for name in CHECKS if getattr(self, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.enabled:
            value = getattr(self, name)
            if name == "unique_keys":
                out[name] = list(value.keys)
                continue
            fields = {k: list(v) if isinstance(v, tuple) else v
                      for k, v in asdict(value).items() if v is not None}
            if name == "row_count" and value.relative is None:
                fields.pop("window")
            if name == "drift" and value.baseline is not None:
                fields.pop("reference_window")
            out[name] = fields
        return out


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
class ValidationReport:
    """Every check of every validated partition."""

    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def invalid_partitions(self) -> list[str]:
        return sorted({r.partition for r in self.failed})

    def frame(self) -> pd.DataFrame:
        cols = ["check", "table", "partition", "measured", "threshold", "passed", "detail"]
        return pd.DataFrame([asdict(r) for r in self.results], columns=cols)

    def __str__(self) -> str:
        lines = [str(r) for r in self.results]
        bad = self.invalid_partitions()
        lines.append(f"{len(self.results) - len(self.failed)}/{len(self.results)} checks passed"
                     + (f"; invalid partitions: {', '.join(bad)}" if bad else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr style='background:{'#e8f5e9' if r.passed else '#ffebee'}'>"
            f"<td>{'pass' if r.passed else 'FAIL'}</td><td>{r.check}</td><td>{r.partition}</td>"
            f"<td>{'' if r.measured is None else f'{r.measured:.4g}'}</td>"
            f"<td>{r.threshold}</td><td>{r.detail}</td></tr>"
            for r in self.results
        )
        head = "<tr><th>verdict</th><th>check</th><th>partition</th><th>measured</th>" \
               "<th>threshold</th><th>detail</th></tr>"
        summary = str(self).splitlines()[-1]
        return f"<table class='backfill-validations'>{head}{rows}</table><p>{summary}</p>"


# -- running checks --------------------------------------------------------------------------
def _numeric_columns(df: pd.DataFrame, skip: Iterable[str]) -> list[str]:
    skip = set(skip)
    return [c for c in df.columns if c not in skip and df[c].dtype.kind in "if"]


def _read(wh: Any, table: str, keys: Sequence[str]) -> pd.DataFrame:
    pcol = quote(wh.partition_column(table))
    values = [to_value(k) for k in keys]
    return wh.sql(f"SELECT * FROM {quote(table)} WHERE {pcol} IN (SELECT unnest($k))",
                  {"k": values})


def _trusted_before(wh: Any, reference: str, key: str, n: int) -> list[str]:
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


def _row_count(wh: Any, table: str, key: str, df: pd.DataFrame, cfg: RowCount,
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


def _drift(wh: Any, table: str, key: str, df: pd.DataFrame, cfg: Drift,
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


def _downstream(wh: Any, table: str, key: str, cfg: DownstreamRead) -> CheckResult:
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


def validate_partition(wh: Any, table: str, partition: str, validations: Validations,
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


def record_results(wh: Any, results: Sequence[CheckResult], backfill_id: str | None,
                   when: dt.datetime) -> None:
    """Append check results to ``_bl_validations`` (the grid and switchover read them there)."""
    wh.ensure("_bl_validations", _SCHEMA)
    cur = wh.cursor()
    for r in results:
        run(cur, "INSERT INTO _bl_validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [backfill_id, r.table, r.partition, r.check,
             None if r.measured is None or math.isnan(r.measured) else r.measured,
             r.threshold, r.passed, r.detail, when])


def validate(wh: Any, table: str, partitions: object, validations: Validations, *,
             backfill_id: str | None = None, record: bool = True,
             now: dt.datetime | None = None, reference: str | None = None) -> ValidationReport:
    """Validate each partition, record the results, and return the report."""
    if not isinstance(validations, Validations):
        validations = Validations.from_dict(validations)  # type: ignore[arg-type]
    if not validations.enabled:
        raise ConfigError("no validations enabled; configure at least one of " + ", ".join(CHECKS))
    results: list[CheckResult] = []
    for key in PartitionSet.parse(partitions):  # type: ignore[arg-type]
        results.extend(validate_partition(wh, table, key, validations, reference=reference))
    if record:
        when = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        record_results(wh, results, backfill_id, when)
    return ValidationReport(results)


def latest_validations(wh: Any, table: str) -> pd.DataFrame:
    """The newest recorded verdict of each check of each partition of ``table``."""
    wh.ensure("_bl_validations", _SCHEMA)
    return wh.sql(
        'SELECT partition, "check", arg_max(passed, rowid) AS passed, '
        'arg_max(detail, rowid) AS detail, max(checked_at) AS checked_at '
        'FROM _bl_validations WHERE "table" = ? GROUP BY partition, "check" '
        'ORDER BY partition, "check"', [table])


def invalid_partitions(wh: Any, table: str) -> set[str]:
    """Partitions of ``table`` whose latest validation has a failed check."""
    df = latest_validations(wh, table)
    return set(df.loc[~df["passed"].astype(bool), "partition"])


def validated_partitions(wh: Any, table: str) -> set[str]:
    """Partitions of ``table`` whose latest validation passed every check."""
    df = latest_validations(wh, table)
    if df.empty:
        return set()
    ok = df.groupby("partition")["passed"].all()
    return set(ok[ok].index)

