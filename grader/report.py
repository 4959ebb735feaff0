"""Writing results: per-submission JSON (Gradescope's shape) and Markdown, and the gradebook.

``DIR/<name>.json`` holds ``score``, ``max_score``, ``tests`` (name, score, max_score, output,
visibility) plus ``submission``, ``exercise``, ``status`` (and ``replay``, the grid the replay
of the plan left); ``DIR/<name>.md`` is the feedback a learner reads, ``DIR/<name>.html`` the
same with the picture (:mod:`grader.html`); ``DIR/gradebook.csv`` has one row per submission,
and ``DIR/report.html`` is the class report (:mod:`grader.classreport`). ``<name>`` is the
submission's path relative to the folder it was found in (``alice/dup`` for ``alice/dup.ipynb``).

Much of what a result holds comes from the learner (file names, exception messages, plan
values, notebook metadata), so none of it is trusted as markup: in the Markdown, text is
escaped and kept on its line (no HTML, no link, no line that could pass for the grader's),
names of things are code spans; in the CSV, a cell a spreadsheet would run as a formula is
neutralised; on a terminal, control characters are shown, never sent.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .score import TestResult
from .status import Status

__all__ = ["GRADEBOOK_COLUMNS", "GradeResult", "Status", "code", "escape", "output_name",
           "printable", "spreadsheet_safe", "write_gradebook", "write_result"]

GRADEBOOK_COLUMNS = ("submission", "exercise", "status", "score", "max_score", "duration",
                     "sha256", "isolation")
_MARKUP = re.compile(r"([\\*\[\]<>&])")
_ENTITY = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: object) -> str:
    """``text`` on one line with every control character shown as an escape, never sent.

    >>> printable("a\\x1b[2Jb\\nc")
    'a\\\\x1b[2Jb\\\\nc'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def escape(text: object) -> str:
    r"""Learner text made inert in Markdown, on one line: no HTML, no link, no emphasis.

    >>> escape("<script>x</script>\n- score: **16 / 16**")
    '&lt;script&gt;x&lt;/script&gt; - score: \\*\\*16 / 16\\*\\*'
    """
    flat = " ".join(str(text).splitlines())
    flat = "".join(c if c.isprintable() else " " for c in flat)
    return _MARKUP.sub(lambda m: _ENTITY.get(m[1], "\\" + m[1]), flat)


def code(text: object) -> str:
    """Learner text as a Markdown code span (literal: nothing in it is markup).

    >>> code("ZeroDivisionError"), code("a`b")
    ('`ZeroDivisionError`', '`` a`b ``')
    """
    flat = printable(" ".join(str(text).splitlines()))
    fence = "`" * (max((len(r) for r in re.findall("`+", flat)), default=0) + 1)
    pad = " " if "`" in flat or flat.startswith(" ") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def spreadsheet_safe(cell: object) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula.

    >>> spreadsheet_safe("=HYPERLINK(1)"), spreadsheet_safe("16")
    ("'=HYPERLINK(1)", '16')
    """
    text = str(cell)
    return f"'{text}" if text.startswith(FORMULA_START) else text


@dataclass
class GradeResult:
    """The grade of one submission: what the CLI writes and ``grade_notebook`` returns."""

    submission: str
    exercise: str | None
    status: Status
    tests: list[TestResult] = field(default_factory=list)
    max_score: float = 0.0
    reason: str = ""
    duration: float = 0.0
    sha256: str = ""
    failed_cells: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    isolated: bool = False
    #: the grid the replay of the plan left (:mod:`backfill_lab.course.replaygrid`), if replayed
    replay: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @property
    def score(self) -> float:
        """The points of every test."""
        return round(sum(t.score for t in self.tests), 4)

    def failed(self) -> list[str]:
        """The names of the tests without full marks."""
        return [t.name for t in self.tests if not t.passed]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GradeResult:
        """A result read back from what :meth:`to_json` wrote (``merge`` reads results so).

        Raises ``ValueError`` naming what is wrong when ``data`` is not such a result.
        """
        try:
            tests = [TestResult(str(t["name"]), float(t["score"]), float(t["max_score"]),
                                str(t["output"]), str(t.get("visibility", "visible")))
                     for t in data.get("tests", [])]
            return cls(str(data["submission"]), data.get("exercise"), Status(data["status"]),
                       tests, float(data["max_score"]), str(data.get("reason", "")),
                       float(data.get("duration", 0.0)), str(data.get("sha256", "")),
                       list(data.get("failed_cells", [])), list(data.get("notes", [])),
                       bool(data.get("isolated", False)),
                       replay if isinstance(replay := data.get("replay"), dict) else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a grading result ({type(exc).__name__}: {exc})") from None

    def to_json(self) -> dict[str, Any]:
        """The result as Gradescope's JSON shape, plus the grader's own fields."""
        return {
            "score": self.score,
            "max_score": self.max_score,
            "tests": [{"name": t.name, "score": t.score, "max_score": t.max_score,
                       "output": t.output, "visibility": t.visibility} for t in self.tests],
            "submission": self.submission,
            "exercise": self.exercise,
            "status": str(self.status),
            "reason": self.reason,
            "duration": round(self.duration, 3),
            "sha256": self.sha256,
            "failed_cells": self.failed_cells,
            "isolated": self.isolated,
            "notes": self.notes,
            **({"replay": self.replay} if self.replay else {}),
        }

    def to_markdown(self) -> str:
        """The feedback a learner reads."""
        lines = [f"# Feedback: {escape(self.submission)}", ""]
        lines.append(f"- exercise: {code(self.exercise or 'unknown')}")
        lines.append(f"- status: **{Status(self.status).text}**"
                     + (f": {escape(self.reason)}" if self.reason else ""))
        passed = sum(1 for t in self.tests if t.passed)
        lines.append(f"- score: **{self.score:g} / {self.max_score:g}** "
                     f"({passed} of {len(self.tests)} checks passed)")
        lines.append("")
        if self.failed_cells:
            lines.append("## Cells that raised")
            lines.append("")
            for c in self.failed_cells:
                lines.append(f"- cell {escape(c.get('cell'))}: {code(c.get('ename', ''))}: "
                             f"{escape(c.get('evalue', ''))}")
            lines.append("")
        todo = [t for t in self.tests if not t.passed]
        if todo:
            lines += ["## What to fix", ""]
            if len(todo) > 1 and len({t.output for t in todo}) == 1:
                # one cause sank every check (no plan, a dead kernel): say it once
                names = ", ".join(escape(t.name) for t in todo)
                lines.append(f"- all {len(todo)} checks ({names}): {escape(todo[0].output)}")
            else:
                lines += [f"- **{escape(t.name)}** ({t.score:g}/{t.max_score:g}): "
                          f"{escape(t.output)}" for t in todo]
            lines.append("")
        done = [t for t in self.tests if t.passed]
        if done:
            lines.append("## Checks passed")
            lines.append("")
            for t in done:
                lines.append(f"- {escape(t.name)}: {escape(t.output)}")
            lines.append("")
        for note in self.notes:
            lines.append(f"> {escape(note)}")
        return "\n".join(lines).rstrip() + "\n"

    def row(self) -> dict[str, Any]:
        """The result's line in the gradebook."""
        return {"submission": self.submission, "exercise": self.exercise or "",
                "status": str(self.status), "score": f"{self.score:g}",
                "max_score": f"{self.max_score:g}", "duration": f"{round(self.duration, 3):.2f}",
                "sha256": self.sha256,
                "isolation": self.isolation}

    @property
    def isolation(self) -> str:
        """How the kernel was confined, as the gradebook says it: ``isolated``, ``not isolated``
        (it ran with the grader's rights), or empty when no kernel ran (an invalid file)."""
        if self.status == Status.INVALID_NOTEBOOK:
            return ""
        return "isolated" if self.isolated else "not isolated"


RESULT_SUFFIXES = (".json", ".md", ".html")
"""The files each submission's results are written to, after its stem."""
_BATCH_STEMS = frozenset({"report", "gradebook", "run"})  # the batch's own files in ``out``
_BATCH_FILES = frozenset({"report.html", "gradebook.csv", "run.jsonl"})
_NAME_BYTES = 200  # a file name is at most 255 bytes: room for "-2", "_" and ".html"


def _fits(part: str) -> str:
    """``part`` cut to a name the file system takes (its own hash keeps two cut names apart).

    >>> len(_fits("a" * 300).encode()), _fits("short")
    (200, 'short')
    """
    if len(part.encode()) <= _NAME_BYTES:
        return part
    digest = hashlib.sha256(part.encode("utf-8", "replace")).hexdigest()[:12]
    cut = part.encode()[:_NAME_BYTES - 13].decode("utf-8", "ignore")
    return f"{cut}~{digest}"


def output_name(submission: str, taken: set[str]) -> str:
    """The relative file stem of a submission's results, unique within one output folder: its
    name without ``.ipynb``, folders kept, nothing that could leave the folder, no folder that
    is another's result file, none of the batch's own files.

    >>> output_name("alice/dup.ipynb", set()), output_name("../../etc/x.ipynb", set())
    ('alice/dup', 'etc/x')
    >>> output_name("x.json/y.ipynb", set()), output_name("report.ipynb", set())
    ('x.json_/y', 'report-2')
    """
    parts = [p for p in PurePosixPath(submission.replace("\\", "/")).parts
             if p not in ("", ".", "..", "/")]
    # a folder named like a result file ("x.json/") or, at the top, like one of the batch's own
    # files ("gradebook.csv/") would be that file: it gets a "_"
    parts = [p + "_" if p.endswith(RESULT_SUFFIXES) or (i == 0 and p in _BATCH_FILES) else p
             for i, p in enumerate(parts[:-1])] + parts[-1:]
    stem = "/".join(_fits(p) for p in parts).removesuffix(".ipynb") or "submission"
    name, n = stem, 2
    while name in taken or name in _BATCH_STEMS:
        name, n = f"{stem}-{n}", n + 1
    taken.add(name)
    return name


def write_result(result: GradeResult, out: Path, name: str) -> None:
    """Write ``out/<name>.json``, ``out/<name>.md`` and ``out/<name>.html`` (the feedback with
    the replay's grid: :class:`grader.html.FeedbackPage`)."""
    from .html import FeedbackPage

    (out / name).parent.mkdir(parents=True, exist_ok=True)
    # learner text may hold lone surrogates (JSON's "\\ud800"): written as U+FFFD, never a crash
    (out / f"{name}.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (out / f"{name}.md").write_text(result.to_markdown(), encoding="utf-8", errors="replace")
    (out / f"{name}.html").write_text(FeedbackPage(result).render(), encoding="utf-8",
                                      errors="replace")


def write_gradebook(rows: Iterable[dict[str, Any]], out: Path) -> Path:
    """Write ``out/gradebook.csv``, one row per submission, sorted; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gradebook.csv"
    with path.open("w", newline="", encoding="utf-8", errors="replace") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(GRADEBOOK_COLUMNS))
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (str(r["submission"]), str(r["exercise"]))):
            writer.writerow({k: spreadsheet_safe(row.get(k, "")) for k in GRADEBOOK_COLUMNS})
    return path


def format_gradebook(path: Path, columns: Sequence[str] = GRADEBOOK_COLUMNS[:5]) -> str:
    """The gradebook as an aligned text table (what ``make grade`` prints)."""
    with path.open() as handle:
        rows = [{k: printable(v) for k, v in r.items()} for r in csv.DictReader(handle)]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    head = "  ".join(c.ljust(widths[c]) for c in columns)
    body = ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([head, *body])
