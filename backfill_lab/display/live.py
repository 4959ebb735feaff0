"""The live copy of a partition grid, shown in the cell that runs a backfill.

:meth:`backfill_lab.display.grid.PartitionGrid.live` makes one; everywhere else a grid is shown as
a frozen :class:`~backfill_lab.display.picture.GridPicture`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .grid import PartitionGrid

__all__ = ["WIDGET_MIME", "LiveGrid", "WidgetFallback", "with_widget"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def with_widget(bundle: dict[str, Any], widget: Any) -> dict[str, Any]:
    """``bundle`` plus ``widget``'s view, when it has one: a front end with widgets shows the
    live widget, anything else (nbval, a static render, the grader) the text and HTML."""
    view = widget._repr_mimebundle_().get(WIDGET_MIME)
    return {**bundle, WIDGET_MIME: view} if view is not None else bundle


class WidgetFallback:
    """Shown as its ``widget`` where widgets run, as ``to_html()``/``to_text()`` elsewhere.

    A subclass supplies ``widget``, ``to_text()`` and ``to_html()``.
    """

    widget: Any

    def to_text(self) -> str:
        """The plain-text rendering (subclasses supply it)."""
        raise NotImplementedError

    def to_html(self) -> str:
        """The HTML rendering (subclasses supply it)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return with_widget({"text/plain": self.to_text(), "text/html": self.to_html()},
                           self.widget)


def _displayer() -> Any:
    """IPython's ``display`` inside a running IPython (a notebook kernel), else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the dev extras
        return None
    return display if get_ipython() is not None else None


class LiveGrid:
    """A live copy of a :class:`PartitionGrid`, shown in the cell that runs a backfill.

    Made by :meth:`PartitionGrid.live`; shown when created (in IPython), it follows the grid
    until :meth:`close` (or the end of the ``with`` block), then keeps its last state. The
    cell's saved output is updated to that end state, so a notebook saved without widget state
    shows it too.
    """

    def __init__(self, grid: PartitionGrid) -> None:
        self.grid = grid
        self.closed = False
        self._handle: Any = None
        self.widget, self._parts = grid._new_view()
        grid._attach(self._parts)
        show = _displayer()
        if show is not None:
            self._handle = show(self._bundle(), raw=True, display_id=True)

    @property
    def shown(self) -> bool:
        """Whether the copy was displayed (in IPython), so the grid need not be shown again."""
        return self._handle is not None

    def _bundle(self) -> dict[str, Any]:
        return with_widget(self.grid.picture()._repr_mimebundle_(), self.widget)

    def close(self) -> None:
        """Stop following the grid: the copy keeps the state it shows now."""
        if self.closed:
            return
        self.closed = True
        self.grid._detach(self._parts)
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)

    def __enter__(self) -> PartitionGrid:
        return self.grid

    def __exit__(self, *exc: object) -> None:
        self.close()
