"""Grading a batch: notebooks run in a pool of worker processes, each distinct plan judged once.

:func:`main` is what ``backfill-grader grade`` calls. The pool starts at once and its first tasks
build what judging needs (each exercise's reference truth and its staged incident, two
independent tasks), while the sandbox probe runs here; kernels start as soon as the probe is
done and a worker is free. A kernel's result comes back with its plan still to judge: each
distinct plan is judged once, by the next free worker (ahead of further kernels, so results
are not held back), under the judge's time and memory limits, and every submission with that
plan gets the verdict, or the same error when judging it failed.

A worker that dies (a submission run without a sandbox can kill it) breaks the pool: a new one
takes over, the submissions that were running are run again one at a time, and one that breaks
the pool while running alone is recorded as an error; a plan whose judging was cut short twice
is recorded as an error for its submissions. The batch goes on, and every submission gets its
row in the gradebook.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backfill_lab.cli.parse import UsageError
from backfill_lab.course import registry
from backfill_lab.course.simulate import scratch_dir
from backfill_lab.errors import did_you_mean

from . import score
from .classreport import RUN_FILE, write_class_report
from .execute import Limits, Sandbox, isolation
from .grade import (
    PROJECT_ROOT,
    ProjectGuard,
    failed,
    out_problem,
    run_notebook,
    settle,
    worker_lost,
)
from .inputs import InputError, Submission, collect, read_regular
from .judge import Judged, JudgeLimits, judge_limited
from .report import (
    GradeResult,
    format_gradebook,
    output_name,
    printable,
    write_gradebook,
    write_result,
)
from .score import VerdictCache, load_key

__all__ = ["Worker", "main"]

PROG = "backfill-grader"


@dataclass(frozen=True)
class Worker:
    """What every worker of a batch is handed when it starts (the only state it keeps)."""

    exercise: str | None
    limits: Limits
    judging: JudgeLimits
    key: dict[str, Any] | None
    cache: VerdictCache | None = None
    guard: bool = True
    exclude: tuple[str, ...] = ()  # folders the grader writes (its --out): not guarded


# the worker's own copy, set by _init_worker when its process starts (never from outside)
_worker: Worker | None = None
_guard: ProjectGuard | None = None


def _init_worker(worker: Worker) -> None:
    global _worker, _guard
    _worker = worker
    _guard = ProjectGuard(PROJECT_ROOT, exclude=map(Path, worker.exclude)) \
        if worker.guard else None


def _current() -> Worker:
    if _worker is None:  # pragma: no cover - a task outside a batch's pool
        raise RuntimeError("this task runs only in a grading worker (see grader.batch)")
    return _worker


def _run_one(path: str, name: str, sandbox: Sandbox) -> tuple[GradeResult, str | None]:
    w = _current()
    return run_notebook(path, exercise=w.exercise, limits=w.limits, key=w.key,
                        sandbox=sandbox, guard=_guard, name=name)


def _stage_one(exercise: str, part: str) -> dict[str, Any]:
    return score.stage(exercise, part)


def _judge_one(exercise: str, plan_json: str, parts: list[dict[str, Any]]) -> Judged:
    w = _current()
    score.adopt(exercise, parts)  # the forked judge inherits what was staged
    return judge_limited(exercise, plan_json, w.judging, cache=w.cache)


class _Progress:
    """A bar on a terminal, plain lines otherwise (names made printable: no escapes)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, result: GradeResult) -> None:
        """One more submission done: show it."""
        self.done += 1
        line = (f"{printable(result.submission)}: {result.status} "
                f"{result.score:g}/{result.max_score:g} ({result.duration:.1f}s)")
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


def main(*, paths: Sequence[str], out: str | Path, exercise: str | None = None,
         jobs: int | None = None, limits: Limits | None = None,
         judging: JudgeLimits | None = None) -> int:
    """Grade every notebook under ``paths`` on ``jobs`` workers (default: one per core); write
    each result and ``gradebook.csv`` into ``out``. ``limits`` bound each kernel, ``judging``
    each plan's judge (their defaults are theirs). 0 when every submission got its row."""
    if exercise is not None and exercise not in registry.IDS:
        raise UsageError(f"unknown exercise {exercise!r}; known: {', '.join(registry.IDS)}."
                         f"{did_you_mean(exercise, registry.IDS)}")
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise UsageError(f"'jobs' must be an integer >= 1 (got {jobs!r})")
    out_dir = Path(out)
    problem = out_problem(out_dir)
    if problem:
        raise UsageError(problem)
    files = collect(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = load_key(PROJECT_ROOT)  # read before any learner code runs
    scratch_dir()  # one staging folder for every worker, removed when this process exits
    cache = VerdictCache.create()
    worker = Worker(exercise, limits or Limits(), judging or JudgeLimits(), key, cache,
                    exclude=(str(out_dir.resolve()),))
    batch = _Batch(files, min(jobs or os.cpu_count() or 1, len(files)), out_dir,
                   _Progress(len(files)), worker)
    started, t0 = time.time(), time.perf_counter()
    try:
        batch.run(_exercises_of(files, exercise) & set(score.PLAN_IDS),
                  lambda: isolation(PROJECT_ROOT, protect=(str(out_dir.resolve()),)))
    finally:
        cache.remove()
    path = write_gradebook(batch.rows, out_dir)
    print(format_gradebook(path))
    write_run(out_dir, started=started, seconds=time.perf_counter() - t0, jobs=batch.workers,
              submissions=len(files), sandbox=batch.sandbox)
    print(f"class report: {write_class_report([out_dir], out_dir)}")
    return 0


def write_run(out: Path, *, started: float, seconds: float, jobs: int, submissions: int,
              sandbox: Sandbox) -> Path:
    """Write the grading run's own figures to ``out/run.jsonl``, one JSON line (the class
    report shows them)."""
    path = out / RUN_FILE
    stamp = datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(json.dumps({"started": stamp, "duration": round(seconds, 2), "jobs": jobs,
                                "submissions": submissions, "isolated": sandbox.isolated,
                                "isolation": sandbox.note}) + "\n")
    return path


class _Batch:
    """The scheduler of one batch (see the module's docstring)."""

    def __init__(self, files: Sequence[Submission], workers: int, out_dir: Path,
                 progress: _Progress, worker: Worker) -> None:
        self.todo = deque((s.path, s.name) for s in files)
        self.suspects: deque[tuple[Path, str]] = deque()  # running when a worker died
        self.workers = workers
        self.out_dir = out_dir
        self.progress = progress
        self.worker = worker
        self.rows: list[dict[str, Any]] = []
        self.taken: set[str] = set()  # result file names in out_dir
        self.sandbox = Sandbox("none", "")
        self.probed = False
        self.running: dict[Future[Any], tuple[Any, ...]] = {}
        self.to_stage: deque[tuple[str, str]] = deque()  # (exercise, part) to build
        self.parts: dict[str, list[dict[str, Any]]] = {}  # exercise -> staged parts
        self.unstaged: dict[str, int] = {}  # exercise -> parts still being built
        self.verdicts: dict[tuple[str, str], Judged] = {}
        self.waiting: dict[tuple[str, str], list[tuple[GradeResult, str]]] = {}
        self.to_judge: deque[tuple[str, str]] = deque()  # plans whose staging is complete
        self.lost: dict[tuple[Any, ...], int] = {}  # stage/judge task -> times cut short

    def run(self, exercises: set[str], probe: Callable[[], Sandbox]) -> None:
        """Run every task of the batch to its end."""
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
                                   initargs=(self.worker,))

    def _fill(self, pool: ProcessPoolExecutor) -> bool:
        """Keep every worker busy: staging, then judging (a queued kernel would only wait
        behind it), then kernels once the sandbox is known; a suspect runs only alone.
        False when the pool turned out broken (the task is queued again)."""
        while len(self.running) < self.workers:
            if self.to_stage:
                ex, part = self.to_stage.popleft()
                task: tuple[Any, ...] = ("stage", ex, part)
                call: tuple[Any, ...] = (_stage_one, ex, part)
            elif self.to_judge:
                ex, plan_json = self.to_judge.popleft()
                task = ("judge", ex, plan_json)
                call = (_judge_one, ex, plan_json, self.parts.get(ex, []))
            elif not self.probed:
                return True
            elif self.suspects and not self.running:
                path, name = self.suspects.popleft()
                task = ("run", name, path, True)
                call = (_run_one, str(path), name, self.sandbox)
            elif self.todo and not self.suspects:
                path, name = self.todo.popleft()
                task = ("run", name, path, False)
                call = (_run_one, str(path), name, self.sandbox)
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
        """After a worker died: keep what finished, queue again what was cut short (a stage
        or judge task once; a submission alone, and it is the culprit if it breaks it again)."""
        for fut, task in list(self.running.items()):
            del self.running[fut]
            if not isinstance(fut.exception(), BrokenProcessPool):
                self._take(fut, task)
            elif task[0] == "run" and task[3]:  # it ran alone: it is what killed the worker
                self._finish(worker_lost(task[2], exercise=self.worker.exercise,
                                         key=self.worker.key, name=task[1]), task[1])
            elif task[0] == "run":
                self.suspects.append((task[2], task[1]))
            elif self.lost.setdefault(task, 0) < 1:
                self.lost[task] += 1
                self._requeue(task)
            elif task[0] == "judge":  # cut short twice: its submissions get an error
                self._verdict((task[1], task[2]), Judged((), 0.0, "the process judging "
                                                         "this plan died twice"))
            else:
                self._staged(task[1], None)

    def _take(self, fut: Future[Any], task: tuple[Any, ...]) -> None:
        """Use what a finished task returned (a task that raised is recorded, never lost)."""
        if task[0] == "stage":
            try:
                part = fut.result()
            except Exception:  # a missing part is built where it is needed
                part = None
            self._staged(task[1], part)
        elif task[0] == "run":
            try:
                result, plan_json = fut.result()
            except Exception as exc:
                self._finish(failed(task[2], f"the grader failed on this submission "
                                    f"({type(exc).__name__}: {exc})",
                                    exercise=self.worker.exercise, key=self.worker.key,
                                    name=task[1]), task[1])
                return
            if plan_json is None:
                self._finish(result, task[1])
                return
            plan = (str(result.exercise), plan_json)
            if plan in self.verdicts:
                self._conclude(result, task[1], self.verdicts[plan], 0.0)
                return
            if plan not in self.waiting and self.unstaged.get(plan[0], 0) == 0:
                self.to_judge.append(plan)
            self.waiting.setdefault(plan, []).append((result, task[1]))
        else:
            try:
                judged = fut.result()
            except Exception as exc:
                judged = Judged((), 0.0, f"{type(exc).__name__}: {exc}")
            self._verdict((task[1], task[2]), judged)

    def _staged(self, exercise: str, part: dict[str, Any] | None) -> None:
        if part is not None:
            self.parts.setdefault(exercise, []).append(part)
        self.unstaged[exercise] -= 1
        if self.unstaged[exercise] == 0:
            self.to_judge.extend(k for k in self.waiting if k[0] == exercise)

    def _verdict(self, plan: tuple[str, str], judged: Judged) -> None:
        self.verdicts[plan] = judged
        for i, (result, name) in enumerate(self.waiting.pop(plan, [])):
            # the first submission with this plan paid for judging it
            self._conclude(result, name, judged, judged.seconds if i == 0 else 0.0)

    def _conclude(self, result: GradeResult, name: str, judged: Judged, seconds: float) -> None:
        self._finish(settle(result, judged, seconds, self.worker.key), name)

    def _finish(self, result: GradeResult, name: str) -> None:
        if not self.sandbox.isolated:
            result.notes.append(self.sandbox.note)
        write_result(result, self.out_dir, output_name(name, self.taken))
        self.rows.append(result.row())
        self.progress.update(result)


def _exercises_of(files: Sequence[Submission], override: str | None) -> set[str]:
    """The exercise ids a batch will need (read from the notebooks' metadata, cheaply)."""
    if override:
        return {override}
    found = set()
    for f in files:
        try:
            meta = json.loads(read_regular(f.path)).get("metadata", {}).get("backfill_lab", {})
        except (InputError, ValueError, AttributeError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
            found.add(meta["exercise"])
    return found

