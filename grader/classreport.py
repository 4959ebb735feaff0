"""The class report, ``DIR/report.html``: what a whole class's submissions did, on one page.

Built from every result (``*.json``) under one or more result folders, so a batch, a ``merge``
over many batches and ``backfill-grader report DIR`` all draw the same page from the same
files, which are also what ``gradebook.csv`` is written from: every count on the page is a count
of gradebook rows. Charts are drawn with matplotlib to inline SVG (no script, no font or file
fetched); each chart has its numbers in a table beside it.

Sections: the score distribution (histogram of score / max, stacked by exercise), the pass rate
of every check across the graded submissions (sorted, each check linked to the notebook section
that teaches it), the most common combinations of failed checks, the statuses (timeouts, dead
kernels, invalid files, ...) with the submissions concerned, the quiz questions most often
missed, and the grading runs' own figures (``run.jsonl``: duration, jobs, isolation; JSON
Lines, so that no ``*.json`` of a result folder is anything but a submission's result).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backfill_lab.course import registry
from backfill_lab.course.questions import QUESTIONS
from backfill_lab.course.rules import SECTIONS
from backfill_lab.course.simulate import OUTCOMES
from backfill_lab.course.simulate import SECTION as OUTCOME_SECTION
from backfill_lab.report import escape

from .html import Page, Section, split_section, table
from .report import GradeResult
from .status import Status

__all__ = ["BINS", "REPORT_FILE", "RUN_FILE", "ClassReport", "Entry", "check_rates",
           "histogram_counts", "load_results", "main", "quiz_misses", "section_href",
           "section_link", "write_class_report"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_FILE = "run.jsonl"
REPORT_FILE = "report.html"
#: the histogram's bins: percent of the maximum score, the last bin is full marks only
BINS: tuple[tuple[str, float, float], ...] = (
    *((f"{lo}-{lo + 9}%", lo, lo + 10) for lo in range(0, 100, 10)), ("100%", 100, 101))
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999")
_PROMPTS = {q.id: q.prompt for q in QUESTIONS}


@dataclass(frozen=True)
class Entry:
    """One result and where its feedback page is, relative to the report."""

    result: GradeResult
    href: str


def load_results(dirs: Sequence[Path], report_dir: Path
                 ) -> tuple[list[Entry], list[dict[str, Any]]]:
    """Every result under ``dirs`` (what ``merge`` reads: files that are not results are
    skipped) and every grading run's figures (each line of every ``run.jsonl``)."""
    entries: list[Entry] = []
    runs: list[dict[str, Any]] = []
    for folder in dirs:
        for run_file in sorted(folder.rglob(RUN_FILE)):
            try:
                lines = run_file.read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    run = json.loads(line)
                except ValueError:
                    continue
                if isinstance(run, dict):
                    runs.append(run)
        for f in sorted(folder.rglob("*.json")):
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict):
                continue
            if "submission" not in data:
                continue
            try:
                result = GradeResult.from_json(data)
            except ValueError:
                continue
            page = f.with_suffix(".html")
            entries.append(Entry(result, os.path.relpath(page, report_dir).replace(os.sep, "/")))
    entries.sort(key=lambda e: (e.result.submission, str(e.result.exercise)))
    return entries, runs


def _percent(r: GradeResult) -> float:
    return 100 * r.score / r.max_score if r.max_score else 0.0


def _bin(r: GradeResult) -> str:
    pct = _percent(r)
    return next(label for label, lo, hi in BINS if lo <= pct < hi or (hi == 101 and pct >= 100))


def _exercise(r: GradeResult) -> str:
    """The exercise as a chart may name it: a known id, else ``other`` (never learner text)."""
    return r.exercise if r.exercise in registry.IDS else "other"


def section_of(check: str, output: str = "") -> str:
    """The notebook section that teaches ``check`` (a rule, an outcome, or from its message)."""
    if check in SECTIONS:
        return SECTIONS[check]
    if check in OUTCOMES:
        return OUTCOME_SECTION
    return split_section(output)[1]


def section_href(section: str, report_dir: Path) -> str | None:
    """Where ``section`` (``notebooks/NN.ipynb § Heading``) is, relative to the report: the
    notebook and JupyterLab's anchor of the heading; None when it names no notebook."""
    path, _, heading = section.partition(" § ")
    if not path.endswith(".ipynb"):
        return None
    href = os.path.relpath(PROJECT_ROOT / path, report_dir).replace(os.sep, "/")
    return f"{href}#{heading.strip().replace(' ', '-')}"


def section_link(section: str, report_dir: Path) -> str:
    """``section`` as a link to the notebook's heading (plain text when it names none)."""
    href = section_href(section, report_dir)
    if href is None:
        return escape(section)
    return f'<a href="{escape(href)}">{escape(section)}</a>'


def _svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG (text as paths: no font is fetched)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def warm() -> None:
    """Import what drawing the charts needs (matplotlib, about a second), ahead of the report:
    a batch does it on a thread while its kernels run, not after the last one."""
    import matplotlib.backends.backend_svg
    import matplotlib.figure  # noqa: F401


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96)


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context({"svg.hashsalt": "backfill-grader", "text.parse_math": False,
                                  "font.size": 9, "svg.fonttype": "path"})


def histogram_counts(entries: Sequence[Entry]) -> dict[str, Counter[str]]:
    """``{exercise: Counter(bin -> submissions)}``: the histogram's numbers."""
    out: dict[str, Counter[str]] = {}
    for e in entries:
        out.setdefault(_exercise(e.result), Counter())[_bin(e.result)] += 1
    return out


def check_rates(entries: Sequence[Entry]) -> list[tuple[str, str, int, int, str]]:
    """``(exercise, check, passed, graded, section)`` of every check of the graded plan
    submissions, the lowest pass rate first."""
    seen: dict[tuple[str, str], list[int]] = {}
    where: dict[tuple[str, str], str] = {}
    for e in entries:
        r = e.result
        if r.status != Status.GRADED or _quiz(r) or _exercise(r) == "other":
            continue
        for t in r.tests:
            k = (_exercise(r), t.name)
            seen.setdefault(k, [0, 0])
            seen[k][0] += int(t.passed)
            seen[k][1] += 1
            where[k] = where.get(k) or section_of(t.name, t.output)
    rows = [(ex, name, p, n, where[(ex, name)]) for (ex, name), (p, n) in seen.items()]
    return sorted(rows, key=lambda x: (x[2] / x[3], x[0], x[1]))


def _quiz(r: GradeResult) -> bool:
    return r.exercise in registry.IDS and registry.exercise(str(r.exercise)).is_quiz


def quiz_misses(entries: Sequence[Entry]) -> list[tuple[str, int, int]]:
    """``(question, missed, answered)`` over the graded quick tests, the most missed first."""
    seen: dict[str, list[int]] = {}
    for e in entries:
        if e.result.status == Status.GRADED and _quiz(e.result):
            for t in e.result.tests:
                seen.setdefault(t.name, [0, 0])
                seen[t.name][0] += int(not t.passed)
                seen[t.name][1] += 1
    order = {q.id: i for i, q in enumerate(QUESTIONS)}
    return sorted(((q, m, n) for q, (m, n) in seen.items()),
                  key=lambda x: (-x[1] / x[2], order.get(x[0], 99), x[0]))


class ClassReport(Page):
    """``report.html``: the class's results (see the module's docstring)."""

    def __init__(self, entries: Sequence[Entry], runs: Sequence[dict[str, Any]],
                 report_dir: Path) -> None:
        self.entries = list(entries)
        self.runs = list(runs)
        self.report_dir = report_dir

    def title(self) -> str:
        """``Class report: N submissions``."""
        return f"Class report: {len(self.entries)} submissions"

    def sections(self) -> list[Section]:
        """Overview, histogram, pass rates, combinations, statuses, quiz, runs."""
        return [self._overview(), self._histogram(), self._rates(), self._combinations(),
                self._statuses(), self._quiz(), self._everyone(), self._runs()]

    def _link(self, e: Entry) -> str:
        return f'<a href="{escape(e.href)}">{escape(e.result.submission)}</a>'

    def _overview(self) -> Section:
        graded = sum(1 for e in self.entries if e.result.status == Status.GRADED)
        by_ex = Counter(_exercise(e.result) for e in self.entries)
        rows = [(escape(ex), str(n), f"{_mean(self.entries, ex):.0f}%") for ex, n in
                sorted(by_ex.items())]
        return Section("", f"<p>{graded} of {len(self.entries)} submissions graded to the end. "
                           f"Each name links to that learner's feedback.</p>"
                       + table(["exercise", "submissions", "mean score"], rows, raw=True,
                               css_class="overview"), "overview")

    def _histogram(self) -> Section:
        counts = histogram_counts(self.entries)
        labels = [b[0] for b in BINS]
        with _rc():
            fig = _figure(7.5, 2.8)
            ax = fig.subplots()
            bottom = [0] * len(labels)
            for i, ex in enumerate(sorted(counts)):
                heights = [counts[ex][b] for b in labels]
                ax.bar(range(len(labels)), heights, bottom=bottom, label=ex,
                       color=_PALETTE[i % len(_PALETTE)])
                bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
            for x, total in enumerate(bottom):  # each bar's submissions, on top of it
                if total:
                    ax.text(x, total, str(total), ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(labels)), labels, rotation=30)
            ax.set_ylabel("submissions")
            ax.set_xlabel("score, % of the maximum")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.spines[["top", "right"]].set_visible(False)
            if counts:
                ax.legend(frameon=False, fontsize=8)
            svg = _svg(fig)
        rows = [[escape(ex)] + [f'<span data-bin="{escape(b)}">{counts[ex][b]}</span>'
                                for b in labels] for ex in sorted(counts)]
        data = table(["exercise", *labels], rows, raw=True, css_class="counts histogram")
        return Section("Score distribution", f'<div class="chart" id="chart-histogram">{svg}'
                                             f"</div>{data}", "histogram")

    def _rates(self) -> Section:
        rates = check_rates(self.entries)
        if not rates:
            return Section("Pass rate per check", "<p class='muted'>No graded plan.</p>", "rates")
        with _rc():
            fig = _figure(7.5, 0.6 + 0.24 * len(rates))
            ax = fig.subplots()
            names = [f"{ex} · {name}" for ex, name, *_ in rates]
            values = [100 * p / n for _, _, p, n, _ in rates]
            bars = ax.barh(range(len(rates)), values, color="#0072B2")
            ax.bar_label(bars, labels=[f"{p}/{n}" for _, _, p, n, _ in rates], padding=3,
                         fontsize=8)
            for bar, (*_, section) in zip(bars, rates, strict=True):
                href = section_href(section, self.report_dir) if section else None
                if href:  # the bar links to the notebook that teaches the check
                    bar.set_url(href)
            ax.set_yticks(range(len(rates)), names)
            ax.invert_yaxis()
            ax.set_xlim(0, 100)
            ax.set_xlabel("% of graded submissions that pass")
            ax.spines[["top", "right"]].set_visible(False)
            svg = _svg(fig)
        rows = [(escape(ex), f"<code>{escape(name)}</code>",
                 f'<span class="passed">{p}</span> / <span class="graded">{n}</span>',
                 f"{100 * p / n:.0f}%", section_link(s, self.report_dir) if s else "")
                for ex, name, p, n, s in rates]
        data = table(["exercise", "check", "passed", "rate", "taught in"], rows, raw=True,
                     css_class="counts rates")
        return Section("Pass rate per check", f"<p>Graded plan submissions only, hardest "
                                              f"first.</p><div class='chart' id='chart-rates'>"
                                              f"{svg}</div>{data}", "rates")

    def _combinations(self) -> Section:
        combos: dict[tuple[str, ...], list[Entry]] = {}
        for e in self.entries:
            if e.result.status == Status.GRADED and not _quiz(e.result) and e.result.failed():
                key = (_exercise(e.result), *sorted(e.result.failed()))
                combos.setdefault(key, []).append(e)
        ranked = sorted(combos.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
        rows = [(escape(k[0]), ", ".join(f"<code>{escape(c)}</code>" for c in k[1:]),
                 f'<span class="count">{len(v)}</span>', ", ".join(self._link(e) for e in v))
                for k, v in ranked]
        body = (table(["exercise", "failed together", "submissions", "who"], rows, raw=True,
                      css_class="combinations") if rows
                else "<p class='muted'>No graded plan failed a check.</p>")
        return Section("Most common combinations of failed checks", body, "combinations")

    def _statuses(self) -> Section:
        by: dict[str, list[Entry]] = {}
        for e in self.entries:
            by.setdefault(str(e.result.status), []).append(e)
        rows = []
        for status in Status:
            concerned = by.get(str(status), [])
            if not concerned:
                continue
            who = ("" if status == Status.GRADED else "<br>".join(
                self._link(e) + (f" <span class='muted'>{escape(e.result.reason)}</span>"
                                 if e.result.reason else "") for e in concerned))
            rows.append((f"<code>{escape(status)}</code>", escape(status.text),
                         f'<span class="count" data-status="{escape(status)}">{len(concerned)}'
                         f"</span>", who))
        return Section("Statuses", table(["status", "means", "submissions", "which"], rows,
                                         raw=True, css_class="counts statuses"), "statuses")

    def _quiz(self) -> Section:
        misses = quiz_misses(self.entries)
        if not misses:
            return Section("Quiz questions most often missed",
                           "<p class='muted'>No graded quick test.</p>", "quiz")
        with _rc():
            fig = _figure(7.5, 0.6 + 0.24 * len(misses))
            ax = fig.subplots()
            bars = ax.barh(range(len(misses)), [100 * m / n for _, m, n in misses],
                           color="#D55E00")
            ax.bar_label(bars, labels=[f"{m}/{n}" for _, m, n in misses], padding=3,
                         fontsize=8)
            ax.set_yticks(range(len(misses)), [q for q, *_ in misses])
            ax.invert_yaxis()
            ax.set_xlim(0, 100)
            ax.set_xlabel("% of graded quick tests that missed it")
            ax.spines[["top", "right"]].set_visible(False)
            svg = _svg(fig)
        rows = [(f"<code>{escape(q)}</code>", escape(_PROMPTS.get(q, "")),
                 f'<span class="missed">{m}</span> / <span class="answered">{n}</span>')
                for q, m, n in misses]
        data = table(["question", "asks", "missed"], rows, raw=True, css_class="counts quiz")
        return Section("Quiz questions most often missed",
                       f"<div class='chart' id='chart-quiz'>{svg}</div>{data}", "quiz")

    def _everyone(self) -> Section:
        rows = [(self._link(e), escape(e.result.exercise or ""),
                 f"<code>{escape(e.result.status)}</code>",
                 f"{e.result.score:g} / {e.result.max_score:g}") for e in self.entries]
        return Section("Every submission", table(["submission", "exercise", "status", "score"],
                                                 rows, raw=True, css_class="everyone"),
                       "everyone")

    def _runs(self) -> Section:
        total = sum(e.result.duration for e in self.entries)
        isolated = sum(1 for e in self.entries if e.result.isolated)
        rows = [(str(r.get("started", "")), f"{float(r.get('duration', 0)):.1f} s",
                 str(r.get("jobs", "")), str(r.get("submissions", "")),
                 str(r.get("isolation", ""))) for r in self.runs]
        body = (f"<p>{len(self.entries)} submissions, {total:.1f} s of grading in all "
                f"({total / max(len(self.entries), 1):.1f} s each on average); {isolated} run "
                f"in an isolated sandbox.</p>")
        if rows:
            body += table(["started", "took", "jobs", "submissions", "isolation"], rows,
                          css_class="runs")
        return Section("The grading runs", body, "runs")


def _mean(entries: Sequence[Entry], exercise: str) -> float:
    mine = [_percent(e.result) for e in entries if _exercise(e.result) == exercise]
    return sum(mine) / len(mine) if mine else 0.0


def main(*, dirs: Sequence[str], out: str | Path | None = None) -> int:
    """``backfill-grader report DIR... [--out DIR]``: rebuild ``report.html`` (in ``out``,
    default the first DIR) from every result under ``dirs``; prints its path. 0, or a usage
    error when a folder is missing or holds no result."""
    from backfill_lab.cli.parse import UsageError

    folders = [Path(d) for d in dirs]
    for d in folders:
        if not d.is_dir():
            raise UsageError(f"no such folder: {str(d)!r}")
    target = Path(out) if out is not None else folders[0]
    if not load_results(folders, target)[0]:
        raise UsageError(f"no result files (*.json) in {', '.join(map(repr, map(str, dirs)))}")
    print(write_class_report(folders, target))
    return 0


def write_class_report(dirs: Sequence[Path], out: Path) -> Path:
    """Write ``out/report.html`` from every result under ``dirs``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    entries, runs = load_results(dirs, out)
    path = out / REPORT_FILE
    path.write_text(ClassReport(entries, runs, out).render(), encoding="utf-8", errors="replace")
    return path
