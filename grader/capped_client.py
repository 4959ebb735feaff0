"""nbclient with everything a kernel sends counted against the per-cell and per-notebook caps.

Streams, displays, results, errors (name, value and traceback), output metadata, and comm and
widget messages all count, by the size of their JSON content plus binary buffers. Past a cap a
message is dropped (an error is kept as its name and the first line of its value, so the cell
still shows as failed), the cell gets one "truncated" notice, and nothing more of it is held.
Widget state is never accumulated: the grader writes no executed notebook, so it has no use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

__all__ = ["CappedClient", "message_size"]

_new_output = cast(Callable[..., NotebookNode], nbformat.v4.new_output)
_FREE = frozenset({"status", "execute_input"})  # tiny protocol messages, never stored


def message_size(msg: dict[str, Any]) -> int:
    """The bytes a kernel message carries: its JSON content plus its binary buffers."""
    size = len(json.dumps(msg.get("content", {}), default=str))
    for buf in msg.get("buffers") or ():
        size += len(buf)
    return size


class CappedClient(NotebookClient):
    """A NotebookClient that caps what each cell, and the whole notebook, may send."""

    max_output_bytes = 64_000
    max_notebook_bytes = 1_000_000
    extract_index = -1
    extract_cap = 1_000_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("store_widget_state", False)
        super().__init__(*args, **kwargs)
        self._sizes: dict[int, int] = {}
        self._total = 0
        self.truncated: set[int] = set()
        self.timed_out: list[int] = []
        self.running: int | None = None

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int,
                                 execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        """Run one cell, remembering which is running (if the kernel dies, it ended it)."""
        self.running = cell_index
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None
                                    ) -> dict[str, Any] | None:
        if cell is not None:
            for index, candidate in enumerate(self.nb.cells):
                if candidate is cell:
                    self.timed_out.append(index)
        return await super()._async_handle_timeout(timeout, cell)

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int
                        ) -> NotebookNode | None:
        """Count ``msg`` against the caps; process it only while they hold."""
        msg_type = msg.get("msg_type", "")
        if msg_type in _FREE or msg_type == "clear_output":
            return super().process_message(msg, cell, cell_index)
        size = message_size(msg)
        extract = cell_index == self.extract_index
        cap = self.extract_cap if extract else self.max_output_bytes
        used = self._sizes.get(cell_index, 0)
        if used + size <= cap and (extract or self._total + size <= self.max_notebook_bytes):
            self._sizes[cell_index] = used + size
            if not extract:
                self._total += size
            return super().process_message(msg, cell, cell_index)
        self._note_truncated(cell.outputs, cell_index,
                             f"{cap} bytes" if used + size > cap
                             else f"{self.max_notebook_bytes} bytes of output in this notebook")
        if msg_type == "error":  # keep that the cell failed, and why, in a few bytes
            content = msg.get("content", {})
            short = {"ename": str(content.get("ename", ""))[:100],
                     "evalue": (str(content.get("evalue", "")).strip().splitlines()
                                or [""])[0][:300],
                     "traceback": []}
            return super().process_message({**msg, "content": short}, cell, cell_index)
        return None

    def _note_truncated(self, outs: list[NotebookNode], cell_index: int, limit: str) -> None:
        if cell_index in self.truncated:
            return
        self.truncated.add(cell_index)
        outs.append(_new_output(
            "stream", name="stderr", text=f"[output truncated by the grader after {limit}]\n"))
