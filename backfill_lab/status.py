"""What a step, a backfill and a scheduled run can be: one ``StrEnum`` each.

The members are plain strings (``StepStatus.SUCCESS == "success"``), so they go into the ledger,
into JSON and into DataFrames unchanged, and code that compares with ``"success"`` keeps working.

>>> StepStatus.SUCCESS == "success", str(StepStatus.FAILED), f"{BackfillStatus.ABORTED}"
(True, 'failed', 'aborted')
>>> StepStatus("skipped") is StepStatus.SKIPPED
True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["LEDGER_STATUSES", "RUN_STATUSES", "BackfillStatus", "RunStatus", "StepStatus"]


class StepStatus(StrEnum):
    """A step's state, as the live grid shows it and the ledger records it.

    ``running`` and ``retrying`` are transient (events only); ``success``, ``invalid`` (written
    but failing its validations), ``failed``, ``skipped`` (an upstream step did not succeed) and
    ``cancelled`` (the backfill stopped before the step started) are final.
    These are the states of the partition grid in notebooks/02_daily_backfill.ipynb (Step 4:
    run it and watch the grid).
    """

    RUNNING = "running"
    SUCCESS = "success"
    INVALID = "invalid"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class BackfillStatus(StrEnum):
    """How a whole backfill ended (``BackfillResult.status``)."""

    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"
    DRY_RUN = "dry_run"


class RunStatus(StrEnum):
    """How one scheduled run ended (``Scheduler.runs()['status']``)."""

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


LEDGER_STATUSES: tuple[str, ...] = tuple(s.value for s in (
    StepStatus.SUCCESS, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED))
"""The statuses a ledger row can hold (one row per attempt, or per step not run)."""

RUN_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)
"""The statuses a scheduled run can end in."""
