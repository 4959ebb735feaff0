"""A plan as the commands of real orchestrators: Airflow, dbt, Dagster, SQLMesh.

Each export prints the commands first, then, as ``#`` lines, what that tool cannot express or
does differently (a subset of layers, retries, concurrency as one run, merge models, a versioned
target, validations, a switchover, a pinned config and runtime, ...): the plan is the contract,
the commands are its closest translation, and ``make orchestrators`` runs them for real against
the mirror projects in ``orchestrators/``. ``Plan.to_airflow()`` and friends call these. Taught
in notebooks/02_daily_backfill.ipynb and notebooks/06_practical_projects.ipynb.

>>> from backfill_lab.plan import load_plan
>>> import backfill_lab  # registers the workbook's pipelines
>>> print(to_dagster(load_plan({"backfill": {"start": "2025-03-01", "end": "2025-03-07"}}))[0])
dagster asset materialize -m daily_features --select raw,staging,features --partition-range ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UnknownNameError
from .partitions import shift
from .pipeline import CATALOG, SamePartition

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["TOOLS", "export", "to_airflow", "to_dagster", "to_dbt", "to_sqlmesh"]

TOOLS = ("airflow", "dbt", "dagster", "sqlmesh")
"""The orchestrators a plan exports to."""


def _all_layers(plan: Plan) -> list[str]:
    return CATALOG.layers(plan.pipeline)


def _layers(plan: Plan) -> list[str]:
    return list(plan.backfill.layers or _all_layers(plan))


def _pins(plan: Plan, config_lives: str, runtime_lives: str) -> list[str]:
    """The pinned config and runtime as ``#`` lines: no orchestrator checks them itself."""
    out = []
    if plan.config_hash:
        out.append(f"# config_hash {plan.config_hash}: {config_lives} must hash to it for the "
                   f"whole backfill: freeze it, and check the hash before the first run")
    if plan.runtime:
        out.append(f"# runtime {plan.runtime}: {runtime_lives} must have these versions: pin "
                   f"them, and check them before the first run")
    return out


def to_airflow(plan: Plan) -> list[str]:
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
        if plan.code_version:
            parts.append("--no-run-on-latest-version")
        cmds.append(" ".join(parts))
    cmds.append(f"# the DAG must be unpaused (airflow dags unpause {plan.pipeline}): the runs "
                f"of a paused DAG's backfill never start")
    if (b.concurrency or 1) > 1:
        pipeline = CATALOG.get(plan.pipeline)
        windows = [f"{layer} reads {dep.mapping} partitions of {dep.layer}"
                   for layer in _layers(plan) for dep in pipeline.layer(layer).depends_on
                   if not isinstance(dep.mapping, SamePartition)]
        cmds.append(f"# --max-active-runs {b.concurrency}: runs in flight wait for nothing "
                    f"in each other" + (
                        f" ({'; '.join(windows)}): each such task must wait for the days "
                        f"it reads (a sensor), or it silently reads a partial window"
                        if windows else ""))
    if b.retries:
        cmds.append(f"# retries: {b.retries} is a task setting, not a backfill flag: "
                    f"default_args={{'retries': {b.retries}}} in the DAG")
    if b.layers and list(b.layers) != _all_layers(plan):
        cmds.append(f"# airflow reruns whole DAG runs: layers {list(b.layers)} cannot be "
                    f"selected by a backfill")
    if plan.code_version:
        cmds.append(f"# code_version {plan.code_version}: reruns keep their original run's "
                    f"DAG bundle; new runs take the deployed one: deploy "
                    f"{plan.code_version} first")
    cmds += _pins(plan, "the config the DAG's tasks read (params, Variables)",
                  "the workers' image")
    if b.mode != "overwrite":
        keys = f" on {list(b.merge_keys)}" if b.merge_keys else ""
        cmds.append(f"# mode {b.mode}{keys}: the DAG's tasks decide how a day is written; "
                    f"the backfill only reruns them")
    if b.target:
        cmds.append(f"# target {b.target}: runs write where the DAG's tasks write: deploy a "
                    f"DAG that writes {b.target} before the backfill")
    if plan.validations.enabled or plan.switchover:
        cmds.append("# validations and the switchover are not backfill settings: make them "
                    "tasks of the DAG")
    return cmds

def to_dbt(plan: Plan) -> list[str]:
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
    b = plan.backfill
    select = " ".join(_layers(plan))
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
    if plan.code_version:
        cmds.append(f"# code_version {plan.code_version}: dbt runs the project as checked "
                    f"out: check out {plan.code_version} first")
    cmds += _pins(plan, "the project's vars (--vars) and model configs",
                  "the environment running dbt (dbt-core, the adapter, DuckDB)")
    if plan.validations.enabled:
        cmds.append(f"# validations: run dbt test --select {select} afterwards")
    if plan.switchover:
        cmds.append(f"# switchover: dbt has no view switch; repoint {plan.switchover.view} "
                    f"yourself after the tests pass")
    return cmds

def to_dagster(plan: Plan) -> list[str]:
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
    b = plan.backfill
    select = ",".join(_layers(plan))
    cmds = [f"dagster asset materialize -m {plan.pipeline} --select {select} "
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
    if plan.code_version:
        cmds.append(f"# code_version {plan.code_version}: materialize runs the code "
                    f"location as loaded: deploy {plan.code_version} first")
    cmds += _pins(plan, "the run config and resources (--config)",
                  "the code location's environment")
    if b.mode != "overwrite":
        keys = f" on {list(b.merge_keys)}" if b.merge_keys else ""
        cmds.append(f"# mode {b.mode}{keys}: how a partition is written is the asset's code")
    if b.target:
        cmds.append(f"# target {b.target}: a versioned output is its own asset: select "
                    f"{b.target} instead")
    if plan.validations.enabled or plan.switchover:
        cmds.append("# validations are asset checks; the switchover is not Dagster's: "
                    "repoint the view after the checks pass")
    return cmds

def to_sqlmesh(plan: Plan) -> list[str]:
    """SQLMesh: restate the models over the range (``--start``/``--end``, dates included).

    For a project laid out as ``orchestrators/sqlmesh`` (an INCREMENTAL_BY_TIME_RANGE model
    per layer named ``<pipeline>.<layer>``), run from its folder; ``--auto-apply`` because
    without a terminal ``plan`` cannot ask. What SQLMesh cannot express or does differently
    follows as ``#`` lines: the concurrency cap (``concurrent_tasks`` in the gateway
    config), retries, run order, restating a merge model (SQLMesh widens it to the model's
    whole history), a versioned target (SQLMesh versions models itself and swaps views on
    apply), the pinned code version, and validations (audits).
    """
    b = plan.backfill
    restate = " ".join(f"--restate-model {plan.pipeline}.{m}" for m in _layers(plan))
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
    if plan.code_version:
        cmds.append(f"# code_version {plan.code_version}: plan applies the project as "
                    f"checked out: check out {plan.code_version} first")
    cmds += _pins(plan, "the project's config.yaml and variables",
                  "the environment running sqlmesh")
    if plan.validations.enabled:
        cmds.append("# validations: SQLMesh audits run on every batch; a failed audit "
                    "stops the plan")
    return cmds


def export(plan: Plan, tool: str) -> list[str]:
    """The commands of ``tool`` (one of :data:`TOOLS`) that run ``plan``.

    Taught in notebooks/02_daily_backfill.ipynb (Write it down: the plan, and the same backfill in
    real orchestrators).
    """
    tools = {"airflow": to_airflow, "dbt": to_dbt, "dagster": to_dagster, "sqlmesh": to_sqlmesh}
    if tool not in tools:
        raise UnknownNameError.of("export target", tool, tools)
    return tools[tool](plan)
