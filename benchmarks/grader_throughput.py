"""How much does grading add over just executing the notebooks, and do two jobs help?

Run from the project root with the project's venv::

    python benchmarks/grader_throughput.py             # K=24 distinct ex1 plans
    python benchmarks/grader_throughput.py -k 8        # quicker
    python benchmarks/grader_throughput.py --identical # also K identical copies (second line)

A real class writes distinct plans, so by default the K submissions are distinct: variants of the
ex1 solution that all deserve full marks (each learner's own ticket and owner, and their own
thresholds, concurrency and retries within what is safe), and one in six a common mistake (append
on rerun, no retries, a range one day short, no lineage), each with its own ticket too. Every
plan is judged: the grader's per-batch verdict cache shares a verdict only between identical
plans. It measures, in one run:

* the floor: nbclient executing each notebook in a fresh kernel, one after another, in grading
  mode (``BACKFILL_LAB_GRADING=1``: kernel start and the learner's cells; the notebook's own
  staging, replay and self-check are skipped, as the grader skips them);
* the grader (``backfill-grader grade``) on the same K notebooks with ``--jobs 1`` and
  ``--jobs 2``: a fresh sandboxed kernel per notebook, then the checklist and the outcome
  simulation of each plan in the grader's processes;
* with ``--identical``, the same for K identical copies of the solution (one plan judged once).

Each grader run also writes its timeline (``--timeline``, :mod:`grader.timeline`): the benchmark
prints where its wall time went (start-up, kernels, staging, judging and how much of it ran
beside a kernel, results, class report) and a chart of the phases over time.

It prints the wall times, the grader over the floor (goal: at most 1.25x at ``--jobs 1``), the
throughput of two jobs over one (goal: at least 1.7x on a 2-core machine), the load average
before each run, the CPU time the whole machine spent during each run (from ``/proc/stat``:
every process, kernels and sandboxes included) and what that allows: a second job cannot do the
``--jobs 1`` run's CPU work in less than that work divided by the cores, so two jobs can be at
most ``cores x wall / CPU`` times as fast as one. It checks that both grader runs gave every
submission the same score, full marks to every variant and less to every mistake; otherwise it
says so and exits 1.

Both grader runs start cold: each is a fresh ``backfill-grader`` process that stages the exercise
and judges every plan from scratch (its verdict cache is a temporary folder of that batch).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = "solutions/ex1_december_backfill.ipynb"
OWNERS = ("data-platform", "ml-features", "analytics-eng", "growth-data", "risk-models",
          "search-infra")
#: (what is wrong, old text, new text): the common mistakes mixed into the batch
MISTAKES = (
    ("append", "mode: overwrite", "mode: append"),
    ("no_retries", "retries: {retries}", "retries: 0"),
    ("short_range", "end: 2024-12-31", "end: 2024-12-30"),
    ("no_lineage", "lineage: {{audit_tags: {{ticket: {ticket}, owner: {owner}}}}}\n", ""),
)
TEMPLATE = """
pipeline: daily_features
code_version: v1.4.2
backfill:
  start: 2024-12-01
  end: 2024-12-31
  order: ascending
  layers: [raw, staging, features]
  concurrency: {concurrency}
  retries: {retries}
  mode: overwrite
validations:
  row_count: {{min: {low}, max: {high}}}
  null_rate: {{max: {nulls}}}
  unique_keys: [entity_id, date]
  drift: {{max_psi: {psi}}}
  downstream_read: true
rollback: {{strategy: snapshot}}
lineage: {{audit_tags: {{ticket: {ticket}, owner: {owner}}}}}
"""


def plan_text(i: int) -> tuple[str, bool]:
    """The ``i``-th learner's plan, and whether it deserves full marks (every 6th does not)."""
    values = {"concurrency": 2 + i % 3, "retries": 1 + i % 3, "low": 880 + 5 * (i % 5),
              "high": 1100 + 10 * (i % 4), "nulls": (0.01, 0.02, 0.005)[i % 3],
              "psi": (0.2, 0.25, 0.15)[i % 3], "ticket": f"INC-{4100 + i}",
              "owner": OWNERS[i % len(OWNERS)]}
    text = TEMPLATE.format(**values)
    if i % 6 != 5:
        return text, True
    _, old, new = MISTAKES[(i // 6) % len(MISTAKES)]
    old = old.format(**values)
    assert old in text, old
    return text.replace(old, new.format(**values)), False


def with_plan(nb: dict[str, Any], plan: str) -> dict[str, Any]:
    """The notebook with its ``plan = ...`` cell replaced by ``plan``."""
    out: dict[str, Any] = json.loads(json.dumps(nb))
    for cell in out["cells"]:
        if cell["cell_type"] == "code" and "plan = " in "".join(cell["source"]):
            cell["source"] = f'plan = """{plan}"""\n'
            return out
    raise SystemExit("no `plan = ...` cell in the solution notebook")


def write_batch(folder: Path, k: int, identical: bool) -> dict[str, bool]:
    """K notebooks in ``folder``; ``{name: deserves full marks}``."""
    nb = json.loads((ROOT / SOLUTION).read_text())
    expected = {}
    for i in range(k):
        name = f"learner{i:02d}"
        plan, full = (plan_text(0)[0], True) if identical else plan_text(i)
        (folder / f"{name}.ipynb").write_text(json.dumps(with_plan(nb, plan)))
        expected[name] = full
    return expected


def floor(folder: Path) -> float:
    """Execute every notebook in a fresh kernel, sequentially, in grading mode."""
    before = os.environ.get("BACKFILL_LAB_GRADING")
    os.environ["BACKFILL_LAB_GRADING"] = "1"  # the kernel inherits it
    try:
        t0 = time.perf_counter()
        for path in sorted(folder.glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        return time.perf_counter() - t0
    finally:
        if before is None:
            os.environ.pop("BACKFILL_LAB_GRADING", None)
        else:
            os.environ["BACKFILL_LAB_GRADING"] = before


def grade(folder: Path, jobs: int) -> tuple[float, dict[str, tuple[str, str, str]]]:
    """Wall time of one ``backfill-grader grade`` batch and ``{name: (status, score, max)}``;
    prints the batch's timeline figures (:mod:`grader.timeline`)."""
    from grader.timeline import chart, read, summary

    out = Path(tempfile.mkdtemp(prefix="bench-grades-"))
    spans = out.with_suffix(".timeline.jsonl")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out),
                    "--jobs", str(jobs), "--timeline", str(spans)], check=True, cwd=ROOT,
                   capture_output=True)
    elapsed = time.perf_counter() - t0
    with (out / "gradebook.csv").open(newline="") as handle:
        rows = {r["submission"].removesuffix(".ipynb"): (r["status"], r["score"], r["max_score"])
                for r in csv.DictReader(handle)}
    shutil.rmtree(out, ignore_errors=True)
    found = read(spans)
    figures = summary(found)
    step = max(1.0, figures["end"] / 100)
    print(f"  --jobs {jobs} timeline: {timeline_line(figures, elapsed)}; one character per "
          f"{step:g} s, the number of spans running:", flush=True)
    print("\n".join(f"    {line}" for line in chart(found, step).splitlines()), flush=True)
    spans.unlink()
    return elapsed, rows


def timeline_line(s: dict[str, float], elapsed: float) -> str:
    """One line of a batch's timeline figures: where its wall time went."""
    judged = s.get("busy_judge", 0.0)
    beside = s["judge_beside_kernel"]
    return (f"start-up (process, imports, until the batch began) "
            f"{elapsed - s['end']:.1f} s, first kernel at {s['first_kernel']:.1f} s, "
            f"kernels busy {s.get('busy_kernel', 0):.1f} s, staging {s.get('busy_stage', 0):.1f}"
            f" s, judging busy {judged:.1f} s of which {beside:.1f} s beside a kernel "
            f"({100 * beside / judged if judged else 0:.0f}%), writing results "
            f"{s.get('busy_write', 0):.2f} s, class report {s.get('busy_report', 0):.1f} s, "
            f"after the last kernel {s['end'] - s.get('last_kernel', s['end']):.1f} s")


def problems(expected: dict[str, bool], one: dict[str, tuple[str, str, str]],
             two: dict[str, tuple[str, str, str]]) -> list[str]:
    """What makes the timings meaningless: a missing row, an error, a verdict that differs
    between the runs, a variant short of full marks or a mistake with them."""
    found = []
    for name, full in sorted(expected.items()):
        a, b = one.get(name), two.get(name)
        if a is None or b is None:
            found.append(f"{name}: no gradebook row")
        elif a != b:
            found.append(f"{name}: --jobs 1 gave {a}, --jobs 2 gave {b}")
        elif a[0] != "graded":
            found.append(f"{name}: {a[0]}")
        elif (float(a[1]) == float(a[2])) != full:
            found.append(f"{name}: {a[1]}/{a[2]} but it {'deserves' if full else 'lacks'} "
                         "full marks")
    return found


def load() -> str:
    """The 1-minute load average, for the record."""
    return f"load {os.getloadavg()[0]:.1f}"


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (every process and the
    system's own work: all but idle and iowait), from ``/proc/stat``; None where there is none."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """The machine's busy CPU seconds over a ``with`` block (None without ``/proc/stat``)."""

    def __enter__(self) -> Cpu:
        self.start = busy_seconds()
        self.seconds: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        end = busy_seconds()
        if self.start is not None and end is not None:
            self.seconds = end - self.start

    def line(self, wall: float, k: int) -> str:
        """``CPU 27.5 s (3.44 s/nb, 1.71 cores busy)``, or nothing without a figure."""
        if self.seconds is None:
            return ""
        return (f"CPU {self.seconds:.1f} s ({self.seconds / k:.2f} s/nb, "
                f"{self.seconds / wall:.2f} cores busy)")


def measure(k: int, identical: bool) -> tuple[float, float, float, list[str]]:
    """Floor, grader --jobs 1 and --jobs 2 on one batch; what went wrong (if anything)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-subs-"))
    try:
        expected = write_batch(folder, k, identical)
        label = "identical copies" if identical else "distinct plans"
        loads = [load()]
        with Cpu() as c_floor:
            t_floor = floor(folder)
        loads.append(load())
        with Cpu() as c1:
            t1, one = grade(folder, 1)
        loads.append(load())
        with Cpu() as c2:
            t2, two = grade(folder, 2)
        print(f"{label:>16}: floor {t_floor:6.1f} s ({t_floor / k:.2f} s/nb) | --jobs 1 "
              f"{t1:6.1f} s ({t1 / k:.2f} s/nb, {t1 / t_floor:.2f}x floor) | --jobs 2 "
              f"{t2:6.1f} s ({t2 / k:.2f} s/nb) | 2 jobs over 1: {t1 / t2:.2f}x  "
              f"[{', '.join(loads)} before each]", flush=True)
        cores = os.cpu_count() or 1
        if c1.seconds:
            print(f"{'machine CPU':>16}: floor {c_floor.line(t_floor, k)} | --jobs 1 "
                  f"{c1.line(t1, k)} | --jobs 2 {c2.line(t2, k)}", flush=True)
            print(f"{'bound':>16}: the --jobs 1 run's CPU on {cores} cores takes at least "
                  f"{c1.seconds / cores:.1f} s, so {cores} jobs can be at most "
                  f"{cores * t1 / c1.seconds:.2f}x as fast as 1", flush=True)
        return t_floor, t1, t2, problems(expected, one, two)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--submissions", type=int, default=24,
                        help="K: how many notebooks to grade (default 24)")
    parser.add_argument("--identical", action="store_true",
                        help="also grade K identical copies of the solution (second line)")
    args = parser.parse_args()
    k = args.submissions
    mistakes = sum(1 for i in range(k) if not plan_text(i)[1])
    print(f"K={k} ex1 notebooks ({k - mistakes} distinct full-marks variants, {mistakes} common "
          f"mistakes); {os.cpu_count()} cores; {load()}", flush=True)
    t_floor, t1, t2, wrong = measure(k, identical=False)
    ratio, speedup = t1 / t_floor, t1 / t2
    print(f"grader --jobs 1 over the floor : {ratio:.2f}x  (goal <= 1.25x: "
          f"{'PASS' if ratio <= 1.25 else 'MISS'})")
    print(f"throughput, 2 jobs over 1      : {speedup:.2f}x  (goal >= 1.7x: "
          f"{'PASS' if speedup >= 1.7 else 'MISS'})")
    if args.identical:
        wrong += measure(k, identical=True)[3]
    for line in wrong:
        print(f"INVALID: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
