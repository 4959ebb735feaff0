"""The grid drawn: as text for a terminal (``backfill-lab status``) and as one HTML table for a
notebook, each with a legend; one mark (text) or colour (HTML) per partition state.

The states themselves come from :func:`backfill_lab.status.grid_states`; the live widget that
redraws them during a run is :class:`backfill_lab.display.grid.PartitionGrid`. Text in the HTML
goes through :func:`backfill_lab.report.escape`, the lab's one escaping helper.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import groupby

import pandas as pd

from ..errors import ConfigError
from ..partitions import grain_of
from ..report import escape
from ..status import STATES

__all__ = [
    "BAR_COLOURS",
    "COLOURS",
    "FONT",
    "MARKS",
    "STATES",
    "cell_width",
    "header_labels",
    "render_html",
    "render_text",
]

MARKS: dict[str, str] = {
    "ok": "#", "missing": ".", "failed": "X", "invalid": "!", "stale": "~", "running": ">",
}
#: Okabe-Ito colours (safe for the common colour-vision deficiencies); missing is a light grey.
COLOURS: dict[str, str] = {
    "ok": "#009E73", "missing": "#E2E2E2", "failed": "#D55E00", "invalid": "#CC79A7",
    "stale": "#F0E442", "running": "#0072B2",
}
#: the progress bar's colour per run outcome: green only when every step succeeded
BAR_COLOURS: dict[str, str] = {
    "running": COLOURS["running"], "success": COLOURS["ok"], "failed": COLOURS["failed"],
    "stopped": "#E69F00",
}
_LEGEND_ORDER = ("ok", "missing", "failed", "invalid", "stale", "running")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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
                marks = "".join(MARKS[str(states.at[layer, c])] for c in block)
                lines.append(f"  {str(layer).rjust(pad)}  {marks}")
    elif cols:
        blocks = list(_calendar_blocks(cols))
        pad = max(pad, *(len(h) - 2 for h, _ in blocks))
        for header, placed in blocks:
            lines.append(f"{header.ljust(pad + 4)}{_ruler(placed)}".rstrip())
            for layer, name in zip(states.index, names, strict=True):
                row = [" "] * (placed[-1][0] + 1)
                for pos, key in placed:
                    row[pos] = MARKS[str(states.at[layer, key])]
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


FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
_TH = ("padding:0;border:none;background:none;font-weight:normal;font-size:10px;opacity:.75;"
       "color:inherit;text-align:left;white-space:nowrap;overflow:hidden;line-height:12px")


def _swatch(colour: str) -> str:
    return (f'<span style="display:inline-block;width:10px;height:10px;margin-right:3px;'
            f'vertical-align:-1px;background:{escape(colour)}"></span>')


def render_html(
    states: pd.DataFrame, *, title: str | None = None,
    progress: tuple[int, int] | None = None, root_class: str = "backfill-grid-static",
    outcome: str = "running", caption: str | None = None,
    colours: Mapping[str, str] | None = None,
) -> str:
    """The grid as one compact HTML table (a coloured cell per partition) with a legend.

    Inline styles only, so it survives notebook sanitisers and static renderers. Every cell has
    the classes ``bfg-cell bfg-<state>`` and a tooltip like ``features 2024-12-05: failed``.
    ``progress`` is ``(steps that ran, steps expected)`` of a followed run, drawn as a bar
    coloured by ``outcome`` (``running``, ``success``, ``failed`` or ``stopped``: only
    ``success`` is green) with ``caption`` beside it (default ``ran/expected steps``).
    ``colours`` draws other states than the grid's own (``{state: colour}``, in the legend's
    order), e.g. the grader's picture of what a plan did to each partition.
    """
    palette = dict(colours) if colours is not None else COLOURS
    order = tuple(palette) if colours is not None else _LEGEND_ORDER
    cols = [str(c) for c in states.columns]
    names = [str(i) for i in states.index]
    cell = cell_width(len(cols))
    pitch = cell + 1  # border-spacing is 1 px
    label_px = max((_text_px(n) for n in names), default=20) + 6
    table_px = label_px + pitch * len(cols) + 2
    counts = {s: 0 for s in order}
    out = [f'<div class="{escape(root_class)}" style="{FONT};font-size:11px;color:inherit;'
           f'line-height:1.3">']
    if title:
        out.append(f'<div style="font-weight:600;margin:0 0 4px">{escape(title)}</div>')
    out.append('<div style="overflow-x:auto;max-width:100%">')
    out.append(f'<table class="backfill-grid-table" style="border-collapse:separate;'
               f'border-spacing:1px;table-layout:fixed;width:{table_px}px;margin:0">')
    out.append(f'<colgroup><col style="width:{label_px}px">'
               + f'<col style="width:{cell}px">' * len(cols) + "</colgroup>")
    if cols:
        out.append("<thead>")
        for runs in header_labels(cols, pitch):
            out.append(f'<tr style="background:none"><th style="{_TH}"></th>')
            out.extend(f'<th colspan="{span}" style="{_TH}">{escape(text)}</th>'
                       for text, span in runs)
            out.append("</tr>")
        out.append("</thead>")
    out.append("<tbody>")
    for layer, name in zip(states.index, names, strict=True):
        out.append(f'<tr style="background:none"><th style="{_TH};text-align:right;'
                   f'padding-right:4px;opacity:1;font-size:11px">{escape(name)}</th>')
        for key in cols:
            state = str(states.at[layer, key])
            counts[state] += 1
            tip = escape(f"{name} {key}: {state}")
            out.append(f'<td class="bfg-cell bfg-{escape(state)}" title="{tip}" '
                       f'style="padding:0;border:none;height:13px;'
                       f'background:{escape(palette[state])}"></td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if progress is not None:
        done, total = progress
        pct = 100 * done // total if total else 0
        colour = BAR_COLOURS.get(outcome, COLOURS["running"])
        text = caption if caption is not None else f"{done}/{total} steps"
        out.append(f'<div class="backfill-grid-progress-static bfg-run-{escape(outcome)}" '
                   f'style="margin-top:4px">'
                   f'<span style="display:inline-block;width:200px;height:8px;background:#E2E2E2;'
                   f'vertical-align:0"><span style="display:block;width:{pct}%;height:8px;'
                   f'background:{colour}"></span></span> {escape(text)}</div>')
    legend = "".join(f'<span style="white-space:nowrap;margin-right:10px">'
                     f"{_swatch(palette[s])}{escape(s)} {counts[s]}</span>" for s in order)
    out.append(f'<div class="backfill-grid-legend" style="margin-top:4px">{legend}</div></div>')
    return "".join(out)
