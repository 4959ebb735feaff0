"""nbclient with everything a kernel sends counted against the per-cell and per-notebook caps.

Streams, displays, results, errors (name, value and traceback), output metadata, and comm and
widget messages all count, by the size of their JSON content plus binary buffers. Past a cap a
message is dropped (an error is kept as its name and the first line of its value, so the cell
still shows as failed), the cell gets one "truncated" notice, and nothing more of it is held.
Widget state is never accumulated: the grader writes no executed notebook, so it has no use.

A message larger than the socket cap (:func:`grader.kernel.capped_context`) is dropped by ZeroMQ,
which then drops that connection for good; before each cell the client replaces a channel whose
connection was dropped, and the cell that sent the message gets the "truncated" notice.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any, cast

import nbformat
import zmq
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
        self._monitors: dict[str, zmq.Socket[bytes]] = {}

    async def async_start_new_kernel_client(self) -> Any:
        """Start the client, watching its shell and iopub connections for drops."""
        kc = await super().async_start_new_kernel_client()
        for name in ("iopub_channel", "shell_channel"):
            self._monitors[name] = _monitor(getattr(kc, name).socket)
        return kc

    async def _heal(self) -> None:
        """Replace each channel whose connection ZeroMQ dropped (a message over the cap)."""
        healed = False
        for name, monitor in list(self._monitors.items()):
            if not monitor.poll(0):
                continue
            while monitor.poll(0):
                monitor.recv_multipart()
            channel = getattr(self.kc, name)
            old = channel.socket
            channel.socket = (self.kc.connect_iopub() if name == "iopub_channel"  # type: ignore[union-attr]
                              else self.kc.connect_shell(identity=self.kc.session.bsession))  # type: ignore[union-attr]
            old.disable_monitor()
            old.close(linger=0)
            monitor.close(linger=0)
            self._monitors[name] = _monitor(channel.socket)
            healed = True
        if healed:
            await asyncio.sleep(0.05)  # let the new subscription reach the kernel
            if self.running is not None and self.running < len(self.nb.cells):
                self._note_truncated(self.nb.cells[self.running].outputs, self.running,
                                     "a message larger than the grader reads")

    def close_monitors(self) -> None:
        """Close the connection monitors (after the kernel is gone)."""
        for monitor in self._monitors.values():
            monitor.close(linger=0)
        self._monitors.clear()

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int,
                                 execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        """Run one cell, remembering which is running (if the kernel dies, it ended it).

        The grader's own last cell runs a second time when it ended but its display did not
        arrive: a message over the socket cap makes ZeroMQ drop the connection, and what the
        kernel sent before the channel was replaced is lost (a flood from earlier cells can
        still be draining).
        """
        await self._heal()
        self.running = cell_index
        done = await super().async_execute_cell(cell, cell_index, execution_count,
                                                store_history)
        if cell_index == self.extract_index and cell_index not in self.timed_out and not any(
                out.get("output_type") == "display_data" for out in cell.get("outputs", [])):
            await self._heal()
            cell.outputs = []
            self._sizes.pop(cell_index, None)
            self.truncated.discard(cell_index)
            done = await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        return done

    async def _check_raise_for_error(self, cell: NotebookNode, cell_index: int,
                                     exec_reply: dict[str, Any] | None) -> None:
        # an error whose message was over the caps (or dropped at the socket) still shows:
        # the reply says the cell failed, so the cell gets a short error output
        content = (exec_reply or {}).get("content", {})
        if content.get("status") == "error" and not any(
                out.get("output_type") == "error" for out in cell.get("outputs", [])):
            cell.outputs.append(_new_output(
                "error", ename=str(content.get("ename", "Error"))[:100],
                evalue=_first_line(content.get("evalue", ""))[:300], traceback=[]))
        await super()._check_raise_for_error(cell, cell_index, exec_reply)

    def handle_comm_msg(self, outs: list[NotebookNode], msg: dict[str, Any],
                        cell_index: int) -> None:
        """Mimic a front end for comm messages, ignoring any it cannot make sense of."""
        try:
            super().handle_comm_msg(outs, msg, cell_index)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.log.debug("ignored a malformed comm message from the kernel")

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
        extract = cell_index == self.extract_index
        if extract and msg_type != "display_data":
            return None  # only the grader's own display counts there (late streams do not)
        size = message_size(msg)
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
                     "evalue": _first_line(content.get("evalue", ""))[:300], "traceback": []}
            return super().process_message({**msg, "content": short}, cell, cell_index)
        return None

    def _note_truncated(self, outs: list[NotebookNode], cell_index: int, limit: str) -> None:
        if cell_index in self.truncated:
            return
        self.truncated.add(cell_index)
        outs.append(_new_output(
            "stream", name="stderr", text=f"[output truncated by the grader after {limit}]\n"))


def _first_line(value: object) -> str:
    lines = str(value)[:10_000].strip().splitlines()
    return lines[0] if lines else ""


def _monitor(sock: Any) -> zmq.Socket[bytes]:
    """A (blocking-API) socket that receives an event when ``sock`` loses its connection."""
    address = f"inproc://backfill-monitor-{secrets.token_hex(8)}"
    sock.monitor(address, zmq.EVENT_DISCONNECTED)
    watcher: zmq.Socket[bytes] = zmq.Context.shadow(sock.context.underlying).socket(zmq.PAIR)
    watcher.connect(address)
    return watcher
