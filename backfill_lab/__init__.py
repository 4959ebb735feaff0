"""backfill_lab: a small, real backfill engine on DuckDB, for the Safe Backfills workbook.

The names a learner uses are re-exported here; each lives in the module named for what it holds.
"""

from .clock import Clock, FixedClock, SystemClock
from .demo import EventSource, build_demo, daily_features, demo_pipeline
from .errors import (
    BackfillLabError,
    CodeVersionMismatch,
    ConfigError,
    InjectedFault,
    MergeKeyError,
    PartitionError,
    UnknownNameError,
    UpstreamMissing,
    WarehouseOverloaded,
)
from .faults import Fault, Faults
from .grid import grid_states, render_text
from .ledger import Ledger
from .partitions import PartitionSet, parse_partitions
from .pipeline import Dependency, Layer, Pipeline, SamePartition, StepContext, TrailingWindow
from .runner import BackfillResult, BackfillRunner, StepEvent, run_backfill
from .warehouse import WRITE_MODES, Warehouse

__version__ = "0.1.0"

__all__ = [
    "WRITE_MODES",
    "BackfillLabError",
    "BackfillResult",
    "BackfillRunner",
    "Clock",
    "CodeVersionMismatch",
    "ConfigError",
    "Dependency",
    "EventSource",
    "Fault",
    "Faults",
    "FixedClock",
    "InjectedFault",
    "Layer",
    "Ledger",
    "MergeKeyError",
    "PartitionError",
    "PartitionSet",
    "Pipeline",
    "SamePartition",
    "StepContext",
    "StepEvent",
    "SystemClock",
    "TrailingWindow",
    "UnknownNameError",
    "UpstreamMissing",
    "Warehouse",
    "WarehouseOverloaded",
    "build_demo",
    "daily_features",
    "demo_pipeline",
    "grid_states",
    "parse_partitions",
    "render_text",
    "run_backfill",
]
