"""What the grader reads from disk: submissions found under the paths it was given.

Only regular files are graded. A file is opened without following a symbolic link and without
blocking (a FIFO or a device opens and is refused at once), checked with ``fstat`` to be a
regular file, and read up to a size limit, so no name in a submissions folder can make the
grader read a file elsewhere, wait forever or read without end. Each submission is named by its
path relative to the folder it was found in, so ``alice/dup.ipynb`` and ``bob/dup.ipynb`` stay
two submissions, each traceable to its file.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backfill_lab.cli.parse import UsageError

__all__ = ["MAX_NOTEBOOK_BYTES", "InputError", "Submission", "collect", "read_regular"]

#: The largest notebook the grader reads (a learner's notebook without outputs is ~50 KB).
MAX_NOTEBOOK_BYTES = 20_000_000


class InputError(ValueError):
    """A submission file the grader refuses to read (not a regular file, too large)."""


@dataclass(frozen=True)
class Submission:
    """A file to grade and the name its results carry (its path relative to the folder)."""

    path: Path
    name: str


def read_regular(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Raises :class:`InputError` naming the file and what it is instead; never follows a symbolic
    link, never blocks on a FIFO or a device.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path.name} is a symbolic link; only regular files are graded "
                             f"(submit the notebook itself)") from None
        raise InputError(f"cannot read {path.name}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a folder" if stat.S_ISDIR(info.st_mode) else
                    "a FIFO" if stat.S_ISFIFO(info.st_mode) else
                    "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
            raise InputError(f"{path.name} is {kind}; only regular files are graded")
        if info.st_size > limit:
            raise InputError(f"{path.name} has {info.st_size} bytes, more than the {limit} "
                             f"the grader reads; clear the notebook's outputs and submit again")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:  # it grew while being read
                raise InputError(f"{path.name} has more than the {limit} bytes the grader "
                                 f"reads")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _names(found: list[tuple[Path, str, str]]) -> list[Submission]:
    """Unique names: the relative path, or the folder as given and the relative path."""
    taken: set[str] = set()
    out = []
    for path, rel, given in found:
        # a file name need not be UTF-8 (bytes Python keeps as surrogates); its results and
        # reports are text, so its name shows the bytes that are not as U+FFFD
        rel, given = (t.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                      for t in (rel, given))
        name = rel if rel not in taken else f"{given.rstrip('/')}/{rel}"
        stem, n = name, 2
        while name in taken:
            name, n = f"{stem} ({n})", n + 1
        taken.add(name)
        out.append(Submission(path, name))
    return out


def collect(paths: Sequence[str]) -> list[Submission]:
    """Every ``*.ipynb`` under ``paths`` (folders, walked without following links) and every
    file named in ``paths``, in order; a usage error when one does not exist or none is found.

    Special files are collected too (a symbolic link, a FIFO named ``x.ipynb``): grading
    refuses each with a reason, so every file gets its row in the gradebook.
    """
    found: list[tuple[Path, str, str]] = []
    for text in paths:
        path = Path(text)
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
                for name in sorted(files):
                    if name.endswith(".ipynb"):
                        file = Path(folder) / name
                        found.append((file, file.relative_to(path).as_posix(), text))
        elif path.exists() or path.is_symlink():
            found.append((path, path.name, str(path.parent)))
        else:
            raise UsageError(f"no such file or folder: {text!r}")
    if not found:
        raise UsageError(f"no notebooks found in {', '.join(map(repr, paths))}")
    return _names(found)
