"""How much does grading add over just executing the notebooks, and do two jobs help?

Run from the project root with the project's venv::

    python benchmarks/grader_throughput.py            # K=8 copies of the ex1 solution
    python benchmarks/grader_throughput.py --copies 4 # quicker

It measures, in one run, on the same K copies of a solution notebook:

* bare: nbclient executing each copy in a fresh kernel, one after another, as a learner's
  "Restart and run all" would (no grader, no sandbox, the notebook's own self-check included);
* the grader (``backfill-grader grade``) on the K copies with ``--jobs 1`` and ``--jobs 2``:
  a fresh sandboxed kernel per copy, the notebook's self-check skipped (``BACKFILL_LAB_GRADING``),
  the checklist and the outcome simulation run in the grader process instead.

It prints the wall times, the grading overhead over bare execution (goal: at most +25%), and the
throughput of two jobs over one (goal: at least 1.6x on a 2-core machine). Identical copies have
identical plans, so the grader judges that plan (checklist and simulation) once per batch and
every copy gets the verdict: the same thing happens in a real class for every learner who submits
the same plan.

Both grader runs start cold and pay the same start-up: each is a fresh ``backfill-grader``
process that stages the exercise and judges plans from scratch (the grader keeps no cache across
batches: its judge cache is a temporary folder of that batch, signed with that batch's own
secret, and removed at its end), so the ``--jobs 1`` run warms nothing the ``--jobs 2`` run uses.
A grader run counts only if every copy got full marks (a copy graded ``error``, e.g. because
project files changed during the run, would make the timing meaningless): otherwise the script
says so and exits 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def bare(paths: list[Path]) -> float:
    """Execute every notebook in a fresh kernel, sequentially, the way a learner runs it."""
    t0 = time.perf_counter()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - t0


def grade(folder: Path, jobs: int) -> tuple[float, list[str]]:
    """Wall time of one ``backfill-grader grade`` batch, and the copies it did not give full
    marks (each as ``name: status score/max``)."""
    out = Path(tempfile.mkdtemp(prefix="bench-grades-"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out),
                    "--jobs", str(jobs)], check=True, cwd=ROOT, capture_output=True)
    elapsed = time.perf_counter() - t0
    with (out / "gradebook.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    wrong = [f"{r['submission']}: {r['status']} {r['score']}/{r['max_score']}" for r in rows
             if r["status"] != "graded" or r["score"] != r["max_score"]]
    copies = len(list(folder.glob("*.ipynb")))
    if len(rows) != copies:
        wrong.append(f"{len(rows)} gradebook rows for {copies} copies")
    shutil.rmtree(out, ignore_errors=True)
    return elapsed, wrong


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="K: how many copies to grade")
    parser.add_argument("--notebook", default="solutions/ex1_december_backfill.ipynb")
    args = parser.parse_args()
    source = ROOT / args.notebook
    folder = Path(tempfile.mkdtemp(prefix="bench-subs-"))
    paths = []
    for i in range(args.copies):
        path = folder / f"learner{i:02d}.ipynb"
        shutil.copyfile(source, path)
        paths.append(path)
    print(f"{args.copies} copies of {args.notebook}; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.2f}")
    t_bare = bare(paths)
    print(f"bare nbclient execution, sequential : {t_bare:7.1f} s "
          f"({t_bare / args.copies:.2f} s per notebook)")
    before = load()
    t1, wrong1 = grade(folder, 1)
    print(f"grader --jobs 1                      : {t1:7.1f} s "
          f"({t1 / args.copies:.2f} s per notebook; {before} before)")
    before = load()
    t2, wrong2 = grade(folder, 2)
    print(f"grader --jobs 2                      : {t2:7.1f} s "
          f"({t2 / args.copies:.2f} s per notebook; {before} before)")
    overhead = (t1 - t_bare) / t_bare
    speedup = t1 / t2
    print(f"grading overhead over bare execution : {overhead:+.0%}  (goal <= +25%: "
          f"{'PASS' if overhead <= 0.25 else 'MISS'})")
    print(f"throughput, 2 jobs over 1            : {speedup:.2f}x  (goal >= 1.6x: "
          f"{'PASS' if speedup >= 1.6 else 'MISS'})")
    shutil.rmtree(folder, ignore_errors=True)
    for jobs, wrong in ((1, wrong1), (2, wrong2)):
        if wrong:
            print(f"INVALID: --jobs {jobs} did not give every copy full marks, so its time does "
                  f"not count: {'; '.join(wrong[:3])}", file=sys.stderr)
    return 1 if wrong1 or wrong2 else 0


if __name__ == "__main__":
    sys.exit(main())
