"""Backfill plans: the contract between the notebooks, the exercises, the engine and the grader.

A plan is YAML (or the same data as a dict) with the keys of the workbook's plan format; the guide's
own configuration snippet (``schedule``, ``catchup``, ``backfill: start/end/concurrency/retries/
mode``) loads as written, even with its ``backfill`` keys flattened to the top level. Every key is
checked: a typo is an error that names the key, what was received, and the closest known key.

A loaded :class:`Plan` prints back as YAML (``to_yaml``; loading that gives the same plan) and
exports to the commands of real orchestrators (``to_airflow``, ``to_dbt``, ``to_dagster``,
``to_sqlmesh``; see :mod:`backfill_lab.export`). The ``backfill:`` settings follow the rules of
:mod:`backfill_lab.options`, worded as a plan spells them (``backfill.concurrency``).
Taught in notebooks/02_daily_backfill.ipynb and notebooks/05_designing_safe_backfills.ipynb.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import yaml

from . import export
from ._yaml import MAX_BYTES, load_text, shorten
from .errors import ConfigError, UnknownNameError
from .options import PLAN, check, check_batch, flag, require_merge_keys
from .partitions import PartitionSet, PartitionsLike
from .pins import check_config_hash, check_runtime
from .pipeline import CATALOG
from .schedule import LateDataPolicy, Schedule
from .validations import Validations

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


TOP_KEYS = ("pipeline", "code_version", "config_hash", "runtime", "schedule", "catchup",
            "backfill", "validations", "rollback", "lineage", "switchover", "late_data")
BACKFILL_KEYS = ("start", "end", "partitions", "order", "layers", "concurrency", "max_parallel",
                 "retries", "mode", "write_mode", "merge_keys", "target", "batch_size")
ROLLBACK_STRATEGIES = ("snapshot", "previous_version")
SWITCH_WHEN = ("validated",)


def _check_keys(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in given:
        if key not in allowed:
            raise UnknownNameError.of(f"key {where}", str(key), allowed)


def _read_plan(path: Path) -> str:
    """The text of a plan file, or one line saying why it is no plan file."""
    name = shorten(str(path))
    try:
        if path.is_dir():
            raise ConfigError(f"plan file {name} is a directory; give a .yaml file")
        if not path.exists():
            raise ConfigError(f"plan file {name} does not exist")
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read plan file {name}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) > MAX_BYTES:  # cut mid-character: the size is what is wrong
            raise ConfigError(f"plan file {name} is over {MAX_BYTES} bytes; a plan is a few "
                              f"lines of YAML") from None
        raise ConfigError(f"plan file {name} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                          f"at offset {exc.start}); save it as UTF-8") from None


def _check_pipeline(name: str, backfill: BackfillSpec) -> None:
    """A catalogued pipeline's layers and partition grain, checked when the plan loads."""
    if name not in CATALOG.names():
        if CATALOG.names():
            raise UnknownNameError.of("pipeline", name, CATALOG.names())
        return
    pipeline = CATALOG.get(name)
    if backfill.layers:
        pipeline.check_layers(backfill.layers)
    if "T" in backfill.partitions.start:  # an hourly plan for a daily pipeline
        pipeline.check_partitions(backfill.partitions)


def _mapping(where: str, value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError.invalid(where, "a mapping of keys to values", value)
    return value


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
    def from_dict(cls, spec: Mapping[str, Any]) -> BackfillSpec:
        """From the ``backfill:`` section; every key checked (see :mod:`backfill_lab.options`)."""
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
            partitions = PartitionSet.parse(cast("PartitionsLike", items))  # parse names the rest
        else:
            raise ConfigError("backfill needs a range: start and end, or partitions "
                              "(e.g. partitions: 2024-12-01..2024-12-31)")
        order = check("order", spec.get("order", "ascending"), PLAN)
        mode = check("mode", spec.get("mode", spec.get("write_mode", "overwrite")), PLAN)
        raw_cap = spec.get("concurrency", spec.get("max_parallel"))
        concurrency = None if raw_cap is None else check("concurrency", raw_cap, PLAN)
        target = spec.get("target")
        if target is not None and not isinstance(target, str):
            raise ConfigError.invalid("backfill.target", "a table name", target)
        batch_size = check("batch_size", spec.get("batch_size", 1), PLAN)
        check_batch(mode, batch_size, PLAN)
        require_merge_keys(mode, check("merge_keys", spec.get("merge_keys"), PLAN))
        return cls(partitions, order, check("layers", spec.get("layers"), PLAN), concurrency,
                   check("retries", spec.get("retries", 0), PLAN), mode,
                   check("merge_keys", spec.get("merge_keys"), PLAN),
                   check("target", target, PLAN), batch_size)

    def to_dict(self) -> dict[str, Any]:
        """The section as a plan file writes it (dates as dates, defaults left out)."""
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
    """How to undo a bad backfill: the ``rollback:`` section."""
    strategy: str = "snapshot"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> RollbackSpec:
        """From the ``rollback:`` section."""
        _check_keys("in rollback", spec, ("strategy",))
        strategy = spec.get("strategy", "snapshot")
        if strategy not in ROLLBACK_STRATEGIES:
            raise UnknownNameError.of("rollback.strategy", str(strategy), ROLLBACK_STRATEGIES)
        return cls(strategy)


@dataclass(frozen=True)
class SwitchoverSpec:
    """Which view readers use, switched to the new version when it validates."""
    view: str
    when: str = "validated"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SwitchoverSpec:
        """From the ``switchover:`` section."""
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
    """A whole backfill plan. Build one with :meth:`load` (YAML text, a file, a dict).

    Taught in notebooks/02_daily_backfill.ipynb (Write it down: the plan, and the same backfill in
    real orchestrators) and notebooks/05_designing_safe_backfills.ipynb (Your design as a plan).
    """

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
    config_hash: str | None = None  # pins besides code_version: see backfill_lab.pins
    runtime: str | None = None

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, source: Plan | Mapping[str, Any] | str | Path) -> Plan:
        """From a Plan, a dict, YAML text, or a path to a YAML file."""
        if isinstance(source, Plan):
            return source
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                        and source.strip().endswith((".yaml", ".yml"))):
            source = _read_plan(Path(source))
        data = load_text(source) if isinstance(source, str) else source
        if isinstance(data, str) and "\n" not in data and "." in data:  # 'plan.txt', 'P.YAML'
            raise ConfigError(f"a plan given as a string is YAML text, and {data!r} reads as "
                              f"one word; for a file, pass Path({data!r}) or name it .yaml")
        if not isinstance(data, Mapping):
            raise ConfigError.invalid("plan", "a mapping with a 'backfill' section",
                                      type(data).__name__ if data is not None else None)
        return cls.from_dict(data)

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
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """From the plan's data; ``backfill`` keys may also sit at the top level."""
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
        if schedule is not None:
            Schedule.parse(schedule)
        _check_pipeline(pipeline, backfill)
        catchup = data.get("catchup")
        if catchup is not None:
            catchup = flag("catchup", catchup)
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
            config_hash=check_config_hash("config_hash", data.get("config_hash")),
            runtime=check_runtime("runtime", data.get("runtime")),
        )

    # -- printing --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plan as data in the workbook's key order (what :meth:`to_yaml` prints)."""
        out: dict[str, Any] = {"pipeline": self.pipeline}
        if self.code_version is not None:
            out["code_version"] = self.code_version
        out.update({k: v for k, v in (("config_hash", self.config_hash),
                                      ("runtime", self.runtime)) if v is not None})
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

    # -- exports (see backfill_lab.export) --------------------------------------------------
    def to_airflow(self) -> list[str]:
        """Airflow 3 ``airflow backfill create`` commands: :func:`backfill_lab.export.to_airflow`.

        Taught in notebooks/02_daily_backfill.ipynb (Write it down: the plan, and the same
        backfill in real orchestrators) and notebooks/06_practical_projects.ipynb (Next steps).
        """
        return export.to_airflow(self)

    def to_dbt(self) -> list[str]:
        """dbt ``dbt run`` commands with event-time windows: :func:`backfill_lab.export.to_dbt`."""
        return export.to_dbt(self)

    def to_dagster(self) -> list[str]:
        """Dagster ``asset materialize`` commands: :func:`backfill_lab.export.to_dagster`."""
        return export.to_dagster(self)

    def to_sqlmesh(self) -> list[str]:
        """SQLMesh restatement plans: :func:`backfill_lab.export.to_sqlmesh`."""
        return export.to_sqlmesh(self)

    def export(self, tool: str) -> list[str]:
        """The commands of ``tool`` (airflow, dbt, dagster, sqlmesh) that run this plan."""
        return export.export(self, tool)


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

    Taught in notebooks/02_daily_backfill.ipynb (Write it down: the plan, ...),
    notebooks/05_designing_safe_backfills.ipynb (Your design as a plan) and
    notebooks/06_practical_projects.ipynb (Project 3).
    """
    return Plan.load(source)

