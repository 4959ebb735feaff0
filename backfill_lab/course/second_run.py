"""What the outcome simulation can know without running: whether a plan can exceed the
warehouse's capacity, which tables a run of it can write, and whether a second run of a plan
would change anything.

They are used by :mod:`backfill_lab.course.simulate` to skip work whose result is already
known (a wait that can never matter, checksums of a table no run wrote, a replay that can
only write the same rows again), so a
plan is judged faster with the same verdict.
"""

from __future__ import annotations

from ..errors import BackfillLabError
from ..ledger import StepStatus
from ..plan import Plan
from ..planrun import PlanRun
from .scenarios import Scenario, Staged

__all__ = ["SAME_AGAIN", "may_exceed", "rewrites_the_same", "written_tables"]

SAME_AGAIN = ("the first run rewrote every partition in place by overwrite and every step "
              "succeeded, so a second run writes the same rows again")


def may_exceed(plan: Plan, sc: Scenario) -> bool:
    """Can ``plan`` have more writes in flight than ``sc``'s warehouse takes? (A plan without
    a concurrency runs every step at once.)"""
    concurrency = plan.backfill.concurrency
    return not concurrency or concurrency > sc.capacity


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
    try:
        layers = st.pipeline.check_layers(b.layers or st.pipeline.layer_names)
    except BackfillLabError:
        return None
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
    layers = st.pipeline.check_layers(b.layers or st.pipeline.layer_names)
    in_place = (b.target or st.pipeline.layer(layers[-1]).default_table) == \
        st.pipeline.layer(layers[-1]).default_table
    return in_place and all(s.status == StepStatus.SUCCESS for s in first.backfill.steps)
