"""Versioned outputs and switchover: readers use a view, backfills write a new version beside it.

Readers query ``features`` (a view). A recompute writes ``features_v2`` while the view still
points at ``features_v1``; when every targeted partition of v2 has passed validation and a canary
comparison of v1 and v2 looks sane, the view is replaced in one statement, so a reader sees all
of v1 or all of v2, never a mix in flux. Rolling back points the view at what it showed before.

A switch can also be partial: for a targeted fix (say 2025-01-10..2025-01-14) the view reads the
corrected table for exactly those partitions and the current table for all others.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._db import quote, run
from .errors import ConfigError, SwitchoverBlocked, UnknownNameError
from .options import integer
from .partitions import PartitionSet, PartitionsLike, to_value
from .validations import SCHEMA as VALIDATIONS_SCHEMA
from .validations import psi

__all__ = [
    "CanaryReport",
    "Verdicts",
    "ViewState",
    "canary_compare",
    "point_view",
    "rollback_view",
    "switch_view",
    "verdicts",
    "view_history",
    "view_state",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _bl_views (
    view VARCHAR, base VARCHAR, patch VARCHAR, patch_partitions VARCHAR, reason VARCHAR,
    switched_at TIMESTAMP
)
"""


@dataclass(frozen=True)
class ViewState:
    """What a view shows: ``base``, except ``patch_partitions`` read from ``patch``."""

    view: str
    base: str
    patch: str | None = None
    patch_partitions: tuple[str, ...] = ()

    def table_for(self, partition: str) -> str:
        """The table the view reads ``partition`` from."""
        return self.patch if self.patch and partition in self.patch_partitions else self.base

    def __str__(self) -> str:
        if not self.patch:
            return f"{self.view} -> {self.base}"
        parts = PartitionSet.parse(list(self.patch_partitions))
        return f"{self.view} -> {self.base}, with {parts} from {self.patch}"


#: the newest verdict of each check of each partition of some tables (what
#: :func:`~backfill_lab.validations.latest_validations` reads, for several tables at once)
_LATEST = ('SELECT "table", partition, arg_max(passed, rowid) FROM _bl_validations '
           'WHERE list_contains($tables, "table") GROUP BY "table", partition, "check"')


@dataclass(frozen=True)
class Verdicts:
    """The newest recorded verdict of each check of each partition of one table."""

    latest: dict[str, list[bool | None]] = field(default_factory=dict)  # (a NULL partition: None)

    def invalid(self) -> set[str]:
        """Partitions with a failed (or unknown) newest check: what
        :func:`~backfill_lab.validations.invalid_partitions` says."""
        return {k for k, passed in self.latest.items() if not all(passed)}

    def validated(self) -> set[str]:
        """Partitions whose newest checks all passed: what
        :func:`~backfill_lab.validations.validated_partitions` says (an unknown verdict is
        skipped, as pandas does)."""
        return {k for k, passed in self.latest.items()
                if k is not None and all(p for p in passed if p is not None)}


def verdicts(wh: Any, tables: Sequence[str]) -> dict[str, Verdicts]:
    """The newest validation verdicts of each of ``tables``, in one query."""
    wh.ensure("_bl_validations", VALIDATIONS_SCHEMA)
    out = {t: Verdicts() for t in tables}
    for table, partition, passed in run(wh.cursor(), _LATEST, {"tables": list(out)}):
        out[table].latest.setdefault(partition, []).append(passed)
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _history(wh: Any, view: str) -> list[tuple[Any, ...]]:
    wh.ensure("_bl_views", _SCHEMA)
    cur = wh.cursor()
    return run(cur, "SELECT base, patch, patch_partitions, reason, switched_at FROM _bl_views "
                    "WHERE view = ? ORDER BY rowid", [view])


def view_state(wh: Any, view: str) -> ViewState:
    """The view's current definition, from the switch history."""
    rows = _history(wh, view)
    if not rows:
        known = [r[0] for r in run(wh.cursor(), "SELECT DISTINCT view FROM _bl_views")]
        raise UnknownNameError.of("view", view, known)
    base, patch, parts, _, _ = rows[-1]
    return ViewState(view, base, patch, tuple(json.loads(parts or "[]")))


def view_history(wh: Any, view: str) -> pd.DataFrame:
    """Every definition the view has had, oldest first.

    Taught in notebooks/06_practical_projects.ipynb (Project 2: a versioned feature store with a
    controlled switchover).
    """
    _history(wh, view)
    history: pd.DataFrame = wh.sql("SELECT * FROM _bl_views WHERE view = ? ORDER BY rowid",
                                   [view])
    return history


def _apply(wh: Any, state: ViewState, reason: str, now: dt.datetime | None) -> None:
    """Replace the view and record it, in one transaction: readers see the old or the new."""
    if not wh.has_table(state.base):
        raise UnknownNameError.of("table", state.base, wh.tables())
    if state.patch:
        pcol = quote(wh.partition_column(state.base))
        keys = ", ".join(f"'{to_value(k).isoformat()}'" for k in state.patch_partitions)
        body = (f"SELECT * FROM {quote(state.base)} WHERE {pcol} NOT IN ({keys}) "
                f"UNION ALL BY NAME "
                f"SELECT * FROM {quote(state.patch)} WHERE {pcol} IN ({keys})")
    else:
        body = f"SELECT * FROM {quote(state.base)}"
    wh.ensure("_bl_views", _SCHEMA)
    cur = wh.cursor()
    run(cur, "BEGIN TRANSACTION")
    try:
        run(cur, f"CREATE OR REPLACE VIEW {quote(state.view)} AS {body}")
        run(cur, "INSERT INTO _bl_views VALUES (?, ?, ?, ?, ?, ?)",
            [state.view, state.base, state.patch, json.dumps(list(state.patch_partitions)),
             reason, now or _now()])
        run(cur, "COMMIT")
    except BaseException:
        run(cur, "ROLLBACK")
        raise


def point_view(wh: Any, view: str, table: str, *, now: dt.datetime | None = None) -> ViewState:
    """Create (or repoint, without checks) ``view`` over ``table``: the initial set-up.

    Taught in notebooks/03_versioned_recompute.ipynb (Setup: three months of v1 behind a view).
    """
    if wh.has_table(view):
        raise ConfigError(f"{view!r} is a table; a view needs its own name (e.g. {view}_v1 for "
                          f"the table)")
    state = ViewState(quote(view).strip('"'), table)
    _apply(wh, state, "created", now)
    return state


@dataclass(repr=False)
class CanaryReport:
    """Old and new version side by side on a sample of partitions."""

    old: str
    new: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    max_row_change: float = 0.05
    max_psi: float = 0.2

    @property
    def passed(self) -> bool:
        """Did every compared column stay within the allowed shift?"""
        return bool(self.rows) and all(r["passed"] for r in self.rows)

    def frame(self) -> pd.DataFrame:
        """The comparison as a DataFrame, one row per column."""
        return pd.DataFrame(self.rows)

    def __str__(self) -> str:
        lines = [f"canary {self.old} vs {self.new}:"]
        for r in self.rows:
            lines.append(
                f"  {'pass' if r['passed'] else 'FAIL'} {r['partition']}: rows {r['rows_old']} "
                f"-> {r['rows_new']} ({r['row_change']:+.1%}), worst PSI {r['worst_psi']:.3f} "
                f"({r['worst_column']})"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self.frame().to_html(index=False, classes="backfill-canary")


def canary_compare(
    wh: Any, old: str, new: str, partitions: PartitionsLike, *, sample: int = 3, seed: int = 0,
    max_row_change: float = 0.05, max_psi: float = 0.2, columns: Sequence[str] | None = None,
) -> CanaryReport:
    """Compare ``old`` and ``new`` on ``sample`` partitions drawn (seeded) from ``partitions``.

    A partition passes when its row count moved by at most ``max_row_change`` and no numeric
    column's distribution moved by more than ``max_psi``: a deliberate logic change shows up as a
    moderate shift, a broken recompute as a big one.

    Taught in notebooks/03_versioned_recompute.ipynb (Canary comparison).
    """
    keys = list(PartitionSet.parse(partitions))
    sample = integer("sample", sample, 1)
    picked = sorted(random.Random(seed).sample(keys, min(sample, len(keys))))
    report = CanaryReport(old, new, max_row_change=max_row_change, max_psi=max_psi)
    pcol = quote(wh.partition_column(new))
    for key in picked:
        a = wh.sql(f"SELECT * FROM {quote(old)} WHERE {pcol} = ?", [to_value(key)])
        b = wh.sql(f"SELECT * FROM {quote(new)} WHERE {pcol} = ?", [to_value(key)])
        change = (len(b) - len(a)) / len(a) if len(a) else float("inf")
        cols = list(columns) if columns else [
            c for c in b.columns if c in a.columns and b[c].dtype.kind in "if"
            and c != pcol.strip('"')]
        scores = {c: psi(a[c].to_numpy(), b[c].to_numpy()) for c in cols} if len(a) else {}
        worst = max(scores, key=lambda c: scores[c]) if scores else ""
        worst_psi = scores.get(worst, float("inf") if not len(a) else 0.0)
        report.rows.append({
            "partition": key, "rows_old": len(a), "rows_new": len(b), "row_change": change,
            "worst_column": worst, "worst_psi": worst_psi,
            "passed": abs(change) <= max_row_change and worst_psi <= max_psi,
        })
    return report


def switch_view(
    wh: Any, view: str, to_table: str, *, partitions: PartitionsLike | None = None,
    canary: CanaryReport | None = None, sample: int = 3, max_psi: float = 0.2,
    now: dt.datetime | None = None,
) -> ViewState:
    """Point ``view`` at ``to_table`` (all of it, or only ``partitions``) if it is safe.

    Safe means: every exposed partition of ``to_table`` has validation results and all passed,
    and the canary comparison against what the view shows now passed. Otherwise raises
    :class:`SwitchoverBlocked` naming the partitions, and the view is unchanged.

    Taught in notebooks/03_versioned_recompute.ipynb (A failed check blocks the switch) and
    notebooks/06_practical_projects.ipynb (Project 2).
    """
    current = view_state(wh, view)
    present = set(wh.partition_counts(to_table)) if wh.has_table(to_table) else set()
    if partitions is None:
        if not present:
            raise SwitchoverBlocked(f"switch of {view!r} blocked: {to_table!r} has no partitions")
        targeted = sorted(present)
    else:
        targeted = list(PartitionSet.parse(partitions))
    missing = [k for k in targeted if k not in present]
    old = current.base if current.base != to_table else current.patch
    checked = verdicts(wh, [to_table] + ([old] if old and targeted else []))
    bad = checked[to_table].invalid() & set(targeted)
    unchecked = set(targeted) - checked[to_table].validated() - bad - set(missing)
    problems = []
    if missing:
        problems.append(f"missing in {to_table}: {PartitionSet.parse(missing)}")
    if bad:
        problems.append(f"failed validation: {PartitionSet.parse(sorted(bad))}")
    if unchecked:
        problems.append(f"never validated: {PartitionSet.parse(sorted(unchecked))}")
    if problems:
        raise SwitchoverBlocked(
            f"switch of {view!r} to {to_table!r} blocked: {'; '.join(problems)}; validate and "
            f"fix those partitions first"
        )
    # compare with the old version only where it is trusted: a fix of known-bad partitions is
    # supposed to differ from them
    distrusted = checked[old].invalid() if old and targeted else set()
    trusted = [k for k in targeted if k not in distrusted] if old else []
    if canary is None and old and old != to_table and trusted:
        canary = canary_compare(wh, old, to_table, trusted, sample=sample, max_psi=max_psi)
    if canary is not None and not canary.passed:
        worst = [r["partition"] for r in canary.rows if not r["passed"]]
        raise SwitchoverBlocked(
            f"switch of {view!r} to {to_table!r} blocked: canary comparison failed on "
            f"{', '.join(worst)}; inspect the canary report before switching"
        )
    if partitions is None:
        state = ViewState(view, to_table)
    else:
        keep = [] if current.patch != to_table else list(current.patch_partitions)
        state = ViewState(view, current.base, to_table, tuple(sorted(set(keep) | set(targeted))))
    _apply(wh, state, "switch", now)
    return state


def rollback_view(wh: Any, view: str, *, now: dt.datetime | None = None) -> ViewState:
    """Point ``view`` back at what it showed before its last switch that is still in force.

    Switches stack: two rollbacks after two switches return to the original definition.

    Taught in notebooks/03_versioned_recompute.ipynb (Roll back).
    """
    stack: list[tuple[Any, ...]] = []
    for row in _history(wh, view):
        if row[3] == "rollback":
            stack.pop()
        else:
            stack.append(row)
    views = {r[0] for r in run(wh.cursor(), "SELECT view_name FROM duckdb_views() WHERE "
                                            "database_name = current_database() AND NOT internal")}
    if not stack and view not in views:  # a typo, or a table: not "nothing earlier"
        raise UnknownNameError.of("view", view, views)
    if len(stack) < 2:
        raise ConfigError(f"view {view!r} has no earlier definition to roll back to "
                          f"(it shows what it was created with)")
    base, patch, parts, _, _ = stack[-2]
    state = ViewState(view, base, patch, tuple(json.loads(parts or "[]")))
    _apply(wh, state, "rollback", now)
    return state

