"""Checks a backfill passes before its first write: what can be known up front is refused up front.

A backfill that fails half-way has already written raw and staging partitions, ledger rows and
snapshots. Everything that can be decided from the warehouse's catalog and the layers' queries is
checked here instead, before anything is written: the backfill id, the tables written (new, or a
table of the same layer; never the lab's own ``_bl_`` tables, never another layer's table, never a
foreign table or a view), the merge keys, and the columns and baseline the validations name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._db import bind, run
from ._yaml import shorten
from .errors import ConfigError, UnknownNameError
from .options import BackfillOptions
from .partitions import PartitionSet
from .pipeline import Pipeline
from .validations import Validations
from .warehouse import Warehouse

__all__ = ["MAX_ID", "check_arguments", "check_backfill_id", "check_columns", "check_tables",
           "columns_of"]

MAX_ID = 120
"""The longest backfill id accepted (ids are typed, printed and stored in every ledger row)."""
INTERNAL = "_bl_"


def check_backfill_id(value: object) -> str | None:
    """``None`` (a fresh id is made) or a printable id of 1 to :data:`MAX_ID` characters.

    >>> check_backfill_id("dec-outage")
    'dec-outage'
    >>> check_backfill_id("")
    Traceback (most recent call last):
    ...
    backfill_lab.errors.ConfigError: 'backfill_id' must be a printable name of 1 to 120 ...
    """
    if value is None:
        return None
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_ID
            or not value.isprintable()):
        raise ConfigError(f"'backfill_id' must be a printable name of 1 to {MAX_ID} characters, "
                          f"like 'dec-outage' (got {shorten(value)})")
    return value


def check_arguments(pipeline: object, warehouse: object, options: object, audit_tags: object,
                    clock: object, sleep: object, on_event: object) -> None:
    """What a backfill is handed is what it needs, before it writes anything: a swapped
    argument or a string where an object goes gets one line, not an AttributeError from deep
    inside (or, for ``on_event``, after the first ledger row).

    >>> check_arguments("daily_features", None, None, None, None, print, None)
    Traceback (most recent call last):
    ...
    backfill_lab.errors.ConfigError: 'pipeline' must be a Pipeline, like bl.demo_pipeline(wh) ...
    """
    wants: list[tuple[str, object, type | tuple[type, ...], str]] = [
             ("pipeline", pipeline, Pipeline, "a Pipeline, like bl.demo_pipeline(wh)"),
             ("warehouse", warehouse, Warehouse, "a Warehouse, like bl.Warehouse('lab.duckdb')"),
             ("options", options, (BackfillOptions, type(None)),
              "BackfillOptions, or the settings as keywords (concurrency=2)"),
             ("audit_tags", audit_tags, (Mapping, type(None)), "a mapping like {'ticket': 'X'}")]
    for name, value, kind, like in wants:
        if not isinstance(value, kind):
            raise ConfigError(f"{name!r} must be {like} (got {type(value).__name__} "
                              f"{shorten(value)})")
    if clock is not None and not callable(getattr(clock, "now", None)):
        raise ConfigError(f"'clock' must have a now() method, like bl.FixedClock(...) "
                          f"(got {type(clock).__name__} {shorten(clock)})")
    for name, fn in (("sleep", sleep), ("on_event", on_event)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{name!r} must be a function (got {type(fn).__name__} "
                              f"{shorten(fn)})")


def _catalog(warehouse: Warehouse) -> dict[str, str]:
    """Every table and view in the warehouse: ``{name: 'BASE TABLE' or 'VIEW'}``."""
    rows = run(warehouse.cursor(),
               "SELECT table_name, table_type FROM information_schema.tables")
    return {name: kind for name, kind in rows}


def check_tables(pipeline: Pipeline, warehouse: Warehouse, layers: Sequence[str],
                 tables: Mapping[str, str], partitions: PartitionSet | None = None) -> None:
    """Each layer writes a table of its own: its default, a new table, or one it wrote before;
    and a table that exists keeps its grain (no hourly keys into a daily table)."""
    catalog: dict[str, str] | None = None  # read only when a layer writes another table
    owner = {pipeline.layer(n).default_table: n for n in pipeline.layer_names}
    for name in layers:
        table = tables[name]
        if partitions is not None and warehouse.has_table(table):
            grain = "hourly" if "T" in partitions.start else "daily"
            if warehouse.grain(table) != grain:
                raise ConfigError(f"table {table!r} of layer {name!r} has "
                                  f"{warehouse.grain(table)} partitions; {partitions.start!r} "
                                  f"is {grain}: one table holds one grain")
        if table == pipeline.layer(name).default_table:
            continue
        where = f"target of layer {name!r}"
        if table.startswith(INTERNAL):
            raise ConfigError(f"{where} {shorten(table)} is one of the lab's internal tables "
                              f"({INTERNAL}*); write to a new table, e.g. {name}_v2")
        others = [n for n in pipeline.layer_names if n != name and tables.get(n) == table]
        if (table in owner and owner[table] != name) or others:
            other = others[0] if others else owner[table]
            raise ConfigError(f"{where} {shorten(table)} is the table of layer {other!r}; "
                              f"write to a new table, e.g. {name}_v2")
        if catalog is None:
            catalog = _catalog(warehouse)
        kind = catalog.get(table)
        if kind == "VIEW":
            raise ConfigError(f"{where} {shorten(table)} is a view readers use; write to a new "
                              f"table (e.g. {name}_v2) and switch the view to it after validation")
        if kind is not None and not warehouse.has_table(table):
            raise ConfigError(f"{where} {shorten(table)} exists and is not a partitioned table "
                              f"of the lab; choose a new name, e.g. {name}_v2")


def columns_of(pipeline: Pipeline, warehouse: Warehouse, layer: str, tables: Mapping[str, str],
               partition: str, known: dict[str, list[str]] | None = None) -> list[str] | None:
    """The columns ``layer`` writes, when they can be known without building it: its table's,
    or its SQL's (when every table it reads exists); None otherwise (a Python layer, first run).

    ``known`` keeps the columns of existing tables between calls (``{table: columns}``): only
    for a caller that knows no table it holds is altered meanwhile (a backfill never alters
    the columns of a table that exists; it creates the ones that do not)."""
    table = tables[layer]
    if warehouse.has_table(table):
        columns = known.get(table) if known is not None else None
        if columns is None:
            columns = [r[0] for r in run(warehouse.cursor(), f'DESCRIBE "{table}"')]
            if known is not None:
                known[table] = columns
        return list(columns)
    spec = pipeline.layer(layer)
    if not spec.is_sql or not all(warehouse.has_table(tables[d.layer]) for d in spec.depends_on):
        return None
    sql, params = pipeline.sql_for(spec, partition, tables)
    try:
        return [r[0] for r in run(warehouse.cursor(), f"DESCRIBE {sql}", bind(sql, params))]
    except Exception:  # the layer's own error shows when it runs: this check only refuses early
        return None


def check_columns(pipeline: Pipeline, warehouse: Warehouse, options: BackfillOptions,
                  layers: Sequence[str], tables: Mapping[str, str], partitions: PartitionSet,
                  validations: Mapping[str, Validations],
                  known: dict[str, list[str]] | None = None) -> None:
    """Merge keys and the columns validations name exist; a drift baseline is a lab table.

    ``known``: the tables' columns read by earlier checks (see :func:`columns_of`)."""
    first = partitions.start
    for name in layers:
        checks = validations.get(name)
        baseline = checks.drift.baseline if checks is not None and checks.drift else None
        if baseline is not None and (baseline.startswith(INTERNAL)
                                     or not warehouse.has_table(baseline)):
            tables_known = [t for t in warehouse.tables() if not t.startswith(INTERNAL)]
            raise UnknownNameError.of("baseline table in validations.drift", baseline,
                                      tables_known)
        wanted: list[tuple[str, str]] = []
        if options.mode == "merge":
            last = name == layers[-1]
            keys = (options.merge_keys if last and options.merge_keys
                    else pipeline.layer(name).merge_keys or options.merge_keys)
            wanted += [("merge key", k) for k in keys]
        if checks is not None:
            for section, cfg in (("null_rate", checks.null_rate), ("drift", checks.drift),
                                 ("unique_keys", checks.unique_keys)):
                named = getattr(cfg, "keys" if section == "unique_keys" else "columns", None)
                wanted += [(f"column in validations.{section}", c) for c in named or ()]
        if not wanted:
            continue
        columns = columns_of(pipeline, warehouse, name, tables, first, known)
        if columns is None:
            continue
        for what, column in wanted:
            if column not in columns:
                raise UnknownNameError.of(f"{what} of layer {name!r}", column, columns)

