"""How long does judging one plan take, per exercise, and how long does a learner wait?

Run from the project root with the project's venv::

    python benchmarks/judge_speed.py                 # every plan exercise, 5 plans each
    python benchmarks/judge_speed.py -n 3 --no-notebooks
    python benchmarks/judge_speed.py --exercise ex1

For each exercise with a plan (ex1, ex2, mini_challenge) it prints:

* staging: building the reference truth and the incident's template, once per process (the
  grader does it once per batch, in parallel with the first kernels);
* judging: the checklist and the outcome simulation (stage a copy, replay the plan twice,
  compare) of 2N *distinct* plans, each its own (the solution with another ticket and owner),
  judged one after another in this process, alternately on a new copy of the incident (as
  the grader's judge, which forks a child per plan, and a learner's first check do) and on
  the copy the plan before left, put back (a learner's next check): the median and the best
  of each, wall and CPU time (goal: at most 0.5 s per plan);
* unless ``--no-notebooks``, the learner's side: the exercise's solution notebook run top to
  bottom by nbclient in a fresh kernel, as "Run All" does (goal: under 10 s), and its
  self-check cell (``bl.check(plan, ...)``, goal: under 1 s), twice: first on a machine that
  has not built the incident yet (an empty cache folder), then again (a restarted kernel takes
  the incident and its reference from the cache folder); and ``backfill-lab check`` of the
  solution's plan in a new process without the cache folder and with it.

Times are wall-clock on this machine as it is: the load average is printed with each line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {"ex1": "ex1_december_backfill.ipynb", "ex2": "ex2_late_data.ipynb",
             "mini_challenge": "mini_challenge.ipynb"}


def solution_plan(exercise: str) -> str:
    """The plan of the exercise's solution notebook (the text of its ``plan = ...`` cell)."""
    nb = json.loads((ROOT / "solutions" / NOTEBOOKS[exercise]).read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and 'plan = """' in source:
            return source.split('plan = """', 1)[1].split('"""', 1)[0]
    raise SystemExit(f"no plan in the solution of {exercise}")


def variants(exercise: str, n: int) -> list[str]:
    """``n`` distinct plans: the solution with each learner's own ticket and owner."""
    plan = solution_plan(exercise)
    ticket = plan.split("ticket: ", 1)[1].split(",", 1)[0]
    return [plan.replace(f"ticket: {ticket}", f"ticket: INC-{7000 + i}")
                .replace("owner: data-platform", f"owner: team-{i}") for i in range(n)]


def load() -> str:
    """The 1-minute load average, for the record."""
    return f"load {os.getloadavg()[0]:.1f}"


def judging(exercise: str, n: int) -> None:
    """Stage the exercise once, then judge ``n`` distinct plans; print the figures."""
    from backfill_lab.course.scenarios import scenario, truth
    from backfill_lab.course.selfcheck import check
    from backfill_lab.course.templates import template

    sc = scenario(exercise)
    t0, c0 = time.perf_counter(), time.process_time()
    truth(sc)
    template(sc)
    print(f"{exercise:>15} staging (truth + template, once): {time.perf_counter() - t0:5.2f} s "
          f"wall, {time.process_time() - c0:5.2f} s CPU ({load()})", flush=True)
    from backfill_lab.course.copies import close_kept

    # alternating: a plan on a new copy (as in the grader, whose judge forks a child per plan,
    # and in a learner's first check), then one on the copy it left (a learner's next check)
    walls: dict[str, list[float]] = {"new": [], "kept": []}
    cpus: dict[str, list[float]] = {"new": [], "kept": []}
    for i, plan in enumerate(variants(exercise, 2 * n)):
        copy = "kept" if i % 2 else "new"
        if copy == "new":
            close_kept(sc)
        t0, c0 = time.perf_counter(), time.process_time()
        report = check(plan, sc, record=False)
        walls[copy].append(time.perf_counter() - t0)
        cpus[copy].append(time.process_time() - c0)
        if report.score != report.max_score:
            raise SystemExit(f"INVALID: a variant of the {exercise} solution lost points: "
                             f"{report.failed()}")
    for copy, label in (("new", "on a new copy "), ("kept", "on a kept copy")):
        median = statistics.median(walls[copy])
        print(f"{exercise:>15} judging one plan {label} (rules + simulation, {n} distinct "
              f"plans): median {median:5.2f} s wall ({statistics.median(cpus[copy]):5.2f} s "
              f"CPU), best {min(walls[copy]):5.2f} s  (goal: median <= 0.5 s: "
              f"{'PASS' if median <= 0.5 else 'MISS'}; {load()})", flush=True)


def notebook(exercise: str, when: str) -> None:
    """Run the solution notebook as a learner's Run All does; time it and its self-check
    (``when``: which run it is, for the line printed)."""
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "solutions" / NOTEBOOKS[exercise]
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    started: dict[int, float] = {}
    took: dict[int, float] = {}

    def before(cell: Any, cell_index: int, **_: Any) -> None:
        started[cell_index] = time.perf_counter()

    def after(cell: Any, cell_index: int, **_: Any) -> None:
        took[cell_index] = time.perf_counter() - started[cell_index]

    env_before = os.environ.pop("BACKFILL_LAB_GRADING", None)
    progress = os.environ.get("BACKFILL_LAB_PROGRESS")
    os.environ["BACKFILL_LAB_PROGRESS"] = os.devnull  # record nothing in anyone's progress
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                on_cell_execute=before, on_cell_executed=after)
        t0 = time.perf_counter()
        client.execute()
        total = time.perf_counter() - t0
    finally:
        if env_before is not None:
            os.environ["BACKFILL_LAB_GRADING"] = env_before
        if progress is None:
            os.environ.pop("BACKFILL_LAB_PROGRESS", None)
        else:
            os.environ["BACKFILL_LAB_PROGRESS"] = progress
    checks = [took[i] for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and "bl.check(plan" in c.source and i in took]
    slowest = sorted(((t, i) for i, t in took.items()), reverse=True)[:3]
    self_check = checks[0] if checks else float("nan")
    print(f"{exercise:>15} Run All, {when}: {total:5.1f} s (goal < 10 s: "
          f"{'PASS' if total < 10 else 'MISS'}); self-check cell {self_check:5.2f} s (goal < 1 s: "
          f"{'PASS' if self_check < 1 else 'MISS'}); slowest cells "
          f"{', '.join(f'[{i}] {t:.1f} s' for t, i in slowest)} ({load()})", flush=True)


def cli_check(exercise: str, cache: str) -> float:
    """Wall time of ``backfill-lab check`` of the solution's plan in a new process, with the
    cache folder ``cache`` (or ``off``)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(solution_plan(exercise))
    env = {**os.environ, "BACKFILL_LAB_CACHE": cache, "BACKFILL_LAB_PROGRESS": os.devnull}
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "backfill_lab.cli", "check", handle.name,
                        "--exercise", exercise], env=env, check=True, capture_output=True)
        return time.perf_counter() - t0
    finally:
        os.unlink(handle.name)


def learner(exercise: str) -> None:
    """The learner's side: Run All on a machine without the incident built, then again, and
    ``backfill-lab check`` without the cache folder and with it."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="bench-cache-")
    try:
        os.environ["BACKFILL_LAB_CACHE"] = folder  # the kernel inherits it
        notebook(exercise, "first (incident built)")
        notebook(exercise, "again (from the cache)")
        cold, warm = cli_check(exercise, "off"), cli_check(exercise, folder)
        print(f"{exercise:>15} backfill-lab check in a new process: {cold:5.2f} s building the "
              f"incident, {warm:5.2f} s from the cache folder ({load()})", flush=True)
    finally:
        os.environ["BACKFILL_LAB_CACHE"] = "off"
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--plans", type=int, default=5, help="distinct plans per exercise")
    parser.add_argument("--exercise", choices=sorted(NOTEBOOKS), action="append",
                        help="only this exercise (repeatable)")
    parser.add_argument("--no-notebooks", action="store_true", help="skip the Run All timings")
    args = parser.parse_args()
    os.environ.pop("BACKFILL_LAB_GRADING", None)
    os.environ["BACKFILL_LAB_CACHE"] = "off"  # staged here, never taken from a cache folder
    print(f"{os.cpu_count()} cores; {load()}", flush=True)
    for exercise in args.exercise or sorted(NOTEBOOKS):
        judging(exercise, args.plans)
    if not args.no_notebooks:
        for exercise in args.exercise or sorted(NOTEBOOKS):
            learner(exercise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
