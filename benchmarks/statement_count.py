"""How many DuckDB statements does judging one plan run, and where does its CPU time go?

Run from the project root with the project's venv::

    python benchmarks/statement_count.py                # ex1 and ex2
    python benchmarks/statement_count.py ex2 --full     # every distinct statement, counted
    python benchmarks/statement_count.py --kept         # each plan on the copy the last left
    python benchmarks/statement_count.py ex1 --concurrency 1   # the plans at another concurrency

Every cursor the warehouse hands out is wrapped so each ``execute`` is counted (a string of
several statements counts each) and timed in CPU time of its thread. Two distinct plans are
judged after a warm-up, each on a new copy of the incident, as the grader's judge does
(``--kept``: on the copy the plan before left, put back, as a learner's next check); the
figures are per plan. Statement counts do not depend on the
machine's load, so they compare before/after changes on a busy machine; times do. The CPU the
statements take, divided by the cores, is what no schedule of them can go below; so is, more
strictly, the CPU of each step's own transaction (its BEGIN, the DELETE and write of its
partition, its ledger row, its COMMIT), which a replay of the plan as it runs cannot drop
whatever else is made cheaper. It prints both, and the CPU spent outside the statements. It also
prints how busy the replay's workers were: the steps' time over the workers' time from the
first step's start to the last one's end, and how long a finished step's slot waited on
average before the next step started in it.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import time
from typing import Any

from backfill_lab import warehouse as W

COUNTS: collections.Counter[str] = collections.Counter()
FULL: collections.Counter[str] = collections.Counter()
TIMES: collections.defaultdict[str, float] = collections.defaultdict(float)
ACTIVE = [False]


class Counting:
    """A cursor that counts and times what it executes."""

    def __init__(self, cur: Any) -> None:
        object.__setattr__(self, "_cur", cur)

    def execute(self, sql: str, params: Any = None) -> Any:
        """Execute on the real cursor; count and time the statements when active."""
        # DuckDB's replacement scan reads the caller's locals: pass the write's DataFrame on
        _bl_rows = sys._getframe(1).f_locals.get("_bl_rows")
        if not ACTIVE[0]:
            return self._cur.execute(sql, params)
        keys = []
        for stmt in [s for s in sql.split(";") if s.strip()]:
            flat = re.sub(r"\d+", "N", re.sub(r"\s+", " ", stmt.strip()))
            key = " ".join(flat.split(" ")[:3])[:40]
            COUNTS[key] += 1
            FULL[flat[:300]] += 1
            keys.append(key)
        t0 = time.thread_time()
        result = self._cur.execute(sql, params)
        TIMES["+".join(keys)] += time.thread_time() - t0
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def _irreducible(key: str) -> bool:
    """Whether a statement (by its key) is part of a step's own transaction: BEGIN, COMMIT, the
    DELETE and write of a layer's partition (a quoted table name) or its ledger row."""
    return (key in ("BEGIN TRANSACTION", "COMMIT", "INSERT INTO _bl_ledger")
            or key.startswith(('DELETE FROM "', 'INSERT INTO "', 'MERGE INTO "')))


STEPS: list[list[tuple[float, float]]] = []  # each judged plan's steps: (start, end)


def main() -> None:
    original = W.Warehouse.cursor
    from backfill_lab import _dag

    call = _dag._Counter.call

    def timed(self: Any, fn: Any, node: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return call(self, fn, node)
        finally:
            if ACTIVE[0] and STEPS:
                STEPS[-1].append((t0, time.perf_counter()))

    _dag._Counter.call = timed  # type: ignore[method-assign]

    def cursor(self: W.Warehouse) -> Any:
        cur = original(self)
        return cur if isinstance(cur, Counting) else Counting(cur)

    W.Warehouse.cursor = cursor  # type: ignore[method-assign]
    sys.path.insert(0, "benchmarks")
    from judge_speed import variants

    from backfill_lab.course.copies import close_kept
    from backfill_lab.course.scenarios import scenario, truth
    from backfill_lab.course.selfcheck import check
    from backfill_lab.course.templates import template

    for ex in [a for a in sys.argv[1:] if not a.startswith("-")] or ["ex1", "ex2"]:
        sc = scenario(ex)
        truth(sc)
        template(sc)
        conc = sys.argv[sys.argv.index("--concurrency") + 1] if "--concurrency" in sys.argv else ""
        plans = [p.replace("concurrency: 2", f"concurrency: {conc}") if conc else p
                 for p in variants(ex, 3)]
        check(plans[0], sc, record=False)  # warm-up: caches, imports
        for counter in (COUNTS, FULL, TIMES):
            counter.clear()
        STEPS.clear()
        ACTIVE[0] = True
        c0, t0 = time.process_time(), time.perf_counter()
        for plan in plans[1:]:
            if "--kept" not in sys.argv:
                ACTIVE[0] = False
                close_kept(sc)  # a new copy for this plan, as in the grader's forked judge
                ACTIVE[0] = True
            STEPS.append([])
            report = check(plan, sc, record=False)
            assert report.score == report.max_score, report.failed()
        cpu, wall = (time.process_time() - c0) / 2, (time.perf_counter() - t0) / 2
        ACTIVE[0] = False
        print(f"{ex}: {sum(COUNTS.values()) / 2:.0f} statements per plan; CPU {cpu:.3f} s, "
              f"wall {wall:.3f} s")
        for k, n in COUNTS.most_common(30):
            print(f"   {n / 2:7.1f}  {k}")
        in_sql = sum(TIMES.values()) / 2
        cores = os.cpu_count() or 1
        print(f"  in execute (thread CPU) per plan: {in_sql:.3f} s (on {cores} cores the "
              f"statements alone take at least {in_sql / cores:.3f} s); top:")
        if any(STEPS):
            workers = int(conc or 2)
            busy, waits = [], []
            for steps in STEPS:
                starts, ends = sorted(a for a, _ in steps), sorted(b for _, b in steps)
                busy.append(sum(b - a for a, b in steps) / (workers * (ends[-1] - starts[0])))
                waits += [s0 - max(e for e in ends if e <= s0) for s0 in starts[workers:]
                          if any(e <= s0 for e in ends)]
            print(f"  steps: {sum(map(len, STEPS)) / len(STEPS):.0f} per plan; workers busy "
                  f"{min(busy):.0%}-{max(busy):.0%} of a replay (concurrency {workers}); a free "
                  f"slot waited {sum(waits) / max(1, len(waits)) * 1e3:.2f} ms on average for "
                  f"the next step")
        # what no faithful replay can drop: each step's own transaction (BEGIN, DELETE of its
        # partition, the write, its ledger row, COMMIT); a key joins an execute's statements
        kept = sum(t for k, t in TIMES.items() if all(_irreducible(part) for part in k.split("+")))
        steps_n = sum(n for k, n in COUNTS.items() if k == "BEGIN TRANSACTION") / 2
        print(f"  of which each step's own transaction (BEGIN, DELETE, the write, its ledger "
              f"row, COMMIT; {steps_n:.0f} a plan), which no faithful replay can drop: "
              f"{kept / 2:.3f} s CPU, on {cores} cores at least {kept / 2 / cores:.3f} s; "
              f"outside the statements the plan's process spent {max(0.0, cpu - in_sql):.3f} s "
              f"CPU (staging the copy, the engine's Python, the checks' numpy, the checksums)")
        for k, t in sorted(TIMES.items(), key=lambda kt: -kt[1])[:15]:
            print(f"   {t / 2 * 1e3:7.1f} ms  {k[:70]}")
        if "--full" in sys.argv:
            for k, n in FULL.most_common():
                print(f"   {n / 2:6.1f}  {k}")


if __name__ == "__main__":
    main()
