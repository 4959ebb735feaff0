"""Sample pipelines the workbook ships, built on the engine: ``daily_features`` (raw -> staging
-> features, :mod:`.daily`) and ``late_features`` (late-arriving events, :mod:`.late`), with
their seeded event sources. Importing this package registers both in the engine's catalog
(:data:`backfill_lab.pipeline.CATALOG`), so a plan can name them."""

from __future__ import annotations

from ..pipeline import CATALOG, Pipeline
from ..warehouse import Warehouse
from .daily import daily_features, demo_pipeline
from .late import late_features

PIPELINES = {"daily_features": daily_features, "late_features": late_features}
"""The bundled pipelines by name (their factories, called with no argument for the default)."""


def _daily(warehouse: Warehouse | None = None) -> Pipeline:
    """``daily_features`` as stored in ``warehouse`` by ``build_demo`` (the default without one)."""
    return demo_pipeline(warehouse) if warehouse is not None else daily_features()


def _late(warehouse: Warehouse | None = None) -> Pipeline:
    """``late_features`` over its default seeded source."""
    return late_features()


CATALOG.register("daily_features", _daily)
CATALOG.register("late_features", _late)

__all__ = ["PIPELINES"]
