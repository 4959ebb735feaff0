"""What instructors and learners see after grading (issue 17): ``<name>.html`` beside each result,
with the grid the replay of the plan left, and the class report ``report.html``.

The end-to-end tests grade a few of the bundled fixtures once (as ``make grade`` does, on a
subset) and read the pages back: every count the class report shows is checked against
``gradebook.csv``, every box of a feedback's grid against the replay, and no page holds the key.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from backfill_lab.course.questions import QUESTIONS
from backfill_lab.course.replaygrid import OUTCOME_STATES, picture_frames
from backfill_lab.course.selfcheck import check
from backfill_lab.status import STATES
from grader import classreport
from grader.cli import main
from grader.html import FeedbackPage
from grader.report import GradeResult
from grader.score import TestResult as Verdict
from grader.score import load_key
from grader.status import Status

from .plans import MISTAKES, PERFECT_EX1

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "submissions"
SUBSET = ("ex1_mistake_append_on_rerun.ipynb", "ex1_forged_feedback_escaped.ipynb",
          "ex1_os_exit_kernel_died.ipynb", "quick_test_half_right.ipynb", "not_json_invalid.ipynb")
_CELL = re.compile(r'<td class="bfg-cell bfg-([a-z]+)" title="([^"]*)"')


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A subset of the fixtures graded by the CLI in a process of its own, as ``make grade``
    grades them all (a fresh process: its workers inherit nothing of this one's kernels)."""
    src = tmp_path_factory.mktemp("subs")
    for name in SUBSET:
        shutil.copy(SUBMISSIONS / name, src / name)
    out = tmp_path_factory.mktemp("grades")
    done = subprocess.run([sys.executable, "-m", "grader", "grade", str(src), "--out", str(out),
                           "--jobs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"class report: {out / 'report.html'}" in done.stdout  # the batch says where it is
    return out


def _gradebook(out: Path) -> list[dict[str, str]]:
    with (out / "gradebook.csv").open() as handle:
        return list(csv.DictReader(handle))


def _grids(page: str) -> list[list[tuple[str, str]]]:
    """Each grid of a page as its cells' (state, tooltip), in order."""
    return [[(m[1], html.unescape(m[2])) for m in _CELL.finditer(part)]
            for part in page.split('<table class="backfill-grid-table"')[1:]]


# -- the pages exist, for every submission ------------------------------------------------------
def test_a_batch_writes_the_class_report_and_one_page_per_submission(graded: Path) -> None:
    assert (graded / "report.html").is_file() and (graded / "run.jsonl").is_file()
    stems = {Path(r["submission"]).stem for r in _gradebook(graded)}
    assert len(stems) == len(SUBSET)
    for stem in stems:
        for ext in (".json", ".md", ".html"):
            assert (graded / f"{stem}{ext}").is_file(), f"{stem}{ext}"
    report = (graded / "report.html").read_text()
    for stem in stems:  # the class report links to every learner's feedback
        assert f'href="{stem}.html"' in report


# -- the counts in the charts are the gradebook's ------------------------------------------------
def test_the_histogram_counts_are_the_gradebooks(graded: Path) -> None:
    rows = _gradebook(graded)
    want: Counter[tuple[str, str]] = Counter()
    for r in rows:
        score, top = float(r["score"]), float(r["max_score"])
        pct = 100 * score / top if top else 0.0
        label = "100%" if pct >= 100 else f"{int(pct // 10) * 10}-{int(pct // 10) * 10 + 9}%"
        ex = r["exercise"] if r["exercise"] in ("ex1", "ex2", "mini_challenge", "quick_test") \
            else "other"
        want[(ex, label)] += 1
    report = (graded / "report.html").read_text()
    table = report.split('class="counts histogram"')[1].split("</table>")[0]
    got: Counter[tuple[str, str]] = Counter()
    for row in re.findall(r"<tr><td>([^<]*)</td>(.*?)</tr>", table):
        for label, n in re.findall(r'data-bin="([^"]+)">(\d+)<', row[1]):
            if int(n):
                got[(row[0], html.unescape(label))] = int(n)
    assert got == want and sum(got.values()) == len(rows)
    assert '<div class="chart" id="chart-histogram"><svg' in report


def test_the_status_counts_and_pass_rates_are_the_gradebooks(graded: Path) -> None:
    rows = _gradebook(graded)
    report = (graded / "report.html").read_text()
    shown = {s: int(n) for s, n in re.findall(r'data-status="([a-z_]+)">(\d+)<', report)}
    assert shown == dict(Counter(r["status"] for r in rows))
    assert shown["kernel_died"] == 1 and shown["invalid_notebook"] == 1
    # the pass rates count the graded plan submissions of the gradebook, check by check
    graded_plans = Counter(r["exercise"] for r in rows
                           if r["status"] == "graded" and r["exercise"] != "quick_test")
    rates = report.split('class="counts rates"')[1].split("</table>")[0]
    totals = {int(n) for n in re.findall(r'class="graded">(\d+)<', rates)}
    assert totals == {graded_plans["ex1"]} == {2}
    # ... and the figure in the row is the JSON results' own count of passes
    results = [json.loads((graded / f"{Path(r['submission']).stem}.json").read_text())
               for r in rows if r["status"] == "graded" and r["exercise"] == "ex1"]
    for name, passed in re.findall(r"<code>([a-z_]+)</code></td><td><span class=\"passed\">"
                                   r"(\d+)<", rates):
        assert int(passed) == sum(t["score"] >= t["max_score"] for r in results
                                  for t in r["tests"] if t["name"] == name), name
    # each check links to the notebook section that teaches it
    assert re.search(r'href="[^"]*notebooks/05_designing_safe_backfills\.ipynb#2\.-Write-mode"',
                     rates)
    assert '<div class=\'chart\' id=\'chart-rates\'><svg' in report


def test_the_quiz_misses_come_from_the_graded_quick_tests(graded: Path) -> None:
    result = json.loads((graded / "quick_test_half_right.json").read_text())
    missed = {t["name"] for t in result["tests"] if t["score"] < t["max_score"]}
    report = (graded / "report.html").read_text()
    part = report.split('class="counts quiz"')[1].split("</table>")[0]
    shown = dict(re.findall(r"<code>(q\d+)</code>.*?class=\"missed\">(\d+)<", part))
    assert {q for q, n in shown.items() if n == "1"} == missed
    assert len(shown) == len(QUESTIONS)


# -- the grid is the replay's -------------------------------------------------------------------
def test_the_feedback_grid_shows_what_the_replay_left(graded: Path) -> None:
    data = json.loads((graded / "ex1_mistake_append_on_rerun.json").read_text())
    picture = data["replay"]
    page = (graded / "ex1_mistake_append_on_rerun.html").read_text()
    outcome_grid, engine_grid = _grids(page)
    cells = [(layer, key) for layer in picture["layers"] for key in picture["partitions"]]
    assert [(s, tip) for s, tip in outcome_grid] == [
        (picture["cells"][layer][i], f"{layer} {key}: {picture['cells'][layer][i]}")
        for layer, key in cells for i in [picture["partitions"].index(key)]]
    assert [s for s, _ in engine_grid] == [
        picture["states"][layer][picture["partitions"].index(key)] for layer, key in cells]
    # an append that ran twice: every broken raw partition holds its rows twice
    december = [i for i, k in enumerate(picture["partitions"]) if k.startswith("2024-12")]
    assert {picture["cells"]["raw"][i] for i in december} == {"duplicated"}
    failed = {t["name"] for t in data["tests"] if t["score"] < t["max_score"]}
    assert "outcome_idempotent" in failed
    assert "legend" in page and "duplicated 62" in page  # raw and staging, 31 days each


@pytest.fixture(scope="module")
def pictures() -> dict[str, dict[str, object]]:
    """The replay's picture of three ex1 plans, straight from the self-check's simulation."""
    plans = {"perfect": PERFECT_EX1, "append": MISTAKES["append_on_rerun"][1],
             "wrong_range": MISTAKES["wrong_range"][1]}
    out = {}
    for name, plan in plans.items():
        report = check(plan, "ex1", record=False)
        assert report.simulation is not None and report.simulation.picture is not None
        out[name] = report.simulation.picture
    return out


def test_the_picture_agrees_with_the_outcome_checks(pictures: dict[str, dict[str, object]]
                                                    ) -> None:
    def counts(name: str) -> Counter[str]:
        picture = pictures[name]
        return Counter(s for row in picture["cells"].values() for s in row)  # type: ignore

    # the perfect plan refills all 3 x 31 broken boxes and changes nothing else
    assert counts("perfect") == {"refilled": 93, "untouched": 18}
    # ending a day early leaves 2024-12-31 broken in every layer
    wrong = pictures["wrong_range"]
    last = wrong["partitions"].index("2024-12-31")  # type: ignore[attr-defined]
    assert {row[last] for row in wrong["cells"].values()} == {"broken"}  # type: ignore
    assert counts("wrong_range")["broken"] == 3
    # append: raw and staging written twice
    assert counts("append")["duplicated"] == 62
    outcomes, states = picture_frames(pictures["append"])
    assert set(outcomes.stack()) <= set(OUTCOME_STATES) and set(states.stack()) <= set(STATES)


# -- nothing learners wrote runs; the key is never shown ----------------------------------------
def _all_pages(out: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in out.rglob("*") if p.suffix in (".html", ".md", ".json")}


def test_no_page_holds_the_key(graded: Path) -> None:
    key = load_key(ROOT)
    assert key
    options = {q.id: dict(q.choices()) for q in QUESTIONS}
    secrets = [v["explanation"] for v in key.values()]
    secrets += [options[q][v["answer"]] for q, v in key.items()]  # the right option's text
    for path, text in _all_pages(graded).items():
        flat = html.unescape(text)
        for secret in secrets:
            assert secret not in flat, f"{path.name} holds the key: {secret[:40]}"
        assert '"answer"' not in flat


def test_learner_text_stays_text_and_nothing_is_fetched(graded: Path) -> None:
    for path, text in _all_pages(graded).items():
        if path.suffix != ".html":
            continue
        assert "<script" not in text.lower() and "<img" not in text.lower(), path.name
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), path.name
        assert "Content-Security-Policy" in text
    forged = (graded / "ex1_forged_feedback_escaped.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in forged or "&lt;img" in forged


def test_report_rebuilds_the_same_page(graded: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = (graded / "report.html").read_text()
    (graded / "report.html").unlink()
    assert main(["report", str(graded)]) == 0
    assert capsys.readouterr().out.strip() == str(graded / "report.html")
    assert (graded / "report.html").read_text() == before  # the same results, the same page
    copy = tmp_path / "copy"
    shutil.copytree(graded, copy)
    # merge over several folders: one report, linking to each feedback where it is
    merged = tmp_path / "merged"
    assert main(["merge", str(graded), str(copy), "--out", str(merged)]) == 0
    report = (merged / "report.html").read_text()
    assert f"Class report: {2 * len(SUBSET)} submissions" in report
    assert 'href="../copy/ex1_mistake_append_on_rerun.html"' in report
    assert main(["report", str(tmp_path / "nowhere")]) == 2


# -- unit: the feedback page on its own ---------------------------------------------------------
def test_a_forged_picture_or_name_is_never_drawn_as_markup() -> None:
    result = GradeResult("<b>x</b>.ipynb", "ex1", Status.GRADED,
                         [Verdict("range", 0.0, 1.0, "<i>bad</i> (see notebooks/05.ipynb § 1)")],
                         1.0, replay={"layers": ["raw"], "partitions": ["2024-12-01"],
                                      "cells": {"raw": ["<script>"]}, "states": {"raw": ["ok"]}})
    page = FeedbackPage(result).render()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<i>bad</i>" not in page and "<script>" not in page
    assert "cannot be drawn" in page and "bfg-cell" not in page
    assert "notebooks/05.ipynb § 1" in page  # the section, in its own column


def test_histogram_bins_cover_every_score() -> None:
    def entry(score: float, top: float) -> classreport.Entry:
        tests = [Verdict("t", score, top, "")]
        return classreport.Entry(GradeResult("s", "ex1", Status.GRADED, tests, top), "s.html")

    counts = classreport.histogram_counts([entry(0, 16), entry(8, 16), entry(15.9, 16),
                                           entry(16, 16), entry(0, 0)])
    assert counts == {"ex1": Counter({"0-9%": 2, "50-59%": 1, "90-99%": 1, "100%": 1})}


def test_the_run_figures_are_the_batchs(graded: Path) -> None:
    run = json.loads((graded / "run.jsonl").read_text())
    assert run["jobs"] == 2 and run["submissions"] == len(SUBSET) and run["duration"] > 0
    report = (graded / "report.html").read_text()
    runs = report.split('class="runs"')[1].split("</table>")[0]
    assert f"<td>{run['jobs']}</td><td>{len(SUBSET)}</td>" in runs
    assert html.escape(run["isolation"], quote=True) in runs


def test_the_replays_picture_is_signed_with_its_verdict_in_the_cache(tmp_path: Path) -> None:
    from grader.score import VerdictCache

    cache = VerdictCache(tmp_path)
    tests = [Verdict("range", 1.0, 1.0, "ok")]
    picture = {"layers": ["raw"], "partitions": ["2024-12-01"], "cells": {"raw": ["refilled"]},
               "states": {"raw": ["ok"]}}
    cache.put("ex1", "plan", tests, picture)
    assert cache.lookup("ex1", "plan") == (tuple(tests), picture)
    (entry,) = tmp_path.glob("*.json")
    forged = json.loads(entry.read_text())
    forged["picture"]["cells"]["raw"] = ["untouched"]
    entry.write_text(json.dumps(forged))
    assert cache.lookup("ex1", "plan") is None and cache.get("ex1", "plan") is None
