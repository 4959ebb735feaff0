"""The partition grid: states from a real warehouse and ledger, live updates from a real run,
and renderings (widget, HTML, text) that stay readable at 90 daily and 48 hourly partitions."""

from __future__ import annotations

import threading
from html.parser import HTMLParser

import pandas as pd
import pytest

from backfill_lab import (
    ConfigError,
    Fault,
    PartitionError,
    PartitionSet,
    StepEvent,
    UnknownNameError,
    Warehouse,
    build_demo,
    run_backfill,
)
from backfill_lab.display.grid import WIDGET_MIME, PartitionGrid
from backfill_lab.display.render import COLOURS, render_html, render_text
from backfill_lab.status import STATES, grid_states

LAYERS = ["raw", "staging", "features"]
DAILY_90 = PartitionSet.parse("2024-11-01..2025-01-29")
HOURLY_48 = PartitionSet.parse("2024-12-05T00:00..2024-12-06T23:00")


class Html(HTMLParser):
    """The cells, header labels and column widths of a rendered grid."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.labels: list[tuple[str, int]] = []  # header (text, colspan)
        self.col_px: list[int] = []
        self.classes: list[str] = []
        self._th: dict[str, str] | None = None
        self._in_head = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.classes += a.get("class", "").split()
        if tag == "td":
            self.cells.append(a)
        elif tag == "thead":
            self._in_head = True
        elif tag == "th" and self._in_head:
            self._th = a
            self.labels.append(("", int(a.get("colspan", "1"))))
        elif tag == "col":
            self.col_px.append(int(a["style"].split("width:")[1].split("px")[0]))

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False

    def handle_data(self, data):
        if self._in_head and self.labels and data.strip():
            text, span = self.labels[-1]
            self.labels[-1] = (text + data.strip(), span)


def frame(keys, rows: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(keys))


def test_states_of_a_staged_outage_then_live_repair(capsys):
    wh = Warehouse()
    history = "2024-11-28..2024-12-06"
    pipeline, _ = build_demo(wh, history=history, outage="2024-12-01..2024-12-02", seed=3,
                             entities=30, events_per_day=120)
    grid = PartitionGrid(wh, pipeline.layer_names, history)
    s = grid.states
    assert list(s.index) == LAYERS and len(s.columns) == 9
    assert set(s.loc["raw", "2024-12-01":"2024-12-02"]) == {"failed"}
    assert set(s.loc[["staging", "features"], "2024-12-01":"2024-12-02"].stack()) == {"missing"}
    # features after the outage read a 7-day window with a hole: their runs failed
    assert set(s.loc["features", "2024-12-03":"2024-12-06"]) == {"failed"}
    assert set(s.loc[:, "2024-11-28":"2024-11-30"].stack()) == {"ok"}
    assert grid.counts() == {"missing": 4, "ok": 17, "failed": 6, "invalid": 0, "stale": 0,
                             "running": 0}

    widget = grid.widget
    events: list[StepEvent] = []

    def on_event(event: StepEvent) -> None:
        events.append(event)
        grid.on_event(event)

    result = run_backfill(pipeline, wh, "2024-12-01..2024-12-06", concurrency=2,
                          on_event=on_event)
    assert result.ok and result.max_in_flight == 2
    assert set(grid.states.stack()) == {"ok"}
    assert grid.progress() == (18, 18)
    grid.flush()
    cells, bar, label = widget.children[0], *widget.children[1].children
    assert (bar.value, bar.max, bar.bar_style) == (18, 18, "success")
    assert "18/18 steps done" in label.value
    assert Html(cells.value).cells[0]["class"] == "bfg-cell bfg-ok"
    assert 1 <= grid.renders <= len(events)
    # what the events said is what the warehouse and the ledger say
    assert grid.refresh().states.equals(grid_states(wh, LAYERS, history))


def test_failed_retried_and_skipped_steps_and_progress_of_each_run(wh, pipeline):
    grid = PartitionGrid(wh, pipeline, "2024-12-01..2024-12-03")
    assert set(grid.states.stack()) == {"missing"}
    # before any run: no caption asking for on_event under a picture nobody can pass it to
    assert grid._progress_text() == "waiting for the first step of a backfill"
    assert "on_event" not in grid.to_text() + grid.to_html()
    faults = [Fault.fail("raw", "2024-12-02"), Fault.fail("raw", "2024-12-03", times=1)]
    seen: list[str] = []

    def on_event(event: StepEvent) -> None:
        seen.append(event.status)
        grid.on_event(event)

    run_backfill(pipeline, wh, "2024-12-01..2024-12-03", concurrency=2, retries=1, backoff=0,
                 faults=faults, on_event=on_event)
    assert {"retrying", "failed", "skipped"} <= set(seen)
    s = grid.states
    assert s["2024-12-02"].tolist() == ["failed", "missing", "missing"]  # skipped: unchanged
    assert s["2024-12-03"].tolist() == ["ok", "ok", "missing"]  # its window holds 12-02
    assert grid.progress() == (9, 9)
    assert "9/9 steps done (1 failed, 3 skipped)" in grid.to_text()
    assert grid.refresh().states.equals(s)

    # a second run: progress starts again, with the total given up front
    assert grid.progress("2024-12-02..2024-12-03") == (0, 6)
    run_backfill(pipeline, wh, "2024-12-02..2024-12-03", on_event=grid.on_event)
    assert grid.progress() == (6, 6) and set(grid.states.stack()) == {"ok"}
    # and a third, without a total: the repeat of a finished step starts a new count
    run_backfill(pipeline, wh, "2024-12-03", layers=["features"], on_event=grid.on_event)
    assert grid.progress() == (1, 1)


def test_event_statuses_map_to_states():
    grid = PartitionGrid(Warehouse(), ["raw", "features"], "2024-12-01..2024-12-02")
    grid.mark("raw", "2024-12-02", "invalid")

    def state(status: str, partition: str = "2024-12-01") -> str:
        grid.on_event(StepEvent("raw", partition, status, 1))
        return grid.states.at["raw", partition]

    assert state("running") == "running"
    assert state("retrying") == "running"
    assert state("failed") == "failed"
    assert state("skipped") == "failed"
    assert state("cancelled") == "failed"
    assert state("success") == "ok"
    assert state("skipped", "2024-12-02") == "invalid"
    assert state("running", "2024-12-02") == "running"  # a rebuild clears the mark
    assert grid.refresh().states.at["raw", "2024-12-02"] == "running"  # still in flight
    grid.on_event(StepEvent("raw", "2025-06-01", "success", 1))  # outside the grid: counted only
    grid.on_event(StepEvent("other", "2024-12-01", "success", 1))
    assert grid.states.shape == (2, 2)
    # raw 12-02 had finished (skipped) and started again: a new run, counting from there
    assert grid.progress() == (2, 3)


def test_events_from_many_threads_at_once():
    keys = list(PartitionSet.parse("2024-12-01..2024-12-30"))
    grid = PartitionGrid(Warehouse(), ["raw", "features"], keys, throttle=0)
    grid.progress(60)
    widget = grid.widget
    cells = [(layer, k) for layer in grid.layers for k in keys]
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def worker(mine):
        try:
            start.wait()
            for layer, key in mine:
                grid.on_event(StepEvent(layer, key, "running", 1))
                grid.on_event(StepEvent(layer, key, "success", 1, rows=3))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            start.wait()
            for _ in range(20):
                assert "bfg-cell" in grid.to_html() and grid.counts()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(cells[i::4],)) for i in range(4)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert set(grid.states.stack()) == {"ok"} and grid.progress() == (60, 60)
    bar = widget.children[1].children[0]
    assert (bar.value, bar.max) == (60, 60)
    assert Html(widget.children[0].value).classes.count("bfg-ok") == 60


def test_a_burst_of_events_becomes_few_widget_updates():
    keys = list(PartitionSet.parse("2024-12-01..2024-12-31"))
    grid = PartitionGrid(Warehouse(), LAYERS, keys, throttle=60)
    grid.progress(93)
    widget = grid.widget
    before = grid.renders
    for key in keys:
        for layer in LAYERS:
            grid.on_event(StepEvent(layer, key, "running", 1))
            grid.on_event(StepEvent(layer, key, "success", 1))
    # 186 events: none rendered inside the throttle window except the last, which completes
    assert grid.renders - before == 1
    assert grid._timer is None  # the final render cancelled the pending one
    assert widget.children[1].children[0].value == 93


def test_stale_downstream_after_an_upstream_rebuild(wh, pipeline):
    days = "2024-12-01..2024-12-09"
    assert run_backfill(pipeline, wh, days, concurrency=2).ok
    grid = PartitionGrid(wh, pipeline, days)
    assert set(grid.states.stack()) == {"ok"}
    run_backfill(pipeline, wh, "2024-12-03", layers=["raw", "staging"], on_event=grid.on_event)
    live = grid.states
    # features read a trailing 7-day window of staging: 12-03..12-09 were built on the old 12-03
    assert live.loc["features"].tolist() == ["ok"] * 2 + ["stale"] * 7
    assert live.loc["staging", "2024-12-03"] == "ok"
    assert grid.refresh().states.equals(live)  # the ledger's timestamps agree with the events
    assert set(grid_states(wh, LAYERS, days).stack()) == {"ok"}  # no pipeline: no staleness
    # a change further up makes everything below it stale
    run_backfill(pipeline, wh, "2024-12-08", layers=["raw"])
    s = grid_states(wh, LAYERS, days, pipeline=pipeline)
    assert s["2024-12-08"].tolist() == ["ok", "stale", "stale"]
    run_backfill(pipeline, wh, days, layers=["staging", "features"])
    assert set(grid.refresh().states.stack()) == {"ok"}


def test_invalid_marks_and_their_errors(wh, pipeline):
    days = "2024-12-01..2024-12-03"
    run_backfill(pipeline, wh, days, faults=[Fault.fail("features", "2024-12-03")])
    s = grid_states(wh, LAYERS, "2024-12-01..2024-12-04",
                    invalid={"features": "2024-12-01..2024-12-04", "raw": ["2024-12-02"]})
    assert s["2024-12-01"].tolist() == ["ok", "ok", "invalid"]
    assert s["2024-12-02"].tolist() == ["invalid", "ok", "invalid"]
    assert s["2024-12-03"].tolist() == ["ok", "ok", "failed"]  # the latest run failed: says more
    assert s["2024-12-04"].tolist() == ["missing"] * 3  # no rows to be invalid
    assert grid_states(wh, LAYERS, days, invalid=[("raw", "2024-12-01")]).at[
        "raw", "2024-12-01"] == "invalid"
    with pytest.raises(UnknownNameError, match="Did you mean 'features'"):
        grid_states(wh, LAYERS, days, invalid={"feature": "2024-12-01"})

    grid = PartitionGrid(wh, LAYERS, days, invalid={"raw": "2024-12-01"})
    grid.mark("staging", "2024-12-01..2024-12-02", "invalid")
    assert grid.refresh().states.loc[["raw", "staging"], "2024-12-01"].tolist() == [
        "invalid", "invalid"]  # marks outlive a refresh
    grid.mark("staging", "2024-12-02", None)
    assert grid.states.at["staging", "2024-12-02"] == "ok"
    with pytest.raises(UnknownNameError, match="Did you mean 'staging'"):
        grid.mark("stagin", "2024-12-01", "invalid")
    with pytest.raises(UnknownNameError, match="unknown grid state 'broken'"):
        grid.mark("raw", "2024-12-01", "broken")
    with pytest.raises(PartitionError, match="2024-12-09 is not in this grid"):
        grid.mark("raw", "2024-12-09", "invalid")
    with pytest.raises(ConfigError, match="'layers' must be at least one layer name"):
        PartitionGrid(wh, [], days)
    with pytest.raises(UnknownNameError, match="Did you mean 'features'"):
        PartitionGrid(wh, ["featurez"], days, pipeline=pipeline)


def test_html_has_one_coloured_cell_per_partition_and_a_legend():
    keys = ["2024-12-01", "2024-12-02", "2024-12-03"]
    states = frame(keys, {"raw": ["ok", "failed", "running"],
                          "features": ["missing", "invalid", "stale"]})
    page = render_html(states, title="demo <grid>", progress=(2, 6))
    doc = Html(page)
    assert len(doc.cells) == 6
    by_title = {c["title"]: c for c in doc.cells}
    failed = by_title["raw 2024-12-02: failed"]
    assert failed["class"] == "bfg-cell bfg-failed"
    assert f"background:{COLOURS['failed']}" in failed["style"]
    assert by_title["features 2024-12-03: stale"]["class"] == "bfg-cell bfg-stale"
    assert len(set(COLOURS.values())) == len(STATES)
    assert "backfill-grid-legend" in doc.classes
    legend = page.split("backfill-grid-legend")[1]
    for state in STATES:
        assert f"{state} 1<" in legend  # every state, with its count
    assert "demo &lt;grid&gt;" in page and "2/6 steps" in page
    assert "backfill-grid" not in doc.classes  # reserved for the live widget's root


@pytest.mark.parametrize("keys, largest_cell, max_labels", [
    (DAILY_90, 8, 20),  # 3 months + ticks at days 1, 8, 15, 22, 29
    (HOURLY_48, 16, 20),  # 2 days + a tick every 3 hours
])
def test_html_stays_readable_at_90_daily_and_48_hourly(keys, largest_cell, max_labels):
    states = frame(keys, {layer: ["ok"] * len(keys) for layer in LAYERS})
    doc = Html(render_html(states))
    assert len(doc.cells) == 3 * len(keys)
    label_col, *cols = doc.col_px
    assert len(cols) == len(keys) and len(set(cols)) == 1
    assert 6 <= cols[0] <= largest_cell
    assert label_col + (cols[0] + 1) * len(keys) <= 820  # fits a notebook output without scroll
    labels = [(text, span) for text, span in doc.labels if text]
    assert 4 <= len(labels) <= max_labels
    for text, span in labels:  # no label is wider than the columns it spans
        assert 6 * len(text) + 2 <= span * (cols[0] + 1), text
    # the header rows span every column, once each (plus the row-label column)
    assert sum(span for _, span in doc.labels) == 2 * (len(keys) + 1)
    texts = [text for text, _ in labels]
    if keys is DAILY_90:
        assert texts[:3] == ["Nov 2024", "Dec 2024", "Jan 2025"]
        assert texts[3:8] == ["1", "8", "15", "22", "29"]
    else:
        assert texts[:2] == ["2024-12-05", "2024-12-06"]
        assert texts[2:5] == ["00", "03", "06"]


def test_mimebundle_is_a_frozen_picture_html_and_text(wh):
    grid = PartitionGrid(wh, LAYERS, "2024-12-01..2024-12-05", title="grid of the demo")
    bundle = grid._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}  # no widget: it would change later
    assert "backfill-grid" in grid.widget._dom_classes  # the selector a browser test can use
    assert "backfill-grid-static" in bundle["text/html"]
    assert bundle["text/html"].count('class="bfg-cell bfg-missing"') == 15
    assert bundle["text/plain"] == grid.to_text() == repr(grid)
    assert bundle["text/plain"].startswith("grid of the demo\n")
    assert set(grid._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert "text/html" not in grid._repr_mimebundle_(exclude=["text/html"])


def test_text_grid_lines_up_days_and_hours():
    keys = ["2024-11-29", "2024-11-30", "2024-12-01", "2024-12-02", "2024-12-05"]
    states = frame(keys, {"raw": ["ok", "failed", "missing", "ok", "stale"],
                          "features": ["ok", "ok", "invalid", "running", "ok"]})
    gap = " " * 28  # columns sit at their day of the month: 29 November is column 29
    assert render_text(states).splitlines() == [
        "2024-11     " + gap + "29",
        "       raw  " + gap + "#X",
        "  features  " + gap + "##",
        "2024-12     1",
        "       raw  .#  ~",  # 12-03 and 12-04 are not in the set: blank, not missing
        "  features  !>  #",
        "legend: # ok  . missing  X failed  ! invalid  ~ stale  > running",
    ]
    hourly = render_text(frame(HOURLY_48, {"raw": ["ok"] * 48})).splitlines()
    assert hourly[0] == "2024-12-05  00    06    12    18"
    assert hourly[1] == "       raw  " + "#" * 24
    assert hourly[2].startswith("2024-12-06  00") and len(hourly) == 5
    with pytest.raises(ConfigError, match="'width' must be an integer >= 1"):
        render_text(states, width=0)


def test_the_learner_names_point_at_the_split_modules():
    import backfill_lab as bl

    assert (bl.grid_states, bl.render_html, bl.render_text, bl.PartitionGrid) == (
        grid_states, render_html, render_text, PartitionGrid)


# -- every picture shows the moment it was drawn ---------------------------------------------
def test_a_displayed_grid_keeps_its_moment_after_later_changes(wh, pipeline):
    days = "2024-12-01..2024-12-03"
    grid = PartitionGrid(wh, pipeline, days, title="before")
    before = grid._repr_mimebundle_()
    picture = grid.picture()
    run_backfill(pipeline, wh, days, on_event=grid.on_event)
    grid.title = "after"
    grid.refresh()
    after = grid._repr_mimebundle_()
    # the earlier display and picture still show the empty grid, under their own title
    assert picture.counts()["missing"] == 9 and picture.title == "before"
    assert picture.to_html() == before["text/html"] and picture.to_text() == before["text/plain"]
    assert before["text/html"].count("bfg-missing") == 9 and "bfg-ok" not in before["text/html"]
    assert after["text/html"].count("bfg-ok") == 9 and after["text/plain"].startswith("after\n")
    assert grid.picture("a caption of its own").title == "a caption of its own"


def test_a_live_copy_follows_its_run_and_then_keeps_the_end_state(wh, pipeline):
    days = "2024-12-01..2024-12-03"
    grid = PartitionGrid(wh, pipeline, days, throttle=0)
    view = grid.live()
    assert WIDGET_MIME in view._bundle() and not view.shown  # shown only inside IPython
    with view as followed:
        assert followed is grid
        live = grid._views[-1]
        cells, bar, label = live
        assert "waiting for the first step of a backfill" in label.value
        run_backfill(pipeline, wh, days, on_event=grid.on_event)
        assert Html(cells.value).classes.count("bfg-ok") == 9  # it filled during the run
    assert live not in grid._views
    assert (bar.value, bar.max, bar.bar_style) == (9, 9, "success")
    end = cells.value
    # later changes of the grid never reach a closed live copy
    run_backfill(pipeline, wh, "2024-12-02", layers=["raw"], on_event=grid.on_event)
    grid.mark("features", "2024-12-01", "invalid")
    assert cells.value == end and "bfg-invalid" in grid.to_html()
    assert "bfg-stale" in grid.to_html() and "bfg-stale" not in end


def test_an_aborted_run_never_reads_as_full_and_green(wh, pipeline):
    days = "2024-12-01..2024-12-04"
    grid = PartitionGrid(wh, pipeline, days, throttle=0)

    def release(event: StepEvent) -> None:
        grid.on_event(event)
        if (event.layer, event.status) == ("raw", "success"):
            pipeline.deploy("v9.9.9")  # a deploy under the running backfill: it aborts

    with grid.live():
        bar, label = grid._views[-1][1:]
        result = run_backfill(pipeline, wh, days, code_version=pipeline.code_version,
                              concurrency=1, on_event=release)
    assert result.status == "aborted" and result.counts().get("cancelled", 0) > 0
    ran = sum(n for s, n in result.counts().items() if s in ("success", "failed", "invalid"))
    assert bar.max == 12 and bar.value == ran < 12
    assert bar.bar_style == "warning" and "stopped:" in label.value and "cancelled" in label.value
    static = grid.to_html()
    assert "bfg-run-stopped" in static and "bfg-run-success" not in static
    assert COLOURS["ok"] not in static.split("backfill-grid-progress-static")[1].split("</div>")[0]
    assert "stopped: " in grid.to_text()
