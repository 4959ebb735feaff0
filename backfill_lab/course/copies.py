"""Staged copies kept for the next plan: a judged plan's copy is put back as its template
holds it, changing only what the replay changed, instead of being made again.

Making a staged copy (a new DuckDB database, the template's schema, the rows of every table
the plan can write) costs more than putting back what one replay changed: the partitions
whose checksums it changed, the lab's system tables (``_bl_*``, small), the tables and views
it created and the views it replaced. So :class:`~backfill_lab.course.simulate.staged` hands
a finished copy to :func:`put_back`, and the next plan of the same scenario that writes the
same tables gets it from :func:`take`, which puts it back first (a grader's judge that forks
a child per plan never takes one: the child exits without closing or putting back its copy).

A copy is only used again when putting it back is exact, and that is checked:

* the replay ran no SQL of the learner's own (a consumer query could change anything);
* every table the template has is still there with the same columns and types;
* after the put-back, the checksums of every partition put back equal the template's.

Anything else closes the copy, and the next plan gets a new one. A kept copy is only ever
used by one plan at a time (:func:`take` removes it from the pool).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._db import quote, run
from ..partitions import parse_key, to_value
from ..plan import Plan
from ..snapshots import partition_checksums
from .scenarios import Scenario, Staged
from .second_run import written_tables

__all__ = ["KEPT", "Layout", "State", "close_kept", "kept", "open_copy", "put_back",
           "reusable", "take"]

#: copies kept at most, of every scenario together (the oldest is closed first): a learner
#: who checks plans of several exercises, or many drills, keeps only the latest few in memory
KEPT = 3

State = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Layout:
    """What a copy's own catalog held when it was staged: its tables' columns and types, and
    its views' definitions; and which tables a replay on it could write (None: any)."""

    columns: Mapping[str, tuple[tuple[str, str], ...]]
    views: Mapping[str, str]
    written: frozenset[str] | None
    template: str  # the template's file, attached read only to put partitions back
    attached: bool  # the copy keeps the template attached (views of its tables)

    @classmethod
    def of(cls, st: Staged, written: set[str] | None, template: str) -> Layout:
        """The layout of ``st``'s warehouse as it is now."""
        columns, views = _catalog(st)
        return cls(columns, views, None if written is None else frozenset(written), template,
                   _attached(st.warehouse.cursor()))


@dataclass
class _Kept:
    st: Staged
    layout: Layout
    states: tuple[State, State]  # when it was staged, and after the replay


_POOL: dict[Scenario, list[_Kept]] = {}  # each scenario's kept copies, oldest first
_ORDER: list[Scenario] = []  # the scenario of every kept copy, oldest first
_LOCK = threading.Lock()
_OWNER = [os.getpid()]  # the process the kept copies belong to
_INHERITED: list[list[_Kept]] = []  # a parent's, after a fork: never used, never closed here


def _own() -> None:
    """After a fork, set the parent's kept copies aside (call with :data:`_LOCK` held): a
    DuckDB database is not the child's to use (or close) once its process forked."""
    if _OWNER[0] != os.getpid():
        _INHERITED.append([k for pool in _POOL.values() for k in pool])
        _POOL.clear()
        _ORDER.clear()
        _OWNER[0] = os.getpid()


def _attached(cur: Any) -> bool:
    """Is the template attached to the copy (as ``_bl_template``)?"""
    databases = run(cur, "SELECT database_name FROM duckdb_databases()")
    return "_bl_template" in {r[0] for r in databases}


def _catalog(st: Staged) -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[str, str]]:
    cur = st.warehouse.cursor()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in run(
            cur, "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                 "WHERE database_name = 'memory' AND schema_name = 'main' "
                 "ORDER BY table_name, column_index"):
        columns.setdefault(table, []).append((column, kind))
    views = dict(run(cur, "SELECT view_name, sql FROM duckdb_views() WHERE database_name = "
                          "'memory' AND schema_name = 'main' AND NOT internal"))
    return {t: tuple(c) for t, c in columns.items() if t not in views}, views


def open_copy(sc: Scenario, plan: Plan | None, new: Callable[[], Staged], template: Path
              ) -> tuple[Staged, Layout | None]:
    """A staged copy of ``sc`` for ``plan``: a kept one (:func:`take`) or ``new()``; with its
    layout when it can be kept after the replay (:func:`reusable`), else None."""
    if plan is None or not reusable(plan):  # a notebook's warehouse, or SQL of the learner's
        return new(), None
    found = take(sc, plan, template)
    if found is not None:
        return found
    st = new()
    try:
        return st, Layout.of(st, written_tables(plan, sc, st), str(template))
    except BaseException:
        st.warehouse.close()
        raise


def reusable(plan: Plan) -> bool:
    """Can a copy ``plan`` ran on be put back exactly? Not when the plan runs SQL of its own
    (a consumer query)."""
    read = plan.validations.downstream_read
    return read is None or read.query is None


def take(sc: Scenario, plan: Plan, template: Path) -> tuple[Staged, Layout] | None:
    """A kept copy of ``sc``, made from the file ``template``, staged for a plan that writes
    the tables ``plan`` writes, put back as the template holds it, and its layout; or None
    when there is none (a kept copy that cannot be put back exactly is closed). It is the
    caller's until handed to :func:`put_back` or closed."""
    while True:
        with _LOCK:
            _own()
            pool = _POOL.get(sc, [])
            for i, kept in enumerate(pool):
                written = written_tables(plan, sc, kept.st)
                if kept.layout.template == str(template) and kept.layout.written == (
                        None if written is None else frozenset(written)):
                    del pool[i]
                    _ORDER.remove(sc)  # one of its entries: the order of the rest is kept
                    break
            else:
                return None
        try:
            ok = _restore(kept.st, kept.layout, *kept.states)
        except Exception:  # a copy that cannot be put back is not used, whatever went wrong
            ok = False
        if ok:
            return sc.restage(kept.st.warehouse), kept.layout
        kept.st.warehouse.close()


def kept(sc: Scenario) -> int:
    """How many copies of ``sc`` are kept now."""
    with _LOCK:
        _own()
        return len(_POOL.get(sc, []))


def close_kept(sc: Scenario | None = None) -> int:
    """Close the copies kept of ``sc`` (of every scenario when None): how many."""
    with _LOCK:
        _own()
        gone = [k for key in list(_POOL) if sc is None or key == sc for k in _POOL.pop(key)]
        _ORDER[:] = [key for key in _ORDER if key in _POOL]
    for k in gone:
        k.st.warehouse.close()
    return len(gone)


def put_back(sc: Scenario, st: Staged, layout: Layout, before: State, after: State) -> bool:
    """Keep ``st`` for the next plan, to be put back as its template holds it when taken
    (not before: a judge that exits after one plan never pays for it); True if kept.

    ``before`` is the copy's state (per-partition checksums) when it was staged, ``after``
    its state now. Beyond :data:`KEPT` copies, the oldest kept one is closed.
    """
    with _LOCK:
        _own()
        _POOL.setdefault(sc, []).append(_Kept(st, layout, (before, after)))
        _ORDER.append(sc)
        oldest = None
        if len(_ORDER) > KEPT:
            first = _ORDER.pop(0)
            oldest = _POOL[first].pop(0)
            if not _POOL[first]:
                del _POOL[first]
    if oldest is not None:
        oldest.st.warehouse.close()
    return oldest is None or oldest.st is not st


def _restore(st: Staged, layout: Layout, before: State, after: State) -> bool:
    wh = st.warehouse
    wh.release_cursors()  # the replay's worker threads have ended: their cursors go
    columns, views = _catalog(st)
    if any(columns.get(t) != c for t, c in layout.columns.items()):
        return False  # a table of the template is gone or changed its columns
    cur = wh.cursor()
    literal = layout.template.replace("'", "''")
    if not _attached(cur):
        run(cur, f"ATTACH '{literal}' AS _bl_template (READ_ONLY)")
    changed: dict[str, list[str]] = {}
    for table in layout.columns:
        if table.startswith("_bl_") or (layout.written is not None
                                        and table not in layout.written):
            continue
        was, now = before.get(table, {}), after.get(table, {})
        keys = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        if keys:
            changed[table] = keys
    run(cur, "BEGIN TRANSACTION")
    try:
        for name in views.keys() - layout.views.keys():
            run(cur, f"DROP VIEW memory.main.{quote(name)}")
        for name in columns.keys() - layout.columns.keys():
            run(cur, f"DROP TABLE memory.main.{quote(name)}")
        for name, sql in layout.views.items():
            if views.get(name) != sql:
                run(cur, f"DROP VIEW IF EXISTS memory.main.{quote(name)}")
                run(cur, sql)
        for table in layout.columns:
            if table.startswith("_bl_"):
                run(cur, f"DELETE FROM memory.main.{quote(table)}")
                run(cur, f"INSERT INTO memory.main.{quote(table)} "
                         f"SELECT * FROM _bl_template.main.{quote(table)}")
        wh.forget()  # the registry of tables was put back too
        for table, keys in changed.items():
            pcol = quote(wh.partition_column(table))
            values = {"k": [to_value(parse_key(k)) for k in keys]}
            where = f"WHERE {pcol} IN (SELECT unnest($k))"
            run(cur, f"DELETE FROM memory.main.{quote(table)} {where}", values)
            run(cur, f"INSERT INTO memory.main.{quote(table)} SELECT * FROM "
                     f"_bl_template.main.{quote(table)} {where}", values)
        run(cur, "COMMIT")
    except BaseException:
        run(cur, "ROLLBACK")
        raise
    if not layout.attached:
        run(cur, "DETACH _bl_template")
    # exact, or not kept: every partition put back holds the template's rows again
    return all(partition_checksums(wh, table, keys)
               == {k: v for k, v in before.get(table, {}).items() if k in keys}
               for table, keys in changed.items())
