"""The kernel sandbox: bubblewrap, with the kernel mapped to an unprivileged uid of its own.

Each kernel runs under ``bwrap`` (Debian's ``bubblewrap``, the sandbox Flatpak uses) in new
user, mount, PID, IPC, UTS, cgroup and network namespaces. Its root holds only read-only binds
of what it needs to run (``/usr`` and the usual lib symlinks, the interpreter's prefix, the
venv's ``pyvenv.cfg`` and site-packages, the ``backfill_lab`` package, a few files of ``/etc``),
a fresh ``/dev``, ``/proc``, a private ``/tmp`` and ``/dev/shm``, and its own working folder,
the only writable place. Nothing else of the project (``.git``, ``tests/``, ``solutions/``,
notebooks, ``grader/``) nor of the host is in it. It talks to nbclient over jupyter_client's
``ipc`` transport (Unix sockets in that folder), so it needs no network at all.

Inside, the kernel is uid/gid 1000 without any capability and with ``no_new_privs``; bwrap
run by root maps that uid to root's outside, so everything rests on what is bound: only the
read-only runtime and the kernel's own folder. Its memory is capped with ``RLIMIT_AS`` (util-linux
``prlimit``, inherited by everything it starts); its processes and threads with a pids cgroup of
its own, which the grader puts bwrap's child into while bwrap waits (``--info-fd`` and
``--block-fd``), before the kernel runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import select
import shutil
import site
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["INSIDE_UID", "Handshake", "ProcessCap", "Sandbox", "isolation", "kernel_env"]

INSIDE_UID = 1000
# what of /etc the interpreter and the engine read (never shadow, gshadow or sudoers)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "timezone", "nsswitch.conf",
             "mime.types", "os-release", "debian_version")
TMPFS_BYTES = 64 * 1024 * 1024
FILE_BYTES = 1024 * 1024 * 1024  # the largest file a kernel may write (RLIMIT_FSIZE)
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_HANDSHAKE_SECONDS = 10.0


@dataclass(frozen=True)
class Sandbox:
    """How kernels are confined: ``kind`` is ``bubblewrap`` or ``none`` (not isolated).

    ``binds`` is the bubblewrap argument list that builds the kernel's root (computed once by
    :func:`isolation`); :meth:`wrap` adds the per-kernel parts. ``user``, ``hide`` and
    ``protect`` are kept for callers of the former namespace sandbox: nothing of the project
    but the ``backfill_lab`` package is in a kernel's root, so there is nothing to hide.
    """

    kind: str
    note: str
    user: int | None = None
    hide: str = ""
    protect: tuple[str, ...] = ()
    binds: tuple[str, ...] = field(default=(), repr=False)

    @property
    def isolated(self) -> bool:
        """True when kernels run inside bubblewrap."""
        return self.kind != "none"

    def wrap(self, cmd: Sequence[str], workdir: Path, *, memory_mb: int = 2048,
             handshake: tuple[int, int] | None = None) -> list[str]:
        """``cmd`` run inside the sandbox with ``workdir`` as its only writable folder, at
        most ``memory_mb`` of address space per process, files of at most 1 GB, no core
        dumps.

        ``handshake`` is :attr:`Handshake.child_fds`: bwrap then holds its child until the
        grader has put it under the process cap.
        """
        if not self.isolated:
            return list(cmd)
        limits = ["prlimit", f"--as={memory_mb * 1024 * 1024}", f"--fsize={FILE_BYTES}",
                  "--core=0", "--"]
        hold = (["--info-fd", str(handshake[0]), "--block-fd", str(handshake[1])]
                if handshake else [])
        return [*limits, "bwrap", *self.binds, "--bind", str(workdir), str(workdir),
                "--chdir", str(workdir), *hold, *cmd]


class Handshake:
    """Holds bwrap's child until the grader has put it under the process cap.

    bwrap reports its child's pid on ``--info-fd`` and waits on ``--block-fd`` before it runs
    the kernel: the grader moves that child into a pids cgroup of its own (when the machine
    has one it may write), then lets it go on. Make one before the kernel command is built
    (:attr:`child_fds` go to :meth:`Sandbox.wrap` and to ``pass_fds``), call :meth:`release`
    right after the process started, and :meth:`close` in any case.
    """

    def __init__(self, cap: ProcessCap | None = None) -> None:
        self.cap = cap
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()

    @property
    def child_fds(self) -> tuple[int, int]:
        """The two ends bwrap inherits: where it reports, where it waits."""
        return self.info_w, self.block_r

    def release(self) -> int:
        """Put bwrap's child under the cap, let it run, and return its (outside) pid."""
        for name in ("info_w", "block_r"):
            os.close(getattr(self, name))
            setattr(self, name, -1)
        pid = self._read_info().get("child-pid")
        if not isinstance(pid, int):
            raise RuntimeError(f"bubblewrap reported no child pid (got {pid!r}); check that "
                               f"'bwrap --version' is 0.8 or newer")
        if self.cap is not None:
            self.cap.add(pid)
        os.write(self.block_w, b"1")
        return pid

    def _read_info(self) -> dict[str, object]:
        buf = b""
        decoder = json.JSONDecoder()
        while True:
            ready, _, _ = select.select([self.info_r], [], [], _HANDSHAKE_SECONDS)
            chunk = os.read(self.info_r, 65536) if ready else b""
            if not chunk:
                raise RuntimeError(f"bubblewrap ended or stalled before reporting its child "
                                   f"(received {buf[:200]!r}); run the grader as root with "
                                   f"user namespaces enabled")
            buf += chunk
            try:
                value, _ = decoder.raw_decode(buf.decode("utf-8", "replace").strip())
            except ValueError:
                continue
            return value if isinstance(value, dict) else {}

    def close(self) -> None:
        """Close every pipe end still open (bwrap, if still waiting, then ends)."""
        for name in ("info_r", "info_w", "block_r", "block_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


class ProcessCap:
    """A pids cgroup (cgroup v1 ``pids`` controller) holding one kernel: at most ``max_procs``
    processes and threads in all, whatever uid they run as (``RLIMIT_NPROC`` does not bind
    uid 0 outside the sandbox, which is what bwrap run by root maps the kernel to)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def root() -> Path | None:
        """The pids cgroup folder this process may create children in, or None."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = [*line.split(":", 2), "", ""][:3]
            if "pids" in controllers.split(","):
                base = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
                if (base / "cgroup.procs").is_file() and os.access(base, os.W_OK):
                    return base
        return None

    @classmethod
    def make(cls, root: Path, max_procs: int) -> ProcessCap:
        """A new cgroup under ``root`` capped at ``max_procs`` tasks."""
        path = root / f"backfill-kernel-{secrets.token_hex(6)}"
        path.mkdir()
        (path / "pids.max").write_text(f"{max_procs}\n")
        return cls(path)

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so everything it starts from now on) into the cgroup."""
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Delete the cgroup once its processes are gone (a few tries: killed processes take
        a moment to leave it)."""
        import time

        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def kernel_env(home: Path, *, isolated: bool) -> dict[str, str]:
    """The kernel's environment: the grader's own minus Jupyter's, or, in the sandbox, only
    what a kernel needs (no variable of the grader's, so no secret of its, gets in)."""
    if isolated:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "USER": "learner", "TERM": "dumb"}
    else:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JPY_", "JUPYTER_", "IPYTHON"))}
    env.update({
        "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / ".runtime"), "MPLCONFIGDIR": str(home / ".mpl"),
        "MPLBACKEND": "Agg", "BACKFILL_LAB_GRADING": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": str(home), "BACKFILL_LAB_PROGRESS": str(home / "progress.json"),
        "BACKFILL_LAB_CACHE": "off", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


def _runtime_paths() -> tuple[list[str], list[str]]:
    """(folders, files) the kernel needs read-only: interpreter, site-packages, the engine."""
    folders = {sys.base_prefix, sys.base_exec_prefix}
    files: set[str] = set()
    if sys.prefix != sys.base_prefix:  # a venv: its config, its interpreter, its packages
        files.add(str(Path(sys.prefix) / "pyvenv.cfg"))
        files.add(sys.executable)
        folders.update(p for p in site.getsitepackages() if Path(p).is_dir())
    spec = importlib.util.find_spec("backfill_lab")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folders.add(str(Path(location).resolve()))
    for folder in list(folders):  # a folder inside another bound one is already there
        if any(folder != other and folder.startswith(other.rstrip("/") + "/")
               for other in folders):
            folders.discard(folder)
    return sorted(f for f in folders if f != "/usr" and not f.startswith("/usr/")), \
        sorted(files)


def _binds() -> tuple[str, ...]:
    # no --new-session: jupyter_client already starts bwrap in a session of its own without a
    # controlling terminal (stdin a closed pipe, stdout and stderr the drain), so the kernel has
    # no terminal to inject input into; and sharing bwrap's process group is what lets a kernel
    # that signals its own group (kill(0, SIGKILL)) end itself, which PID 1 of a namespace
    # otherwise could not
    args = ["--unshare-all", "--unshare-user", "--uid", str(INSIDE_UID), "--gid",
            str(INSIDE_UID), "--hostname", "sandbox", "--die-with-parent", "--as-pid-1",
            "--cap-drop", "ALL"]
    # a fresh /dev, read-only once /dev/shm is on it; /tmp and /dev/shm private and small
    # (tmpfs pages are the host's memory, outside the kernel's address-space limit). These come
    # first: bwrap applies its arguments in order, so a later bind shows through them
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs",
             "/dev/shm", "--remount-ro", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
             "--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path.resolve()), str(path)]
    folders, files = _runtime_paths()
    for runtime in folders + files:  # after the private /tmp: a project under /tmp stays seen
        args += ["--ro-bind", runtime, runtime]
    return tuple(args)


def isolation(root: Path | None = None, protect: tuple[str, ...] = ()) -> Sandbox:
    """The kernel sandbox when this machine allows it, checked by starting Python inside it.

    It needs Linux, root, ``bwrap`` and ``prlimit`` on ``PATH``, and user namespaces;
    otherwise ``none``, with a note that says why and that kernels run with the grader's
    rights.
    """
    import pwd
    import subprocess

    who = pwd.getpwuid(os.geteuid()).pw_name
    missing = [tool for tool in ("bwrap", "prlimit") if shutil.which(tool) is None]
    if sys.platform != "linux" or os.geteuid() != 0 or missing:
        why = (f"{' and '.join(missing)} not found (apt-get install bubblewrap util-linux)"
               if missing and sys.platform == "linux" and os.geteuid() == 0
               else "the sandbox needs root on Linux")
        return Sandbox("none", f"not isolated: {why}; kernels run as {who}, with the grader's "
                               f"rights (they could read and write what it can)")
    box = Sandbox("bubblewrap", "", binds=_binds(), protect=protect,
                  hide=str((root or Path(__file__).resolve().parent.parent) / "solutions"))
    probe_dir = Path(tempfile.mkdtemp(prefix="backfill-probe-"))
    hold = Handshake()
    try:
        check = (f"import os, sys; assert sys.base_prefix == {sys.base_prefix!r}; "
                 f"assert os.getuid() == {INSIDE_UID}; import backfill_lab, ipykernel")
        cmd = box.wrap([sys.executable, "-c", check], probe_dir, handshake=hold.child_fds)
        proc = subprocess.Popen(cmd, cwd=probe_dir, env=kernel_env(probe_dir, isolated=True),
                                pass_fds=hold.child_fds, extra_groups=[], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            hold.release()
            _, err = proc.communicate(timeout=60)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            proc.kill()
            _, err = proc.communicate()
            err = err or str(exc).encode()
        if proc.returncode == 0:
            pids = ("" if ProcessCap.root() is not None else
                    "; no writable pids cgroup here, so the process cap is not enforced")
            return Sandbox("bubblewrap", f"isolated: kernels run in bubblewrap as an "
                                         f"unprivileged user, without network, seeing only "
                                         f"their own folder and the runtime (read-only){pids}",
                           binds=box.binds, protect=protect, hide=box.hide)
        last = (err.decode("utf-8", "replace").strip().splitlines() or ["unknown error"])[-1]
    finally:
        hold.close()
        shutil.rmtree(probe_dir, ignore_errors=True)
    return Sandbox("none", f"not isolated: the kernel sandbox could not start ({last}); "
                           f"kernels run as {who}, with the grader's rights")
