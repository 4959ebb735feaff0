"""Execute one submission in a fresh kernel, with limits enforced from outside the kernel.

* A fresh kernel per submission (nbclient), started in a temporary working directory holding a
  copy of the notebook with its saved outputs cleared.
* A per-cell timeout: the cell is interrupted and marked failed, and the next cells still run.
* A hard wall-clock limit per notebook, enforced by a watchdog thread in the grader that kills the
  kernel's whole process group: a loop that ignores ``KeyboardInterrupt`` still ends.
* Captured output is capped while it streams, per cell, so a cell printing 10 MB costs nothing.
* When the grader runs as root, the kernel runs in private mount and PID namespaces, as an
  unprivileged user (``nobody``) when that user can run the interpreter, so learner code can
  neither write the project's files nor see or signal the grader's processes. Otherwise the
  grader says it is not isolated.

Only the grader's own final cell talks back: it turns ``plan`` and ``answers`` into plain JSON
and displays them under a private MIME type with a nonce. Nothing else the kernel prints or
displays is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from .extract import extraction_cell, read_back

__all__ = ["Execution", "Limits", "Sandbox", "isolation", "run_submission"]

KERNEL_USER = "nobody"


@dataclass(frozen=True)
class Limits:
    """Per-cell timeout, per-notebook hard limit (seconds), and output cap per cell (bytes)."""

    cell_timeout: float = 60.0
    timeout: float = 300.0
    max_output: int = 64_000
    max_extract: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("cell_timeout", "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"'{name}' must be a number of seconds > 0 (got {value!r})")


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


_SANDBOX = r"""
set -e
work="$1"; hide="$2"; protect="$3"; user="$4"; shift 4
mount --bind "$work" "$work"
if ! mount -o remount,bind,ro / 2>/dev/null; then
    IFS=:
    for dir in $protect; do
        [ -d "$dir" ] && mount --bind "$dir" "$dir" && mount -o remount,bind,ro "$dir"
    done
    unset IFS
fi
if [ -d "$hide" ]; then mount -t tmpfs -o size=64k,mode=000 tmpfs "$hide"; fi
if [ -n "$user" ]; then
    exec setpriv --reuid "$user" --regid "$user" --clear-groups --bounding-set -all \
        --inh-caps -all --no-new-privs "$@"
fi
exec setpriv --bounding-set -all --inh-caps -all --no-new-privs "$@"
"""


@dataclass(frozen=True)
class Sandbox:
    """How kernels are confined. ``kind`` is ``namespace`` (a private mount namespace in which
    the whole filesystem but the kernel's working directory is read-only and ``solutions/`` is
    hidden, with every capability dropped, and the kernel running as ``nobody`` when that user
    can run the interpreter, in a PID namespace of its own) or ``none``."""

    kind: str
    note: str
    user: int | None = None
    hide: str = ""
    protect: tuple[str, ...] = ()

    @property
    def isolated(self) -> bool:
        return self.kind != "none"

    def wrap(self, cmd: list[str], workdir: Path) -> list[str]:
        if not self.isolated:
            return cmd
        # a private PID namespace too: the kernel is its PID 1 and sees (and can signal) no
        # process outside it, so it cannot kill the grader or another learner's kernel
        return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                "--kill-child", "--mount-proc", "--", "/bin/sh", "-c",
                _SANDBOX, "backfill-sandbox", str(workdir), self.hide,
                ":".join(self.protect), "" if self.user is None else str(self.user), *cmd]


def isolation(root: Path | None = None, protect: tuple[str, ...] = ()) -> Sandbox:
    """The strongest confinement this machine allows, checked by starting Python inside it.

    Only root can create the mount namespace; anyone else gets ``none`` and a note saying the
    kernels run with the grader's own rights.
    """
    root = root or Path(__file__).resolve().parent.parent
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        who = pwd.getpwuid(os.geteuid()).pw_name
        return Sandbox("none", f"not isolated: kernels run as {who}, with the grader's rights "
                               f"(they could write the project's files); run the grader as root "
                               f"on Linux, or in a container")
    hide = str(root / "solutions")
    guarded = (str(root), *protect)
    probe_dir = Path(tempfile.mkdtemp(prefix="backfill-probe-"))
    try:
        nobody = pwd.getpwnam(KERNEL_USER).pw_uid if _user_exists(KERNEL_USER) else None
        for user in ([nobody] if nobody is not None else []) + [None]:
            box = Sandbox("namespace", "", user, hide, guarded)
            os.chown(probe_dir, user or 0, user or 0)
            # the same interpreter with the same standard library, and the project importable
            # (the cheap check first: a wrong interpreter fails before the slow imports)
            check = (f"import sys; "
                     f"assert sys.base_prefix == {sys.base_prefix!r}, sys.base_prefix; "
                     f"import backfill_lab, ipykernel")
            cmd = box.wrap([sys.executable, "-c", check], probe_dir)
            probe = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                   cwd=probe_dir, env=_kernel_env(probe_dir))
            if probe.returncode == 0:
                who = f"as '{KERNEL_USER}'" if user is not None else "as root without capabilities"
                return Sandbox("namespace", f"isolated: kernels run {who} in private mount and "
                                            f"PID namespaces (read-only filesystem, solutions "
                                            f"hidden, no other process in sight)",
                               user, hide, guarded)
            last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    return Sandbox("none", f"not isolated: the kernel sandbox could not start ({last}); "
                           f"kernels run with the grader's rights")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _kernel_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JPY_", "JUPYTER_", "IPYTHON"))}
    env.update({
        "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / ".runtime"), "MPLCONFIGDIR": str(home / ".mpl"),
        "MPLBACKEND": "Agg", "BACKFILL_LAB_GRADING": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": str(home), "BACKFILL_LAB_PROGRESS": str(home / "progress.json"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


class _SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel inside the sandbox, handing it its connection file."""

    sandbox: Sandbox = Sandbox("none", "")
    workdir: Path = Path(".")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return self.sandbox.wrap(super().format_kernel_cmd(extra_arguments), self.workdir)

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        if self.sandbox.user is not None and self.connection_file:
            os.chown(self.connection_file, self.sandbox.user, self.sandbox.user)


class _CappedClient(NotebookClient):
    """nbclient with output capped per cell while it streams in."""

    max_output_bytes = 64_000
    extract_index = -1
    extract_cap = 1_000_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sizes: dict[int, int] = {}
        self.truncated: set[int] = set()
        self.timed_out: list[int] = []
        self.running: int | None = None

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int,
                                 execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        self.running = cell_index  # if the kernel dies, this is the cell that ended it
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None
                                    ) -> dict[str, Any] | None:
        if cell is not None:
            for index, candidate in enumerate(self.nb.cells):
                if candidate is cell:
                    self.timed_out.append(index)
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> NotebookNode | None:
        content = msg.get("content", {})
        size = len(json.dumps(content.get("data") or content.get("text") or "", default=str))
        cap = self.extract_cap if cell_index == self.extract_index else self.max_output_bytes
        used = self._sizes.get(cell_index, 0)
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data"):
            if used + size > cap:
                if cell_index not in self.truncated:
                    self.truncated.add(cell_index)
                    outs.append(nbformat.v4.new_output(
                        "stream", name="stderr",
                        text=f"[output truncated by the grader after {cap} bytes]\n"))
                return None
            self._sizes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)


def _prepare(nb: NotebookNode, nonce: str) -> NotebookNode:
    """A copy with outputs cleared and the grader's extraction cell appended."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            tags = [t for t in cell.metadata.get("tags", [])
                    if t not in ("skip-execution", "nbval-skip")]
            cell.metadata["tags"] = tags
    nb.cells.append(nbformat.v4.new_code_cell(extraction_cell(nonce)))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _kernel_pid(client: NotebookClient) -> int | None:
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
    if sandbox.user is not None:
        for path in (workdir, workdir / "home"):
            os.chown(path, sandbox.user, sandbox.user)
    km = _SandboxedKernelManager(kernel_name="python3")
    km.sandbox = sandbox
    km.workdir = workdir
    km.connection_file = str(workdir / f"kernel-{nonce[:8]}.json")
    client = _CappedClient(
        prepared, km=km, timeout=int(max(1, limits.cell_timeout)), allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError",
                          "evalue": f"cell ran longer than {limits.cell_timeout:g}s"},
        shutdown_kernel="immediate", startup_timeout=60, record_timing=False,
        extra_arguments=["--colors=NoColor"],
        resources={"metadata": {"path": str(workdir)}},
    )
    client.max_output_bytes = limits.max_output
    client.extract_index = extract_index
    client.extract_cap = limits.max_extract
    killed = threading.Event()

    def hard_kill() -> None:
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
        client.execute(cwd=str(workdir), env=_kernel_env(workdir / "home"))
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
    if result.status == "graded":
        result.data = read_back(prepared.cells[extract_index], nonce)
        if result.data is None:
            result.status = "error"
            result.reason = "the grader could not read the notebook's variables back"
    return result


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
