"""``backfill-grader`` (also ``python -m grader``): a thin layer over keyword-only ``main()``s.

    backfill-grader grade PATH... --out DIR [--exercise ID] [--jobs N] [--cell-timeout S]
                                           [--timeout S]
    backfill-grader merge DIR... --out DIR
    backfill-grader assign [--check]
    backfill-grader release --out DIR

Exit code 0 when every submission got its row (whatever its score), 2 on a usage error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from backfill_lab.cli.parse import OneLineParser, UsageError
from backfill_lab.course.scenarios import EXERCISES
from backfill_lab.errors import did_you_mean

from . import score
from .execute import Limits, Sandbox, isolation
from .grade import PROJECT_ROOT, ProjectGuard, conclude, run_notebook, worker_lost
from .report import GradeResult, format_gradebook, output_name, write_gradebook, write_result
from .score import EXERCISE_IDS, TestResult, load_key

__all__ = ["grade_main", "main", "merge_main"]

PROG = "backfill-grader"
COMMANDS = ("grade", "merge", "assign", "release")


def _seconds(name: str):  # argparse type factory
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value <= 0:
            raise UsageError(f"'{name}' must be a number of seconds > 0 (got {text!r})")
        return value

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
                                      f"({', '.join(EXERCISE_IDS)})")
    g.add_argument("--jobs", type=_jobs, default=os.cpu_count() or 1)
    g.add_argument("--cell-timeout", type=_seconds("cell-timeout"), default=60.0)
    g.add_argument("--timeout", type=_seconds("timeout"), default=300.0,
                   help="hard limit per notebook, enforced from outside the kernel")
    m = sub.add_parser("merge", help="build one gradebook from several result folders")
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True)
    a = sub.add_parser("assign", help="generate exercises/ from solutions/")
    a.add_argument("--check", action="store_true", help="only report stale exercises")
    r = sub.add_parser("release", help="build the student bundle (no solutions, no key)")
    r.add_argument("--out", required=True)
    return parser


def _collect(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb")
                            if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {text!r}")
    if not found:
        raise UsageError(f"no notebooks found in {', '.join(map(repr, paths))}")
    return found


# worker state: set once per process, before any submission runs
_WORKER: dict[str, Any] = {}


def _init_worker(options: dict[str, Any]) -> None:
    _WORKER.update(options)
    _WORKER["guard"] = ProjectGuard(PROJECT_ROOT) if options["guard"] else None


def _run_one(path: str, name: str, sandbox: Sandbox) -> tuple[GradeResult, str | None]:
    return run_notebook(path, exercise=_WORKER["exercise"], limits=_WORKER["limits"],
                        key=_WORKER["key"], sandbox=sandbox, guard=_WORKER["guard"], name=name)


def _judge_one(exercise: str, plan_json: str, parts: list[dict[str, Any]]
               ) -> tuple[list[TestResult], float]:
    t0 = time.perf_counter()
    score.adopt(exercise, parts)
    tests = score.judge(exercise, plan_json)
    return tests, time.perf_counter() - t0


class _Progress:
    """A bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, result: GradeResult) -> None:
        self.done += 1
        line = (f"{result.submission}: {result.status} {result.score:g}/{result.max_score:g} "
                f"({result.duration:.1f}s)")
        if self.tty:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total} {line[:60]:<60}")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {line}\n")
        self.stream.flush()


def grade_main(*, paths: Sequence[str], out: str, exercise: str | None = None, jobs: int = 1,
               cell_timeout: float = 60.0, timeout: float = 300.0) -> int:
    """Grade every notebook under ``paths``; write results and the gradebook into ``out``."""
    if exercise is not None and exercise not in EXERCISE_IDS:
        raise UsageError(f"unknown exercise {exercise!r}; known: {', '.join(EXERCISE_IDS)}."
                         f"{did_you_mean(exercise, EXERCISE_IDS)}")
    files = _collect(paths)
    limits = Limits(cell_timeout=cell_timeout, timeout=timeout)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = load_key(PROJECT_ROOT)  # read before any learner code runs
    cache = Path(tempfile.mkdtemp(prefix="backfill-grader-cache-"))
    score.CACHE_DIR = cache  # forked workers inherit it
    taken: set[str] = set()
    names = [output_name(str(f), taken) for f in files]
    options = {"exercise": exercise, "limits": limits, "key": key, "guard": True}
    batch = _Batch(files, names, min(jobs, len(files)), out_dir, _Progress(len(files)))
    try:
        batch.run(options, _exercises_of(files, exercise) & set(EXERCISES),
                  lambda: isolation(PROJECT_ROOT, protect=(str(out_dir.resolve()),)))
    finally:
        score.CACHE_DIR = None
        shutil.rmtree(cache, ignore_errors=True)
    path = write_gradebook(batch.rows, out_dir)
    print(format_gradebook(path))
    return 0


class _Batch:
    """Runs a batch on ``workers`` processes, and nothing of the grader's own work before them.

    The pool starts at once and its first tasks build what judging needs (each exercise's
    reference truth and its staged incident, two independent tasks), while the sandbox probe
    runs here; kernels start as soon as the probe is done and a worker is free. A kernel's
    result comes back with its plan still to judge: each distinct plan is judged once, by the
    next free worker (ahead of further kernels, so results are not held back), and every
    submission with that plan gets the verdict.

    A worker that dies (a submission run without a sandbox can kill it) breaks the pool: a new
    one takes over, the submissions that were running are run again one at a time, and one
    that breaks the pool while running alone is recorded as an error. The batch goes on.
    """

    def __init__(self, files: Sequence[Path], names: Sequence[str], workers: int,
                 out_dir: Path, progress: _Progress) -> None:
        self.todo = deque(zip(files, names, strict=True))
        self.suspects: deque[tuple[Path, str]] = deque()  # running when a worker died
        self.workers = workers
        self.out_dir = out_dir
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.sandbox = Sandbox("none", "")
        self.probed = False
        self.running: dict[Future[Any], tuple[Any, ...]] = {}
        self.to_stage: deque[tuple[str, str]] = deque()  # (exercise, part) to build
        self.parts: dict[str, list[dict[str, Any]]] = {}  # exercise -> staged parts
        self.unstaged: dict[str, int] = {}  # exercise -> parts still being built
        self.verdicts: dict[tuple[str, str], list[TestResult]] = {}
        self.waiting: dict[tuple[str, str], list[tuple[GradeResult, str]]] = {}
        self.to_judge: deque[tuple[str, str]] = deque()  # plans whose staging is complete
        self.options: dict[str, Any] = {}

    def run(self, options: dict[str, Any], exercises: set[str],
            probe: Callable[[], Sandbox]) -> None:
        self.options = options
        for ex in sorted(exercises):
            self.unstaged[ex] = len(score.STAGING_PARTS)
            self.to_stage.extend((ex, part) for part in score.STAGING_PARTS)
        pool = self._pool()
        try:
            self._fill(pool)  # the first submit forks every worker (before any thread here)
            self.sandbox = probe()  # a subprocess: the workers stage meanwhile
            self.probed = True
            print(f"{PROG}: {self.sandbox.note}", file=sys.stderr)
            while True:
                broken = not self._fill(pool)
                if not self.running:
                    if not broken:
                        return
                else:
                    done, _ = wait(self.running, return_when=FIRST_COMPLETED)
                    broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done)
                    if not broken:
                        for fut in done:
                            self._take(fut, self.running.pop(fut))
                        continue
                pool.shutdown(wait=True)  # every task still running died with it
                self._recover()
                pool = self._pool()
        finally:
            pool.shutdown(wait=True)

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, initializer=_init_worker,
                                   initargs=(self.options,))

    def _fill(self, pool: ProcessPoolExecutor) -> bool:
        """Keep every worker busy: staging, then judging (a queued kernel would only wait
        behind it), then kernels once the sandbox is known; a suspect runs only alone.
        False when the pool turned out broken (the task is queued again)."""
        while len(self.running) < self.workers:
            if self.to_stage:
                ex, part = self.to_stage.popleft()
                task: tuple[Any, ...] = ("stage", ex, part)
                call: tuple[Any, ...] = (score.stage, ex, part)
            elif self.to_judge:
                ex, plan_json = self.to_judge.popleft()
                task = ("judge", ex, plan_json)
                call = (_judge_one, ex, plan_json, self.parts.get(ex, []))
            elif not self.probed:
                return True
            elif self.suspects and not self.running:
                path, name = self.suspects.popleft()
                task = ("run", name, path, True)
                call = (_run_one, str(path), path.name, self.sandbox)
            elif self.todo and not self.suspects:
                path, name = self.todo.popleft()
                task = ("run", name, path, False)
                call = (_run_one, str(path), path.name, self.sandbox)
            else:
                return True
            try:
                self.running[pool.submit(*call)] = task
            except BrokenProcessPool:
                self._requeue(task)
                return False
        return True

    def _requeue(self, task: tuple[Any, ...]) -> None:
        """Put a task that never ran back at the front of its queue."""
        if task[0] == "stage":
            self.to_stage.appendleft((task[1], task[2]))
        elif task[0] == "judge":
            self.to_judge.appendleft((task[1], task[2]))
        else:
            (self.suspects if task[3] else self.todo).appendleft((task[2], task[1]))

    def _recover(self) -> None:
        """After a worker died: keep what finished, queue again what was cut short."""
        for fut, task in list(self.running.items()):
            del self.running[fut]
            if not isinstance(fut.exception(), BrokenProcessPool):
                self._take(fut, task)
            elif task[0] == "run" and task[3]:  # it ran alone: it is what killed the worker
                self._finish(worker_lost(task[2], exercise=self.options["exercise"],
                                         key=self.options["key"]), task[1])
            elif task[0] == "run":
                self.suspects.append((task[2], task[1]))
            else:
                self._requeue(task)

    def _take(self, fut: Future[Any], task: tuple[Any, ...]) -> None:
        if task[0] == "stage":
            ex = task[1]
            with contextlib.suppress(Exception):  # a missing part is built where it is needed
                self.parts.setdefault(ex, []).append(fut.result())
            self.unstaged[ex] -= 1
            if self.unstaged[ex] == 0:
                self.to_judge.extend(k for k in self.waiting if k[0] == ex)
        elif task[0] == "run":
            result, plan_json = fut.result()
            if plan_json is None:
                self._finish(result, task[1])
                return
            plan = (str(result.exercise), plan_json)
            if plan in self.verdicts:
                conclude(result, self.verdicts[plan])
                self._finish(result, task[1])
                return
            if plan not in self.waiting and self.unstaged.get(plan[0], 0) == 0:
                self.to_judge.append(plan)
            self.waiting.setdefault(plan, []).append((result, task[1]))
        else:
            plan = (task[1], task[2])
            tests, seconds = fut.result()
            self.verdicts[plan] = tests
            for i, (result, name) in enumerate(self.waiting.pop(plan, [])):
                # the first submission with this plan paid for judging it
                conclude(result, tests, seconds if i == 0 else 0.0)
                self._finish(result, name)

    def _finish(self, result: GradeResult, name: str) -> None:
        if not self.sandbox.isolated:
            result.notes.append(self.sandbox.note)
        write_result(result, self.out_dir, name)
        self.rows.append(result.row())
        self.progress.update(result)


def _exercises_of(files: Sequence[Path], override: str | None) -> set[str]:
    """The exercise ids a batch will need (read from the notebooks' metadata, cheaply)."""
    if override:
        return {override}
    found = set()
    for f in files:
        try:
            meta = json.loads(f.read_text()).get("metadata", {}).get("backfill_lab", {})
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
            found.add(meta["exercise"])
    return found


def merge_main(*, dirs: Sequence[str], out: str) -> int:
    """One gradebook from the result folders of several grading jobs."""
    rows = []
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            raise UsageError(f"no such folder: {d!r}")
        for f in sorted(folder.glob("*.json")):
            data = json.loads(f.read_text())
            if not isinstance(data, dict) or "submission" not in data:
                continue
            rows.append({"submission": data["submission"], "exercise": data.get("exercise") or "",
                         "status": data["status"], "score": f"{data['score']:g}",
                         "max_score": f"{data['max_score']:g}",
                         "duration": f"{data.get('duration', 0):.2f}",
                         "sha256": data.get("sha256", "")})
    if not rows:
        raise UsageError(f"no result files (*.json) in {', '.join(map(repr, dirs))}")
    path = write_gradebook(rows, Path(out))
    print(format_gradebook(path))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``backfill-grader``; returns the exit code."""
    before = os.environ.get("BACKFILL_LAB_GRADING")
    os.environ["BACKFILL_LAB_GRADING"] = "1"  # the grader's own check() records no progress
    try:
        return _main(argv)
    finally:
        if before is None:
            os.environ.pop("BACKFILL_LAB_GRADING", None)
        else:
            os.environ["BACKFILL_LAB_GRADING"] = before


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "grade":
            return grade_main(paths=args.paths, out=args.out, exercise=args.exercise,
                              jobs=args.jobs, cell_timeout=args.cell_timeout,
                              timeout=args.timeout)
        if args.command == "merge":
            return merge_main(dirs=args.dirs, out=args.out)
        if args.command == "assign":
            from .assign import main as assign_main

            return assign_main(solutions=PROJECT_ROOT / "solutions",
                               exercises=PROJECT_ROOT / "exercises", check=args.check)
        from .release import main as release_main

        return release_main(out=Path(args.out), root=PROJECT_ROOT)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
