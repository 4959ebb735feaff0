"""A frozen picture of a partition grid: what it showed at the moment it was drawn.

Displaying a :class:`~backfill_lab.display.grid.PartitionGrid` in a notebook draws one of these
(static HTML and text, no widget), so an earlier cell keeps showing the state of its own moment
after later cells change the warehouse. Only :meth:`PartitionGrid.live` shows a widget that keeps
changing, and only while the backfill it follows runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..status import STATES
from .render import render_html, render_text

__all__ = ["OUTCOMES", "GridPicture", "RunProgress"]

#: how a followed run stands: still going, every step succeeded, a step failed, or it stopped
#: early (steps cancelled or skipped)
OUTCOMES: tuple[str, ...] = ("running", "success", "failed", "stopped")


@dataclass(frozen=True)
class RunProgress:
    """Where the backfill a grid follows stands: steps that ran to an end (success, invalid or
    failed) out of the steps expected, how it stands (one of :data:`OUTCOMES`) and a caption.

    A stopped or failed run never reads as complete: ``ran`` counts only steps that ran, so the
    bar of an aborted run stays short, and its outcome is not ``success``.

    >>> RunProgress.of(3, {"a": "success", "b": "cancelled", "c": "cancelled"}, running=0)
    RunProgress(ran=1, total=3, outcome='stopped', caption='stopped: 1/3 steps ran (2 cancelled)')
    >>> RunProgress.of(3, {"a": "failed", "b": "cancelled", "c": "success"}, running=0).caption
    'stopped: 2/3 steps ran (1 failed, 1 cancelled)'
    """

    ran: int
    total: int
    outcome: str
    caption: str

    @classmethod
    def of(cls, total: int, finals: dict[Any, str], *, running: int) -> RunProgress:
        """The progress of a run expecting ``total`` steps, whose finished steps ended in
        ``finals`` (step -> final status), with ``running`` steps in flight."""
        statuses = list(finals.values())
        ran = sum(statuses.count(s) for s in ("success", "invalid", "failed"))
        total = max(total, len(statuses))
        extra = [f"{running} running"] if running else []
        extra += [f"{statuses.count(s)} {s}" for s in ("failed", "invalid", "skipped", "cancelled")
                  if statuses.count(s)]
        detail = f" ({', '.join(extra)})" if extra else ""
        failed = "failed" in statuses or "invalid" in statuses
        if running or len(statuses) < total:
            outcome, caption = "running", f"{len(statuses)}/{total} steps done{detail}"
        elif "cancelled" in statuses or (ran < total and not failed):  # aborted: it stopped
            outcome = "failed" if failed else "stopped"
            caption = f"stopped: {ran}/{total} steps ran{detail}"
        elif failed:
            outcome, caption = "failed", f"{len(statuses)}/{total} steps done{detail}"
        else:
            outcome, caption = "success", f"{ran}/{total} steps done"
        return cls(ran, total, outcome, caption)


@dataclass(frozen=True)
class GridPicture:
    """The grid's states, title and run progress at one moment; it never changes afterwards.

    Shown as static HTML in a notebook (kept in the saved notebook) and as text in a terminal.
    """

    title: str
    states: pd.DataFrame
    progress: RunProgress | None = None

    def counts(self) -> dict[str, int]:
        """How many cells were in each state when the picture was taken."""
        found = [str(s) for s in self.states.to_numpy().ravel()]
        return {s: found.count(s) for s in STATES}

    def to_html(self) -> str:
        """The picture as static HTML."""
        p = self.progress
        if p is None:
            return render_html(self.states, title=self.title)
        return render_html(self.states, title=self.title, progress=(p.ran, p.total),
                           outcome=p.outcome, caption=p.caption)

    def to_text(self) -> str:
        """The picture as text."""
        lines = [self.title, render_text(self.states)]
        return "\n".join(lines + ([self.progress.caption] if self.progress else []))

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """HTML and text only: a picture is not a widget, so it never changes after it ran."""
        bundle: dict[str, Any] = {"text/plain": self.to_text(), "text/html": self.to_html()}
        if include is not None:
            bundle = {k: v for k, v in bundle.items() if k in set(include)}
        if exclude is not None:
            bundle = {k: v for k, v in bundle.items() if k not in set(exclude)}
        return bundle
