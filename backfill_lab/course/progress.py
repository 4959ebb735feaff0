"""The learner's progress: every self-check they ran, in a small JSON file in their workspace.

The file lives outside the project (``$BACKFILL_LAB_PROGRESS``, or
``~/.backfill_lab/progress.json``), so the workbook's own files never change when a learner
checks an exercise, and a new copy of the workbook keeps the history. While the grader runs a
submission (``BACKFILL_LAB_GRADING=1``) nothing is written: grading is not practice.

:func:`record` appends one :class:`Attempt` per self-check (exercise, score, max score, when, from
an injectable clock); :func:`progress` reads them back as a table the index notebook shows.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import BackfillLabError, ConfigError
from .registry import EXERCISES

__all__ = [
    "Attempt",
    "ProgressTable",
    "grading",
    "load",
    "progress",
    "progress_path",
    "record",
]

ENV_PATH = "BACKFILL_LAB_PROGRESS"
ENV_GRADING = "BACKFILL_LAB_GRADING"
FORMAT = 1
_MARK = "_backfill_lab_progress_recorded"
_PROJECT = Path(__file__).resolve().parents[2]


def grading() -> bool:
    """True while the autograder runs a submission (``BACKFILL_LAB_GRADING=1``)."""
    return os.environ.get(ENV_GRADING) == "1"


def _inside_project(path: Path) -> bool:
    if not (_PROJECT / "pyproject.toml").exists():  # installed as a package: no project here
        return False
    return path.resolve().is_relative_to(_PROJECT)


def progress_path() -> Path:
    """Where progress is kept: ``$BACKFILL_LAB_PROGRESS`` or ``~/.backfill_lab/progress.json``.

    A path inside the workbook's own folder is refused: the project's files must not change.
    """
    raw = os.environ.get(ENV_PATH)
    path = Path(raw).expanduser() if raw else Path.home() / ".backfill_lab" / "progress.json"
    if _inside_project(path):
        raise ConfigError.invalid(ENV_PATH, f"a file outside the workbook folder {_PROJECT}",
                                  str(path))
    return path


@dataclass(frozen=True)
class Attempt:
    """One self-check: which exercise, the score out of the maximum, and when."""

    exercise: str
    score: float
    max_score: float
    at: str  # ISO time, from the clock given to record()
    status: str = "checked"

    @property
    def full_marks(self) -> bool:
        """A perfect score."""
        return self.max_score > 0 and self.score >= self.max_score

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        """An attempt read back from the progress file (a one-line error when malformed)."""
        try:
            return cls(str(data["exercise"]), float(data["score"]), float(data["max_score"]),
                       str(data["at"]), str(data.get("status", "checked")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError.invalid("progress entry", "exercise, score, max_score and at",
                                      data) from exc


def load(path: Path | None = None) -> list[Attempt]:
    """Every recorded attempt, oldest first (none when the file does not exist yet)."""
    path = path or progress_path()
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["attempts"]
        if not isinstance(rows, list):
            raise TypeError("attempts is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"progress file {path} is unreadable ({type(exc).__name__}: {exc}); "
                          f"delete it or set {ENV_PATH} to another file") from None
    return [Attempt.from_dict(r) for r in rows]


def _write(path: Path, attempts: Sequence[Attempt]) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": FORMAT, "attempts": [asdict(a) for a in attempts]}, indent=1)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".progress-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record(report: Any, *, clock: Clock | None = None,
           path: Path | None = None) -> Attempt | None:
    """Append one attempt for ``report`` (anything with ``exercise``, ``score``, ``max_score``).

    Returns what was recorded, or None when nothing was written: while grading, for a report
    already recorded (so both ``check`` and the exercise helpers may call this safely), or when
    the file cannot be written (progress must never break a self-check).
    """
    if grading() or getattr(report, _MARK, False):
        return None
    attempt = Attempt(str(report.exercise), float(report.score), float(report.max_score),
                      (clock or SystemClock()).now().isoformat(timespec="seconds"),
                      str(getattr(report, "status", "checked")))
    try:
        where = path or progress_path()
        _write(where, [*load(where), attempt])
    except (OSError, BackfillLabError):
        return None
    with contextlib.suppress(AttributeError):  # frozen: it may be recorded again, harmless
        setattr(report, _MARK, True)
    return attempt


@dataclass(frozen=True)
class Row:
    """One exercise's line in the progress table."""

    exercise: str
    title: str
    attempts: int
    best: str
    last: str
    last_at: str
    done: bool


class ProgressTable:
    """Per exercise: attempts, best and last score, when; renders as HTML and text.

    >>> table = ProgressTable([Attempt("ex1", 9, 16, "2025-01-01T10:00"),
    ...                        Attempt("ex1", 16, 16, "2025-01-01T10:20")])
    >>> print(str(table).splitlines()[1])
    ✔ Exercise 1 · December backfill       2   16/16   16/16  2025-01-01 10:20
    """

    def __init__(self, attempts: Sequence[Attempt], *, problem: str = "",
                 where: str = "") -> None:
        self.attempts = list(attempts)
        self.problem = problem
        self.where = where

    @property
    def rows(self) -> list[Row]:
        """One row per exercise of the registry, then per other exercise attempted (drills)."""
        titles = {e.id: e.title for e in EXERCISES}
        names = list(titles) + sorted({a.exercise for a in self.attempts} - set(titles))
        out = []
        for name in names:
            mine = [a for a in self.attempts if a.exercise == name]
            title = titles.get(name, f"Drill {name.removeprefix('drill-')}"
                               if name.startswith("drill-") else name)
            if not mine:
                out.append(Row(name, title, 0, "-", "-", "-", False))
                continue
            best = max(mine, key=lambda a: (a.score / a.max_score) if a.max_score else 0)
            last = mine[-1]
            out.append(Row(name, title, len(mine), f"{best.score:g}/{best.max_score:g}",
                           f"{last.score:g}/{last.max_score:g}", last.at.replace("T", " "),
                           any(a.full_marks for a in mine)))
        return out

    def __str__(self) -> str:
        if self.problem:
            return f"progress: {self.problem}"
        if not self.attempts:
            return ("No self-checks recorded yet: run the self-check cell of an exercise, "
                    f"then this cell again. (kept in {self.where})")
        lines = [f"{'exercise':<34} {'tries':>5} {'best':>7} {'last':>7}  last checked"]
        for r in self.rows:
            mark = "✔ " if r.done else "  "
            lines.append(f"{mark}{r.title:<32} {r.attempts:>5} {r.best:>7} {r.last:>7}  "
                         f"{r.last_at}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if self.problem or not self.attempts:
            return f"<p class='backfill-progress'>{html.escape(str(self))}</p>"
        rows = "".join(
            f"<tr><td>{'✔' if r.done else ''}</td><td>{html.escape(r.title)}</td>"
            f"<td>{r.attempts}</td><td>{r.best}</td><td>{r.last}</td>"
            f"<td>{html.escape(r.last_at)}</td></tr>" for r in self.rows)
        return ("<table class='backfill-progress'><tr><th></th><th>exercise</th><th>tries</th>"
                "<th>best</th><th>last</th><th>last checked</th></tr>"
                f"{rows}</table><p><small>kept in {html.escape(self.where)}</small></p>")


def progress(path: Path | None = None) -> ProgressTable:
    """Your self-checks so far, one row per exercise (display it in a notebook cell)."""
    try:
        where = path or progress_path()
        return ProgressTable(load(where), where=str(where))
    except BackfillLabError as exc:
        return ProgressTable([], problem=str(exc))
