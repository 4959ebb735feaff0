"""The plans whose verdicts are pinned in ``tests/golden_verdicts.json``, and how to read one.

A faster judge must give every one of these plans the same verdict, message for message, and
the same replay picture. Regenerate the file only when a rule is meant to change::

    python -m tests.verdict_corpus > tests/golden_verdicts.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.plans import MINI_IN_PLACE, MISTAKES, PERFECT

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).with_name("golden_verdicts.json")


def _throughput_plans() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from grader_throughput import plan_text  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return {f"throughput_{i}": plan_text(i)[0] for i in (0, 1, 2, 3, 4, 5, 11, 17, 23)}


def corpus() -> dict[str, tuple[str, str]]:
    """name -> (exercise, plan text)."""
    plans = {f"perfect_{ex}": (ex, text) for ex, text in PERFECT.items()}
    plans["mini_in_place"] = ("mini_challenge", MINI_IN_PLACE)
    plans.update({f"mistake_{name}": (ex, text) for name, (ex, text, _, _) in MISTAKES.items()})
    plans.update({name: ("ex1", text) for name, text in _throughput_plans().items()})
    return plans


def verdict(exercise: str, text: str) -> dict[str, Any]:
    """What the judge says of one plan: every rule's pass, points and message, the outcome
    replay's observations and its picture, as plain JSON."""
    from backfill_lab.course.scenarios import scenario
    from backfill_lab.course.second_run import may_exceed
    from backfill_lab.course.selfcheck import check
    from backfill_lab.plan import Plan

    report = check(text, exercise, record=False)
    sim = report.simulation
    if may_exceed(Plan.load(text), scenario(exercise)):
        # more writes in flight than the warehouse takes: which ones the throttle fails
        # depends on the threads' timing, so only the points are pinned
        return {"score": report.score,
                "rules": [[r.name, r.passed, r.points] for r in report.results]}
    return {
        "score": report.score,
        "rules": [[r.name, r.passed, r.points, r.message] for r in report.results],
        "max_in_flight": sim.max_in_flight if sim else None,
        "started_in_order": sim.started_in_order if sim else None,
        "picture": json.loads(json.dumps(sim.picture, default=str, sort_keys=True))
        if sim else None,
    }


def main() -> int:
    out = {name: verdict(ex, text) for name, (ex, text) in sorted(corpus().items())}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
