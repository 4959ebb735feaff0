"""Pipelines: named layers, each a transform per partition, with dependencies between layers.

A transform is either SQL or a Python function returning a DataFrame.

* SQL is a SELECT. ``{layer}`` placeholders become that layer's table (so the same SQL reads
  ``features_v2`` or ``features_v1`` as the backfill says), and the parameters ``$partition``,
  ``$window_start`` and ``$window_end`` hold the partition being built and the span its
  dependencies read. SQL that filters on ``$batch_start`` and ``$batch_end`` instead of
  ``$partition`` (the first and last partition of the step, inclusive) is *range-aware*: with
  ``batch_size`` > 1 the runner builds a whole batch with one SELECT instead of one per partition,
  the way dbt's microbatch models and SQLMesh's time-range models take their ``start``/``end``.
* A Python transform receives a :class:`StepContext` and returns the partition's rows.

A dependency maps a partition of the layer to the partitions of the upstream layer it reads: the
same partition, or a trailing window of N partitions (e.g. "last 7 days").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import ConfigError, UnknownNameError
from .options import integer
from .partitions import PartitionSet, parse_key, to_value, trailing_window
from .pins import canonical_json, config_hash, runtime

__all__ = [
    "CATALOG",
    "Dependency",
    "Layer",
    "Pipeline",
    "SamePartition",
    "StepContext",
    "TrailingWindow",
    "union_all",
]


@dataclass(frozen=True)
class SamePartition:
    """Partition D reads upstream partition D.

    >>> SamePartition().upstream("2024-12-05")
    ['2024-12-05']
    """

    def upstream(self, key: str) -> list[str]:
        """The upstream keys partition ``key`` reads: itself."""
        return [key]

    def __str__(self) -> str:
        return "same partition"


@dataclass(frozen=True)
class TrailingWindow:
    """Partition D reads the ``size`` upstream partitions ending at D.

    >>> TrailingWindow(3).upstream("2024-12-05")
    ['2024-12-03', '2024-12-04', '2024-12-05']
    """

    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", integer("window size", self.size, 1))

    def upstream(self, key: str) -> list[str]:
        """The upstream keys partition ``key`` reads: the ``size`` ending at it."""
        return trailing_window(key, self.size)

    def __str__(self) -> str:
        return f"trailing {self.size}"


Mapping_ = SamePartition | TrailingWindow


@dataclass(frozen=True)
class Dependency:
    """``layer`` is read through ``mapping``."""

    layer: str
    mapping: Mapping_ = SamePartition()

    @classmethod
    def same(cls, layer: str) -> Dependency:
        """``layer`` read partition by partition."""
        return cls(layer, SamePartition())

    @classmethod
    def window(cls, layer: str, size: int) -> Dependency:
        """``layer`` read through a trailing window of ``size`` partitions."""
        return cls(layer, TrailingWindow(size))


Transform = str | Callable[["StepContext"], pd.DataFrame]


@dataclass(frozen=True)
class Layer:
    """One stage of a pipeline, writing one table partitioned by ``partition_column``.

    Taught in notebooks/02_daily_backfill.ipynb (Bigger backfills: a batch per transaction).
    """

    name: str
    transform: Transform
    depends_on: tuple[Dependency, ...] = ()
    partition_column: str = "date"
    merge_keys: tuple[str, ...] = ()
    description: str = ""
    table: str | None = None  # the table it writes by default (None: the layer's name)

    def __post_init__(self) -> None:
        if not isinstance(self.transform, str) and not callable(self.transform):
            raise ConfigError.invalid(
                f"transform of layer {self.name!r}", "SQL text or a function", self.transform
            )
        deps = tuple(d if isinstance(d, Dependency) else Dependency(d) for d in self.depends_on)
        object.__setattr__(self, "depends_on", deps)
        object.__setattr__(self, "merge_keys", tuple(self.merge_keys))

    @property
    def default_table(self) -> str:
        """The table the layer writes unless a backfill targets another."""
        return self.table or self.name

    @property
    def is_sql(self) -> bool:
        """Is the transform SQL (rather than a Python function)?"""
        return isinstance(self.transform, str)

    @property
    def range_aware(self) -> bool:
        """SQL that selects ``$batch_start..$batch_end`` and never names one ``$partition``.

        >>> sql = "SELECT * FROM src WHERE date BETWEEN $batch_start AND $batch_end"
        >>> Layer("t", sql).range_aware
        True
        >>> Layer("t", "SELECT * FROM src WHERE date = $partition").range_aware
        False
        """
        if not isinstance(self.transform, str):
            return False
        names = set(_PARAM.findall(self.transform))
        return "partition" not in names and bool(names & {"batch_start", "batch_end"})


class _Tables(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise UnknownNameError.of("layer in SQL placeholder", key, self.keys())


@dataclass
class StepContext:
    """What a transform sees while it builds one partition."""

    pipeline: Pipeline
    layer: Layer
    partition: str
    tables: Mapping[str, str]
    warehouse: Any
    code_version: str
    now: dt.datetime | None = None  # the run's clock reading: what "has arrived by now" means
    params: dict[str, Any] = field(default_factory=dict)

    def read(self, layer: str, partitions: Iterable[str] | None = None) -> pd.DataFrame:
        """Rows of an upstream layer: by default the partitions its dependency maps to."""
        dep = next((d for d in self.layer.depends_on if d.layer == layer), None)
        if dep is None:
            known = [d.layer for d in self.layer.depends_on]
            raise UnknownNameError.of(f"upstream of layer {self.layer.name!r}", layer, known)
        keys = list(partitions) if partitions is not None else dep.mapping.upstream(self.partition)
        table = self.tables[layer]
        upstream = self.pipeline.layer(layer)
        values = [to_value(parse_key(k)) for k in keys]
        rows: pd.DataFrame = self.warehouse.sql(
            f'SELECT * FROM "{table}" WHERE "{upstream.partition_column}" IN '
            f"(SELECT unnest($keys)) ORDER BY ALL",
            {"keys": values},
        )
        return rows


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class Pipeline:
    """Named layers in dependency order, with the code version that is deployed right now.

    ``code_version`` is what the running code says it is; a backfill pins one and stops when the
    pipeline reports another (a deploy in the middle of a backfill). ``config`` holds the
    settings its transforms read (JSON data: a window, a threshold, the source's seed), fixed
    for the pipeline's life: a changed config is a new Pipeline, with another ``config_hash``.
    A backfill pins those too, and the runtime (see :mod:`backfill_lab.pins`).

    Taught in notebooks/02_daily_backfill.ipynb (Bigger backfills: a batch per transaction).
    """

    def __init__(
        self, name: str, layers: Sequence[Layer], *, code_version: str = "v1",
        description: str = "", partition_check: Callable[[PartitionSet], None] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._config = canonical_json(config or {})  # checked: JSON data, or a ConfigError
        self._config_hash = config_hash(config or {})
        self.description = description
        self.partition_check = partition_check
        self._layers: dict[str, Layer] = {}
        for layer in layers:
            if layer.name in self._layers:
                raise ConfigError(f"layer {layer.name!r} is defined twice in pipeline {name!r}")
            self._layers[layer.name] = layer
        for layer in layers:
            for dep in layer.depends_on:
                if dep.layer not in self._layers:
                    raise UnknownNameError.of(
                        f"upstream layer of {layer.name!r}", dep.layer, self._layers
                    )
        self._order = self._topological()
        self._version = code_version
        self._lock = threading.Lock()

    @property
    def code_version(self) -> str:
        """The code version deployed right now."""
        with self._lock:
            return self._version

    @property
    def config(self) -> dict[str, Any]:
        """The settings the transforms read (a copy: changing it changes nothing)."""
        settings: dict[str, Any] = json.loads(self._config)
        return settings

    @property
    def config_hash(self) -> str:
        """The fingerprint of :attr:`config`, e.g. ``sha256:1a2b3c4d``: what a plan pins."""
        return self._config_hash

    @property
    def runtime(self) -> str:
        """What executes it here: ``python 3.11 / duckdb 2.0.1 / backfill_lab 0.1.0``."""
        return runtime()

    @property
    def pins(self) -> dict[str, str]:
        """What a backfill of this pipeline freezes, as a plan spells it: ``code_version``,
        ``config_hash`` and ``runtime`` (taught in notebooks/02_daily_backfill.ipynb, Step 2:
        freeze the code version)."""
        return {"code_version": self.code_version, "config_hash": self.config_hash,
                "runtime": self.runtime}

    def deploy(self, code_version: str) -> None:
        """Change the deployed code version (what a release does under a running backfill)."""
        with self._lock:
            self._version = code_version

    def _topological(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = " -> ".join((*path, name))
                raise ConfigError(f"pipeline {self.name!r} has a dependency cycle: {cycle}")
            state[name] = 1
            for dep in self._layers[name].depends_on:
                visit(dep.layer, (*path, name))
            state[name] = 2
            order.append(name)

        for name in self._layers:
            visit(name, ())
        return order

    @property
    def layer_names(self) -> list[str]:
        """Layers upstream first."""
        return list(self._order)

    def layer(self, name: str) -> Layer:
        """The layer called ``name`` (a typo gets the closest name)."""
        try:
            return self._layers[name]
        except KeyError:
            what = f"layer of pipeline {self.name!r}"
            raise UnknownNameError.of(what, name, self._order) from None

    def check_partitions(self, partitions: PartitionSet) -> None:
        """Refuse partitions this pipeline cannot build (hourly keys for a daily source, days
        its source has no data for), before anything is written; ``partition_check`` says
        which (every partition, when the pipeline has none)."""
        if self.partition_check is not None:
            self.partition_check(partitions)

    def check_layers(self, names: Iterable[str]) -> list[str]:
        """Validate layer names; return them upstream first."""
        wanted = list(names)
        for name in wanted:
            self.layer(name)
        return [n for n in self._order if n in wanted]

    def upstream(self, layer: str, key: str) -> list[tuple[str, str]]:
        """Every ``(layer, partition)`` that building ``(layer, key)`` reads.

        >>> from backfill_lab.demo.daily import daily_features
        >>> daily_features().upstream("features", "2024-12-02")[:2]
        [('staging', '2024-11-26'), ('staging', '2024-11-27')]
        """
        return [(d.layer, k) for d in self.layer(layer).depends_on for k in d.mapping.upstream(key)]

    def sql_for(
        self, layer: Layer, key: str, tables: Mapping[str, str],
        *, batch: Sequence[str] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The SELECT and parameters that build ``key`` of a SQL layer (or, with ``batch``, every
        partition of the batch at once: then ``$partition`` is not available, only the batch's
        ``$batch_start``/``$batch_end`` and the whole span its dependencies read)."""
        assert isinstance(layer.transform, str)
        text = layer.transform.format_map(_Tables(tables))
        keys = list(batch) if batch else [key]
        window = [u for d in layer.depends_on for k in keys for u in d.mapping.upstream(k)] or keys
        available = {
            "batch_start": to_value(min(keys)),
            "batch_end": to_value(max(keys)),
            "window_start": to_value(min(window)),
            "window_end": to_value(max(window)),
        }
        if len(keys) == 1:
            available["partition"] = to_value(key)
        params: dict[str, Any] = {}
        for name in _PARAM.findall(text):
            if name not in available:
                if name == "partition":
                    raise ConfigError(
                        f"layer {layer.name!r} builds one $partition at a time, so it cannot "
                        f"build the batch {min(keys)}..{max(keys)} in one SELECT; filter on "
                        f"$batch_start and $batch_end instead")
                raise UnknownNameError.of(f"SQL parameter of layer {layer.name!r}", name, available)
            params[name] = available[name]
        return text, params

    def __repr__(self) -> str:
        return (
            f"Pipeline({self.name!r}, layers={' -> '.join(self._order)}, "
            f"code_version={self.code_version!r})"
        )


def union_all(parts: Sequence[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """One SELECT for a batch from one SELECT per partition: glued with ``UNION ALL BY NAME``,
    each part's parameters renamed apart (``$partition`` of part 0 becomes ``$b0_partition``).

    >>> union_all([("SELECT $partition AS d", {"partition": 1}),
    ...            ("SELECT $partition AS d", {"partition": 2})])
    ('SELECT * FROM (SELECT $b0_partition AS d) UNION ALL BY NAME SELECT * FROM (SELECT \
$b1_partition AS d)', {'b0_partition': 1, 'b1_partition': 2})
    """
    selects, params = [], {}
    for i, (sql, part_params) in enumerate(parts):
        renamed = sql
        for name in sorted(part_params, key=len, reverse=True):
            renamed = re.sub(rf"\${name}\b", f"$b{i}_{name}", renamed)
            params[f"b{i}_{name}"] = part_params[name]
        selects.append(f"SELECT * FROM ({renamed})")
    return " UNION ALL BY NAME ".join(selects), params


PipelineFactory = Callable[..., "Pipeline"]


class PipelineCatalog:
    """The pipelines a plan can name, by name: the engine's side of a plugin registry.

    The engine never imports a pipeline; packages that define pipelines (the workbook's
    ``backfill_lab.demo``) register a factory here, the way Airflow's DagBag or Dagster's
    ``Definitions`` collect what user code defines. A factory is called with the warehouse the
    plan runs on (``None`` for "the pipeline's shape only": its layers and dependencies).

    >>> catalog = PipelineCatalog()
    >>> tiny = Pipeline("tiny", [Layer("raw", "SELECT 1")])
    >>> catalog.register("tiny", lambda warehouse=None: tiny)
    >>> catalog.layers("tiny")
    ['raw']
    >>> catalog.get("tinny")
    Traceback (most recent call last):
    ...
    backfill_lab.errors.UnknownNameError: unknown pipeline 'tinny'; known: 'tiny'. Did you mean...
    """

    def __init__(self) -> None:
        self._factories: dict[str, PipelineFactory] = {}

    def register(self, name: str, factory: PipelineFactory) -> None:
        """Make ``name`` resolvable; ``factory(warehouse=None)`` builds the pipeline."""
        self._factories[name] = factory

    def names(self) -> list[str]:
        """The registered pipeline names, sorted."""
        return sorted(self._factories)

    def get(self, name: str, warehouse: Any = None) -> Pipeline:
        """The pipeline called ``name`` (built for ``warehouse`` when given)."""
        try:
            factory = self._factories[name]
        except KeyError:
            raise UnknownNameError.of("pipeline", name, self.names()) from None
        return factory(warehouse)

    def layers(self, name: str) -> list[str]:
        """The layers of pipeline ``name``, upstream first: what a plan without ``layers`` runs."""
        return self.get(name).layer_names


CATALOG = PipelineCatalog()
"""The process-wide catalog; ``backfill_lab.demo`` registers the workbook's pipelines in it."""
