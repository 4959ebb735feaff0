"""Grading a batch: kernels run in one pool of worker processes, judges in another beside it.

:func:`main` is what ``backfill-grader grade`` calls. Two pools start at once, ``jobs`` workers
each: kernel workers run the notebooks (at most ``jobs`` kernels at a time), judge workers build
what judging needs (each exercise's reference truth and its staged incident, two independent
tasks), then judge plans. The judges' pool starts staging while the sandbox probe runs here;
kernels start as soon as the probe is done. A kernel's result comes back with its plan still to
judge: each distinct plan is judged once, by the next free judge worker (in a child it forks,
which inherits what that worker staged), under the judge's time and memory limits, while the
kernel workers already run the next notebooks; every submission with that plan gets the
verdict, or the same error when judging it failed.

A worker that dies (a submission run without a sandbox can kill it) breaks its pool only: a new
one takes over, and what was running in it is run again one at a time: a submission that breaks
the kernels' pool while running alone is recorded as an error, and so is a plan that breaks the
judges' pool while judged alone (for each of its submissions); a staging part cut short twice is
built where it is needed. So a plan's verdict never depends on what else its batch holds: a
kernel never shares a process with a judge, and a plan judged beside one that kills its worker
is judged again. The batch goes on, and every submission gets its row in the gradebook.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import threading
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
from backfill_lab.course.templates import no_disk_cache, scratch_dir
from backfill_lab.errors import did_you_mean

from . import score
from .classreport import RUN_FILE, warm, write_class_report
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
from .progress import Progress
from .report import (
    GradeResult,
    format_gradebook,
    output_name,
    write_gradebook,
    write_result,
)
from .score import VerdictCache, load_key
from .timeline import Timeline

__all__ = ["Worker", "default_jobs", "main"]

PROG = "backfill-grader"
#: The two pools of a batch: kernels run in one, staging and judging in the other.
POOLS = ("judge", "kernel")


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


def _pool_of(task: tuple[Any, ...]) -> str:
    """Which pool runs ``task``: a submission's kernel, or staging and judging."""
    return "kernel" if task[0] == "run" else "judge"


def _stage_one(exercise: str, part: str) -> dict[str, Any]:
    return score.stage(exercise, part)


def _judge_one(exercise: str, plan_json: str, parts: list[dict[str, Any]]) -> Judged:
    w = _current()
    score.adopt(exercise, parts)  # the forked judge inherits what was staged
    return judge_limited(exercise, plan_json, w.judging, cache=w.cache)


def main(*, paths: Sequence[str], out: str | Path, exercise: str | None = None,
         jobs: int | None = None, limits: Limits | None = None,
         judging: JudgeLimits | None = None, timeline: str | Path | None = None) -> int:
    """Grade every notebook under ``paths``, at most ``jobs`` kernels at once (default:
    :func:`default_jobs`), each plan judged beside them (by at most ``jobs`` judges at once);
    write each result and ``gradebook.csv`` into ``out``. ``limits`` bound each kernel,
    ``judging`` each plan's judge (their defaults are theirs); ``timeline`` is a file for the
    batch's spans (:mod:`grader.timeline`). 0 when every submission got its row."""
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
    spans = Timeline(on=timeline is not None)
    batch = _Batch(files, min(jobs or default_jobs(), len(files)), out_dir,
                   Progress(len(files)), worker, spans)
    started, t0 = time.time(), time.perf_counter()
    try:
        with no_disk_cache():  # every reference judged against is built here, never read
            batch.run(_exercises_of(files, exercise) & set(score.PLAN_IDS),
                      lambda: isolation(PROJECT_ROOT, protect=(str(out_dir.resolve()),)))
    finally:
        cache.remove()
    path = write_gradebook(batch.rows, out_dir)
    print(format_gradebook(path))
    write_run(out_dir, started=started, seconds=time.perf_counter() - t0, jobs=batch.workers,
              submissions=len(files), sandbox=batch.sandbox)
    begun = spans.now()
    report = write_class_report([out_dir], out_dir)
    spans.add("report", "class report", begun)
    print(f"class report: {report}")
    if timeline is not None:
        spans.write(Path(timeline))
    return 0


def default_jobs() -> int:
    """One job per two cores (at least one): a job is a kernel and a judge beside it, so one
    job already keeps two cores busy (on 2 cores, measured: ``--jobs 2`` was no faster than
    ``--jobs 1``; README, Performance)."""
    return max(1, (os.cpu_count() or 1) // 2)


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
                 progress: Progress, worker: Worker, timeline: Timeline | None = None
                 ) -> None:
        self.todo = deque((s.path, s.name) for s in files)
        self.suspects: deque[tuple[Path, str]] = deque()  # running when a worker died
        self.workers = workers  # kernels at once, and judges at once beside them
        self.out_dir = out_dir
        self.progress = progress
        self.worker = worker
        self.timeline = timeline or Timeline(on=False)
        self.rows: list[dict[str, Any]] = []
        self.taken: set[str] = set()  # result file names in out_dir
        self.sandbox = Sandbox("none", "")
        self.probed = False
        self.running: dict[Future[Any], tuple[Any, ...]] = {}
        self.began: dict[Future[Any], float] = {}  # when each running task was handed over
        self.forked: set[str] = set()  # the pools whose workers are forked
        self.to_stage: deque[tuple[str, str]] = deque()  # (exercise, part) to build
        self.parts: dict[str, list[dict[str, Any]]] = {}  # exercise -> staged parts
        self.unstaged: dict[str, int] = {}  # exercise -> parts still being built
        self.verdicts: dict[tuple[str, str], Judged] = {}
        self.waiting: dict[tuple[str, str], list[tuple[GradeResult, str]]] = {}
        self.to_judge: deque[tuple[str, str]] = deque()  # plans whose staging is complete
        self.plan_suspects: deque[tuple[str, str]] = deque()  # judged when a judge died
        self.lost: dict[tuple[Any, ...], int] = {}  # stage task -> times cut short

    def run(self, exercises: set[str], probe: Callable[[], Sandbox]) -> None:
        """Run every task of the batch to its end."""
        for ex in sorted(exercises):
            self.unstaged[ex] = len(score.STAGING_PARTS)
            self.to_stage.extend((ex, part) for part in score.STAGING_PARTS)
        pools = {kind: self._pool() for kind in POOLS}
        # the class report's imports, while kernels run: started once both pools forked their
        # workers, and joined before a pool is made again (no fork while a thread imports)
        warming = threading.Thread(target=_warm, name="warm-class-report", daemon=True)
        try:
            self._fill(pools)  # the first submit forks the judge workers: staging starts
            t0 = self.timeline.now()
            self.sandbox = probe()  # a subprocess: the judge workers stage meanwhile
            self.timeline.add("probe", "sandbox", t0)
            self.probed = True
            print(f"{PROG}: {self.sandbox.note}", file=sys.stderr)
            while True:
                broken = self._fill(pools)
                if warming.ident is None and self.forked == set(POOLS):
                    warming.start()
                if not self.running and not broken:
                    return
                if not broken:
                    done, _ = wait(self.running, return_when=FIRST_COMPLETED)
                    broken = {_pool_of(self.running[f]) for f in done
                              if isinstance(f.exception(), BrokenProcessPool)}
                    if not broken:
                        for fut in done:
                            self._take(fut, self._pop(fut))
                        continue
                if warming.ident is not None:
                    warming.join()
                for kind in sorted(broken):
                    pools[kind].shutdown(wait=True)  # every task still running in it died
                    self._recover(kind)
                    pools[kind] = self._pool()
        finally:
            for pool in pools.values():
                pool.shutdown(wait=True)

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, initializer=_init_worker,
                                   initargs=(self.worker,))

    def _busy(self, kind: str) -> int:
        return sum(1 for task in self.running.values() if _pool_of(task) == kind)

    def _pop(self, fut: Future[Any]) -> tuple[Any, ...]:
        """Forget a finished task (its span goes on the timeline)."""
        task = self.running.pop(fut)
        began = self.began.pop(fut)
        if task[0] == "run":
            self.timeline.add("kernel", task[1], began)
        elif task[0] == "judge":
            first = self.waiting.get((task[1], task[2]), [(None, "?")])[0][1]
            self.timeline.add("judge", f"{task[1]} plan of {first}", began)
        else:
            self.timeline.add("stage", f"{task[1]} {task[2]}", began)
        return task

    def _next(self, kind: str) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
        """The next task for a free worker of pool ``kind`` and the call that runs it: for a
        judge worker staging, then a suspect plan alone, or the next plan; for a kernel worker
        (once the sandbox is known) a suspect submission alone, or the next submission."""
        if kind == "judge":
            if self.to_stage:
                ex, part = self.to_stage.popleft()
                return ("stage", ex, part), (_stage_one, ex, part)
            alone = bool(self.plan_suspects) and not self._busy("judge")
            if alone or (self.to_judge and not self.plan_suspects):
                ex, plan_json = (self.plan_suspects if alone else self.to_judge).popleft()
                return ("judge", ex, plan_json, alone), (_judge_one, ex, plan_json,
                                                         self.parts.get(ex, []))
            return None
        if not self.probed:
            return None
        if self.suspects and not self._busy("kernel"):
            path, name = self.suspects.popleft()
            return ("run", name, path, True), (_run_one, str(path), name, self.sandbox)
        if self.todo and not self.suspects:
            path, name = self.todo.popleft()
            return ("run", name, path, False), (_run_one, str(path), name, self.sandbox)
        return None

    def _fill(self, pools: dict[str, ProcessPoolExecutor]) -> set[str]:
        """Keep every worker of both pools busy; the pools found broken (their task is queued
        again)."""
        broken = set()
        for kind in POOLS:
            while self._busy(kind) < self.workers:
                found = self._next(kind)
                if found is None:
                    break
                task, call = found
                try:
                    fut = pools[kind].submit(*call)
                except BrokenProcessPool:
                    self._requeue(task)
                    broken.add(kind)
                    break
                self.running[fut] = task
                self.began[fut] = self.timeline.now()
                self.forked.add(kind)
        return broken

    def _requeue(self, task: tuple[Any, ...]) -> None:
        """Put a task that never ran back at the front of its queue."""
        if task[0] == "stage":
            self.to_stage.appendleft((task[1], task[2]))
        elif task[0] == "judge":
            (self.plan_suspects if task[3] else self.to_judge).appendleft((task[1], task[2]))
        else:
            (self.suspects if task[3] else self.todo).appendleft((task[2], task[1]))

    def _recover(self, kind: str) -> None:
        """After a worker of pool ``kind`` died: keep what finished, queue again what was cut
        short (a stage or judge task once; a submission alone, and it is the culprit if it
        breaks it again)."""
        for fut, task in list(self.running.items()):
            if _pool_of(task) != kind:
                continue
            self._pop(fut)
            if not isinstance(fut.exception(), BrokenProcessPool):
                self._take(fut, task)
            elif task[0] == "run" and task[3]:  # it ran alone: it is what killed the worker
                self._finish(worker_lost(task[2], exercise=self.worker.exercise,
                                         key=self.worker.key, name=task[1]), task[1])
            elif task[0] == "run":
                self.suspects.append((task[2], task[1]))
            elif task[0] == "judge" and task[3]:  # cut short again, alone: its own doing
                self._verdict((task[1], task[2]), Judged((), 0.0, "the process judging "
                                                         "this plan died twice"))
            elif task[0] == "judge":  # judged again alone: another plan may have done it
                self.plan_suspects.append((task[1], task[2]))
            elif self.lost.setdefault(task, 0) < 1:
                self.lost[task] += 1
                self._requeue(task)
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
        t0 = self.timeline.now()
        write_result(result, self.out_dir, output_name(name, self.taken))
        self.timeline.add("write", name, t0)
        self.rows.append(result.row())
        self.progress.update(result)


def _warm() -> None:
    with contextlib.suppress(Exception):  # the report imports them itself if this failed
        warm()


def _exercises_of(files: Sequence[Submission], override: str | None) -> set[str]:
    """The exercise ids a batch will need (read from the notebooks' metadata, cheaply)."""
    if override:
        return {override}
    found = set()
    for f in files:
        try:
            meta = json.loads(read_regular(f.path)).get("metadata", {}).get("backfill_lab", {})
        except (InputError, ValueError, AttributeError, RecursionError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
            found.add(meta["exercise"])
    return found

