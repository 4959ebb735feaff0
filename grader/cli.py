"""``backfill-grader`` (also ``python -m grader``): parses a command line and forwards it.

    backfill-grader grade PATH... --out DIR [--exercise ID] [--jobs N] [--timeline FILE]
                                           [--cell-timeout S] [--timeout S] [--judge-seconds S] ...
    backfill-grader merge DIR... --out DIR
    backfill-grader report DIR... [--out DIR]
    backfill-grader assign [--check]
    backfill-grader release --out DIR

Each command is a keyword-only ``main()`` (:func:`grader.batch.main`, :func:`grader.merge.main`,
:func:`grader.classreport.main`, :func:`grader.assign.main`, :func:`grader.release.main`); the
defaults live there and in the limits objects (:class:`grader.execute.Limits`,
:class:`grader.judge.JudgeLimits`), never here: an option not given is not passed on. Exit code
0 when every submission got its row (whatever its score), 2 on a usage error.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backfill_lab.cli.parse import OneLineParser, UsageError
from backfill_lab.course import registry

from .execute import Limits
from .judge import JudgeLimits

__all__ = ["main"]

PROG = "backfill-grader"
COMMANDS = ("grade", "merge", "report", "assign", "release")
#: The limits objects whose fields are options of ``grade``, and each one's option prefix.
LIMITS: tuple[tuple[type[Any], str], ...] = ((Limits, ""), (JudgeLimits, "judge-"))
#: What an option means (its default is read from its limits object, never written here).
MEANING = {
    "cell-timeout": "seconds a cell may run before it is interrupted",
    "timeout": "hard limit per notebook in seconds, enforced from outside the kernel",
    "max-output": "bytes of output kept per cell",
    "max-extract": "bytes of answers read back from the kernel",
    "max-notebook-output": "bytes of output (every message the kernel sends) kept per notebook",
    "memory-mb": "memory a kernel may use, in MB (its address space)",
    "max-procs": "processes and threads a kernel may run at once",
    "max-log": "bytes of the kernel's own stdout/stderr kept",
    "judge-seconds": "seconds judging one plan may take",
    "judge-memory-mb": "MB of memory judging one plan may take",
}


def _number(option: str, kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: the text as ``kind``, or a one-line usage error naming ``option``."""
    def parse(text: str) -> int | float:
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise UsageError(f"'{option}' must be {what} (got {text!r})") from None

    return parse


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"'jobs' must be an integer >= 1 (got {text!r})")
    return int(text)


def _parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Grade Safe Backfills notebooks.")
    parser.commands = COMMANDS
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    g = sub.add_parser("grade", help="grade notebooks (files or folders)")
    g.add_argument("paths", nargs="+", metavar="PATH")
    g.add_argument("--out", required=True, help="folder for results and gradebook.csv")
    g.add_argument("--exercise", help=f"override the notebooks' exercise id "
                                      f"({', '.join(registry.IDS)})")
    g.add_argument("--jobs", type=_jobs,
                   help="kernels run at once (default: one per two cores); as many judges "
                        "run beside them, so a plan is judged while the next notebooks run")
    g.add_argument("--timeline", metavar="FILE",
                   help="write when each phase of the batch ran to FILE (JSON lines)")
    for cls, prefix in LIMITS:
        for f in dataclasses.fields(cls):
            option = f"{prefix}{f.name.replace('_', '-')}"
            kind = int if isinstance(f.default, int) and not isinstance(f.default, bool) \
                else float
            g.add_argument(f"--{option}", dest=f"{cls.__name__}.{f.name}",
                           type=_number(option, kind), metavar="N",
                           help=f"{MEANING.get(option, option)} (default {f.default})")
    m = sub.add_parser("merge", help="build one gradebook from several result folders")
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True)
    rp = sub.add_parser("report", help="rebuild the class report (report.html) from results")
    rp.add_argument("dirs", nargs="+", metavar="DIR")
    rp.add_argument("--out", help="folder of report.html (default: the first DIR)")
    a = sub.add_parser("assign", help="generate exercises/ from solutions/")
    a.add_argument("--check", action="store_true", help="only report stale exercises")
    r = sub.add_parser("release", help="build the student bundle (no solutions, no key)")
    r.add_argument("--out", required=True)
    return parser


def _limits(args: Any, cls: type[Any]) -> Any:
    """``cls`` built from the options given (the others keep ``cls``'s defaults)."""
    given = {f.name: value for f in dataclasses.fields(cls)
             if (value := getattr(args, f"{cls.__name__}.{f.name}")) is not None}
    try:
        return cls(**given)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``backfill-grader``; returns the exit code."""
    before = os.environ.get("BACKFILL_LAB_GRADING")
    os.environ["BACKFILL_LAB_GRADING"] = "1"  # nothing the grader runs records progress
    try:
        return _main(argv)
    finally:
        if before is None:
            os.environ.pop("BACKFILL_LAB_GRADING", None)
        else:
            os.environ["BACKFILL_LAB_GRADING"] = before


def _main(argv: Sequence[str] | None) -> int:
    from .grade import PROJECT_ROOT

    try:
        args = _parser().parse_args(argv)
        if args.command == "grade":
            from .batch import main as grade_main

            return grade_main(paths=args.paths, out=args.out, exercise=args.exercise,
                              jobs=args.jobs, limits=_limits(args, Limits),
                              judging=_limits(args, JudgeLimits), timeline=args.timeline)
        if args.command == "merge":
            from .merge import main as merge_main

            return merge_main(dirs=args.dirs, out=args.out)
        if args.command == "report":
            from .classreport import main as report_main

            return report_main(dirs=args.dirs, out=args.out)
        if args.command == "assign":
            from .assign import main as assign_main

            return assign_main(solutions=PROJECT_ROOT / "solutions",
                               exercises=PROJECT_ROOT / "exercises", check=args.check)
        from .release import main as release_main

        return release_main(out=Path(args.out), root=PROJECT_ROOT)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
