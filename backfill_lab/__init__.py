"""backfill_lab: a small, real backfill engine on DuckDB, for the Safe Backfills workbook.

The names a learner uses are re-exported here; each lives in the module named for what it holds,
in one of four rooms, each importing only the rooms above it in this map:

    backfill_lab/*.py   the engine: partitions, plans, runner, warehouse, ledger, validations
    demo/  display/     sample pipelines (registered in the engine's catalog); grids drawn
    course/             exercises, checklist rules, outcome replay, quiz, progress, drills
    cli/                the backfill-lab command (and grader/, beside the package)
"""

from .clock import Clock, FixedClock, SystemClock
from .course import exercises
from .course.drills import Drill, DrillResult, drill
from .course.exercises import check
from .course.progress import progress
from .course.quiz import quiz
from .course.rules import RuleResult, judge
from .course.scenarios import Scenario, scenario
from .course.selfcheck import CheckReport
from .course.simulate import SimulationReport, simulate
from .demo.daily import EventSource, build_demo, daily_features, demo_pipeline
from .demo.late import LateEventSource, late_arrival_metrics, late_features, plot_late_arrivals
from .display.grid import PartitionGrid
from .display.render import render_html, render_text
from .errors import (
    BackfillLabError,
    CodeVersionMismatch,
    ConfigError,
    InjectedFault,
    MergeKeyError,
    PartitionError,
    PinMismatch,
    SwitchoverBlocked,
    UnknownNameError,
    UpstreamMissing,
    WarehouseOverloaded,
)
from .faults import Fault, Faults
from .ledger import Ledger
from .options import BackfillOptions
from .partitions import PartitionSet, parse_partitions
from .pins import runtime
from .pipeline import Dependency, Layer, Pipeline, SamePartition, StepContext, TrailingWindow
from .plan import Plan, load_plan
from .planrun import PlanRun, run_plan
from .runner import BackfillResult, BackfillRunner, StepEvent, run_backfill
from .scheduler import (
    LateDataPolicy,
    Schedule,
    Scheduler,
    first_run,
    parse_delay,
    partition_due,
)
from .snapshots import Snapshot, restore, snapshot, untouched_report
from .status import grid_states
from .validations import (
    CheckResult,
    DownstreamRead,
    Drift,
    NullRate,
    RowCount,
    UniqueKeys,
    ValidationReport,
    Validations,
    invalid_partitions,
    latest_validations,
    validate,
)
from .versions import (
    canary_compare,
    point_view,
    rollback_view,
    switch_view,
    view_history,
    view_state,
)
from .warehouse import WRITE_MODES, Warehouse

__version__ = "0.1.0"

__all__ = [
    "WRITE_MODES",
    "BackfillLabError",
    "BackfillOptions",
    "BackfillResult",
    "BackfillRunner",
    "CheckReport",
    "CheckResult",
    "Clock",
    "CodeVersionMismatch",
    "ConfigError",
    "Dependency",
    "DownstreamRead",
    "Drift",
    "Drill",
    "DrillResult",
    "EventSource",
    "Fault",
    "Faults",
    "FixedClock",
    "InjectedFault",
    "LateDataPolicy",
    "LateEventSource",
    "Layer",
    "Ledger",
    "MergeKeyError",
    "NullRate",
    "PartitionError",
    "PartitionGrid",
    "PartitionSet",
    "PinMismatch",
    "Pipeline",
    "Plan",
    "PlanRun",
    "RowCount",
    "RuleResult",
    "SamePartition",
    "Scenario",
    "Schedule",
    "Scheduler",
    "SimulationReport",
    "Snapshot",
    "StepContext",
    "StepEvent",
    "SwitchoverBlocked",
    "SystemClock",
    "TrailingWindow",
    "UniqueKeys",
    "UnknownNameError",
    "UpstreamMissing",
    "ValidationReport",
    "Validations",
    "Warehouse",
    "WarehouseOverloaded",
    "build_demo",
    "canary_compare",
    "check",
    "daily_features",
    "demo_pipeline",
    "drill",
    "exercises",
    "first_run",
    "grid_states",
    "invalid_partitions",
    "judge",
    "late_arrival_metrics",
    "late_features",
    "latest_validations",
    "load_plan",
    "parse_delay",
    "parse_partitions",
    "partition_due",
    "plot_late_arrivals",
    "point_view",
    "progress",
    "quiz",
    "render_html",
    "render_text",
    "restore",
    "rollback_view",
    "run_backfill",
    "run_plan",
    "runtime",
    "scenario",
    "simulate",
    "snapshot",
    "switch_view",
    "untouched_report",
    "validate",
    "view_history",
    "view_state",
]
