"""What state each partition is in: the grid's model, from the warehouse's rows and the ledger.

The guide's mental model is a grid of boxes, layers x partitions; a backfill refills chosen
boxes. :func:`grid_states` computes every box's state; :mod:`backfill_lab.display` draws it.

States (when several apply, the first one listed wins):

* ``running``: a step is building it right now (only seen live, from runner events).
* ``failed``: the latest attempt failed (rows it holds, if any, are from an older run).
* ``invalid``: it holds rows and a validation rejected them.
* ``stale``: it holds rows, built before an upstream partition it reads was rebuilt (directly or
  further up); needs the pipeline's dependencies, so it is only computed when given a pipeline.
* ``ok``: it holds rows and its latest attempt succeeded (or no attempt is recorded).
* ``missing``: no rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from .errors import ConfigError, UnknownNameError
from .ledger import Ledger
from .partitions import PartitionSet, shift
from .pipeline import Pipeline
from .validations import invalid_partitions
from .warehouse import Warehouse

__all__ = ["STATES", "Cell", "InvalidSpec", "grid_states", "readers", "staleness"]

#: every state a partition of the grid can be in
STATES: tuple[str, ...] = ("missing", "ok", "failed", "invalid", "stale", "running")

Cell = tuple[str, str]  # (layer, partition)
#: partitions a validation rejected: ``{layer: partitions}`` or ``[(layer, partition), ...]``
InvalidSpec = Mapping[str, object] | Iterable[Cell]


def _ledger_history(
    warehouse: Warehouse, tables: Mapping[str, str]
) -> tuple[dict[Cell, str], dict[Cell, Any]]:
    """Latest status and last success time of each (layer, partition), for the grid's tables.

    Only ledger rows written to the table a layer is shown from count: the grid of ``features``
    says nothing about a backfill that wrote ``features_v2``.
    """
    frame = Ledger(warehouse).frame()  # in recording order: the last row is the newest
    if frame.empty:
        return {}, {}
    shown = frame["layer"].map(lambda layer: tables.get(layer, layer))
    mine = frame[frame["target"] == shown]
    latest = mine.drop_duplicates(["layer", "partition"], keep="last")
    ok = mine[mine["status"] == "success"].drop_duplicates(["layer", "partition"], keep="last")
    status = dict(zip(zip(latest["layer"], latest["partition"], strict=True),
                      latest["status"], strict=True))
    success = dict(zip(zip(ok["layer"], ok["partition"], strict=True), ok["seq"],
                       strict=True))
    return status, success


def staleness(pipeline: Pipeline, success: Mapping[Cell, Any]) -> Callable[[str, str], bool]:
    """``stale(layer, key)``: built before an upstream partition it reads was last rebuilt.

    Transitive: a partition reading a stale one is stale too. A partition with no recorded
    success (written outside the runner) is never called stale: there is no build time to compare.
    """
    memo: dict[Cell, bool] = {}

    def stale(layer: str, key: str) -> bool:
        cell = (layer, key)
        if cell not in memo:
            memo[cell] = False  # pipelines are acyclic; this only guards the recursion
            built = success.get(cell)
            if built is not None:
                for up in pipeline.upstream(layer, key):
                    at = success.get(up)
                    if at is not None and (at > built or stale(*up)):
                        memo[cell] = True
                        break
        return memo[cell]

    return stale


def _cells(spec: InvalidSpec | None, layers: Sequence[str], what: str) -> set[Cell]:
    """``{layer: partitions}`` or ``[(layer, partition), ...]`` as a set of cells."""
    if spec is None:
        return set()
    pairs: list[tuple[str, object]] = (
        list(spec.items()) if isinstance(spec, Mapping) else list(spec)
    )
    out: set[Cell] = set()
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigError.invalid(what, "{layer: partitions} or [(layer, partition), ...]",
                                      pair)
        layer, partitions = pair
        if layer not in layers:
            raise UnknownNameError.of(f"layer in {what}", str(layer), layers)
        out.update((str(layer), k) for k in PartitionSet.parse(partitions))  # type: ignore[arg-type]
    return out


def grid_states(
    warehouse: Warehouse, layers: Sequence[str], partitions: object,
    tables: Mapping[str, str] | None = None, *,
    invalid: InvalidSpec | None = None, pipeline: Pipeline | None = None,
) -> pd.DataFrame:
    """A layers x partitions frame of states, from the warehouse's rows and the ledger.

    ``tables`` maps a layer to the table it is shown from (default: the layer's name).
    ``invalid`` (``{layer: partitions}`` or ``[(layer, partition), ...]``) marks partitions a
    validation rejected; partitions outside the grid are ignored. With ``pipeline``, partitions
    built before an upstream partition they read was rebuilt are ``stale``.
    """
    keys = list(PartitionSet.parse(partitions))  # type: ignore[arg-type]
    layers = list(layers)
    if pipeline is not None:
        for name in layers:
            pipeline.layer(name)
    shown = dict(tables or {})
    latest, success = _ledger_history(warehouse, shown)
    rejected = _cells(invalid, layers, "invalid")
    for layer in layers:  # what validations recorded: a failed check marks the partition
        table = shown.get(layer, layer)
        if warehouse.has_table(table):
            rejected |= {(layer, k) for k in invalid_partitions(warehouse, table)}
    stale = staleness(pipeline, success) if pipeline is not None else None
    rows = {}
    for layer in layers:
        present = warehouse.existing_partitions(shown.get(layer, layer), keys)
        states = []
        for key in keys:
            if latest.get((layer, key)) == "failed":
                states.append("failed")
            elif key not in present:
                states.append("missing")
            elif (layer, key) in rejected:
                states.append("invalid")
            elif stale is not None and stale(layer, key):
                states.append("stale")
            else:
                states.append("ok")
        rows[layer] = states
    return pd.DataFrame.from_dict(rows, orient="index", columns=keys)


def readers(pipeline: Pipeline, layer: str, key: str) -> Iterator[Cell]:
    """Every (layer, partition) that reads ``(layer, key)`` directly (the cells a rebuild of it
    makes stale)."""
    for name in pipeline.layer_names:
        for dep in pipeline.layer(name).depends_on:
            if dep.layer != layer:
                continue
            for i in range(getattr(dep.mapping, "size", 1)):
                reader = shift(key, i)
                if key in dep.mapping.upstream(reader):
                    yield (name, reader)
