"""A batch's timeline: when each phase of grading ran, to see where a batch's time goes.

``backfill-grader grade --timeline FILE`` writes one JSON line per span: ``phase`` (``probe``,
``stage``, ``kernel``, ``judge``, ``write``, ``report``), ``name`` (the submission, or the
exercise and part), and ``start`` and ``end`` in seconds since the batch began, as seen by the
grader's main process (a task's span runs from its hand-over to a free worker to its result).
:func:`summary` turns the spans into the figures that show whether judging ran beside kernel
execution (``benchmarks/grader_throughput.py`` prints them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Timeline", "chart", "overlap", "read", "summary"]


class Timeline:
    """Spans recorded in this process; :meth:`write` saves them (nothing is kept when off)."""

    def __init__(self, on: bool = True) -> None:
        self.on = on
        self.t0 = time.perf_counter()
        self.spans: list[dict[str, Any]] = []

    def now(self) -> float:
        """Seconds since the timeline began."""
        return time.perf_counter() - self.t0

    def add(self, phase: str, name: str, start: float, end: float | None = None) -> None:
        """Record that ``phase`` of ``name`` ran from ``start`` to ``end`` (default: now)."""
        if self.on:
            self.spans.append({"phase": phase, "name": name, "start": round(start, 4),
                               "end": round(self.now() if end is None else end, 4)})

    def write(self, path: Path) -> Path:
        """Save the spans to ``path``, one JSON line each, in the order they began."""
        lines = (json.dumps(s) for s in sorted(self.spans, key=lambda s: s["start"]))
        path.write_text("".join(f"{line}\n" for line in lines))
        return path


def read(path: Path) -> list[dict[str, Any]]:
    """The spans a :class:`Timeline` wrote to ``path``."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def overlap(a: Iterable[tuple[float, float]], b: Iterable[tuple[float, float]]) -> float:
    """Seconds during which some span of ``a`` and some span of ``b`` both ran.

    >>> overlap([(0, 2), (3, 5)], [(1, 4)])
    2.0
    """
    total = 0.0
    for s1, e1 in _union(a):
        for s2, e2 in _union(b):
            total += max(0.0, min(e1, e2) - max(s1, s2))
    return float(total)


def summary(spans: list[dict[str, Any]]) -> dict[str, float]:
    """Per phase the seconds some span of it ran (``busy_<phase>``) and how many spans it had
    (``count_<phase>``); ``judge_beside_kernel``, the seconds judging ran while a kernel ran;
    ``first_kernel``, ``last_kernel`` and ``end``: when the first kernel started, the last one
    ended, and the last span ended.

    >>> summary([{"phase": "kernel", "start": 1, "end": 3},
    ...          {"phase": "judge", "start": 2, "end": 4}])["judge_beside_kernel"]
    1.0
    """
    by: dict[str, list[tuple[float, float]]] = {}
    for s in spans:
        by.setdefault(s["phase"], []).append((float(s["start"]), float(s["end"])))
    out: dict[str, float] = {}
    for phase, found in sorted(by.items()):
        out[f"busy_{phase}"] = round(sum(e - s for s, e in _union(found)), 3)
        out[f"count_{phase}"] = float(len(found))
    out["judge_beside_kernel"] = round(overlap(by.get("judge", []), by.get("kernel", [])), 3)
    out["first_kernel"] = min((s for s, _ in by.get("kernel", [])), default=0.0)
    out["last_kernel"] = max((e for _, e in by.get("kernel", [])), default=0.0)
    out["end"] = max((e for found in by.values() for _, e in found), default=0.0)
    return out


def chart(spans: list[dict[str, Any]], step: float = 1.0,
          phases: tuple[str, ...] = ("probe", "stage", "kernel", "judge", "report")) -> str:
    """The spans as text: a line per phase, a character per ``step`` seconds, saying how many
    spans of that phase were running at its middle (``.`` none, then ``1`` to ``9``).

    >>> print(chart([{"phase": "kernel", "start": 0, "end": 4},
    ...              {"phase": "judge", "start": 2, "end": 5}], phases=("kernel", "judge")))
    kernel 1111.
    judge  ..111
    """
    end = max((float(s["end"]) for s in spans), default=0.0)
    width = max(len(p) for p in phases)
    lines = []
    for phase in phases:
        mine = [(float(s["start"]), float(s["end"])) for s in spans if s["phase"] == phase]
        cells = []
        for i in range(int(end / step + 0.999)):
            middle = (i + 0.5) * step
            n = sum(1 for a, b in mine if a <= middle < b)
            cells.append("." if n == 0 else str(min(n, 9)))
        lines.append(f"{phase.ljust(width)} {''.join(cells)}")
    return "\n".join(lines)
