"""HTML pages of the grader's results, on one base: the learner's feedback and the class report.

A :class:`Page` is a title and :meth:`~Page.sections`; subclasses supply the sections, the base
writes the document (one file: inline CSS, inline SVG, no JavaScript, nothing fetched, so it
opens from disk with no network). Pass/fail tables are :class:`backfill_lab.report.PassFailReport`
subclasses, as everywhere in the lab: :class:`ChecksTable` (a plan's checks) and
:class:`QuizTable` (the quick test, question by question, without the key's answers). Every
piece of text goes through :func:`backfill_lab.report.escape`: file names, messages and plan
values come from learners.

:class:`FeedbackPage` is ``<name>.html``: the score, what to fix (what, why, how, where the
workbook teaches it), and the partition grid the replay of the learner's plan left, drawn by the
notebooks' renderer (:func:`backfill_lab.display.render.render_html`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from backfill_lab.course.questions import QUESTIONS
from backfill_lab.course.replaygrid import (
    OUTCOME_COLOURS,
    OUTCOME_MEANING,
    OUTCOME_STATES,
    picture_frames,
)
from backfill_lab.display.render import render_html
from backfill_lab.report import Column, PassFailReport, Row, escape

from .score import TestResult
from .status import Status

if TYPE_CHECKING:
    from .report import GradeResult

__all__ = ["CSS", "ChecksTable", "FeedbackPage", "Page", "PassedTable", "QuizTable", "Section",
           "split_section", "table"]

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;
max-width:980px;padding:0 16px;color:#1b1b1b;line-height:1.45}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:3px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;
vertical-align:top;text-align:left}th{background:#f6f6f6;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
.score{font-size:1.25em;font-weight:600}.muted{color:#666;font-size:.9em}
.status-graded{color:#1b5e20}.status-bad{color:#b71c1c}.chart svg{max-width:100%;height:auto}
.legend-meaning td{border:none;padding:1px 8px}.note{background:#fff8e1;padding:6px 10px}
"""


@dataclass(frozen=True)
class Section:
    """One part of a page: a heading (``''`` for none), its HTML, and an id to link to."""

    heading: str
    html: str
    id: str = ""


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, css_class: str = "",
          raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    cls = f' class="{escape(css_class)}"' if css_class else ""
    out = [f"<table{cls}><tr>", *(f"<th>{escape(h)}</th>" for h in headers), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c if raw else escape(c)}</td>" for c in row)
                   + "</tr>")
    out.append("</table>")
    return "".join(out)


class Page:
    """The base of every page: subclasses supply :meth:`title` and :meth:`sections`."""

    def title(self) -> str:
        """The page's title (and first heading)."""
        raise NotImplementedError(f"{type(self).__name__} must define title()")

    def sections(self) -> list[Section]:
        """The page's parts, in order."""
        raise NotImplementedError(f"{type(self).__name__} must define sections()")

    def render(self) -> str:
        """The whole document: one file, inline CSS and SVG, no script, nothing fetched."""
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
               '<meta name="viewport" content="width=device-width,initial-scale=1">',
               # nothing may be fetched nor run, whatever a learner's text holds
               '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
               'style-src \'unsafe-inline\'; img-src data:">',
               f"<title>{escape(self.title())}</title><style>{CSS}</style></head><body>",
               f"<h1>{escape(self.title())}</h1>"]
        for s in self.sections():
            ident = f' id="{escape(s.id)}"' if s.id else ""
            out.append(f"<section{ident}>")
            if s.heading:
                out.append(f"<h2>{escape(s.heading)}</h2>")
            out.append(s.html)
            out.append("</section>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


_SEE = re.compile(r"\s*\(see ([^()]*§[^()]*)\)\s*$")


def split_section(output: str) -> tuple[str, str]:
    """``(message, section)``: a check's output without its trailing ``(see SECTION)``.

    >>> split_section("Too wide. (see notebooks/05_x.ipynb § 1. Range and order)")
    ('Too wide.', 'notebooks/05_x.ipynb § 1. Range and order')
    >>> split_section("correct.")
    ('correct.', '')
    """
    found = _SEE.search(output)
    return (output[:found.start()], found[1]) if found else (output, "")


class ChecksTable(PassFailReport):
    """A plan's checks as a pass/fail table: check, points, what to do, where it is taught."""

    css_class = "checks"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("check", "code"), Column("points"), Column("what, why and how to fix", "text"),
        Column("taught in", "text"))

    def __init__(self, tests: Sequence[TestResult], heading: str = "") -> None:
        self.tests = list(tests)
        self.heading = heading

    def html_title(self) -> str:
        """The table's heading."""
        return self.heading

    def rows(self) -> list[Row]:
        """One row per check, failed ones first (as listed)."""
        out = []
        for t in self.tests:
            message, section = split_section(t.output)
            cells = (t.name, f"{t.score:g}/{t.max_score:g}", message, section)
            out.append(Row(t.passed, cells[:len(self.columns)],
                           f"{'pass' if t.passed else 'FAIL'} {t.name}: {t.output}"))
        return out


class PassedTable(ChecksTable):
    """The checks a plan passed: check, points, what was right."""

    css_class = "passed"
    columns = (Column("check", "code"), Column("points"), Column("what was right", "text"))


class QuizTable(PassFailReport):
    """The quick test question by question: the question, the points, the feedback. Never the
    right option: the feedback says where to read again (the key stays with the grader)."""

    css_class = "quiz"
    columns = (Column("question", "code"), Column("asks", "text"), Column("points"),
               Column("feedback", "text"))
    _PROMPTS: ClassVar[dict[str, str]] = {q.id: q.prompt for q in QUESTIONS}

    def __init__(self, tests: Sequence[TestResult]) -> None:
        self.tests = list(tests)

    def rows(self) -> list[Row]:
        """One row per question."""
        return [Row(t.passed, (t.name, self._PROMPTS.get(t.name, ""),
                               f"{t.score:g}/{t.max_score:g}", t.output),
                    f"{'pass' if t.passed else 'FAIL'} {t.name}: {t.output}")
                for t in self.tests]


def _grid(picture: dict[str, Any]) -> str:
    """The replay's two grids (what the plan did; the engine's states), or why there is none."""
    try:
        outcomes, states = picture_frames(picture)
        runs = int(picture.get("runs", 2))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"<p class='muted'>The replay's grid cannot be drawn ({escape(exc)}).</p>"
    intro = (f"<p>Your plan replayed {runs} time{'s' if runs != 1 else ''} on the staged "
             f"incident (a second run is what a retry or a rerun does). Broken: "
             f"<code>{escape(picture.get('broken', ''))}</code> in "
             f"<code>{escape(', '.join(map(str, picture.get('broken_layers', []))))}</code>; "
             f"your plan's range: <code>{escape(picture.get('range', ''))}</code>"
             + (" (the grid shows the incident and the days around it)"
                if picture.get("clipped") else "") + ".</p>")
    meaning = table(["colour", "means"],
                    [(f'<span style="display:inline-block;width:12px;height:12px;'
                      f'background:{OUTCOME_COLOURS[s]}"></span> {escape(s)}',
                      escape(OUTCOME_MEANING[s])) for s in OUTCOME_STATES],
                    css_class="legend-meaning", raw=True)
    what = render_html(outcomes, title="What your plan did to each partition",
                       root_class="backfill-grid-outcome", colours=OUTCOME_COLOURS)
    engine = render_html(states, title="The partition grid after the replay (as the notebooks "
                                       "draw it)", root_class="backfill-grid-static")
    return f"{intro}{what}{meaning}<div style='margin-top:14px'>{engine}</div>"


class FeedbackPage(Page):
    """``<name>.html``: one submission's feedback, with the picture of what its plan did."""

    def __init__(self, result: GradeResult) -> None:
        self.result = result

    def title(self) -> str:
        """``Feedback: <submission>``."""
        return f"Feedback: {self.result.submission}"

    def sections(self) -> list[Section]:
        """Score and status; what to fix; the replay's grid; the checks passed; notes."""
        r = self.result
        status = Status(r.status)
        passed = sum(1 for t in r.tests if t.passed)
        css = "status-graded" if status == Status.GRADED else "status-bad"
        head = (f"<p class='score'>{r.score:g} / {r.max_score:g}</p><p>exercise "
                f"<code>{escape(r.exercise or 'unknown')}</code> · status "
                f"<span class='{css}'>{escape(status.text)}</span>"
                + (f": {escape(r.reason)}" if r.reason else "")
                + f" · {passed} of {len(r.tests)} checks passed</p>")
        out = [Section("", head, "summary")]
        if r.failed_cells:
            rows = [(str(c.get("cell", "")), str(c.get("ename", "")), str(c.get("evalue", "")))
                     for c in r.failed_cells]
            out.append(Section("Cells that raised", table(["cell", "error", "message"], rows)))
        quiz = r.exercise is not None and r.tests and all(
            t.name.startswith("q") and t.name[1:].isdigit() for t in r.tests)
        todo = [t for t in r.tests if not t.passed]
        done = [t for t in r.tests if t.passed]
        if quiz:
            out.append(Section("Question by question", QuizTable(r.tests)._repr_html_(), "quiz"))
        elif len(todo) > 1 and len({t.output for t in todo}) == 1:
            # one cause sank every check (no plan, a plan that does not load): say it once
            names = ", ".join(f"<code>{escape(t.name)}</code>" for t in todo)
            out.append(Section("What to fix", f"<p class='note'>{escape(todo[0].output)}</p>"
                                              f"<p>All {len(todo)} checks failed for this one "
                                              f"reason: {names}.</p>", "fix"))
        elif todo:
            out.append(Section("What to fix", ChecksTable(todo)._repr_html_(), "fix"))
        if r.replay:
            out.append(Section("What the replay of your plan left", _grid(r.replay), "grid"))
        elif not quiz and r.tests:
            out.append(Section("What the replay of your plan left", "<p class='muted'>Nothing "
                               "to draw: your plan was not replayed on the incident (the checks "
                               "above say why).</p>", "grid"))
        if done and not quiz:
            out.append(Section("Checks passed", PassedTable(done)._repr_html_(), "passed"))
        if r.notes:
            out.append(Section("Notes", "".join(f"<p class='note'>{escape(n)}</p>"
                                                for n in r.notes)))
        return out
