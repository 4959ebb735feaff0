"""What the outcome simulation can know without running: whether a plan can exceed the
warehouse's capacity, which tables a run of it can write, and whether a second run of a plan
would change anything.

They are used by :mod:`backfill_lab.course.simulate` to skip work whose result is already
known (a wait that can never matter, checksums of a table no run wrote, a replay that can
only write the same rows again), so a
plan is judged faster with the same verdict.
"""

from __future__ import annotations

import pandas as pd

from .._db import run
from ..errors import BackfillLabError
from ..ledger import Ledger, StepStatus
from ..partitions import PartitionSet, shift
from ..plan import Plan
from ..planrun import PlanRun
from ..status import staleness
from .scenarios import Scenario, Staged

__all__ = ["LANDS_AGAIN", "SAME_AGAIN", "may_exceed", "rerun_lands_the_same",
           "rewrites_the_same", "written_tables"]

SAME_AGAIN = ("the first run rewrote every partition in place by overwrite and every step "
              "succeeded, so a second run writes the same rows again")


LANDS_AGAIN = ("after the schedule every partition of the range already held the rows it "
               "holds once every event has arrived, so a rerun by overwrite or by merge on the "
               "layers' own keys writes the same rows again")


def may_exceed(plan: Plan, sc: Scenario) -> bool:
    """Can ``plan`` have more writes in flight than ``sc``'s warehouse takes? (A plan without
    a concurrency runs every step at once.)"""
    concurrency = plan.backfill.concurrency
    return not concurrency or concurrency > sc.capacity


def _layers(plan: Plan, st: Staged) -> list[str]:
    """The layers a run of ``plan`` writes, in pipeline order; none when the pipeline lacks
    one (the run fails, and says so)."""
    try:
        return list(st.pipeline.check_layers(plan.backfill.layers or st.pipeline.layer_names))
    except BackfillLabError:
        return []


def written_tables(plan: Plan, sc: Scenario, st: Staged) -> set[str] | None:
    """Every table a run of ``plan`` on ``st`` can write, or None when that is not known (a
    schedule, or layers the pipeline does not have: the run fails, and says so).

    A backfill writes each of its layers' tables, the last one's being its ``target`` when it
    names one (as :func:`~backfill_lab.planrun.run_plan` does), and nothing else: a snapshot is
    taken and restored only for an in-place write, into a table it writes; a switchover changes
    the view, not a table.
    """
    if sc.late or plan.late_data is not None:
        return None
    b = plan.backfill
    layers = _layers(plan, st)
    if not layers:
        return None
    tables = {st.pipeline.layer(name).default_table for name in layers[:-1]}
    return tables | {b.target or st.pipeline.layer(layers[-1]).default_table}


def rewrites_the_same(plan: Plan, sc: Scenario, st: Staged, first: PlanRun) -> bool:
    """Would running ``plan`` again after ``first`` leave every table and view as it is?

    True when ``first`` overwrote its partitions in place (no versioned target, so no view
    switch) and every step succeeded, with nothing restored, and the scenario's backfill faults
    only fail attempts. A second run then rebuilds each partition, upstream first, from
    upstream partitions that hold what they held after the first run, so it writes the same
    rows: each transform is a pure function of what it reads (and of the seed). A step that
    fails on the second run (a fault, no retries left) rolls back and leaves its partition
    as it was; a partition that fails its validations is written with the same rows again, and
    a restore puts back the snapshot taken just before, which holds the same rows too.
    Appends, merges, versioned targets, late data and any first run that did not succeed
    everywhere are replayed for real.
    """
    b = plan.backfill
    if (sc.late or b.mode != "overwrite" or first.error is not None or first.restored
            or first.view is not None or first.backfill is None or not first.backfill.ok
            or any(f.kind != "fail" for f in sc.backfill_faults)):
        return False
    layers = _layers(plan, st)
    in_place = (b.target or st.pipeline.layer(layers[-1]).default_table) == \
        st.pipeline.layer(layers[-1]).default_table
    return in_place and all(s.status == StepStatus.SUCCESS for s in first.backfill.steps)


Checksums = dict[str, dict[str, str]]


def rerun_lands_the_same(plan: Plan, sc: Scenario, st: Staged, first: PlanRun,
                         state: Checksums, reference: Checksums) -> bool:
    """Late data: would the on-call rerun of the range (every event arrived, the plan's
    mode, no checks, no faults) after ``first`` leave every table as ``state`` has it?

    True when ``first`` ran, the rerun cannot fail (the plan's code version is deployed; an
    overwrite, or a merge on exactly the last layer's own keys, which the reference holds
    unique and never NULL), every event of the range has arrived by the rerun's time, and
    every table already holds, in every partition of the range (all of them refilled by the
    plan's reference), what the reference holds there: the rows the rerun builds, upstream
    first, from upstream partitions that hold them already. Overwriting a partition with its
    own rows, or merging rows into a partition that holds each of them already, changes
    nothing.
    """
    b = plan.backfill
    if (not sc.late or first.error is not None or first.schedule is None
            or b.mode not in ("overwrite", "merge")
            or plan.code_version not in (None, st.pipeline.code_version)):
        return False
    layers = _layers(plan, st)
    if not layers:
        return False
    own = st.pipeline.layer(layers[-1]).merge_keys
    if b.mode == "merge" and (not own or set(b.merge_keys or own) != set(own)):
        return False
    partitions = list(b.partitions)
    if not set(partitions) <= set(PartitionSet.parse(sc.broken)):
        return False
    last_event = pd.Timestamp(shift(sc.partitions.end, 1)) + pd.Timedelta(sc.max_lateness)
    if pd.Timestamp(sc.simulated_until) < last_event:
        return False
    names = st.pipeline.layer_names
    if list(layers) != names[names.index(layers[0]):]:
        return False  # a layer below the rerun's would be left built before its upstream
    tables = [t for t in st.warehouse.tables() if not t.startswith("_bl_")]
    if not all(state.get(t, {}).get(p) is not None
               and state.get(t, {}).get(p) == reference.get(t, {}).get(p)
               for t in tables for p in partitions):
        return False
    # and what the grid shows stays too: each box's latest step a success, none stale (the
    # rerun only adds successes, upstream first)
    Ledger(st.warehouse)
    latest: dict[tuple[str, str], str] = {}
    success: dict[tuple[str, str], int] = {}
    for seq, layer, part, status in run(st.warehouse.cursor(),
                                        "SELECT rowid, layer, partition, status FROM _bl_ledger "
                                        "ORDER BY rowid"):
        latest[(layer, part)] = status
        if status == StepStatus.SUCCESS:
            success[(layer, part)] = seq
    stale = staleness(st.pipeline, success)
    return all(latest.get((layer, p)) == StepStatus.SUCCESS for layer in layers
               for p in partitions) and not any(stale(layer, p) for layer in names
                                                for p in partitions)
