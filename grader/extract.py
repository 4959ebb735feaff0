"""The only channel out of a learner's kernel: plain data from the grader's own last cell.

The grader appends one cell to the submission. It converts ``plan`` and ``answers`` to JSON-able
data (strings, numbers, booleans, lists, dicts; a Plan through its ``to_dict``) and displays them
under a private MIME type with a nonce that exists only in that cell. The grader reads that one
output of that one cell and nothing else: no pickle, no printed text, no other cell's output.
What the learner's code prints, displays or patches cannot reach the scoring, which runs in the
grader's own process.
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

__all__ = ["EXTRACT_MIME", "NAMES", "extraction_cell", "read_back", "value_of"]

EXTRACT_MIME = "application/x-backfill-grader+json"
NAMES = ("plan", "answers")

_CELL = r'''
def __backfill_grader_extract(nonce):
    import datetime as _dt
    ns = get_ipython().user_ns

    def plain(value, depth=0):
        if depth > 20:
            raise ValueError("nested too deeply")
        if value is Ellipsis:
            return {"__placeholder__": True}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (_dt.date, _dt.datetime)):
            return value.isoformat()
        if isinstance(value, dict):
            return {str(k): plain(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v, depth + 1) for v in value]
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return plain(to_dict(), depth + 1)
        raise TypeError(f"{type(value).__name__} is not plain data")

    out = {}
    for name in NAMES:
        if name not in ns:
            continue
        try:
            out[name] = plain(ns[name])
        except Exception as exc:
            out[name] = {"__error__": f"{type(exc).__name__}: {exc}"}
    from IPython.display import display
    display({MIME: {"nonce": nonce, "data": out}}, raw=True)

__backfill_grader_extract(NONCE)
'''


def extraction_cell(nonce: str) -> str:
    """The source of the grader's last cell for one run."""
    return (_CELL.replace("NAMES", repr(NAMES)).replace("MIME", repr(EXTRACT_MIME))
            .replace("NONCE", repr(nonce)))


def read_back(cell: NotebookNode, nonce: str) -> dict[str, Any] | None:
    """The data the extraction cell displayed in this run, or None if it did not."""
    for out in cell.get("outputs", []):
        payload = out.get("data", {}).get(EXTRACT_MIME)
        if isinstance(payload, dict) and payload.get("nonce") == nonce:
            data = payload.get("data")
            return data if isinstance(data, dict) else None
    return None


def value_of(data: dict[str, Any], name: str) -> tuple[str, Any]:
    """``(state, value)`` of a learner variable: ``missing``, ``placeholder``, ``error`` or ``ok``.

    >>> value_of({}, "plan")
    ('missing', None)
    >>> value_of({"plan": {"__placeholder__": True}}, "plan")
    ('placeholder', None)
    >>> value_of({"answers": {"q1": "b"}}, "answers")
    ('ok', {'q1': 'b'})
    """
    if name not in data:
        return "missing", None
    value = data[name]
    if isinstance(value, dict) and value.get("__placeholder__") is True and len(value) == 1:
        return "placeholder", None
    if isinstance(value, dict) and "__error__" in value and len(value) == 1:
        return "error", value["__error__"]
    return "ok", value
