"""The three outcome checks of a replay, judged from checksums (see
:mod:`backfill_lab.course.simulate`, which replays the plan and reads them).

Each takes the per-relation checksums (``{relation: {partition: checksum}}``) the simulation
read: before the first run, after each run, and the truth (what every table would hold had
nothing broken).
"""

from __future__ import annotations

from ..partitions import PartitionSet
from ..plan import Plan
from ..planrun import PlanRun
from .rules import RuleResult
from .scenarios import Scenario, Staged, truth

__all__ = ["OUTCOMES", "OUTCOME_POINTS", "SECTION", "complete", "idempotent", "result",
           "truth_of", "untouched"]

OUTCOMES: tuple[str, ...] = ("outcome_complete", "outcome_idempotent", "outcome_untouched")
OUTCOME_POINTS = 2.0
SECTION = "notebooks/05_designing_safe_backfills.ipynb § Your design as a plan"


def result(name: str, passed: bool, message: str) -> RuleResult:
    """One outcome check's verdict: its points when passed, none otherwise."""
    return RuleResult(name, passed, OUTCOME_POINTS if passed else 0.0, OUTCOME_POINTS, message,
                      SECTION)


def _readable(sc: Scenario, st: Staged, layer: str) -> str:
    if st.view is not None and layer == "features":
        return f"view:{st.view}"
    return st.pipeline.layer(layer).default_table


def complete(plan: Plan, sc: Scenario, st: Staged, after: dict[str, dict[str, str]],
             first: PlanRun, invalid: set[str]) -> RuleResult:
    """``outcome_complete``: after the first run (``after``), every broken partition holds the
    truth's rows as readers see them, none failed the plan's validations (``invalid``), and
    the run raised no error."""
    want = truth(sc)
    problems: list[str] = []
    for layer in sc.layers:
        rel = _readable(sc, st, layer)
        truth_table = st.pipeline.layer(layer).default_table
        got, expected = after.get(rel, {}), want.get(truth_table, {})
        missing = [k for k in sc.partitions if k not in got]
        wrong = [k for k in sc.partitions if k in got and got[k] != expected.get(k)]
        if missing:
            problems.append(f"{layer} missing {PartitionSet.parse(missing)}")
        if wrong:
            problems.append(f"{layer} wrong in {PartitionSet.parse(wrong)}")
    if invalid:
        problems.append(f"failed the plan's validations: {PartitionSet.parse(sorted(invalid))}")
    if first.error:
        problems.append(first.error)
    if problems:
        return result("outcome_complete", False,
                       "After the backfill: " + "; ".join(problems[:4]) + ". Readers would "
                       "still see missing or wrong data.")
    return result("outcome_complete", True,
                   f"every broken partition of {', '.join(sc.layers)} holds exactly the rows it "
                   "should, as readers see it.")


def truth_of(sc: Scenario, st: Staged) -> dict[str, dict[str, str]]:
    """The rows each relation would hold had nothing broken (a view: its readers' table)."""
    want = dict(truth(sc))
    if st.view is not None:
        want[f"view:{st.view}"] = want.get(st.pipeline.layer("features").default_table, {})
    return want


def idempotent(one: dict[str, dict[str, str]], two: dict[str, dict[str, str]],
                want: dict[str, dict[str, str]] | None = None) -> RuleResult:
    """The second run changed nothing, except partitions it brought to exactly the rows they
    should hold (filling what the first run left missing or short is not a double write)."""
    want = want or {}
    changed = sorted(f"{rel} {k}" for rel in set(one) | set(two)
                     for k in set(one.get(rel, {})) | set(two.get(rel, {}))
                     if one.get(rel, {}).get(k) != two.get(rel, {}).get(k)
                     and not (k in want.get(rel, {}) and two.get(rel, {}).get(k) == want[rel][k]))
    if changed:
        return result("outcome_idempotent", False,
                       f"Running the plan a second time changed {len(changed)} partitions "
                       f"(e.g. {', '.join(changed[:3])}): a retry or rerun would corrupt data.")
    return result("outcome_idempotent", True, "a second run changed nothing it had already "
                                               "written right.")


def untouched(plan: Plan, sc: Scenario, before: dict[str, dict[str, str]],
              after: dict[str, dict[str, str]]) -> RuleResult:
    """``outcome_untouched``: every partition outside the plan's range and the incident is
    what it was before the first run (a schedule's new days excepted)."""
    inside = set(plan.backfill.partitions) | set(sc.partitions)
    changed = []
    for rel in set(before) | set(after):
        old, new = before.get(rel, {}), after.get(rel, {})
        for key in set(old) | set(new):
            if key in inside:
                continue
            if key not in old and sc.late:
                continue  # the schedule keeps running past the range: new days are its job
            if old.get(key) != new.get(key):
                changed.append(f"{rel} {key}")
    if changed:
        changed.sort()
        return result("outcome_untouched", False,
                       f"{len(changed)} partitions outside the plan's range changed (e.g. "
                       f"{', '.join(changed[:3])}): a targeted fix must touch nothing else.")
    return result("outcome_untouched", True,
                   "every partition outside the range is byte-for-byte unchanged.")
