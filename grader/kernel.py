"""The kernel process: started in the sandbox, its output drained with a cap, its messages
size-limited at the socket.

* :class:`SandboxedKernelManager` starts ``python -m ipykernel_launcher`` inside bubblewrap
  (:mod:`grader.sandbox`) over jupyter_client's ``ipc`` transport, holds bwrap's child until it
  is under the process cap, and interrupts it with an ``interrupt_request`` message (a signal to
  bwrap would not reach a kernel in a session of its own).
* The kernel's stdout and stderr go to a pipe that :class:`OutputDrain` empties on a thread,
  keeping the first bytes only: nothing the kernel writes to fd 1 or 2 reaches the grader's
  terminal, and 100 MB cost no memory.
* Every socket to the kernel refuses messages larger than a cap (ZeroMQ's ``MAXMSGSIZE``):
  a 300 MB error is dropped by ZeroMQ before the grader allocates it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager

from .sandbox import Handshake, ProcessCap, Sandbox

__all__ = ["OutputDrain", "SandboxedKernelManager", "capped_context"]


def capped_context(max_message: int, queue: int = 32) -> zmq.asyncio.Context:
    """A ZeroMQ context whose sockets drop (and disconnect) any message part larger than
    ``max_message`` bytes before reading it into memory, and queue at most ``queue``
    messages each (so a flood waits in the kernel, or is dropped there, not here)."""
    ctx = zmq.asyncio.Context()
    ctx.setsockopt(zmq.MAXMSGSIZE, max_message)
    ctx.setsockopt(zmq.RCVHWM, queue)
    return ctx


class OutputDrain:
    """A pipe for a process's stdout and stderr, read on a thread; keeps the first ``cap``
    bytes and throws the rest away as it arrives."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.read_fd, self.write_fd = os.pipe()
        self.kept = bytearray()
        self.dropped = 0
        self._thread = threading.Thread(target=self._drain, name="kernel-output",
                                        daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def child_started(self) -> None:
        """Close the grader's copy of the write end (the child holds its own)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def text(self, timeout: float = 2.0) -> str:
        """What was kept, once the writers are gone (or after ``timeout``), as text."""
        self.child_started()
        self._thread.join(timeout)
        tail = f"\n[{self.dropped} more bytes dropped]" if self.dropped else ""
        return self.kept.decode("utf-8", "replace") + tail

    def close(self) -> None:
        """Close both ends (the thread then ends)."""
        self.child_started()
        with contextlib.suppress(OSError):
            os.close(self.read_fd)


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel inside the sandbox, with its output drained and its pids capped."""

    sandbox: Sandbox = Sandbox("none", "")
    workdir: Path = Path(".")
    memory_mb: int = 2048
    drain: OutputDrain | None = None
    cap: ProcessCap | None = None
    _hold: Handshake | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """The kernel command, wrapped in bubblewrap when the sandbox is on."""
        cmd = super().format_kernel_cmd(extra_arguments)
        if not self.sandbox.isolated:
            return cmd
        self._hold = Handshake(self.cap)
        return self.sandbox.wrap(cmd, self.workdir, memory_mb=self.memory_mb,
                                 handshake=self._hold.child_fds)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.drain is not None:
            kw["stdout"] = kw["stderr"] = self.drain.write_fd
        if self._hold is not None:
            kw["pass_fds"] = self._hold.child_fds
            kw["extra_groups"] = []  # no supplementary group of the grader's gets in
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            if self._hold is not None:
                self._hold.release()
        finally:
            if self._hold is not None:
                self._hold.close()
            if self.drain is not None:
                self.drain.child_started()

    def client(self, **kwargs: Any) -> Any:
        """A client on this manager's (size-capped) ZeroMQ context."""
        kwargs.setdefault("context", self.context)
        return super().client(**kwargs)

    async def interrupt_kernel(self) -> None:  # type: ignore[override]
        """Interrupt by message when sandboxed (ipykernel then signals itself)."""
        if not self.sandbox.isolated:
            await AsyncKernelManager.interrupt_kernel(self)
            return
        msg = self.session.msg("interrupt_request", content={})
        self._connect_control_socket()
        self.session.send(self._control_socket, msg)
