"""Pass/fail reports: one way to show a list of verdicts as text, as a repr and as an HTML table.

Every verdict list the lab returns (a validation run, the self-check, the quick test, the
outcome simulation, a drill) is a :class:`PassFailReport`. A subclass supplies its
:meth:`~PassFailReport.rows` (and a title, a note and a summary) and inherits ``__str__``,
``__repr__`` and ``_repr_html_``.
Every piece of text that reaches HTML goes through :func:`escape`, the one escaping helper the
lab's HTML renderers share (the grid's included).

>>> class Demo(PassFailReport):
...     columns = (Column("check"), Column("message", "text"))
...     def rows(self):
...         return [Row(True, ("row_count", "1000 rows"), "pass row_count: 1000 rows"),
...                 Row(False, ("nulls", "3 < 5"), "FAIL nulls: 3 < 5")]
...     def summary(self):
...         return "1/2 passed"
>>> print(Demo())
pass row_count: 1000 rows
FAIL nulls: 3 < 5
1/2 passed
>>> "<td style='text-align:left'>3 &lt; 5</td>" in Demo()._repr_html_()
True
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import ClassVar

from .errors import UnknownNameError

__all__ = ["FAILED_BACKGROUND", "PASSED_BACKGROUND", "Column", "PassFailReport", "Row", "escape"]

PASSED_BACKGROUND = "#e8f5e9"
FAILED_BACKGROUND = "#ffebee"
_STYLES = {"": ("", ""), "code": ("<code>", "</code>"), "text": ("", "")}


def escape(value: object) -> str:
    """``value`` as text that is safe inside HTML, in element content and in quoted attributes.

    >>> escape("<b> & 'x'")
    '&lt;b&gt; &amp; &#x27;x&#x27;'
    >>> escape(0.5)
    '0.5'
    """
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Column:
    """One column of a report's table after the verdict column.

    ``style`` is ``""`` (plain), ``"code"`` (a name, in monospace) or ``"text"`` (a sentence,
    left-aligned).
    """

    header: str
    style: str = ""

    def __post_init__(self) -> None:
        if self.style not in _STYLES:
            raise UnknownNameError.of("column style", self.style, _STYLES)


@dataclass(frozen=True)
class Row:
    """One verdict: passed or not, its table cells (plain text), and its line(s) as text.

    ``note`` is small print under the last cell of the HTML row (e.g. where to read more).
    """

    passed: bool
    cells: tuple[str, ...]
    text: str
    note: str = ""


class PassFailReport:
    """The base of every pass/fail report: text, repr and HTML, all built from :meth:`rows`.

    Subclasses set :attr:`columns` (and, if they differ from the defaults, :attr:`css_class`,
    :attr:`marks` and :attr:`verdict_header`) and override :meth:`rows`, and any of
    :meth:`title`, :meth:`html_title`, :meth:`note` and :meth:`summary`. Dataclass subclasses
    use ``@dataclass(repr=False)`` so that the report's own ``__repr__`` is kept.
    """

    #: the CSS class of the HTML table
    css_class: ClassVar[str] = "backfill-report"
    #: the columns after the verdict column
    columns: ClassVar[tuple[Column, ...]] = ()
    #: what the verdict column shows for a passed and for a failed row
    marks: ClassVar[tuple[str, str]] = ("✔", "✘")
    #: the verdict column's header
    verdict_header: ClassVar[str] = ""

    def rows(self) -> list[Row]:
        """One :class:`Row` per verdict, in the order they are shown."""
        raise NotImplementedError(f"{type(self).__name__} must define rows()")

    def title(self) -> str:
        """The first line of the text rendering ('' for none)."""
        return ""

    def html_title(self) -> str:
        """The heading of the HTML rendering (default: :meth:`title`)."""
        return self.title()

    def note(self) -> str:
        """A paragraph shown above the HTML table ('' for none)."""
        return ""

    def summary(self) -> str:
        """The last line of the text, and a paragraph under the HTML table ('' for none)."""
        return ""

    def __str__(self) -> str:
        title, summary = self.title(), self.summary()
        lines = ([title] if title else []) + [r.text for r in self.rows()]
        return "\n".join(lines + ([summary] if summary else []))

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        out = ["<div class='backfill-report'>"]
        if self.html_title():
            out.append(f"<h4>{escape(self.html_title())}</h4>")
        if self.note():
            out.append(f"<p>{escape(self.note())}</p>")
        out.append(f"<table class='{escape(self.css_class)}'><tr>"
                   f"<th>{escape(self.verdict_header)}</th>")
        out.extend(f"<th>{escape(c.header)}</th>" for c in self.columns)
        out.append("</tr>")
        for row in self.rows():
            background = PASSED_BACKGROUND if row.passed else FAILED_BACKGROUND
            mark = self.marks[0] if row.passed else self.marks[1]
            out.append(f"<tr style='background:{background}'><td>{escape(mark)}</td>")
            for i, (column, cell) in enumerate(zip(self.columns, row.cells, strict=True)):
                start, end = _STYLES[column.style]
                align = " style='text-align:left'" if column.style == "text" else ""
                note = (f"<br><small>{escape(row.note)}</small>"
                        if row.note and i == len(self.columns) - 1 else "")
                out.append(f"<td{align}>{start}{escape(cell)}{end}{note}</td>")
            out.append("</tr>")
        out.append("</table>")
        if self.summary():
            out.append(f"<p>{escape(self.summary())}</p>")
        out.append("</div>")
        return "".join(out)
