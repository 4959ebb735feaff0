"""The partition grid: layers x partitions, one colour (or text mark) per state, live during a run.

The guide's mental model is a grid of boxes arranged by time; a backfill refills chosen boxes.
:func:`grid_states` computes every box's state from the warehouse and the run ledger,
:func:`render_text` draws it for a terminal (``backfill-lab status``), :func:`render_html` for a
notebook, and :class:`PartitionGrid` shows it as a widget that follows a running backfill through
``on_event``.

States (when several apply, the first one listed wins):

* ``running``: a step is building it right now (only seen live, from runner events).
* ``failed``: the latest attempt failed (rows it holds, if any, are from an older run).
* ``invalid``: it holds rows and a validation rejected them.
* ``stale``: it holds rows, built before an upstream partition it reads was rebuilt (directly or
  further up); needs the pipeline's dependencies, so it is only computed when given a pipeline.
* ``ok``: it holds rows and its latest attempt succeeded (or no attempt is recorded).
* ``missing``: no rows.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigError, PartitionError, UnknownNameError
from ..ledger import Ledger
from ..partitions import PartitionSet, grain_of, shift
from ..pipeline import Pipeline
from ..validations import invalid_partitions
from ..warehouse import Warehouse

if TYPE_CHECKING:
    import ipywidgets

    from ..runner import StepEvent

__all__ = [
    "COLOURS",
    "MARKS",
    "STATES",
    "PartitionGrid",
    "cell_width",
    "grid_states",
    "header_labels",
    "render_html",
    "render_text",
]

STATES: tuple[str, ...] = ("missing", "ok", "failed", "invalid", "stale", "running")
MARKS: dict[str, str] = {
    "ok": "#", "missing": ".", "failed": "X", "invalid": "!", "stale": "~", "running": ">",
}
#: Okabe-Ito colours (safe for the common colour-vision deficiencies); missing is a light grey.
COLOURS: dict[str, str] = {
    "ok": "#009E73", "missing": "#E2E2E2", "failed": "#D55E00", "invalid": "#CC79A7",
    "stale": "#F0E442", "running": "#0072B2",
}
_LEGEND_ORDER = ("ok", "missing", "failed", "invalid", "stale", "running")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

Cell = tuple[str, str]  # (layer, partition)
InvalidSpec = Mapping[str, object] | Iterable[Cell]


# -- states -------------------------------------------------------------------------------------
def _ledger_history(
    warehouse: Warehouse, tables: Mapping[str, str]
) -> tuple[dict[Cell, str], dict[Cell, Any]]:
    """Latest status and last success time of each (layer, partition), for the grid's tables.

    Only ledger rows written to the table a layer is shown from count: the grid of ``features``
    says nothing about a backfill that wrote ``features_v2``.
    """
    frame = Ledger(warehouse).frame()  # in recording order: the last row is the newest
    if frame.empty:
        return {}, {}
    shown = frame["layer"].map(lambda layer: tables.get(layer, layer))
    mine = frame[frame["target"] == shown]
    latest = mine.drop_duplicates(["layer", "partition"], keep="last")
    ok = mine[mine["status"] == "success"].drop_duplicates(["layer", "partition"], keep="last")
    status = dict(zip(zip(latest["layer"], latest["partition"], strict=True),
                      latest["status"], strict=True))
    success = dict(zip(zip(ok["layer"], ok["partition"], strict=True), ok["seq"],
                       strict=True))
    return status, success


def _staleness(pipeline: Pipeline, success: Mapping[Cell, Any]) -> Callable[[str, str], bool]:
    """``stale(layer, key)``: built before an upstream partition it reads was last rebuilt.

    Transitive: a partition reading a stale one is stale too. A partition with no recorded
    success (written outside the runner) is never called stale: there is no build time to compare.
    """
    memo: dict[Cell, bool] = {}

    def stale(layer: str, key: str) -> bool:
        cell = (layer, key)
        if cell not in memo:
            memo[cell] = False  # pipelines are acyclic; this only guards the recursion
            built = success.get(cell)
            if built is not None:
                for up in pipeline.upstream(layer, key):
                    at = success.get(up)
                    if at is not None and (at > built or stale(*up)):
                        memo[cell] = True
                        break
        return memo[cell]

    return stale


def _cells(spec: InvalidSpec | None, layers: Sequence[str], what: str) -> set[Cell]:
    """``{layer: partitions}`` or ``[(layer, partition), ...]`` as a set of cells."""
    if spec is None:
        return set()
    pairs: list[tuple[str, object]] = (
        list(spec.items()) if isinstance(spec, Mapping) else list(spec)  # type: ignore[arg-type]
    )
    out: set[Cell] = set()
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigError.invalid(what, "{layer: partitions} or [(layer, partition), ...]",
                                      pair)
        layer, partitions = pair
        if layer not in layers:
            raise UnknownNameError.of(f"layer in {what}", str(layer), layers)
        out.update((str(layer), k) for k in PartitionSet.parse(partitions))  # type: ignore[arg-type]
    return out


def grid_states(
    warehouse: Warehouse, layers: Sequence[str], partitions: object,
    tables: Mapping[str, str] | None = None, *,
    invalid: InvalidSpec | None = None, pipeline: Pipeline | None = None,
) -> pd.DataFrame:
    """A layers x partitions frame of states, from the warehouse's rows and the ledger.

    ``tables`` maps a layer to the table it is shown from (default: the layer's name).
    ``invalid`` (``{layer: partitions}`` or ``[(layer, partition), ...]``) marks partitions a
    validation rejected; partitions outside the grid are ignored. With ``pipeline``, partitions
    built before an upstream partition they read was rebuilt are ``stale``.
    """
    keys = list(PartitionSet.parse(partitions))  # type: ignore[arg-type]
    layers = list(layers)
    if pipeline is not None:
        for name in layers:
            pipeline.layer(name)
    shown = dict(tables or {})
    latest, success = _ledger_history(warehouse, shown)
    rejected = _cells(invalid, layers, "invalid")
    for layer in layers:  # what validations recorded: a failed check marks the partition
        table = shown.get(layer, layer)
        if warehouse.has_table(table):
            rejected |= {(layer, k) for k in invalid_partitions(warehouse, table)}
    stale = _staleness(pipeline, success) if pipeline is not None else None
    rows = {}
    for layer in layers:
        present = warehouse.existing_partitions(shown.get(layer, layer), keys)
        states = []
        for key in keys:
            if latest.get((layer, key)) == "failed":
                states.append("failed")
            elif key not in present:
                states.append("missing")
            elif (layer, key) in rejected:
                states.append("invalid")
            elif stale is not None and stale(layer, key):
                states.append("stale")
            else:
                states.append("ok")
        rows[layer] = states
    return pd.DataFrame.from_dict(rows, orient="index", columns=keys)


# -- text ---------------------------------------------------------------------------------------
def _tick_text(key: str, *, first: bool = False) -> str | None:
    """The ruler label at ``key``: day 1, 8, 15, 22, 29 (daily) or hour 00, 06, 12, 18."""
    if grain_of(key) == "daily":
        day = int(key[8:10])
        return str(day) if first or day in (1, 8, 15, 22, 29) else None
    hour = int(key[11:13])
    return f"{hour:02d}" if first or hour % 6 == 0 else None


def _ruler(placed: Sequence[tuple[int, str]]) -> str:
    """Tick labels over their columns, the block's first column always, never touching."""
    line: list[str] = []
    for i, (pos, key) in enumerate(placed):
        label = _tick_text(key, first=i == 0)
        if label is None or pos < len(line) + (1 if line else 0):
            continue
        line.extend(" " * (pos - len(line)))
        line.extend(label)
    return "".join(line)


def _calendar_blocks(cols: Sequence[str]) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """One block per month (daily, column = day) or per day (hourly, column = hour)."""
    daily = grain_of(cols[0]) == "daily"
    for header, items in groupby(cols, key=lambda k: k[:7] if daily else k[:10]):
        yield header, [(int(k[8:10]) - 1 if daily else int(k[11:13]), k) for k in items]


def render_text(states: pd.DataFrame, *, width: int | None = None) -> str:
    """The grid as text with a legend: a block per month (hourly: per day), column = day (hour).

    Columns sit at their day of the month, so blocks line up and a gap in a targeted set shows
    as a blank. ``width=N`` instead cuts the partitions into blocks of N columns.

    >>> df = pd.DataFrame([["ok", "missing", "failed"]], index=["raw"],
    ...                   columns=["2024-12-01", "2024-12-02", "2024-12-03"])
    >>> print(render_text(df))
    2024-12  1
        raw  #.X
    legend: # ok  . missing  X failed  ! invalid  ~ stale  > running
    >>> print(render_text(df, width=2))
    2024-12-01 .. 2024-12-02
      raw  #.
    2024-12-03 .. 2024-12-03
      raw  X
    legend: # ok  . missing  X failed  ! invalid  ~ stale  > running
    """
    lines: list[str] = []
    names = [str(i) for i in states.index]
    pad = max((len(n) for n in names), default=0)
    cols = list(states.columns)
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError.invalid("width", "an integer >= 1, or None for calendar blocks",
                                      width)
        for start in range(0, len(cols), width):
            block = cols[start:start + width]
            lines.append(f"{block[0]} .. {block[-1]}")
            for layer in states.index:
                marks = "".join(MARKS[states.at[layer, c]] for c in block)
                lines.append(f"  {str(layer).rjust(pad)}  {marks}")
    elif cols:
        blocks = list(_calendar_blocks(cols))
        pad = max(pad, *(len(h) - 2 for h, _ in blocks))
        for header, placed in blocks:
            lines.append(f"{header.ljust(pad + 4)}{_ruler(placed)}".rstrip())
            for layer, name in zip(states.index, names, strict=True):
                row = [" "] * (placed[-1][0] + 1)
                for pos, key in placed:
                    row[pos] = MARKS[states.at[layer, key]]
                lines.append(f"  {name.rjust(pad)}  {''.join(row)}")
    legend = "  ".join(f"{MARKS[s]} {s}" for s in _LEGEND_ORDER)
    lines.append(f"legend: {legend}")
    return "\n".join(lines)


# -- html ---------------------------------------------------------------------------------------
MAX_GRID_PX = 720  # cells of a grid fit this width; wider grids scroll sideways


def cell_width(columns: int) -> int:
    """Pixel width of one cell so ``columns`` cells fit about 720 px (between 4 and 16).

    >>> cell_width(90), cell_width(48), cell_width(7), cell_width(365)
    (7, 14, 16, 4)
    """
    return max(4, min(16, MAX_GRID_PX // max(columns, 1) - 1))


def _text_px(text: str) -> int:
    return 6 * len(text) + 2  # 10 px sans-serif, generously


def _fit(candidates: Sequence[str], px: int) -> str:
    return next((c for c in candidates if _text_px(c) <= px), "")


def _tick_step(pitch: int, daily: bool) -> int:
    """The smallest tick step that leaves labels at least 36 px apart."""
    options = (1, 2, 7) if daily else (1, 2, 3, 6, 12)
    return next((s for s in options if s * pitch >= 36), options[-1])


def header_labels(
    keys: Sequence[str], pitch: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The two header rows as ``(label, columns spanned)`` runs: months (hourly: days) above,
    sparse ticks below. ``pitch`` is one column's width in px; a label that would not fit its
    span is left blank, so labels never widen or overlap cells.

    >>> from backfill_lab.partitions import key_range
    >>> groups, ticks = header_labels(key_range("2024-11-29", "2024-12-09"), 8)
    >>> groups
    [('', 2), ('Dec 2024', 9)]
    >>> ticks
    [('29', 2), ('1', 7), ('8', 2)]
    >>> header_labels(key_range("2024-12-05T22:00", "2024-12-06T02:00"), 15)[1]
    [('', 2), ('00', 3)]
    """
    daily = grain_of(keys[0]) == "daily"
    step = _tick_step(pitch, daily)
    groups: list[tuple[str, int]] = []
    ticks: list[tuple[str, int]] = []
    for group, members in groupby(keys, key=lambda k: k[:7] if daily else k[:10]):
        items = list(members)
        if daily:
            month = _MONTHS[int(group[5:7]) - 1]
            names = [f"{month} {group[:4]}", month]
        else:
            names = [group, group[5:]]
        groups.append((_fit(names, len(items) * pitch), len(items)))
        label, span = "", 0
        for key in items:
            number = int(key[8:10]) - 1 if daily else int(key[11:13])
            if number % step == 0:
                if span:
                    ticks.append((_fit([label], span * pitch), span))
                label, span = (str(number + 1) if daily else f"{number:02d}"), 0
            span += 1
        ticks.append((_fit([label], span * pitch), span))
    return groups, ticks


_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
_TH = ("padding:0;border:none;background:none;font-weight:normal;font-size:10px;opacity:.75;"
       "color:inherit;text-align:left;white-space:nowrap;overflow:hidden;line-height:12px")


def _swatch(state: str) -> str:
    return (f'<span style="display:inline-block;width:10px;height:10px;margin-right:3px;'
            f'vertical-align:-1px;background:{COLOURS[state]}"></span>')


def render_html(
    states: pd.DataFrame, *, title: str | None = None,
    progress: tuple[int, int] | None = None, root_class: str = "backfill-grid-static",
) -> str:
    """The grid as one compact HTML table (a coloured cell per partition) with a legend.

    Inline styles only, so it survives notebook sanitisers and static renderers. Every cell has
    the classes ``bfg-cell bfg-<state>`` and a tooltip like ``features 2024-12-05: failed``.
    """
    cols = [str(c) for c in states.columns]
    names = [str(i) for i in states.index]
    cell = cell_width(len(cols))
    pitch = cell + 1  # border-spacing is 1 px
    label_px = max((_text_px(n) for n in names), default=20) + 6
    table_px = label_px + pitch * len(cols) + 2
    counts = {s: 0 for s in STATES}
    out = [f'<div class="{html.escape(root_class)}" style="{_FONT};font-size:11px;color:inherit;'
           f'line-height:1.3">']
    if title:
        out.append(f'<div style="font-weight:600;margin:0 0 4px">{html.escape(title)}</div>')
    out.append('<div style="overflow-x:auto;max-width:100%">')
    out.append(f'<table class="backfill-grid-table" style="border-collapse:separate;'
               f'border-spacing:1px;table-layout:fixed;width:{table_px}px;margin:0">')
    out.append(f'<colgroup><col style="width:{label_px}px">'
               + f'<col style="width:{cell}px">' * len(cols) + "</colgroup>")
    if cols:
        out.append("<thead>")
        for runs in header_labels(cols, pitch):
            out.append(f'<tr style="background:none"><th style="{_TH}"></th>')
            out.extend(f'<th colspan="{span}" style="{_TH}">{html.escape(text)}</th>'
                       for text, span in runs)
            out.append("</tr>")
        out.append("</thead>")
    out.append("<tbody>")
    for layer, name in zip(states.index, names, strict=True):
        out.append(f'<tr style="background:none"><th style="{_TH};text-align:right;'
                   f'padding-right:4px;opacity:1;font-size:11px">{html.escape(name)}</th>')
        for key in cols:
            state = str(states.at[layer, key])
            counts[state] += 1
            out.append(f'<td class="bfg-cell bfg-{state}" title="{html.escape(name)} {key}: '
                       f'{state}" style="padding:0;border:none;height:13px;'
                       f'background:{COLOURS[state]}"></td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if progress is not None:
        done, total = progress
        pct = 100 * done // total if total else 0
        out.append(f'<div class="backfill-grid-progress-static" style="margin-top:4px">'
                   f'<span style="display:inline-block;width:200px;height:8px;background:#E2E2E2;'
                   f'vertical-align:0"><span style="display:block;width:{pct}%;height:8px;'
                   f'background:{COLOURS["running"]}"></span></span> {done}/{total} steps</div>')
    legend = "".join(f'<span style="white-space:nowrap;margin-right:10px">{_swatch(s)}{s} '
                     f"{counts[s]}</span>" for s in _LEGEND_ORDER)
    out.append(f'<div class="backfill-grid-legend" style="margin-top:4px">{legend}</div></div>')
    return "".join(out)


# -- the live grid ------------------------------------------------------------------------------
_FINAL = frozenset({"success", "invalid", "failed", "skipped", "cancelled"})
_EVENT_STATE = {"running": "running", "retrying": "running", "success": "ok", "failed": "failed",
                "invalid": "invalid"}


def _downstream(pipeline: Pipeline, layer: str, key: str) -> Iterator[Cell]:
    """Every (layer, partition) that reads ``(layer, key)`` directly."""
    for name in pipeline.layer_names:
        for dep in pipeline.layer(name).depends_on:
            if dep.layer != layer:
                continue
            for i in range(getattr(dep.mapping, "size", 1)):
                reader = shift(key, i)
                if key in dep.mapping.upstream(reader):
                    yield (name, reader)


class PartitionGrid:
    """The partition grid of a warehouse, live while a backfill runs.

    Display it in a notebook (a widget in JupyterLab, HTML in a static render, text in a
    terminal) and pass ``on_event=grid.on_event`` to :func:`~backfill_lab.run_backfill`: cells
    turn ``running`` then ``ok`` or ``failed`` as steps finish, and a progress bar counts steps.

    ``layers`` is a list of layer names, or a :class:`Pipeline` (its layers; it also turns on
    ``stale`` detection, as does ``pipeline=``). ``invalid`` marks partitions a validation
    rejected (see :func:`grid_states`); :meth:`mark` sets one cell's state by hand.

    >>> from backfill_lab.runner import StepEvent
    >>> grid = PartitionGrid(Warehouse(), ["raw", "features"], "2024-12-01..2024-12-03")
    >>> grid.on_event(StepEvent("raw", "2024-12-02", "running", attempt=1))
    >>> print(grid.to_text())
    raw / features: 2024-12-01..2024-12-03 (3 daily partitions)
    2024-12     1
           raw  .>.
      features  ...
    legend: # ok  . missing  X failed  ! invalid  ~ stale  > running
    0/1 steps done (1 running)
    """

    def __init__(
        self, warehouse: Warehouse, layers: Sequence[str] | Pipeline, partitions: object, *,
        tables: Mapping[str, str] | None = None, title: str | None = None,
        pipeline: Pipeline | None = None, invalid: InvalidSpec | None = None,
        throttle: float = 0.1,
    ) -> None:
        if isinstance(layers, Pipeline):
            pipeline = pipeline or layers
            layers = layers.layer_names
        names = [layers] if isinstance(layers, str) else [str(n) for n in layers]
        if not names:
            raise ConfigError.invalid("layers", "at least one layer name", names)
        if pipeline is not None:
            pipeline.check_layers(names)
        if isinstance(throttle, bool) or not isinstance(throttle, int | float) or throttle < 0:
            raise ConfigError.invalid("throttle", "a number of seconds >= 0", throttle)
        self.warehouse = warehouse
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.partitions = PartitionSet.parse(partitions)  # type: ignore[arg-type]
        # a layer is shown from the table it writes by default, unless told otherwise
        defaults = {n: pipeline.layer(n).default_table for n in names} if pipeline else {}
        self.tables = {**defaults, **dict(tables or {})}
        self.pipeline = pipeline
        self.throttle = float(throttle)
        self.title = title or (f"{' / '.join(self.layers)}: {self.partitions} "
                               f"({len(self.partitions)} {self.partitions.grain} partitions)")
        self._invalid = invalid
        self._lock = threading.RLock()
        self._base: dict[Cell, str] = {}
        self._live: dict[Cell, str] = {}  # from events since the last refresh
        self._live_seq: dict[Cell, int] = {}  # when each live state was set (event count)
        self._seq = 0
        self._marks: dict[Cell, str] = {}  # set by hand, until the cell is rebuilt
        self._running: set[Cell] = set()
        self._total = 0  # 0: count the steps seen
        self._seen: set[Cell] = set()
        self._final: dict[Cell, str] = {}
        self._widget: ipywidgets.VBox | None = None
        self._parts: tuple[Any, Any, Any] | None = None
        self._render_lock = threading.Lock()
        self._last_render = 0.0
        self._timer: threading.Timer | None = None
        self.renders = 0  # widget updates sent so far (the throttle keeps this small)
        self.refresh()

    # -- the model ---------------------------------------------------------------------------
    def refresh(self) -> PartitionGrid:
        """Re-read every state from the warehouse and ledger (keeps marks and running cells).

        Events that arrive while it reads win over what it read.
        """
        with self._lock:
            started = self._seq
        base = grid_states(self.warehouse, self.layers, self.partitions, self.tables,
                           invalid=self._invalid, pipeline=self.pipeline)
        cells = {(layer, key): str(base.at[layer, key])
                 for layer in self.layers for key in self.partitions}
        with self._lock:
            self._base = cells
            self._live = {c: s for c, s in self._live.items()
                          if s == "running" or self._live_seq[c] > started}
            self._live_seq = {c: self._live_seq[c] for c in self._live}
        self._request_render(now=True)
        return self

    def _state(self, cell: Cell) -> str:
        return self._marks.get(cell) or self._live.get(cell) or self._base[cell]

    @property
    def states(self) -> pd.DataFrame:
        """The current layers x partitions frame of states (a copy)."""
        with self._lock:
            rows = {layer: [self._state((layer, k)) for k in self.partitions]
                    for layer in self.layers}
        return pd.DataFrame.from_dict(rows, orient="index", columns=list(self.partitions))

    def counts(self) -> dict[str, int]:
        """How many cells are in each state."""
        with self._lock:
            found = [self._state(c) for c in self._base]
        return {s: found.count(s) for s in STATES}

    def mark(self, layer: str, partitions: object, state: str | None) -> None:
        """Show ``state`` on these cells (e.g. ``invalid`` after a failed validation) until they
        are rebuilt; ``None`` removes the mark."""
        if layer not in self.layers:
            raise UnknownNameError.of("layer of this grid", layer, self.layers)
        if state is not None and state not in STATES:
            raise UnknownNameError.of("grid state", str(state), STATES)
        keys = list(PartitionSet.parse(partitions))  # type: ignore[arg-type]
        outside = [k for k in keys if (layer, k) not in self._base]
        if outside:
            raise PartitionError(
                f"partition {outside[0]} is not in this grid ({self.partitions}); "
                f"mark partitions inside it"
            )
        with self._lock:
            for key in keys:
                if state is None:
                    self._marks.pop((layer, key), None)
                else:
                    self._marks[(layer, key)] = state
        self._request_render(now=True)

    def progress(self, total: int | object | None = None, *,
                 layers: Sequence[str] | None = None) -> tuple[int, int]:
        """``(steps done, steps expected)`` of the backfill being followed.

        Pass ``total`` before a run to set the steps expected: a number, or the run's partitions
        (times ``layers``, default the grid's). Without it the total is the number of steps seen
        so far, exact once the run ends. A new run is detected when a step that already finished
        starts again, or when a step starts after every expected step finished.
        """
        with self._lock:
            if total is not None:
                if isinstance(total, int) and not isinstance(total, bool):
                    if total < 0:
                        raise ConfigError.invalid("total", "a number of steps >= 0", total)
                    steps = total
                else:
                    steps = len(PartitionSet.parse(total)) * len(layers or self.layers)  # type: ignore[arg-type]
                self._new_run(steps)
            done, expected = self._counts()
        if total is not None:
            self._request_render(now=True)
        return done, expected

    def _new_run(self, total: int = 0) -> None:
        self._total = total
        self._seen = set()
        self._final = {}

    def _counts(self) -> tuple[int, int]:
        done = len(self._final)
        return done, max(self._total, len(self._seen | self._final.keys()))

    def on_event(self, event: StepEvent) -> None:
        """Follow one runner event (safe to call from the runner's worker threads)."""
        cell: Cell = (str(event.layer), str(event.partition))
        status = str(event.status)
        with self._lock:
            if status == "running" and (
                cell in self._final or (self._total and len(self._final) >= self._total)
            ):
                self._new_run()
            announced = getattr(event, "total", None)  # if the runner tells the step count
            if isinstance(announced, int) and announced > 0:
                self._total = announced
            self._seen.add(cell)
            if status in _FINAL:
                self._final[cell] = status
            if status in ("running", "retrying"):
                self._running.add(cell)
            else:
                self._running.discard(cell)
            state = _EVENT_STATE.get(status)  # skipped, cancelled: the cell keeps its state
            self._seq += 1
            if state is not None and cell in self._base:
                self._marks.pop(cell, None)
                self._set_live(cell, state)
            if status == "success" and self.pipeline is not None:
                self._mark_readers_stale(cell)
            # with a known total, the last step renders at once; otherwise the throttle's
            # trailing update shows it within ``throttle`` seconds
            complete = 0 < self._total <= len(self._final) and not self._running
        self._request_render(now=complete)

    def _mark_readers_stale(self, cell: Cell) -> None:
        """Cells that read ``cell`` (directly or further down) were built on its old rows."""
        assert self.pipeline is not None
        todo, seen = [cell], {cell}
        while todo:
            for reader in _downstream(self.pipeline, *todo.pop()):
                if reader in seen:
                    continue
                seen.add(reader)
                todo.append(reader)
                if reader in self._base and self._state(reader) == "ok":
                    self._set_live(reader, "stale")

    def _set_live(self, cell: Cell, state: str) -> None:
        self._live[cell] = state
        self._live_seq[cell] = self._seq

    # -- rendering ---------------------------------------------------------------------------
    def _progress_text(self) -> str:
        done, total = self._counts()
        if not total:
            return "no backfill followed yet: pass on_event=grid.on_event to run_backfill"
        finals = list(self._final.values())
        extra = [f"{len(self._running)} running"] if self._running else []
        extra += [f"{finals.count(s)} {s}" for s in ("failed", "skipped", "cancelled")
                  if finals.count(s)]
        return f"{done}/{total} steps done" + (f" ({', '.join(extra)})" if extra else "")

    def to_html(self) -> str:
        """The grid as static HTML (what nbconvert and GitHub show)."""
        with self._lock:
            done, total = self._counts()
        return render_html(self.states, title=self.title,
                           progress=(done, total) if total else None)

    def to_text(self) -> str:
        """The grid as text (what a terminal shows)."""
        with self._lock:
            progress = self._progress_text() if self._counts()[1] else ""
        lines = [self.title, render_text(self.states)] + ([progress] if progress else [])
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    @property
    def widget(self) -> ipywidgets.VBox:
        """The live ipywidget (root CSS class ``backfill-grid``), created on first use."""
        with self._lock:
            if self._widget is None:
                import ipywidgets

                cells = ipywidgets.HTML()
                cells.add_class("backfill-grid-cells")
                bar = ipywidgets.IntProgress(value=0, min=0, max=1,
                                             layout=ipywidgets.Layout(width="240px"))
                bar.add_class("backfill-grid-progress")
                label = ipywidgets.HTML()
                box = ipywidgets.VBox([cells, ipywidgets.HBox([bar, label])])
                box.add_class("backfill-grid")
                self._parts = (cells, bar, label)
                self._widget = box
        self.flush()
        return self._widget

    def _request_render(self, *, now: bool = False) -> None:
        """Render now, or within ``throttle`` seconds: bursts of events become one update."""
        if self._widget is None:
            return
        with self._lock:
            wait = self.throttle - (time.monotonic() - self._last_render)
            if not now and wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._render_pending)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._cancel_timer()
        self._render()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_render = time.monotonic()

    def _render_pending(self) -> None:
        with self._lock:
            self._timer = None
            self._last_render = time.monotonic()
        self._render()

    def flush(self) -> None:
        """Send the current state to the widget now (cancels a pending throttled update)."""
        with self._lock:
            self._cancel_timer()
        if self._widget is not None:
            self._render()

    def _render(self) -> None:
        with self._render_lock:  # one thread at a time, each sending the newest snapshot
            with self._lock:
                states = self.states
                done, total = self._counts()
                text = self._progress_text()
                failed = "failed" in self._final.values()
            assert self._parts is not None
            cells, bar, label = self._parts
            cells.value = render_html(states, title=self.title, root_class="backfill-grid-view")
            with bar.hold_sync():
                bar.max = max(total, 1)
                bar.value = min(done, bar.max)
                bar.bar_style = ("danger" if failed else
                                 "success" if total and done >= total else "info")
            label.value = f'<span style="{_FONT};font-size:11px">{html.escape(text)}</span>'
            self.renders += 1

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """The live widget for JupyterLab, with HTML and text for renders without widgets."""
        view = self.widget._repr_mimebundle_().get(WIDGET_MIME)  # type: ignore[no-untyped-call]
        bundle: dict[str, Any] = {"text/plain": self.to_text(), "text/html": self.to_html()}
        if view is not None:
            bundle[WIDGET_MIME] = view
        if include is not None:
            bundle = {k: v for k, v in bundle.items() if k in set(include)}
        if exclude is not None:
            bundle = {k: v for k, v in bundle.items() if k not in set(exclude)}
        return bundle

