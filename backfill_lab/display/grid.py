"""The partition grid widget: layers x partitions, one colour (or text mark) per state, live
during a run.

:class:`PartitionGrid` reads every partition's state with :func:`~backfill_lab.status.grid_states`,
draws it with :mod:`backfill_lab.display.render` and follows a running backfill through
``on_event``. Taught in notebooks/01_mental_model.ipynb and notebooks/02_daily_backfill.ipynb.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigError, PartitionError, UnknownNameError
from ..partitions import PartitionSet
from ..pipeline import Pipeline
from ..report import escape
from ..status import STATES, Cell, InvalidSpec, grid_states, readers
from ..warehouse import Warehouse
from .live import WIDGET_MIME, LiveGrid
from .picture import GridPicture, RunProgress
from .render import COLOURS, FONT, MARKS, cell_width, header_labels, render_html, render_text

if TYPE_CHECKING:
    import ipywidgets

    from ..runner import StepEvent

__all__ = [
    "COLOURS",
    "MARKS",
    "STATES",
    "WIDGET_MIME",
    "GridPicture",
    "LiveGrid",
    "PartitionGrid",
    "cell_width",
    "grid_states",
    "header_labels",
    "render_html",
    "render_text",
]


# -- the live grid ------------------------------------------------------------------------------
_FINAL = frozenset({"success", "invalid", "failed", "skipped", "cancelled"})
_EVENT_STATE = {"running": "running", "retrying": "running", "success": "ok", "failed": "failed",
                "invalid": "invalid"}


class PartitionGrid:
    """The partition grid of a warehouse, live while a backfill runs.

    Taught in notebooks/01_mental_model.ipynb, notebooks/02_daily_backfill.ipynb,
    notebooks/03_versioned_recompute.ipynb, notebooks/05_designing_safe_backfills.ipynb and
    notebooks/06_practical_projects.ipynb.

    Displaying it draws a frozen picture of this moment (HTML in a notebook, text in a
    terminal), which later changes never alter. To watch a backfill, run it inside
    ``with grid.live():`` and pass ``on_event=grid.on_event`` to
    :func:`~backfill_lab.run_backfill`: a live copy shown in that cell turns cells ``running``
    then ``ok`` or ``failed`` as steps finish, and a progress bar counts the steps that ran.

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
        self._views: list[tuple[Any, Any, Any]] = []  # live widgets this grid updates
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
            for reader in readers(self.pipeline, *todo.pop()):
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
    def _run_progress(self) -> RunProgress | None:
        """Where the followed run stands, or None before any run was followed."""
        total = self._counts()[1]
        if not total:
            return None
        return RunProgress.of(total, self._final, running=len(self._running))

    def _progress_text(self) -> str:
        progress = self._run_progress()
        return progress.caption if progress else "waiting for the first step of a backfill"

    def picture(self, title: str | None = None) -> GridPicture:
        """A frozen picture of the grid now (states, title, run progress): it never changes
        afterwards. Displaying the grid itself shows one of these."""
        with self._lock:
            return GridPicture(title or self.title, self.states, self._run_progress())

    def to_html(self) -> str:
        """The grid as static HTML (what nbconvert and GitHub show)."""
        return self.picture().to_html()

    def to_text(self) -> str:
        """The grid as text (what a terminal shows)."""
        return self.picture().to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _new_view(self) -> tuple[ipywidgets.VBox, tuple[Any, Any, Any]]:
        import ipywidgets

        cells = ipywidgets.HTML()
        cells.add_class("backfill-grid-cells")
        bar = ipywidgets.IntProgress(value=0, min=0, max=1,
                                     layout=ipywidgets.Layout(width="240px"))
        bar.add_class("backfill-grid-progress")
        label = ipywidgets.HTML()
        box = ipywidgets.VBox([cells, ipywidgets.HBox([bar, label])])
        box.add_class("backfill-grid")
        return box, (cells, bar, label)

    @property
    def widget(self) -> ipywidgets.VBox:
        """A widget (root CSS class ``backfill-grid``) that follows every later change of this
        grid, created on first use. A notebook shows :meth:`live` instead, which stops
        following when its run ends."""
        with self._lock:
            if self._widget is None:
                self._widget, parts = self._new_view()
                self._views.append(parts)
        self.flush()
        return self._widget

    def live(self) -> LiveGrid:
        """Show a live copy of the grid in the running cell, for the backfill that cell runs.

        Use it as ``with grid.live(): bl.run_backfill(..., on_event=grid.on_event)``: the copy
        fills as steps finish and stops following when the ``with`` block ends, keeping the
        end state (in the saved notebook too); later changes of the grid never reach it.
        """
        return LiveGrid(self)

    def _attach(self, parts: tuple[Any, Any, Any]) -> None:
        with self._lock:
            self._views.append(parts)
        self.flush()

    def _detach(self, parts: tuple[Any, Any, Any]) -> None:
        self.flush()
        with self._lock:
            if parts in self._views:
                self._views.remove(parts)

    def _request_render(self, *, now: bool = False) -> None:
        """Render now, or within ``throttle`` seconds: bursts of events become one update."""
        if not self._views:
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
        """Send the current state to the live views now (cancels a pending throttled update)."""
        with self._lock:
            self._cancel_timer()
        if self._views:
            self._render()

    def _render(self) -> None:
        with self._render_lock:  # one thread at a time, each sending the newest snapshot
            with self._lock:
                states = self.states
                progress = self._run_progress()
                text = self._progress_text()
                views = list(self._views)
            html = render_html(states, title=self.title, root_class="backfill-grid-view")
            style = _BAR_STYLE[progress.outcome] if progress else "info"
            for cells, bar, label in views:
                cells.value = html
                with bar.hold_sync():
                    bar.max = max(progress.total if progress else 0, 1)
                    bar.value = min(progress.ran if progress else 0, bar.max)
                    bar.bar_style = style
                label.value = f'<span style="{FONT};font-size:11px">{escape(text)}</span>'
            self.renders += 1

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """A frozen picture (HTML and text) of the grid now: it keeps showing this moment after
        later cells change the grid. :meth:`live` shows the grid filling during a run."""
        return self.picture()._repr_mimebundle_(include, exclude)


_BAR_STYLE = {"running": "info", "success": "success", "failed": "danger", "stopped": "warning"}
