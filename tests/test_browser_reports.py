"""The grader's pages in a real browser: one learner's feedback and the class report.

Chromium opens them from disk (``file://``) with every network request refused and counted: the
grid (the notebooks' renderer's table of coloured cells) and every chart (inline SVG) must be
laid out with a real size, and nothing may be fetched. Screenshots are saved as test artefacts
under ``build/screenshots/`` (the paths are printed; ``pytest -s`` shows them).

Needs Debian's ``chromium`` at /usr/bin/chromium and Playwright for Python (never
``playwright install``); skipped without them. The pages come from grading two fixtures
(:func:`tests.test_reports.graded`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .test_reports import graded  # noqa: F401  (the module's fixture: a graded subset)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser_page() -> Iterator[tuple[Page, list[str]]]:
    """A page in Chromium whose every non-file request is refused and recorded."""
    fetched: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})

        def refuse(route: sync_api.Route) -> None:
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                fetched.append(route.request.url)
                route.abort()

        context.route("**/*", refuse)
        try:
            yield context.new_page(), fetched
        finally:
            browser.close()


def _shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_a_learners_feedback_shows_the_replayed_grid(
        graded: Path, browser_page: tuple[Page, list[str]]) -> None:  # noqa: F811
    page, fetched = browser_page
    page.goto((graded / "ex1_mistake_append_on_rerun.html").as_uri())
    grids = page.locator("table.backfill-grid-table")
    assert grids.count() == 2  # what the plan did, and the engine's states
    outcome = page.locator(".backfill-grid-outcome td.bfg-cell")
    assert outcome.count() == 3 * 37  # 3 layers x the incident and 3 days either side
    box = outcome.first.bounding_box()
    assert box is not None and box["width"] >= 4 and box["height"] >= 10
    # a duplicated box is drawn in its legend colour, and says so on hover
    dup = page.locator(".backfill-grid-outcome td.bfg-duplicated").first
    assert dup.get_attribute("title") == "raw 2024-12-01: duplicated"
    colour = dup.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(136, 34, 85)"
    assert "duplicated 62" in page.locator(".backfill-grid-outcome .backfill-grid-legend"
                                           ).inner_text()
    assert page.get_by_role("heading", name="What to fix").is_visible()
    _shot(page, "feedback_append_on_rerun.png")
    assert fetched == []


def test_the_class_report_draws_its_charts(
        graded: Path, browser_page: tuple[Page, list[str]]) -> None:  # noqa: F811
    page, fetched = browser_page
    page.goto((graded / "report.html").as_uri())
    for chart in ("chart-histogram", "chart-rates", "chart-quiz"):
        svg = page.locator(f"#{chart} svg")
        assert svg.count() == 1, chart
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, chart
        assert svg.locator("path").count() > 10, chart  # bars, axes and text drawn as paths
    # a bar of the pass-rate chart links to the section that teaches the check
    links = page.locator("#chart-rates svg a")
    assert links.count() > 0
    assert "notebooks/05_designing_safe_backfills.ipynb#" in (
        links.first.get_attribute("xlink:href") or links.first.get_attribute("href") or "")
    # the names link to each learner's feedback, which opens
    page.get_by_role("link", name="ex1_mistake_append_on_rerun.ipynb").first.click()
    assert page.locator("table.backfill-grid-table").count() == 2
    page.go_back()
    _shot(page, "class_report.png")
    assert fetched == []
