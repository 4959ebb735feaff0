"""Execute one submission in a fresh kernel, with limits enforced from outside the kernel.

* A fresh kernel per submission (nbclient), started in a temporary working directory holding a
  copy of the notebook with its saved outputs cleared.
* A per-cell timeout: the cell is interrupted and marked failed, and the next cells still run.
* A hard wall-clock limit per notebook, enforced by a watchdog thread in the grader that kills the
  kernel's whole process group: a loop that ignores ``KeyboardInterrupt`` still ends.
* Everything the kernel sends is capped while it streams, per cell and per notebook (outputs,
  errors, metadata, comm and widget messages; :mod:`grader.capped_client`), and no message
  larger than the caps is even read (:mod:`grader.kernel`); its stdout and stderr are drained
  with a cap, never onto the grader's terminal.
* When the grader runs as root with bubblewrap, the kernel runs in the sandbox of
  :mod:`grader.sandbox` (no network, only its own folder writable, nothing of the project but
  ``backfill_lab``, an unprivileged uid, memory and process caps). Otherwise the grader says it
  is not isolated.

Only the grader's own final cell talks back: it turns ``plan`` and ``answers`` into plain JSON
and displays them under a private MIME type with a nonce. Nothing else the kernel prints or
displays is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from .capped_client import CappedClient
from .extract import extraction_cell, read_back
from .kernel import OutputDrain, SandboxedKernelManager, capped_context
from .sandbox import ProcessCap, Sandbox, isolation, kernel_env

_from_dict = cast(Callable[[Any], NotebookNode], nbformat.from_dict)
_new_code_cell = cast(Callable[[str], NotebookNode], nbformat.v4.new_code_cell)

__all__ = ["Execution", "Limits", "Sandbox", "isolation", "run_submission"]



@dataclass(frozen=True)
class Limits:
    """What one submission may use: a per-cell timeout and a per-notebook hard limit (seconds);
    output caps per cell, per notebook and for the grader's own last cell (bytes); memory per
    kernel process (MB); processes and threads per kernel; kernel stdout/stderr kept (bytes)."""

    cell_timeout: float = 60.0
    timeout: float = 300.0
    max_output: int = 64_000
    max_extract: int = 1_000_000
    max_notebook_output: int = 1_000_000
    memory_mb: int = 2048
    max_procs: int = 256
    max_log: int = 16_000

    def __post_init__(self) -> None:
        for name in ("cell_timeout", "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"'{name}' must be a number of seconds > 0 (got {value!r})")
        for name in ("max_output", "max_extract", "max_notebook_output", "memory_mb",
                     "max_procs", "max_log"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"'{name}' must be a whole number > 0 (got {value!r})")
        if self.max_procs < 16:
            raise ValueError(f"'max_procs' must be at least 16: a kernel runs about 10 threads "
                             f"(got {self.max_procs})")
        if self.memory_mb < 256:
            raise ValueError(f"'memory_mb' must be at least 256: a kernel needs about 200 MB "
                             f"(got {self.memory_mb})")

    @property
    def max_message(self) -> int:
        """The largest single message part read from a kernel (a bigger one is dropped)."""
        return max(self.max_output, self.max_extract, self.max_notebook_output) + 65_536


@dataclass
class Execution:
    """What running one submission produced."""

    status: str  # graded (ran to the end) | timeout | kernel_died | error
    data: dict[str, Any] | None = None  # what the extraction cell returned
    failed_cells: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    isolated: bool = False
    output_truncated: bool = False
    log: str = ""  # the kernel's own stdout and stderr, capped


def _prepare(nb: NotebookNode, nonce: str) -> NotebookNode:
    """A copy with outputs cleared and the grader's extraction cell appended."""
    nb = _from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            tags = [t for t in cell.metadata.get("tags", [])
                    if t not in ("skip-execution", "nbval-skip")]
            cell.metadata["tags"] = tags
    nb.cells.append(_new_code_cell(extraction_cell(nonce)))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _kernel_pid(client: CappedClient) -> int | None:
    km = getattr(client, "km", None)
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return getattr(process, "pid", None)


def run_submission(nb: NotebookNode, limits: Limits, *, sandbox: Sandbox | None = None,
                   ) -> Execution:
    """Run ``nb`` (already read and validated) and return what it produced."""
    sandbox = sandbox or Sandbox("none", "")
    nonce = secrets.token_hex(16)
    prepared = _prepare(nb, nonce)
    extract_index = len(prepared.cells) - 1
    workdir = Path(tempfile.mkdtemp(prefix="backfill-grade-"))
    (workdir / "home").mkdir()
    cap_root = ProcessCap.root() if sandbox.isolated else None
    km = SandboxedKernelManager(kernel_name="python3", transport="ipc",
                                ip=str(workdir / "kernel"),
                                context=capped_context(limits.max_message))
    km.sandbox, km.workdir = sandbox, workdir
    km.memory_mb = limits.memory_mb
    km.connection_file = str(workdir / f"kernel-{nonce[:8]}.json")
    km.drain = OutputDrain(limits.max_log)
    try:
        km.cap = ProcessCap.make(cap_root, limits.max_procs) if cap_root else None
    except OSError as exc:  # fail closed: no kernel runs without the cap the note promised
        km.drain.close()
        km.context.destroy(linger=0)
        shutil.rmtree(workdir, ignore_errors=True)
        return Execution(status="error", isolated=True,
                         reason=f"the grader could not make the kernel's pids cgroup in "
                                f"{cap_root} ({exc.strerror}); check that it is writable")
    client = CappedClient(
        prepared, km=km, timeout=int(max(1, limits.cell_timeout)), allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError",
                          "evalue": f"cell ran longer than {limits.cell_timeout:g}s"},
        shutdown_kernel="immediate", startup_timeout=60, record_timing=False,
        extra_arguments=["--colors=NoColor"],
        resources={"metadata": {"path": str(workdir)}},
    )
    client.max_output_bytes = limits.max_output
    client.max_notebook_bytes = limits.max_notebook_output
    client.extract_index = extract_index
    client.extract_cap = limits.max_extract
    killed = threading.Event()

    def hard_kill() -> None:
        """The hard limit: kill bwrap (or the kernel) and its whole process group."""
        killed.set()
        pid = _kernel_pid(client)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    watchdog = threading.Timer(limits.timeout, hard_kill)
    watchdog.daemon = True
    t0 = time.perf_counter()
    result = Execution(status="graded", isolated=sandbox.isolated)
    watchdog.start()
    try:
        client.execute(cwd=str(workdir),
                       env=kernel_env(workdir / "home", isolated=sandbox.isolated))
    except DeadKernelError as exc:
        result.status = "timeout" if killed.is_set() else "kernel_died"
        result.reason = (f"the notebook ran longer than {limits.timeout:g}s and was stopped"
                         if killed.is_set() else _died(client.running, extract_index, exc))
    except CellTimeoutError as exc:  # only when the interrupt itself could not be delivered
        result.status = "timeout"
        result.reason = _first_line(exc)
    except Exception as exc:  # nbclient/kernel start-up trouble: report, keep the batch going
        result.status = "timeout" if killed.is_set() else "error"
        result.reason = (f"the notebook ran longer than {limits.timeout:g}s and was stopped"
                         if killed.is_set() else f"{type(exc).__name__}: {_first_line(exc)}")
    finally:
        watchdog.cancel()
        if killed.is_set() and result.status == "graded":
            result.status = "timeout"
            result.reason = f"the notebook ran longer than {limits.timeout:g}s and was stopped"
        pid = _kernel_pid(client)
        if pid is not None:  # belt and braces: nothing the kernel started survives grading
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if client.kc is not None:  # nbclient leaves a kernel it does not own running
            with contextlib.suppress(Exception):
                client.kc.stop_channels()
        _reap(client)
        result.log = km.drain.text()
        km.drain.close()
        if km.cap is not None:
            km.cap.remove()
        client.close_monitors()
        km.context.destroy(linger=0)
        shutil.rmtree(workdir, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    result.output_truncated = bool(client.truncated - {extract_index})
    for index, cell in enumerate(prepared.cells[:extract_index]):
        if index in client.timed_out:
            result.failed_cells.append({
                "cell": index + 1, "ename": "CellTimeoutError",
                "evalue": f"ran longer than {limits.cell_timeout:g}s and was interrupted"})
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                result.failed_cells.append({
                    "cell": index + 1, "ename": out.get("ename", ""),
                    "evalue": _first_line(out.get("evalue", ""))[:300],
                })
                break
    if result.status == "graded" and extract_index in client.timed_out:
        # the kernel never came back from a cell: it ignored the interrupt
        stuck = [c["cell"] for c in result.failed_cells if c["ename"] == "CellTimeoutError"]
        for entry in result.failed_cells:
            if stuck and entry["cell"] == stuck[0]:
                entry["evalue"] = (f"ran longer than {limits.cell_timeout:g}s and ignored the "
                                   f"interrupt")
        result.status = "timeout"
        result.reason = (f"cell {stuck[0] if stuck else '?'} ran longer than "
                         f"{limits.cell_timeout:g}s and ignored the interrupt")
    hog = next((c["cell"] for c in result.failed_cells if c["ename"] == "MemoryError"), None)
    if result.status == "graded" and hog is not None:
        result.status = "error"
        result.reason = (f"cell {hog} ran out of memory: a kernel may use at most "
                         f"{limits.memory_mb} MB")
    if result.status == "graded":
        result.data = read_back(prepared.cells[extract_index], nonce)
        if result.data is None:
            result.status = "error"
            result.reason = "the grader could not read the notebook's variables back"
    return result


def _reap(client: CappedClient) -> None:
    """Wait for the (killed) kernel process, so none is left a zombie."""
    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    if process is not None:
        with contextlib.suppress(Exception):
            process.wait(timeout=5)


def _died(running: int | None, extract_index: int, exc: BaseException) -> str:
    """Why a kernel died, naming the cell that was running and what usually does that."""
    if running is None or running >= extract_index:
        where = "after your last cell, while the grader read your variables back"
    else:
        where = f"while cell {running + 1} ran"
    return (f"the kernel process ended {where} ({_first_line(exc)}); Restart and run all to "
            f"see it: exiting the process, a crash in native code or running out of memory "
            f"ends a kernel")


def _first_line(value: object) -> str:
    text = str(value).strip().splitlines()
    return text[0] if text else ""
