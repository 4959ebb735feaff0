"""``backfill-lab``: the engine from a terminal, mirroring the guide's pseudocode commands.

    backfill-lab demo --db lab.duckdb
    backfill-lab status --db lab.duckdb
    backfill-lab backfill --db lab.duckdb --partitions 2024-12-01..2024-12-31 \\
        --max-parallel 2 --write-mode overwrite --retries 2

Bad arguments get one line on stderr and exit code 2; a backfill that ran but left failed steps
exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb

from .._yaml import shorten
from ..clock import FixedClock
from ..course.selfcheck import check
from ..demo.daily import DEMO_HISTORY, DEMO_OUTAGE, build_demo, check_days, demo_pipeline
from ..display.grid import grid_states, render_text
from ..errors import BackfillLabError, ConfigError, SwitchoverBlocked, UnknownNameError
from ..export import TOOLS
from ..ledger import Ledger, RunStatus, StepStatus
from ..options import CLI, WRITE_MODES, BackfillOptions, integer
from ..partitions import ORDERS, PartitionSet, parse_key
from ..plan import Plan
from ..planrun import run_plan
from ..runner import BackfillRunner, StepEvent
from ..scheduler import Scheduler
from ..snapshots import restore
from ..validations import (
    DownstreamRead,
    Drift,
    NullRate,
    RowCount,
    UniqueKeys,
    Validations,
    validate,
)
from ..versions import point_view, rollback_view, switch_view
from ..warehouse import Warehouse
from .guard import check_path, guarded, open_warehouse, pipelines_of, refuse
from .parse import OneLineParser, UsageError

__all__ = ["main"]

PROG = "backfill-lab"


def _positive(name: str, minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, worded as every integer option is."""
    def parse(text: str) -> int:
        try:
            return integer(name, text, minimum)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    return parse


def _share(name: str, upper: float | None = 1.0) -> Callable[[str], float]:
    """An argparse type: a number from 0 to ``upper`` (no upper bound when None)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
            bound = f"in [0, {upper:g}]" if upper is not None else ">= 0"
            raise UsageError(f"'{name}' must be a number {bound} (got {text!r})")
        return value

    return parse


def _tags(values: Sequence[str] | None) -> dict[str, str]:
    tags = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"'--audit-tag' must look like KEY=VALUE (got {item!r})")
        tags[key] = value
    return tags


def _parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG,
                           description="Backfill partitioned pipelines safely, on DuckDB.")
    parser.commands = _COMMANDS
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    demo = sub.add_parser("demo", help="build the demo warehouse with a staged outage")
    demo.add_argument("--db", required=True, help="DuckDB file to create")
    demo.add_argument("--history", default=DEMO_HISTORY, help="partitions the scheduler ran")
    demo.add_argument("--outage", default=DEMO_OUTAGE,
                      help="partitions whose scheduled runs failed ('none' for no outage)")
    demo.add_argument("--seed", type=_positive("seed", 0), default=7)
    demo.add_argument("--entities", type=_positive("entities", 1), default=1000)
    demo.add_argument("--events-per-day", type=_positive("events-per-day", 1), default=4000)
    demo.add_argument("--force", action="store_true", help="replace an existing file")

    bf = sub.add_parser("backfill", help="backfill a range of partitions of the demo pipeline")
    bf.add_argument("--db", required=True)
    bf.add_argument("--partitions", required=True,
                    help="'2024-12-01..2024-12-31', a key, or a comma-separated list")
    bf.add_argument("--layers", help="comma-separated layers (default: all, upstream first)")
    bf.add_argument("--order", default="ascending", choices=list(ORDERS))
    bf.add_argument("--max-parallel", default=1, help="steps in flight at most (default 1)")
    bf.add_argument("--write-mode", default="overwrite", choices=list(WRITE_MODES))
    bf.add_argument("--merge-keys", help="comma-separated keys, required with merge")
    bf.add_argument("--retries", default=0, help="extra attempts per step (default 0)")
    bf.add_argument("--batch-size", default=1,
                    help="partitions per transaction (overwrite only; default 1)")
    bf.add_argument("--target", help="table for the last layer, e.g. features_v2")
    bf.add_argument("--code-version", help="pin this code version (default: the deployed one)")
    bf.add_argument("--config-hash", help="pin the config, e.g. sha256:1a2b3c4d (see demo)")
    bf.add_argument("--runtime", help="pin the runtime, e.g. 'python 3.11 / duckdb 2.0.1'")
    bf.add_argument("--feature-version", choices=["v1", "v2"],
                    help="feature definition to run (default: the demo's)")
    bf.add_argument("--backfill-id", help="name the backfill; reuse it to resume")
    bf.add_argument("--audit-tag", action="append", metavar="KEY=VALUE",
                    help="tag recorded with every write (repeatable)")
    bf.add_argument("--dry-run", action="store_true", help="print the ordered steps only")
    bf.add_argument("--quiet", action="store_true", help="no line per step")

    bf.add_argument("--validate", action="store_true",
                    help="run the recommended checks on each partition of the last layer")
    bf.add_argument("--drift-baseline", help="table to compare distributions with (--validate)")

    va = sub.add_parser("validate", help="run the per-partition checklist on a table")
    va.add_argument("--db", required=True)
    va.add_argument("--table", required=True)
    va.add_argument("--partitions", required=True)
    va.add_argument("--row-min", type=_positive("row-min", 0))
    va.add_argument("--row-max", type=_positive("row-max", 0))
    va.add_argument("--null-max", type=_share("null-max"), default=0.01)
    va.add_argument("--unique-keys", default="entity_id,date")
    va.add_argument("--drift-baseline", help="table whose same partition is the baseline "
                    "(default: the previous 7 partitions)")
    va.add_argument("--max-psi", type=_share("max-psi", upper=None), default=0.2)

    sw = sub.add_parser("switchover", help="point a view at a validated version")
    sw.add_argument("--db", required=True)
    sw.add_argument("--view", required=True)
    sw.add_argument("--to", required=True, help="table to expose, e.g. features_v2")
    sw.add_argument("--partitions", help="expose only these partitions of --to")
    sw.add_argument("--canary-max-psi", type=_share("canary-max-psi", upper=None), default=0.2,
                    help="largest distribution shift the canary comparison accepts")
    sw.add_argument("--create", action="store_true",
                    help="create the view over --to without checks (the initial set-up)")

    rb = sub.add_parser("rollback", help="point a view back, or restore a snapshot")
    rb.add_argument("--db", required=True)
    target = rb.add_mutually_exclusive_group(required=True)
    target.add_argument("--view", help="undo the view's last switch")
    target.add_argument("--snapshot", help="restore this snapshot id exactly")

    ck = sub.add_parser("check", help="judge a plan against an exercise's checklist")
    ck.add_argument("plan", help="plan YAML file")
    ck.add_argument("--exercise", default="ex1", help="ex1, ex2 or mini_challenge")
    ck.add_argument("--no-simulate", action="store_true", help="rules only, no simulation")

    rn = sub.add_parser("run", help="run a plan on a warehouse")
    rn.add_argument("plan", help="plan YAML file")
    rn.add_argument("--db", required=True)
    rn.add_argument("--quiet", action="store_true", help="no line per step")
    rn.add_argument("--backfill-id", help="name this run (default plan-START); reuse it to "
                    "resume, or give an edited plan a new one")

    ex = sub.add_parser("export", help="print the matching orchestrator commands")
    ex.add_argument("plan", help="plan YAML file")
    ex.add_argument("--to", required=True, choices=list(TOOLS))

    sc = sub.add_parser("schedule", help="run the scheduler over a simulated period")
    sc.add_argument("--db", required=True)
    sc.add_argument("--start", required=True, help="first partition the schedule owns")
    sc.add_argument("--until", required=True, help="simulate until this time, e.g. 2025-01-08")
    sc.add_argument("--schedule", default="daily 02:00 UTC")
    sc.add_argument("--no-catchup", action="store_true", help="run only the latest interval")
    sc.add_argument("--watermark-delay", default="0d", help="e.g. 2d")
    sc.add_argument("--reprocess-window", type=_positive("reprocess-window", 0), default=0)
    sc.add_argument("--write-mode", default="overwrite", choices=list(WRITE_MODES))
    sc.add_argument("--max-parallel", default=1, help="steps in flight at most (default 1)")

    st = sub.add_parser("status", help="print the partition grid and the latest backfills")
    st.add_argument("--db", required=True)
    st.add_argument("--partitions", help="range to show (default: everything present)")
    st.add_argument("--backfill-id", help="print this backfill's ledger")
    return parser


_COMMANDS = ("demo", "backfill", "validate", "switchover", "rollback", "check", "run",
             "export", "schedule", "status")


def _cmd_demo(args: argparse.Namespace) -> int:
    path = check_path(args.db)
    check_days(PartitionSet.parse(args.history))  # checked before any file is touched
    if args.outage.lower() != "none":
        PartitionSet.parse(args.outage)
    if path.is_dir():
        raise UsageError(f"{shorten(args.db)} is a directory; give a file such as "
                         f"{str(path / 'lab.duckdb')!r}")
    if path.exists():
        if not args.force:
            raise UsageError(f"{args.db!r} already exists; pass --force to replace it")
        path.unlink()
        Path(f"{args.db}.wal").unlink(missing_ok=True)
    outage = None if args.outage.lower() == "none" else args.outage
    with Warehouse(args.db) as wh:
        pipeline, runs = build_demo(wh, history=args.history, outage=outage, seed=args.seed,
                                    entities=args.entities, events_per_day=args.events_per_day)
        print(f"built {args.db}: pipeline {pipeline.name} ({' -> '.join(pipeline.layer_names)}), "
              f"code version {pipeline.code_version}, config {pipeline.config_hash}, runtime "
              f"{pipeline.runtime}, {len(runs)} scheduled runs, outage {outage or 'none'}")
        print(render_text(grid_states(wh, pipeline.layer_names, args.history, pipeline=pipeline)))
    return 0


def _print_event(event: StepEvent) -> None:
    """One line per finished attempt (``--quiet`` turns these off)."""
    if event.status == StepStatus.RUNNING:
        return
    detail = f"{event.rows} rows" if event.rows is not None else (event.error or "")
    print(f"{event.status:<9} {event.layer:<9} {event.partition}  attempt {event.attempt}  "
          f"{detail}", flush=True)


def _options(args: argparse.Namespace) -> BackfillOptions:
    """The backfill's options from its flags, checked before the warehouse is opened."""
    if args.merge_keys and args.write_mode != "merge":  # silently ignored before
        raise UsageError(f"'--merge-keys' is for '--write-mode merge' (got --write-mode "
                         f"{args.write_mode}); add --write-mode merge, or drop --merge-keys")
    return BackfillOptions.parse({
        "layers": args.layers, "order": args.order, "concurrency": args.max_parallel,
        "retries": args.retries, "mode": args.write_mode, "merge_keys": args.merge_keys,
        "target": args.target, "batch_size": args.batch_size,
        "code_version": args.code_version, "config_hash": args.config_hash,
        "runtime": args.runtime}, spelling=CLI)


def _cmd_backfill(args: argparse.Namespace) -> int:
    options = _options(args)
    if args.drift_baseline is not None and not args.validate:
        raise UsageError("'--drift-baseline' sets the baseline of --validate's drift check; "
                         "add --validate, or drop --drift-baseline")
    tags = _tags(args.audit_tag)
    with open_warehouse(args.db) as wh:
        pipeline = demo_pipeline(wh, feature_version=args.feature_version)
        runner = BackfillRunner(
            pipeline, wh, args.partitions, options, backfill_id=args.backfill_id,
            audit_tags=tags,
            on_event=None if args.quiet or args.dry_run else _print_event,
            validations=Validations.recommended(baseline=args.drift_baseline)
            if args.validate else None,
        )
        if args.dry_run:
            plan = runner.dry_run()
            print(plan.to_string(index=False))
            print(f"dry run: {len(plan)} steps, nothing written")
            return 0
        result = runner.run()
        counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()) if n)
        print(f"backfill {result.backfill_id}: {result.status} ({counts}; "
              f"at most {result.max_in_flight} in flight; {result.seconds:.1f}s)")
        if result.resumed:
            print(f"resumed: {result.resumed} partition writes had already succeeded and were "
                  f"not rerun")
        for note in result.notes:
            print(f"note: {note}")
        return 0 if result.ok else 1


def _cmd_validate(args: argparse.Namespace) -> int:
    with open_warehouse(args.db) as wh:
        if not wh.has_table(args.table):
            raise UnknownNameError.of("table", args.table, wh.tables())
        checks = Validations(
            RowCount(min=args.row_min, max=args.row_max) if args.row_min is not None
            or args.row_max is not None else RowCount.near_trailing_mean(),
            NullRate(max=args.null_max),
            UniqueKeys(tuple(args.unique_keys.split(","))) if args.unique_keys else None,
            Drift(baseline=args.drift_baseline, max_psi=args.max_psi),
            DownstreamRead(),
        )
        report = validate(wh, args.table, args.partitions, checks)
        print(report)
        return 0 if report.passed else 1


def _cmd_switchover(args: argparse.Namespace) -> int:
    with open_warehouse(args.db) as wh:
        if not wh.has_table(args.to):  # a typo, not a table that is not ready yet
            raise UnknownNameError.of("table", args.to, wh.tables())
        if args.create:
            state = point_view(wh, args.view, args.to)
        else:
            try:
                state = switch_view(wh, args.view, args.to, partitions=args.partitions,
                                    max_psi=args.canary_max_psi)
            except SwitchoverBlocked as exc:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return 1
        print(f"view {state}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    with open_warehouse(args.db) as wh:
        if args.view:
            print(f"view {rollback_view(wh, args.view)}")
        else:
            report = restore(wh, args.snapshot)
            print(report.to_string(index=False))
            print(f"restored snapshot {args.snapshot}: {len(report)} partitions, checksums equal")
    return 0


def _plan_file(path: str) -> Plan:
    return Plan.load(Path(path))


def _cmd_check(args: argparse.Namespace) -> int:
    plan = _plan_file(args.plan)
    report = check(plan, args.exercise, simulate_outcomes=not args.no_simulate)
    print(report)
    return 0 if report.passed else 1


def _cmd_run(args: argparse.Namespace) -> int:
    plan = _plan_file(args.plan)
    bid = args.backfill_id or f"plan-{plan.backfill.partitions.start}"
    again = (f"; to run it as a new backfill, give it its own id: --backfill-id NAME "
             f"(this is {bid!r})")
    with open_warehouse(args.db) as wh:
        built = pipelines_of(wh)
        if built and plan.pipeline not in built:  # it would write the wrong tables' rows
            raise UsageError(f"the plan is for pipeline {plan.pipeline!r}, but warehouse "
                             f"{shorten(args.db)} was built by {', '.join(map(repr, built))}; "
                             f"set pipeline: {built[0]} (or use a warehouse of its own)")
        try:
            result = run_plan(plan, wh, backfill_id=bid,
                              on_event=None if args.quiet else _print_event)
        except ConfigError as exc:  # e.g. its snapshot ids are another run's
            raise UsageError(f"{exc}{again}") from None
        if result.backfill is None and result.error:  # refused before any step ran
            raise UsageError(f"{result.error}{again}")
        print(result)
        return 0 if result.ok else 1


def _cmd_export(args: argparse.Namespace) -> int:
    for line in _plan_file(args.plan).export(args.to):
        print(line)
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    concurrency = BackfillOptions.parse({"concurrency": args.max_parallel}, spelling=CLI)
    start = parse_key(args.start)
    try:
        until = dt.datetime.fromisoformat(args.until)
    except ValueError:
        raise UsageError(f"'until' must be a date or time like 2025-01-08 or "
                         f"2025-01-08T03:00 (got {shorten(args.until)})") from None
    if until < dt.datetime.fromisoformat(start):
        raise UsageError(f"'--until' {args.until} is before '--start' {args.start}; the "
                         f"scheduler runs from start until a later time")
    check_days(PartitionSet.range(start, max(start, parse_key(until.date()))))
    with open_warehouse(args.db) as wh:
        pipeline = demo_pipeline(wh)
        clock = FixedClock(dt.datetime.fromisoformat(start))
        scheduler = Scheduler(
            pipeline, wh, args.schedule, clock=clock, catchup=not args.no_catchup,
            watermark_delay=args.watermark_delay, reprocess_window=args.reprocess_window,
            mode=args.write_mode, start=start, concurrency=concurrency.concurrency,
            name="cli",
        )
        runs = scheduler.run_until(until)
        if runs.empty:
            print("no scheduled runs were due")
        else:
            cols = ["run_time", "partition", "reprocessed", "status"]
            print(runs[cols].to_string(index=False))
        return 0 if runs.empty or (runs["status"] != RunStatus.FAILED).all() else 1


def _cmd_status(args: argparse.Namespace) -> int:
    with open_warehouse(args.db) as wh:
        pipeline = demo_pipeline(wh)
        if args.partitions:
            partitions = PartitionSet.parse(args.partitions)
        else:
            keys = {k for t in wh.tables() for k in wh.partition_counts(t)}
            if not keys:
                print("no partitions yet")
                return 0
            partitions = PartitionSet.range(min(keys), max(keys))
        print(render_text(grid_states(wh, pipeline.layer_names, partitions, pipeline=pipeline)))
        ledger = Ledger(wh)
        if args.backfill_id:
            df = ledger.frame(args.backfill_id)
            cols = ["layer", "partition", "attempt", "status", "rows", "error"]
            print(df[cols].to_string(index=False))
        else:
            ids = [i for i in ledger.backfill_ids() if not i.startswith("scheduled-")]
            print("backfills: " + (", ".join(ids) if ids else "none yet"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``backfill-lab``; returns the exit code.

    A command refused with exit code 2 leaves its ``--db`` file as it was (see
    :mod:`backfill_lab.cli.guard`).
    """
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        return refuse(exc)
    return guarded(args, _dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; every refusal becomes one line and exit code 2, never a traceback."""
    handler = {"demo": _cmd_demo, "backfill": _cmd_backfill, "validate": _cmd_validate,
               "switchover": _cmd_switchover, "rollback": _cmd_rollback,
               "check": _cmd_check, "run": _cmd_run, "export": _cmd_export,
               "schedule": _cmd_schedule, "status": _cmd_status}
    try:
        return handler[args.command](args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly, as Unix tools do
        sys.stderr.close()
        return 0
    except (UsageError, BackfillLabError, OSError, UnicodeError, RecursionError, ValueError,
            duckdb.Error) as exc:
        return refuse(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
