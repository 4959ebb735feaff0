"""What keeps a refused command from changing anything: ``--db`` checked, the file kept.

A command refused with exit code 2 leaves the warehouse file byte for byte as it was: the file
(and its write-ahead log) is copied aside before the command runs and put back when it is
refused, whatever the command had done by then. ``--db`` itself is checked before DuckDB sees
it, so a directory, an empty file, random bytes or a foreign DuckDB database each get advice
that fits, instead of "close the other program".
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import duckdb

from .._yaml import shorten
from ..warehouse import Warehouse
from .parse import UsageError

__all__ = ["Kept", "check_path", "open_warehouse"]

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
            self.copies[path] = self._copy(path) if regular else None

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
            else:
                shutil.copy2(copy, path)

    def discard(self) -> None:
        """Drop the copies."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
