"""What keeps a refused command from changing anything: ``--db`` checked, the file kept.

A command refused with exit code 2 leaves the warehouse file byte for byte as it was: the file
(and its write-ahead log) is copied aside before the command runs and put back when it is
refused, whatever the command had done by then. ``--db`` itself is checked before DuckDB sees
it, so a directory, an empty file, random bytes or a foreign DuckDB database each get advice
that fits, instead of "close the other program".
"""

from __future__ import annotations

import argparse
import errno
import filecmp
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb

from .._db import run
from .._yaml import shorten
from ..errors import BackfillLabError
from ..warehouse import Warehouse
from .parse import UsageError

__all__ = ["Kept", "check_path", "guarded", "open_warehouse", "pipelines_of", "refuse"]

PROG = "backfill-lab"
MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


def check_path(text: str) -> Path:
    """``--db`` as a path the system can use (no NUL byte, no name over 255 bytes)."""
    if "\x00" in text:
        raise UsageError(f"'--db' contains a NUL byte (got {shorten(text)})")
    longest = max((len(part.encode()) for part in Path(text).parts), default=0)
    if longest > 255:
        raise UsageError(f"'--db' has a file or folder name of {longest} bytes; names are at "
                         f"most 255 bytes (got {shorten(text)})")
    return Path(text)


def open_warehouse(text: str) -> Warehouse:
    """An existing lab warehouse, or a one-line refusal that says what the file really is."""
    path = check_path(text)
    name = shorten(text)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UsageError(f"warehouse {name} does not exist; create the demo with "
                         f"'{PROG} demo --db {text}'") from None
    except OSError as exc:
        raise UsageError(f"cannot open warehouse {name}: {exc.strerror}") from None
    if path.is_dir():
        raise UsageError(f"warehouse {name} is a directory; give a DuckDB file such as "
                         f"{os.path.join(text, 'lab.duckdb')!r}")
    redo = f"create the demo with '{PROG} demo --db {text} --force'"
    if info.st_size == 0:
        raise UsageError(f"warehouse {name} is an empty file, not a DuckDB database; {redo}")
    with path.open("rb") as f:
        header = f.read(12)
    if header[8:12] != MAGIC:
        raise UsageError(f"warehouse {name} is not a DuckDB database file; point --db at the "
                         f"lab's warehouse, or {redo}")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if "lock" in first.lower():
            raise UsageError(f"warehouse {name} is open in another program (or notebook "
                             f"kernel); close it and try again") from None
        raise UsageError(f"warehouse {name} cannot be read as a DuckDB database "
                         f"({shorten(first, 120)}); {redo}") from None
    try:
        lab = con.execute("SELECT count(*) FROM information_schema.tables "
                          "WHERE table_name = '_bl_tables'").fetchall()[0][0]
    finally:
        con.close()
    if not lab:
        raise UsageError(f"warehouse {name} is a DuckDB database but not a backfill-lab "
                         f"warehouse (it has no _bl_tables); point --db at the lab's "
                         f"warehouse, or create one with '{PROG} demo --db NEW_FILE'")
    return Warehouse(path)


def pipelines_of(wh: Warehouse) -> list[str]:
    """The pipelines whose backfills ``wh`` records (none for a new warehouse): a plan for
    another is refused before it writes a row."""
    cur = wh.cursor()
    if not run(cur, "SELECT 1 FROM duckdb_tables() WHERE table_name = '_bl_backfills'"):
        return []
    return [r[0] for r in run(cur, "SELECT DISTINCT pipeline FROM _bl_backfills "
                                   "WHERE pipeline IS NOT NULL ORDER BY 1")]


class Kept:
    """A copy of the ``--db`` file (and its WAL) taken before a command, put back on refusal."""

    def __init__(self, db: str | None) -> None:
        self.paths: list[Path] = []
        self.copies: dict[Path, Path | None] = {}
        self._dir: str | None = None
        if db is None or "\x00" in db:
            return
        try:
            base = check_path(db)
        except UsageError:
            return
        for path in (base, Path(f"{db}.wal")):
            try:
                regular = path.is_file()
                present = path.exists()
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    continue
                raise
            if present and not regular:
                continue  # a directory: DuckDB cannot write it, nothing to keep
            self.paths.append(path)
            try:
                self.copies[path] = self._copy(path) if regular else None
            except OSError:
                self.discard()
                raise

    def _copy(self, path: Path) -> Path:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="backfill-lab-kept-")
        copy = Path(self._dir) / f"{len(self.copies)}"
        shutil.copy2(path, copy)
        return copy

    def restore(self) -> None:
        """Put every kept file back as it was (a file that did not exist is removed)."""
        for path in self.paths:
            copy = self.copies[path]
            if copy is None:
                path.unlink(missing_ok=True)
            elif not path.is_file() or not filecmp.cmp(copy, path, shallow=False):
                shutil.copy2(copy, path)  # unchanged (a read-only file): nothing to put back

    def discard(self) -> None:
        """Drop the copies."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def guarded(args: argparse.Namespace, dispatch: Callable[[argparse.Namespace], int]) -> int:
    """``dispatch(args)`` with the ``--db`` file kept aside and put back when the command is
    refused (exit code 2); Ctrl-C is one line that says how to resume (exit code 130)."""
    db = getattr(args, "db", None)
    try:
        kept = Kept(db)
    except OSError as exc:  # e.g. a file this user may not read: nothing has run yet
        return refuse(exc)
    try:
        code = dispatch(args)
        if code == 2:
            kept.restore()
        return code
    except KeyboardInterrupt:  # what committed stays; say how to go on
        bid = getattr(args, "backfill_id", None)
        how = (f"rerun the same command with --backfill-id {bid} to resume" if bid else
               f"'{PROG} status --db {db}' lists its id; rerun with --backfill-id ID to "
               "resume" if db else "rerun it")
        print(f"{PROG}: interrupted; the partitions already written stay; {how}",
              file=sys.stderr)
        return 130
    except OSError as exc:  # putting the file back failed (it changed and is not writable)
        return refuse(exc)
    finally:
        kept.discard()


def refuse(exc: BaseException) -> int:
    """Report a refusal in one line on stderr: exit code 2."""
    if isinstance(exc, UsageError | BackfillLabError):
        text = str(exc)
    elif isinstance(exc, OSError):
        name = str(exc.filename)  # the file's own name kept, however long its folders
        where = f" {shorten(name if len(name) < 50 else '...' + name[-46:])}" \
            if exc.filename else ""
        text = f"cannot use{where}: {exc.strerror or exc}"
    elif isinstance(exc, RecursionError):
        text = "input nests too deeply to read"
    else:
        text = f"{type(exc).__name__}: {shorten(str(exc).strip(), 300)}"
    line = " ".join(text.split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return 2
