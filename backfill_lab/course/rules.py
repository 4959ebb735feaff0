"""The safe-backfill checklist as rules: one per design step, checklist item and common mistake.

Each rule judges a :class:`~backfill_lab.plan.Plan` against an exercise's
:class:`~backfill_lab.course.scenarios.Scenario` and returns a :class:`RuleResult`: passed or
not, the points, and a message that teaches (what is wrong, why it is unsafe, how to fix it, and
where the workbook explains it). Rules are independent: a plan with one mistake fails the one
rule that names it. The grader and ``backfill_lab.check`` run exactly these functions.
"""

from __future__ import annotations

from collections.abc import Callable

from ..partitions import PartitionSet
from ..pipeline import CATALOG, TrailingWindow
from ..plan import Plan, pipeline_layers
from ..status import readers
from .late_rules import MAX_WINDOW, rule_merge_keys, rule_reprocess_window, rule_watermark
from .scenarios import Scenario
from .verdicts import RULE_COLUMNS, SECTIONS, RuleResult, ScoredReport, _fail, _ok, rule_rows

__all__ = ["CHECKLIST", "LATE_RULES", "MAX_KS", "MAX_PSI", "MAX_RETRIES", "MAX_WINDOW", "RULES",
           "RULE_COLUMNS", "SECTIONS", "RuleResult", "ScoredReport", "judge", "never_fails",
           "rule_names", "rule_rows"]

MAX_RETRIES = 5


def _layers(plan: Plan, sc: Scenario) -> list[str]:
    return list(plan.backfill.layers) if plan.backfill.layers else list(_all_layers(sc))


def _all_layers(sc: Scenario) -> tuple[str, ...]:
    return tuple(pipeline_layers("late_features" if sc.late else "daily_features"))


# -- the design steps and the common mistakes ---------------------------------------------
def made_stale(plan: Plan, sc: Scenario, layers: list[str]) -> list[tuple[str, str]]:
    """The partitions outside the plan that read (directly or further down) a partition of
    ``layers`` the plan rebuilds: built on the old rows, they are stale once it runs."""
    pipeline = CATALOG.get("late_features" if sc.late else "daily_features")
    rebuilt = {(n, k) for n in _layers(plan, sc) for k in plan.backfill.partitions}
    loaded = set(PartitionSet.parse(sc.history)) | set(sc.partitions)
    todo = [(n, k) for n in layers for k in plan.backfill.partitions]
    seen, stale = set(todo), []
    while todo:
        for cell in readers(pipeline, *todo.pop()):
            if cell in seen or cell[1] not in loaded:
                continue
            seen.add(cell)
            todo.append(cell)
            if cell not in rebuilt:
                stale.append(cell)
    return sorted(stale)


def rule_range(plan: Plan, sc: Scenario) -> RuleResult:
    """Design step 1: the plan targets exactly the broken partitions of exactly the broken
    layers, no more and no fewer (a healthy layer rebuilt makes its readers stale)."""
    want = set(sc.partitions)
    got = set(plan.backfill.partitions)
    missing, extra = sorted(want - got), sorted(got - want)
    if missing and extra:
        return _fail("range", f"The range {plan.backfill.partitions} misses "
                     f"{PartitionSet.parse(missing)} and touches {PartitionSet.parse(extra)}.",
                     "Broken partitions stay broken while healthy ones are rewritten for nothing.",
                     f"target exactly {sc.partitions}.")
    if missing:
        return _fail("range", f"The range {plan.backfill.partitions} leaves "
                     f"{PartitionSet.parse(missing)} unfilled.",
                     "Those partitions stay empty or wrong, and everything reading them inherits "
                     "the hole.", f"cover exactly {sc.partitions}.")
    if extra:
        return _fail("range", f"The range {plan.backfill.partitions} also rewrites "
                     f"{len(extra)} healthy partitions ({PartitionSet.parse(extra)}).",
                     "Every extra partition is risk with no benefit: more load, more to "
                     "validate, and a chance to break what worked.",
                     f"narrow it to exactly {sc.partitions}.")
    healthy = [n for n in _layers(plan, sc) if n in _all_layers(sc) and n not in sc.layers]
    if healthy:
        stale = made_stale(plan, sc, healthy)
        by_layer = {n: [k for m, k in stale if m == n] for n in dict.fromkeys(m for m, _ in stale)}
        said = "; ".join(f"{n} {PartitionSet.parse(keys)}" for n, keys in by_layer.items())
        return _fail("range", f"The plan also rebuilds the healthy {', '.join(healthy)} "
                     f"of {plan.backfill.partitions} (only {', '.join(sc.layers)} broke).",
                     f"That rewrites partitions nobody needed rewritten and makes "
                     f"{len(stale)} partitions outside the plan stale"
                     + (f" ({said}): they were built from the rows it replaces." if stale
                        else "."),
                     f"set layers: {list(sc.layers)}.")
    return _ok("range", f"exactly the {len(want)} broken partitions ({sc.partitions}) of "
                        f"{', '.join(sc.layers)}.")


def _window_reads_within(plan: Plan, sc: Scenario) -> bool:
    """Does a layer in the plan read earlier partitions of another layer in the plan?"""
    pipeline = CATALOG.get("late_features" if sc.late else "daily_features")
    layers = set(_layers(plan, sc))
    for name in layers:
        for dep in pipeline.layer(name).depends_on:
            if dep.layer in layers and isinstance(dep.mapping, TrailingWindow):
                return True
    return False


def rule_order(plan: Plan, sc: Scenario) -> RuleResult:
    """Design step 1: oldest partition first wherever a layer reads earlier partitions."""
    if plan.backfill.order == "ascending":
        return _ok("order", "oldest partition first, so each day's inputs exist before the "
                            "days that read them.")
    if not _window_reads_within(plan, sc) and not sc.late:
        return _ok("order", "descending is harmless here: no layer in this backfill reads "
                            "earlier partitions of another layer in it.")
    return _fail("order", "The plan runs newest first (order: descending).",
                 "A layer with a trailing window (features reads 7 days of staging) then waits "
                 "on, or reads, days that are not rebuilt yet.",
                 "use order: ascending.")


def rule_dependencies(plan: Plan, sc: Scenario) -> RuleResult:
    """Mistake: ignoring dependencies. Every broken layer, listed upstream first."""
    listed = _layers(plan, sc)
    upstream_first = [n for n in _all_layers(sc) if n in listed]
    unknown = [n for n in listed if n not in _all_layers(sc)]
    if unknown:
        return _fail("dependencies", f"The plan names layers that do not exist: {unknown}.",
                     "A backfill of a layer nobody has cannot refill anything.",
                     f"use the pipeline's layers {list(_all_layers(sc))}.")
    missing = [n for n in sc.layers if n not in listed]
    if missing:
        return _fail("dependencies", f"The plan leaves out broken layers {missing}.",
                     "Downstream layers would be rebuilt from upstream partitions that are "
                     "still missing, or stay broken themselves.",
                     f"include {list(sc.layers)} (upstream first).")
    if listed != upstream_first:
        return _fail("dependencies", f"The layers are listed downstream first ({listed}).",
                     "Running downstream before upstream builds features from partitions that "
                     "are not there yet.",
                     f"list them upstream to downstream: {upstream_first}.")
    return _ok("dependencies", f"layers {listed}, upstream before downstream for each day.")


def rule_concurrency(plan: Plan, sc: Scenario) -> RuleResult:
    """Design step 3: a concurrency cap within the warehouse's capacity."""
    cap = plan.backfill.concurrency
    if cap is None:
        return _fail("concurrency", "The plan sets no concurrency cap (unlimited parallelism).",
                     f"Every step would hit the warehouse at once; it takes {sc.capacity} "
                     "concurrent writes, so the rest are throttled and fail.",
                     f"set concurrency between 1 and {sc.capacity}, and watch throughput.")
    if cap > sc.capacity:
        return _fail("concurrency", f"concurrency {cap} is above the warehouse's capacity of "
                     f"{sc.capacity}.", "The excess writes are throttled and fail, burning "
                     "retries and slowing everyone else on the warehouse.",
                     f"set concurrency to at most {sc.capacity}.")
    return _ok("concurrency", f"at most {cap} in flight, within the warehouse's capacity of "
                              f"{sc.capacity}.")


def rule_idempotent_writes(plan: Plan, sc: Scenario) -> RuleResult:
    """Design step 2: a write mode that makes a rerun harmless (overwrite, or
    merge on keys)."""
    mode = plan.backfill.mode
    if mode == "append":
        return _fail("idempotent_writes", "The plan appends (mode: append).",
                     "A retry or a rerun adds the partition's rows again: duplicates that "
                     "inflate every count downstream.",
                     "use mode: overwrite (replace the partition) or merge (upsert on keys).")
    if mode == "merge" and not plan.backfill.merge_keys:
        return _fail("idempotent_writes", "mode: merge without merge_keys.",
                     "A merge needs the keys that identify a row, or it cannot match rows on "
                     "a rerun.", f"add merge_keys: {list(sc.merge_keys)}.")
    return _ok("idempotent_writes", f"mode {mode}: rerunning a partition gives the same rows.")


def rule_retries(plan: Plan, sc: Scenario) -> RuleResult:
    """Transient failures are retried, a few times (1 to ``MAX_RETRIES``)."""
    n = plan.backfill.retries
    if n < 1:
        return _fail("retries", "The plan has no retries (retries: 0).",
                     "One transient hiccup (a timeout, a busy warehouse) fails the partition "
                     "and skips everything downstream of it.",
                     "set retries: 1-3 (with backoff, the engine's default).")
    if n > MAX_RETRIES:
        return _fail("retries", f"retries: {n} is a lot.",
                     "Retrying a real failure that many times hides it and keeps load on the "
                     "warehouse.", f"keep retries between 1 and {MAX_RETRIES}.")
    return _ok("retries", f"{n} retries with backoff absorb transient failures.")


def rule_validations(plan: Plan, sc: Scenario) -> RuleResult:
    """Design step 4: at least three per-partition checks, including the one this
    incident needs, with row-count bounds a healthy day passes."""
    v = plan.validations
    enabled = v.enabled
    if not enabled:
        return _fail("validations", "The plan has no validations.",
                     "Bad data (nulls, duplicates, missing rows, drift) would be written and "
                     "read downstream without anyone noticing.",
                     "add per-partition checks: row_count, null_rate, unique_keys, drift, "
                     "downstream_read.")
    missing = [c for c in sc.required_checks if c not in enabled]
    if missing:
        return _fail("validations", f"The checks leave out {missing}.",
                     f"This incident is exactly what {missing[0]} catches; without it you "
                     "cannot prove the fix.", f"add {missing[0]} to validations.")
    idle = never_fails(plan, sc)
    if idle:
        return _fail("validations", f"{idle[0]}, so it cannot catch what it is for.",
                     "A check that passes the partitions it should stop proves nothing: the "
                     "plan would mark bad data valid.",
                     "set each check's limits from the healthy days (see the incident's facts).")
    if len(enabled) < 3:
        return _fail("validations", f"Only {len(enabled)} check(s) per partition: {enabled}.",
                     "One or two checks leave whole kinds of bad data unseen.",
                     "use at least three of the five checklist items.")
    rc = v.row_count
    if rc is not None and not sc.late and rc.min is not None and rc.min > 0.95 * sc.entities:
        return _fail("validations", f"row_count min {rc.min} is above what a healthy day has "
                     f"(about {int(sc.entities * 0.98)} rows).",
                     "Every correct partition would be marked invalid.",
                     "set bounds around the real daily count (compare recent partitions).")
    if rc is not None and not sc.late and rc.max is not None and rc.max < 0.95 * sc.entities:
        return _fail("validations", f"row_count max {rc.max} is below what a healthy day has "
                     f"(about {int(sc.entities * 0.98)} rows).",
                     "Every correct partition would be marked invalid.",
                     "set bounds around the real daily count (compare recent partitions).")
    return _ok("validations", f"{len(enabled)} checks per partition: {', '.join(enabled)}.")


#: the smallest shift a drift check must catch: a PSI of 1 is four times what the workbook calls
#: a major shift (0.25), and a KS of 0.5 means half of one day's values lie beyond the other's
MAX_PSI, MAX_KS = 1.0, 0.5


def never_fails(plan: Plan, sc: Scenario) -> list[str]:
    """The plan's checks that cannot catch what they are for, each said in a few words: a row
    count that passes a day which lost 60% of its rows, a null rate that passes half the values
    null, a drift check that passes a shift of PSI 1 and KS 0.5 (or compares a table with
    itself, or measures only keys), a consumer query that does not read the partition.

    >>> from backfill_lab.course.scenarios import scenario
    >>> never_fails(Plan.load({"pipeline": "daily_features", "partitions": "2024-12-01",
    ...     "validations": {"row_count": {"min": 0}, "null_rate": {"max": 1}}}), scenario("ex1"))
    ['row_count passes a day that lost 60% of its rows', 'null_rate passes a day with half \
its values null']
    """
    v, out = plan.validations, []
    rc, lost = v.row_count, 0.4 * 0.98 * sc.entities  # what is left of a healthy day
    if rc is not None and ((rc.min or 0) <= 0 and rc.max is None and rc.relative is None
                           if sc.late else (rc.min or 0) <= lost
                           and (rc.relative is None or rc.relative >= 0.6)):
        out.append("row_count passes a day that lost 60% of its rows")
    if v.null_rate is not None and v.null_rate.max >= 0.5:
        out.append("null_rate passes a day with half its values null")
    d, written = v.drift, plan.backfill.target or sc.layers[-1]
    if d is not None and (d.max_psi is None or d.max_psi > MAX_PSI) and \
            (d.max_ks is None or d.max_ks >= MAX_KS):
        out.append(f"drift passes a shift of PSI {MAX_PSI:g} and KS {MAX_KS:g}")
    elif d is not None and d.baseline in (written, sc.features_table if written == "features"
                                          else written):
        out.append(f"drift compares {written} with itself (its baseline is {d.baseline})")
    elif d is not None and d.columns and all(c == "date" or c.endswith("_id") for c in d.columns):
        out.append("drift measures only key columns")
    q = v.downstream_read.query if v.downstream_read is not None else None
    if q is not None and not ("{table}" in q and "$partition" in q):
        out.append("downstream_read's query does not read the partition ({table} and "
                   "$partition)")
    return out


def rule_rollback(plan: Plan, sc: Scenario) -> RuleResult:
    """A way back: a snapshot before writing in place, or a versioned target that
    readers are switched to (the view they read) only after validation."""
    rb, target, sw = plan.rollback, plan.backfill.target, plan.switchover
    default = sc.features_table
    if rb is None:
        return _fail("rollback", "The plan has no rollback.",
                     "If validation fails after writing, there is no way back to the last good "
                     "state.", "add rollback: {strategy: snapshot} (in place) or a versioned "
                     "target with rollback: {strategy: previous_version}.")
    in_place = target is None or target == default
    if rb.strategy == "previous_version" and in_place:
        return _fail("rollback", "rollback: previous_version, but the plan overwrites in place.",
                     "There is no previous version to go back to once its partitions are "
                     "overwritten.", "write to a versioned target (e.g. target: features_v2) "
                     "with a switchover, or use rollback: {strategy: snapshot}.")
    if not in_place and sw is None:
        return _fail("rollback", f"The plan writes {target} but never switches readers to it.",
                     "Downstream keeps reading the old data, and nothing says when the new "
                     "version is safe to use.",
                     "add switchover: {view: features, when: validated}.")
    if sc.versioned and sw is not None and sw.view != "features":
        return _fail("rollback", f"switchover.view {sw.view!r} is not the view readers use.",
                     "Readers query 'features'; switching another name changes nothing for "
                     "them.", "set switchover: {view: features, when: validated}.")
    how = "snapshot of the targeted partitions before writing" if rb.strategy == "snapshot" \
        else f"readers switch to {target} only after validation and can be pointed back"
    return _ok("rollback", how + ".")


def rule_code_version(plan: Plan, sc: Scenario) -> RuleResult:
    """Mistake: mixing code versions. The plan pins the deployed code version."""
    if plan.code_version is None:
        return _fail("code_version", "The plan does not pin a code version.",
                     "A deploy in the middle of the backfill would mix outputs of two versions "
                     "in one range.", f"set code_version: {sc.code_version} (the version that "
                     "should produce the output).")
    if plan.code_version != sc.code_version:
        return _fail("code_version", f"code_version {plan.code_version} is not the deployed "
                     f"{sc.code_version}.", "The backfill would refuse to start, or mix "
                     "versions if forced.", f"pin code_version: {sc.code_version}.")
    return _ok("code_version", f"pinned to {sc.code_version} for the whole range.")


def rule_lineage(plan: Plan, sc: Scenario) -> RuleResult:
    """Design step 5: audit tags on every write, so the ledger says who rewrote what
    and why."""
    if not plan.audit_tags or not any(  # {x: ''} or a zero-width space names nobody
            any(ch.isalnum() for ch in v) for v in plan.audit_tags.values()):
        return _fail("lineage", "The plan records no audit tags.",
                     "Months later nobody can tell why these partitions were rewritten, by "
                     "whom, or under which ticket.",
                     "add lineage: {audit_tags: {ticket: INC-1234, owner: your-team}}.")
    tags = ", ".join(f"{k}={v}" for k, v in plan.audit_tags.items())
    return _ok("lineage", f"every write is tagged ({tags}) and recorded in the ledger.")


Rule = Callable[[Plan, Scenario], RuleResult]
CHECKLIST: dict[str, Rule] = {
    "range": rule_range,
    "order": rule_order,
    "dependencies": rule_dependencies,
    "concurrency": rule_concurrency,
    "idempotent_writes": rule_idempotent_writes,
    "retries": rule_retries,
    "validations": rule_validations,
    "rollback": rule_rollback,
    "code_version": rule_code_version,
    "lineage": rule_lineage,
}
LATE_RULES: dict[str, Rule] = {
    "watermark": rule_watermark,
    "reprocess_window": rule_reprocess_window,
    "merge_keys": rule_merge_keys,
}
RULES: dict[str, Rule] = {**CHECKLIST, **LATE_RULES}


def rule_names(sc: Scenario) -> list[str]:
    """The checklist rules that apply to a scenario, in report order."""
    return list(CHECKLIST) + (list(LATE_RULES) if sc.late else [])


def judge(plan: Plan, sc: Scenario) -> list[RuleResult]:
    """Every applicable rule's verdict on ``plan``."""
    return [RULES[name](plan, sc) for name in rule_names(sc)]
