"""Writing results: per-submission JSON (Gradescope's shape) and Markdown, and the gradebook.

``DIR/<name>.json`` holds ``score``, ``max_score``, ``tests`` (name, score, max_score, output,
visibility) plus ``submission``, ``exercise``, ``status``; ``DIR/<name>.md`` is the feedback a
learner reads; ``DIR/gradebook.csv`` has one row per submission.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .score import TestResult

__all__ = ["GRADEBOOK_COLUMNS", "GradeResult", "write_gradebook", "write_result"]

GRADEBOOK_COLUMNS = ("submission", "exercise", "status", "score", "max_score", "duration",
                     "sha256")
STATUS_TEXT = {
    "graded": "graded",
    "timeout": "stopped: it ran out of time",
    "kernel_died": "stopped: the kernel died",
    "invalid_notebook": "not a notebook the grader can read",
    "missing_answer": "nothing to grade yet",
    "error": "not graded: the grader hit a problem",
}


@dataclass
class GradeResult:
    """The grade of one submission: what the CLI writes and ``grade_notebook`` returns."""

    submission: str
    exercise: str | None
    status: str
    tests: list[TestResult] = field(default_factory=list)
    max_score: float = 0.0
    reason: str = ""
    duration: float = 0.0
    sha256: str = ""
    failed_cells: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    isolated: bool = False

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    def failed(self) -> list[str]:
        return [t.name for t in self.tests if not t.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "max_score": self.max_score,
            "tests": [{"name": t.name, "score": t.score, "max_score": t.max_score,
                       "output": t.output, "visibility": t.visibility} for t in self.tests],
            "submission": self.submission,
            "exercise": self.exercise,
            "status": self.status,
            "reason": self.reason,
            "duration": round(self.duration, 3),
            "sha256": self.sha256,
            "failed_cells": self.failed_cells,
            "isolated": self.isolated,
            "notes": self.notes,
        }

    def to_markdown(self) -> str:
        lines = [f"# Feedback: {self.submission}", ""]
        lines.append(f"- exercise: `{self.exercise or 'unknown'}`")
        lines.append(f"- status: **{STATUS_TEXT.get(self.status, self.status)}**"
                     + (f": {self.reason}" if self.reason else ""))
        passed = sum(1 for t in self.tests if t.passed)
        lines.append(f"- score: **{self.score:g} / {self.max_score:g}** "
                     f"({passed} of {len(self.tests)} checks passed)")
        lines.append("")
        if self.failed_cells:
            lines.append("## Cells that raised")
            lines.append("")
            for c in self.failed_cells:
                lines.append(f"- cell {c['cell']}: `{c['ename']}`: {c['evalue']}")
            lines.append("")
        todo = [t for t in self.tests if not t.passed]
        if todo:
            lines += ["## What to fix", ""]
            if len(todo) > 1 and len({t.output for t in todo}) == 1:
                # one cause sank every check (no plan, a dead kernel): say it once
                names = ", ".join(t.name for t in todo)
                lines.append(f"- all {len(todo)} checks ({names}): {todo[0].output}")
            else:
                lines += [f"- **{t.name}** ({t.score:g}/{t.max_score:g}): {t.output}"
                          for t in todo]
            lines.append("")
        done = [t for t in self.tests if t.passed]
        if done:
            lines.append("## Checks passed")
            lines.append("")
            for t in done:
                lines.append(f"- {t.name}: {t.output}")
            lines.append("")
        for note in self.notes:
            lines.append(f"> {note}")
        return "\n".join(lines).rstrip() + "\n"

    def row(self) -> dict[str, Any]:
        return {"submission": self.submission, "exercise": self.exercise or "",
                "status": self.status, "score": f"{self.score:g}",
                "max_score": f"{self.max_score:g}", "duration": f"{round(self.duration, 3):.2f}",
                "sha256": self.sha256}


def output_name(submission: str, taken: set[str]) -> str:
    """A file stem for a submission's results, unique within one output folder."""
    stem = Path(submission).stem or "submission"
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    taken.add(name)
    return name


def write_result(result: GradeResult, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (out / f"{name}.md").write_text(result.to_markdown())


def write_gradebook(rows: Iterable[dict[str, Any]], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gradebook.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(GRADEBOOK_COLUMNS))
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (str(r["submission"]), str(r["exercise"]))):
            writer.writerow({k: row.get(k, "") for k in GRADEBOOK_COLUMNS})
    return path


def format_gradebook(path: Path, columns: Sequence[str] = GRADEBOOK_COLUMNS[:5]) -> str:
    """The gradebook as an aligned text table (what ``make grade`` prints)."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    head = "  ".join(c.ljust(widths[c]) for c in columns)
    body = ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([head, *body])
