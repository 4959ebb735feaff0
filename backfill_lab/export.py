"""A plan as the commands of real orchestrators: Airflow, dbt, Dagster, SQLMesh.

Each export says, in its docstring, what that tool cannot express (a subset of layers, retries,
validations, a switchover, ...): the plan is the contract, the commands are its closest
translation. ``Plan.to_airflow()`` and friends call these. Taught in
notebooks/02_daily_backfill.ipynb and notebooks/06_practical_projects.ipynb.

>>> from backfill_lab.plan import load_plan
>>> import backfill_lab  # registers the workbook's pipelines
>>> print(*to_dagster(load_plan({"backfill": {"start": "2025-03-01", "end": "2025-03-07"}})))
dagster asset materialize --select raw,staging,features --partition-range 2025-03-01...2025-03-07
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UnknownNameError
from .partitions import shift
from .pipeline import CATALOG

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["TOOLS", "export", "to_airflow", "to_dagster", "to_dbt", "to_sqlmesh"]

TOOLS = ("airflow", "dbt", "dagster", "sqlmesh")
"""The orchestrators a plan exports to."""


def _all_layers(plan: Plan) -> list[str]:
    return CATALOG.layers(plan.pipeline)


def _layers(plan: Plan) -> list[str]:
    return list(plan.backfill.layers or _all_layers(plan))


def to_airflow(plan: Plan) -> list[str]:
    """Airflow 3: ``airflow backfill create``, one command per contiguous run of dates.

    ``--from-date``/``--to-date`` are logical dates, both included. ``--max-active-runs``
    is the concurrency cap; ``--reprocess-behavior completed`` reruns existing runs (a
    recompute into a new version), ``failed`` fills missing and failed runs (an outage).
    Airflow cannot express: a subset of layers (a backfill reruns whole DAG runs; clear
    only the tasks you need with ``airflow tasks clear`` instead), per-partition
    validations, merge keys, a versioned target or a switchover (those live in the DAG's
    tasks), and retries are a task setting, not a backfill flag. Pin the code by deploying
    that version's DAG bundle before the backfill.
    """
    b = plan.backfill
    behavior = "completed" if b.target else "failed"
    cmds = []
    for first, last in b.partitions.runs():
        parts = ["airflow backfill create", f"--dag-id {plan.pipeline}",
                 f"--from-date {first}", f"--to-date {last}",
                 f"--max-active-runs {b.concurrency or 1}",
                 f"--reprocess-behavior {behavior}"]
        if b.order == "descending":
            parts.append("--run-backwards")
        cmds.append(" ".join(parts))
    if b.layers and list(b.layers) != _all_layers(plan):
        cmds.append(f"# airflow reruns whole DAG runs: layers {list(b.layers)} cannot be "
                    f"selected by a backfill")
    return cmds


def to_dbt(plan: Plan) -> list[str]:
    """dbt (microbatch models): ``dbt run`` with an event-time window per contiguous run.

    dbt's ``--event-time-end`` is exclusive, so the plan's inclusive last day becomes the
    next day. ``--threads`` caps concurrency. dbt cannot express: run order (batches run in
    time order unless the model allows concurrent batches), retries (rerun with ``dbt
    retry``), a versioned target (use a model version, e.g. ``features_v2``), or a view
    switchover; validations map to dbt tests run afterwards (``dbt test --select ...``).
    """
    b = plan.backfill
    select = " ".join(_layers(plan))
    cmds = []
    for first, last in b.partitions.runs():
        end = shift(last, 1)
        cmds.append(f"dbt run --select {select} --event-time-start {first} "
                    f"--event-time-end {end} --threads {b.concurrency or 1}")
    return cmds


def to_dagster(plan: Plan) -> list[str]:
    """Dagster: materialize the assets over a partition range (``A...B``, both included).

    Dagster cannot express on the command line: the concurrency cap (set a run queue
    limit or a concurrency pool on the assets), retries (a RetryPolicy on the asset),
    validations (asset checks), or a switchover.
    """
    b = plan.backfill
    select = ",".join(_layers(plan))
    return [f"dagster asset materialize --select {select} --partition-range "
            f"{first}...{last}" for first, last in b.partitions.runs()]


def to_sqlmesh(plan: Plan) -> list[str]:
    """SQLMesh: restate the models over the range (``--start``/``--end``, dates included).

    SQLMesh cannot express: the concurrency cap (``concurrent_tasks`` in the gateway
    config), retries, or a view switchover (SQLMesh's own virtual environments swap views
    on ``plan`` apply, after its audits pass).
    """
    b = plan.backfill
    restate = " ".join(f"--restate-model {m}" for m in _layers(plan))
    return [f"sqlmesh plan {restate} --start {first} --end {last}"
            for first, last in b.partitions.runs()]


def export(plan: Plan, tool: str) -> list[str]:
    """The commands of ``tool`` (one of :data:`TOOLS`) that run ``plan``.

    Taught in notebooks/02_daily_backfill.ipynb (Write it down: the plan, and the same backfill in
    real orchestrators).
    """
    tools = {"airflow": to_airflow, "dbt": to_dbt, "dagster": to_dagster, "sqlmesh": to_sqlmesh}
    if tool not in tools:
        raise UnknownNameError.of("export target", tool, tools)
    return tools[tool](plan)
