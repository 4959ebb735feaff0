"""Backfill plans: the contract between the notebooks, the exercises, the engine and the grader.

A plan is YAML (or the same data as a dict) with the keys of the workbook's plan format; the guide's
own configuration snippet (``schedule``, ``catchup``, ``backfill: start/end/concurrency/retries/
mode``) loads as written, even with its ``backfill`` keys flattened to the top level. Every key is
checked: a typo is an error that names the key, what was received, and the closest known key.

A loaded :class:`Plan` prints back as YAML (``to_yaml``; loading that gives the same plan) and
exports to the commands of real orchestrators (``to_airflow``, ``to_dbt``, ``to_dagster``,
``to_sqlmesh``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ._yaml import load_text
from .errors import ConfigError, UnknownNameError
from .partitions import ORDERS, PartitionSet, shift
from .pipeline import CATALOG, SamePartition
from .scheduler import LateDataPolicy
from .validations import Validations
from .warehouse import WRITE_MODES

__all__ = [
    "BackfillSpec",
    "Plan",
    "RollbackSpec",
    "SwitchoverSpec",
    "load_plan",
    "pipeline_layers",
]


def pipeline_layers(pipeline: str) -> list[str]:
    """The layers of a catalogued pipeline, upstream first: what a plan without ``layers`` runs.

    Read from the pipeline itself (see :data:`backfill_lab.pipeline.CATALOG`), so a new layer
    cannot be forgotten here.

    >>> import backfill_lab  # registers the workbook's pipelines
    >>> pipeline_layers("late_features")
    ['raw', 'features']
    """
    return CATALOG.layers(pipeline)


TOP_KEYS = ("pipeline", "code_version", "schedule", "catchup", "backfill", "validations",
            "rollback", "lineage", "switchover", "late_data")
BACKFILL_KEYS = ("start", "end", "partitions", "order", "layers", "concurrency", "max_parallel",
                 "retries", "mode", "write_mode", "merge_keys", "target", "batch_size")
ROLLBACK_STRATEGIES = ("snapshot", "previous_version")
SWITCH_WHEN = ("validated",)


def _check_keys(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in given:
        if key not in allowed:
            raise UnknownNameError.of(f"key {where}", str(key), allowed)


def _mapping(where: str, value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError.invalid(where, "a mapping of keys to values", value)
    return value


def _int(where: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError.invalid(where, f"an integer >= {minimum}", value)
    return value


def _names(where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError.invalid(where, "a list of names", value)
    return tuple(value)


def _key_text(value: object) -> object:
    """YAML reads 2024-12-01 as a date: keep it as one."""
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


class _PlanDumper(yaml.SafeDumper):
    """Sections as blocks, small leaf mappings and lists inline, as the workbook writes plans."""


class _Block(dict[str, Any]):
    """A mapping always written as a block (the ``backfill:`` section)."""


_PlanDumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_PlanDumper.add_representer(
    dict, lambda d, v: d.represent_mapping(
        "tag:yaml.org,2002:map", v,
        flow_style=len(v) <= 4 and not any(isinstance(x, dict | list) for x in v.values())))
_PlanDumper.add_representer(
    _Block, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=False))


@dataclass(frozen=True)
class BackfillSpec:
    """What to refill and how: the ``backfill:`` section."""

    partitions: PartitionSet
    order: str = "ascending"
    layers: tuple[str, ...] | None = None
    concurrency: int | None = None
    retries: int = 0
    mode: str = "overwrite"
    merge_keys: tuple[str, ...] = ()
    target: str | None = None
    batch_size: int = 1  # partitions per transaction (overwrite only)

    @classmethod
    def from_yaml(cls, text: str) -> Plan:
        """From YAML text only: never a path, never a file (what the grader uses for a string
        that left a learner's kernel). Bounded as :func:`backfill_lab._yaml.load_text` says."""
        data = load_text(text)
        if not isinstance(data, Mapping):
            raise ConfigError.invalid("plan", "a mapping with a 'backfill' section",
                                      type(data).__name__ if data is not None else None)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> BackfillSpec:
        _check_keys("in backfill", spec, BACKFILL_KEYS)
        for alias, name in (("max_parallel", "concurrency"), ("write_mode", "mode")):
            if alias in spec and name in spec:
                raise ConfigError(f"backfill has both {name!r} and its alias {alias!r}; keep one")
        has_range = "start" in spec or "end" in spec
        if has_range and "partitions" in spec:
            raise ConfigError("backfill has both start/end and partitions; use one of them")
        if has_range:
            if "start" not in spec or "end" not in spec:
                missing = "end" if "start" in spec else "start"
                raise ConfigError(f"backfill has no {missing!r}; give both start and end "
                                  f"(inclusive), e.g. start: 2024-12-01, end: 2024-12-31")
            start, end = _key_text(spec["start"]), _key_text(spec["end"])
            if not isinstance(start, str) or not isinstance(end, str):
                raise ConfigError.invalid("backfill.start/end", "dates like 2024-12-01",
                                          (spec["start"], spec["end"]))
            partitions = PartitionSet.parse(f"{start}..{end}")
        elif "partitions" in spec:
            raw = spec["partitions"]
            items = [_key_text(v) for v in raw] if isinstance(raw, list) else _key_text(raw)
            partitions = PartitionSet.parse(items)  # type: ignore[arg-type]
        else:
            raise ConfigError("backfill needs a range: start and end, or partitions "
                              "(e.g. partitions: 2024-12-01..2024-12-31)")
        order = spec.get("order", "ascending")
        if order not in ORDERS:
            raise UnknownNameError.of("backfill.order", str(order), ORDERS)
        mode = spec.get("mode", spec.get("write_mode", "overwrite"))
        if mode not in WRITE_MODES:
            raise UnknownNameError.of("backfill.mode", str(mode), WRITE_MODES)
        raw_cap = spec.get("concurrency", spec.get("max_parallel"))
        concurrency = None if raw_cap is None else _int("backfill.concurrency", raw_cap, 1)
        merge_keys = _names("backfill.merge_keys", spec["merge_keys"]) \
            if spec.get("merge_keys") is not None else ()
        layers = _names("backfill.layers", spec["layers"]) if spec.get("layers") else None
        target = spec.get("target")
        if target is not None and not isinstance(target, str):
            raise ConfigError.invalid("backfill.target", "a table name", target)
        batch_size = _int("backfill.batch_size", spec.get("batch_size", 1), 1)
        if batch_size > 1 and mode != "overwrite":
            raise ConfigError(
                f"backfill.batch_size > 1 needs mode: overwrite (got {mode!r}): a batch replaces "
                f"its partitions in one transaction; drop batch_size to {mode} one partition at "
                f"a time")
        return cls(partitions, order, layers, concurrency,
                   _int("backfill.retries", spec.get("retries", 0), 0), mode, merge_keys,
                   target, batch_size)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.partitions.is_contiguous:
            first, last = self.partitions.start, self.partitions.end
            daily = self.partitions.grain == "daily"
            out["start"] = dt.date.fromisoformat(first) if daily else first
            out["end"] = dt.date.fromisoformat(last) if daily else last
        else:
            out["partitions"] = str(self.partitions)
        out["order"] = self.order
        if self.layers is not None:
            out["layers"] = list(self.layers)
        if self.concurrency is not None:
            out["concurrency"] = self.concurrency
        out["retries"] = self.retries
        out["mode"] = self.mode
        if self.merge_keys:
            out["merge_keys"] = list(self.merge_keys)
        if self.target:
            out["target"] = self.target
        if self.batch_size > 1:
            out["batch_size"] = self.batch_size
        return out


@dataclass(frozen=True)
class RollbackSpec:
    strategy: str = "snapshot"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> RollbackSpec:
        _check_keys("in rollback", spec, ("strategy",))
        strategy = spec.get("strategy", "snapshot")
        if strategy not in ROLLBACK_STRATEGIES:
            raise UnknownNameError.of("rollback.strategy", str(strategy), ROLLBACK_STRATEGIES)
        return cls(strategy)


@dataclass(frozen=True)
class SwitchoverSpec:
    view: str
    when: str = "validated"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SwitchoverSpec:
        _check_keys("in switchover", spec, ("view", "when"))
        if not isinstance(spec.get("view"), str) or not spec["view"]:
            raise ConfigError.invalid("switchover.view", "the name of the view readers use",
                                      spec.get("view"))
        when = spec.get("when", "validated")
        if when not in SWITCH_WHEN:
            raise UnknownNameError.of("switchover.when", str(when), SWITCH_WHEN)
        return cls(spec["view"], when)


@dataclass(frozen=True)
class Plan:
    """A whole backfill plan. Build one with :meth:`load` (YAML text, a file, a dict)."""

    backfill: BackfillSpec
    pipeline: str = "daily_features"
    code_version: str | None = None
    schedule: str | None = None
    catchup: bool | None = None
    validations: Validations = field(default_factory=Validations)
    rollback: RollbackSpec | None = None
    audit_tags: Mapping[str, str] | None = None
    switchover: SwitchoverSpec | None = None
    late_data: LateDataPolicy | None = None

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, source: Plan | Mapping[str, Any] | str | Path) -> Plan:
        """From a Plan, a dict, YAML text, or a path to a YAML file."""
        if isinstance(source, Plan):
            return source
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                        and source.strip().endswith((".yaml", ".yml"))):
            path = Path(source)
            if not path.exists():
                raise ConfigError(f"plan file {str(path)!r} does not exist")
            source = path.read_text()
        data = load_text(source) if isinstance(source, str) else source
        if not isinstance(data, Mapping):
            raise ConfigError.invalid("plan", "a mapping with a 'backfill' section",
                                      type(data).__name__ if data is not None else None)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        data = dict(data)
        flat = {k: data.pop(k) for k in list(data) if k in BACKFILL_KEYS and k not in TOP_KEYS}
        _check_keys("in plan", data, TOP_KEYS + BACKFILL_KEYS)
        section = _mapping("backfill", data.get("backfill"))
        if flat and section:
            raise ConfigError(f"backfill keys {sorted(flat)} sit at the top level next to a "
                              f"'backfill:' section; indent them under 'backfill:'")
        backfill = BackfillSpec.from_dict(section or flat)
        pipeline = data.get("pipeline", "daily_features")
        if not isinstance(pipeline, str) or not pipeline:
            raise ConfigError.invalid("pipeline", "a pipeline name", pipeline)
        code_version = data.get("code_version")
        if code_version is not None:
            code_version = str(code_version)
        schedule = data.get("schedule")
        if schedule is not None and not isinstance(schedule, str):
            raise ConfigError.invalid("schedule", "text like 'daily 02:00 UTC'", schedule)
        catchup = data.get("catchup")
        if catchup is not None and not isinstance(catchup, bool):
            raise ConfigError.invalid("catchup", "true or false", catchup)
        rollback = data.get("rollback")
        lineage = _mapping("lineage", data.get("lineage"))
        _check_keys("in lineage", lineage, ("audit_tags",))
        tags = _mapping("lineage.audit_tags", lineage.get("audit_tags"))
        switchover = data.get("switchover")
        late = data.get("late_data")
        return cls(
            backfill=backfill,
            pipeline=pipeline,
            code_version=code_version,
            schedule=schedule,
            catchup=catchup,
            validations=Validations.from_dict(_mapping("validations", data.get("validations"))),
            rollback=RollbackSpec.from_dict(_mapping("rollback", rollback))
            if rollback is not None else None,
            audit_tags={str(k): str(v) for k, v in tags.items()} if "audit_tags" in lineage
            else None,
            switchover=SwitchoverSpec.from_dict(_mapping("switchover", switchover))
            if switchover is not None else None,
            late_data=LateDataPolicy.parse(_mapping("late_data", late))
            if late is not None else None,
        )

    # -- printing --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pipeline": self.pipeline}
        if self.code_version is not None:
            out["code_version"] = self.code_version
        if self.schedule is not None:
            out["schedule"] = self.schedule
        if self.catchup is not None:
            out["catchup"] = self.catchup
        out["backfill"] = self.backfill.to_dict()
        if self.validations.enabled:
            out["validations"] = self.validations.to_dict()
        if self.rollback is not None:
            out["rollback"] = {"strategy": self.rollback.strategy}
        if self.audit_tags is not None:
            out["lineage"] = {"audit_tags": dict(self.audit_tags)}
        if self.switchover is not None:
            out["switchover"] = {"view": self.switchover.view, "when": self.switchover.when}
        if self.late_data is not None:
            hours = int(self.late_data.watermark_delay.total_seconds() // 3600)
            delay = f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"
            out["late_data"] = {"watermark_delay": delay,
                                "reprocess_window": self.late_data.reprocess_window}
        return out

    def to_yaml(self) -> str:
        """The plan as YAML in the workbook's layout: sections as blocks, lists inline."""
        data = self.to_dict()
        data["backfill"] = _Block(data["backfill"])
        return yaml.dump(data, Dumper=_PlanDumper, sort_keys=False)

    def __str__(self) -> str:
        return self.to_yaml()

    def with_backfill(self, **changes: Any) -> Plan:
        """A copy with some backfill settings changed (handy for what-if comparisons)."""
        if "partitions" in changes:
            changes["partitions"] = PartitionSet.parse(changes["partitions"])
        return replace(self, backfill=replace(self.backfill, **changes))

    # -- exports ---------------------------------------------------------------------------
    def _all_layers(self) -> list[str]:
        return pipeline_layers(self.pipeline)

    def _layers(self) -> list[str]:
        return list(self.backfill.layers or self._all_layers())

    def to_airflow(self) -> list[str]:
        """Airflow 3: ``airflow backfill create``, one command per contiguous run of dates.

        For a DAG laid out as ``orchestrators/airflow`` (DAG id = the pipeline's name, one run
        per day whose logical date is the partition, a task per layer), the DAG unpaused.
        ``--from-date``/``--to-date`` are logical dates, both included. ``--max-active-runs`` is
        the concurrency cap, counted in whole DAG runs; ``--reprocess-behavior completed`` reruns
        existing runs (a recompute into a new version), ``failed`` fills missing and failed runs
        (an outage). A pinned ``code_version`` adds ``--no-run-on-latest-version`` (Airflow
        otherwise reruns old runs on the latest DAG bundle). What Airflow cannot express or does
        differently follows as ``#`` lines: runs in flight wait for nothing in each other (a
        task reading a trailing window must wait for it itself), retries are a task setting, a
        backfill reruns whole DAG runs (no subset of layers), and merge keys, a versioned
        target, validations and a switchover live in the DAG's tasks.
        """
        b = self.backfill
        behavior = "completed" if b.target else "failed"
        cmds = []
        for first, last in b.partitions.runs():
            parts = ["airflow backfill create", f"--dag-id {self.pipeline}",
                     f"--from-date {first}", f"--to-date {last}",
                     f"--max-active-runs {b.concurrency or 1}",
                     f"--reprocess-behavior {behavior}"]
            if b.order == "descending":
                parts.append("--run-backwards")
            if self.code_version:
                parts.append("--no-run-on-latest-version")
            cmds.append(" ".join(parts))
        cmds.append(f"# the DAG must be unpaused (airflow dags unpause {self.pipeline}): the runs "
                    f"of a paused DAG's backfill never start")
        if (b.concurrency or 1) > 1:
            pipeline = CATALOG.get(self.pipeline)
            windows = [f"{layer} reads {dep.mapping} partitions of {dep.layer}"
                       for layer in self._layers() for dep in pipeline.layer(layer).depends_on
                       if not isinstance(dep.mapping, SamePartition)]
            cmds.append(f"# --max-active-runs {b.concurrency}: runs in flight wait for nothing "
                        f"in each other" + (
                            f" ({'; '.join(windows)}): each such task must wait for the days "
                            f"it reads (a sensor), or it silently reads a partial window"
                            if windows else ""))
        if b.retries:
            cmds.append(f"# retries: {b.retries} is a task setting, not a backfill flag: "
                        f"default_args={{'retries': {b.retries}}} in the DAG")
        if b.layers and list(b.layers) != self._all_layers():
            cmds.append(f"# airflow reruns whole DAG runs: layers {list(b.layers)} cannot be "
                        f"selected by a backfill")
        if self.code_version:
            cmds.append(f"# code_version {self.code_version}: reruns keep their original run's "
                        f"DAG bundle; new runs take the deployed one: deploy "
                        f"{self.code_version} first")
        if b.mode != "overwrite":
            keys = f" on {list(b.merge_keys)}" if b.merge_keys else ""
            cmds.append(f"# mode {b.mode}{keys}: the DAG's tasks decide how a day is written; "
                        f"the backfill only reruns them")
        if b.target:
            cmds.append(f"# target {b.target}: runs write where the DAG's tasks write: deploy a "
                        f"DAG that writes {b.target} before the backfill")
        if self.validations.enabled or self.switchover:
            cmds.append("# validations and the switchover are not backfill settings: make them "
                        "tasks of the DAG")
        return cmds

    def to_dbt(self) -> list[str]:
        """dbt (microbatch models): ``dbt run`` with an event-time window per contiguous run.

        For a project laid out as ``orchestrators/dbt`` (a microbatch model per layer, named as
        the layer, batch = one day), run from its folder. dbt's ``--event-time-end`` is
        exclusive, so the plan's inclusive last day becomes the next day. ``--threads`` caps
        how many *models* run at once; a model's batches run one at a time, oldest first.
        What dbt cannot express or does differently follows as ``#`` lines: run order, retries
        (rerun with ``dbt retry``), a merge model (the window applies to microbatch models only:
        an incremental merge model rebuilds its whole history), a versioned target (a model
        version), the pinned code version, validations (``dbt test``) and a switchover.
        """
        b = self.backfill
        select = " ".join(self._layers())
        cmds = []
        for first, last in b.partitions.runs():
            end = shift(last, 1)
            cmds.append(f"dbt run --select {select} --event-time-start {first} "
                        f"--event-time-end {end} --threads {b.concurrency or 1}")
        if (b.concurrency or 1) > 1:
            cmds.append(f"# --threads {b.concurrency} runs {b.concurrency} models at once; the "
                        f"days of one microbatch model still run one at a time")
        if b.order == "descending":
            cmds.append("# order descending cannot be expressed: microbatch runs oldest first")
        if b.retries:
            cmds.append(f"# retries: {b.retries}: dbt does not retry a batch; after a failure, "
                        f"dbt retry reruns what failed")
        if b.mode != "overwrite":
            cmds.append(f"# mode {b.mode}: only microbatch models honour the event-time window; "
                        f"an incremental model with a unique_key (merge) ignores it and "
                        f"rewrites its whole history")
        if b.target:
            cmds.append(f"# target {b.target}: dbt writes each model's own relation: build a "
                        f"model version ({b.target}) and select it instead")
        if self.code_version:
            cmds.append(f"# code_version {self.code_version}: dbt runs the project as checked "
                        f"out: check out {self.code_version} first")
        if self.validations.enabled:
            cmds.append(f"# validations: run dbt test --select {select} afterwards")
        if self.switchover:
            cmds.append(f"# switchover: dbt has no view switch; repoint {self.switchover.view} "
                        f"yourself after the tests pass")
        return cmds

    def to_dagster(self) -> list[str]:
        """Dagster: materialize the assets over a partition range (``A...B``, both included).

        For a code location laid out as ``orchestrators/dagster`` (a module named after the
        pipeline, one daily-partitioned asset per layer, named as the layer), run from its
        folder (``-m``). A range on the command line needs ``BackfillPolicy.single_run()`` on
        every asset: the whole range is then one run. What Dagster cannot express or does
        differently follows as ``#`` lines: no concurrency cap within that run, a retry
        (a RetryPolicy on the asset) redoes every partition of the range, run order, the pinned
        code version, merge keys and a versioned target (the asset's code), validations (asset
        checks) and a switchover.
        """
        b = self.backfill
        select = ",".join(self._layers())
        cmds = [f"dagster asset materialize -m {self.pipeline} --select {select} "
                f"--partition-range {first}...{last}" for first, last in b.partitions.runs()]
        cmds.append("# needs BackfillPolicy.single_run() on every selected asset: each range is "
                    "one run")
        if b.concurrency:
            cmds.append(f"# concurrency: {b.concurrency} is not applied: one run writes the "
                        f"whole range (a run queue or a concurrency pool caps runs, not days)")
        if b.retries:
            cmds.append(f"# retries: {b.retries}: a RetryPolicy on the assets; in one run, a "
                        f"retry redoes every partition of the range")
        if b.order == "descending":
            cmds.append("# order descending cannot be expressed: the assets' code writes the "
                        "range in its own order")
        if self.code_version:
            cmds.append(f"# code_version {self.code_version}: materialize runs the code "
                        f"location as loaded: deploy {self.code_version} first")
        if b.mode != "overwrite":
            keys = f" on {list(b.merge_keys)}" if b.merge_keys else ""
            cmds.append(f"# mode {b.mode}{keys}: how a partition is written is the asset's code")
        if b.target:
            cmds.append(f"# target {b.target}: a versioned output is its own asset: select "
                        f"{b.target} instead")
        if self.validations.enabled or self.switchover:
            cmds.append("# validations are asset checks; the switchover is not Dagster's: "
                        "repoint the view after the checks pass")
        return cmds

    def to_sqlmesh(self) -> list[str]:
        """SQLMesh: restate the models over the range (``--start``/``--end``, dates included).

        For a project laid out as ``orchestrators/sqlmesh`` (an INCREMENTAL_BY_TIME_RANGE model
        per layer named ``<pipeline>.<layer>``), run from its folder; ``--auto-apply`` because
        without a terminal ``plan`` cannot ask. What SQLMesh cannot express or does differently
        follows as ``#`` lines: the concurrency cap (``concurrent_tasks`` in the gateway
        config), retries, run order, restating a merge model (SQLMesh widens it to the model's
        whole history), a versioned target (SQLMesh versions models itself and swaps views on
        apply), the pinned code version, and validations (audits).
        """
        b = self.backfill
        restate = " ".join(f"--restate-model {self.pipeline}.{m}" for m in self._layers())
        cmds = [f"sqlmesh plan {restate} --start {first} --end {last} --auto-apply"
                for first, last in b.partitions.runs()]
        cmds.append("# restating a model restates every model downstream of it too, over the "
                    "same range")
        if b.concurrency:
            cmds.append(f"# concurrency: {b.concurrency}: set concurrent_tasks: {b.concurrency} "
                        f"in the gateway's connection (config.yaml); plan has no cap")
        if b.retries:
            cmds.append(f"# retries: {b.retries}: SQLMesh does not retry a failed batch: run "
                        f"the plan again")
        if b.order == "descending":
            cmds.append("# order descending cannot be expressed: SQLMesh orders the batches")
        if b.mode != "overwrite":
            cmds.append(f"# mode {b.mode}: an INCREMENTAL_BY_UNIQUE_KEY model cannot restate a "
                        f"range: SQLMesh restates its whole history")
        if b.target:
            cmds.append(f"# target {b.target}: SQLMesh versions models itself (a changed model "
                        f"gets new tables, swapped in on apply): change the model, not the name")
        if self.code_version:
            cmds.append(f"# code_version {self.code_version}: plan applies the project as "
                        f"checked out: check out {self.code_version} first")
        if self.validations.enabled:
            cmds.append("# validations: SQLMesh audits run on every batch; a failed audit "
                        "stops the plan")
        return cmds

    def export(self, tool: str) -> list[str]:
        tools = {"airflow": self.to_airflow, "dbt": self.to_dbt, "dagster": self.to_dagster,
                 "sqlmesh": self.to_sqlmesh}
        if tool not in tools:
            raise UnknownNameError.of("export target", tool, tools)
        return tools[tool]()


def load_plan(source: Plan | Mapping[str, Any] | str | Path) -> Plan:
    """Shorthand for :meth:`Plan.load`.

    >>> plan = load_plan('''
    ... schedule: daily 02:00 UTC
    ... catchup: true
    ... backfill:
    ... start: 2025-03-01
    ... end: 2025-03-07
    ... concurrency: 2
    ... retries: 2
    ... mode: overwrite # partition overwrite to ensure idempotent writes
    ... ''')
    >>> len(plan.backfill.partitions), plan.backfill.concurrency, plan.backfill.mode
    (7, 2, 'overwrite')
    >>> print(plan.to_airflow()[0])  # doctest: +NORMALIZE_WHITESPACE
    airflow backfill create --dag-id daily_features --from-date 2025-03-01
        --to-date 2025-03-07 --max-active-runs 2 --reprocess-behavior failed
    """
    return Plan.load(source)

