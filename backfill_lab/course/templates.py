"""Each scenario's staged incident as a file, built once per process or once per machine.

Building an incident is the slow part of staging (the scheduler loads the whole history, one
night at a time: about 2 s for ex1, 3 s for the mini challenge); copying its file into a new
in-memory warehouse takes milliseconds (:func:`copy_template`). :func:`template` builds the
file once per process, into this process's scratch folder (:func:`scratch_dir`, removed at
exit), and a grader hands it to its workers (:func:`adopt_template`, checked by SHA-256).

A learner's next process (a ``backfill-lab check``, a notebook after a kernel restart) takes
the incident, and the reference checksums (:func:`cached_truth`), from a cache folder
instead: ``$BACKFILL_LAB_CACHE``, else ``$XDG_CACHE_HOME/safe-backfills/incidents`` (by
default under ``~/.cache``); ``BACKFILL_LAB_CACHE=off`` turns it off. An entry is keyed by
everything the build depends on (:func:`build_key`: the scenario, the source of every module
of ``backfill_lab``, the versions of Python, DuckDB, numpy and pandas), and named by its own
SHA-256, so a changed or truncated file is never used: it is built again. The grader never
reads the cache (:func:`no_disk_cache`): it builds every reference it judges against itself.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._db import quote, run
from ..warehouse import Warehouse
from .scenarios import Scenario

__all__ = ["CACHE_ENV", "adopt_template", "build_key", "built_template", "cache_folder",
           "cached_truth", "copy_template", "file_digest", "keep_truth", "no_disk_cache",
           "scratch_dir", "taken_from_cache", "template", "usable_here"]

CACHE_ENV = "BACKFILL_LAB_CACHE"
"""The environment variable naming the cache folder (``off``: no cache)."""
KEEP = 24
"""How many incident files the cache folder keeps (the newest; a few MB each)."""

_TEMPLATES: dict[Scenario, Path] = {}
_TMP: Path | None = None  # made on first use, by the process that first stages a scenario
_TMP_OWNER = 0
_CODE: str | None = None  # the fingerprint of backfill_lab's source, read once per process


def scratch_dir() -> Path:
    """This process's folder for template files, made on first use and removed
    when this process exits. A process that forks workers calls it first to share one folder
    with them (they never remove it: forked workers exit without atexit handlers)."""
    global _TMP, _TMP_OWNER
    if _TMP is None:
        _TMP = Path(tempfile.mkdtemp(prefix="backfill-lab-"))
        _TMP_OWNER = os.getpid()
        atexit.register(_remove_scratch)
    return _TMP


def _remove_scratch() -> None:
    # only the process that made the folder removes it (forked workers share it, and exit
    # without running atexit handlers anyway)
    if _TMP is not None and os.getpid() == _TMP_OWNER:
        shutil.rmtree(_TMP, ignore_errors=True)


# -- the cache folder --------------------------------------------------------------------------
_OFF = threading.Lock()
_OFF_DEPTH = [0]  # how many blocks of no_disk_cache are open
_OFF_WAS: list[str | None] = [None]  # the variable's value before the first of them
_LOADED_AT = time.time()  # this module is imported with backfill_lab: its code is from then
_FROM_CACHE: set[tuple[str, Scenario]] = set()  # ("incident" | "truth", sc) taken from the folder


@contextmanager
def no_disk_cache() -> Iterator[None]:
    """The cache folder off inside the block, for this process and the processes it starts
    (then as it was), and whatever this process took from it set aside: the grader grades in
    one, so that it judges against nothing it did not build itself (blocks may nest, and
    overlap in threads: the folder is back when the last one ends)."""
    with _OFF:
        if not _OFF_DEPTH[0]:
            _OFF_WAS[0] = os.environ.get(CACHE_ENV)
        _OFF_DEPTH[0] += 1
        os.environ[CACHE_ENV] = "off"
    try:
        yield
    finally:
        with _OFF:
            _OFF_DEPTH[0] -= 1
            if not _OFF_DEPTH[0]:
                if _OFF_WAS[0] is None:
                    os.environ.pop(CACHE_ENV, None)
                else:
                    os.environ[CACHE_ENV] = _OFF_WAS[0]


def cache_folder() -> Path | None:
    """The cache folder (not made yet, maybe), or None when the cache is off, or when no
    home or account says where it goes."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(os.path.abspath(os.path.expanduser(chosen)))
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no account to ask: no cache
            return None
    return Path(os.path.abspath(base)) / "safe-backfills" / "incidents"


def taken_from_cache(kind: str, sc: Scenario, taken: bool) -> None:
    """Record whether what this process holds of ``sc`` (``kind``: ``incident`` or
    ``truth``) came from the cache folder (see :func:`usable_here`)."""
    if taken:
        _FROM_CACHE.add((kind, sc))
    else:
        _FROM_CACHE.discard((kind, sc))


def usable_here(kind: str, sc: Scenario) -> bool:
    """May this process use what it holds of ``sc`` (``kind``: ``incident`` or ``truth``)?
    Not when it took it from the cache folder and the folder is off now (in the grader)."""
    return (kind, sc) not in _FROM_CACHE or _folder() is not None


def _code_fingerprint() -> str | None:
    """SHA-256 of the source of every module of ``backfill_lab`` (what a build runs), or None
    when a file changed after this process imported the package: the code on disk may then
    not be the code running, and nothing is filed under it or taken for it."""
    global _CODE
    if _CODE is None:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            if path.stat().st_mtime > _LOADED_AT:
                return None
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        _CODE = digest.hexdigest()
    return _CODE


def _folder() -> Path | None:
    """The cache folder, when it is on and this process's code is the code on disk."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        return folder if _code_fingerprint() is not None else None
    except OSError:
        return None


def build_key(sc: Scenario) -> str:
    """What a build of ``sc`` depends on, as a short hex key: the scenario itself, the source
    of every module of ``backfill_lab`` and the versions of what runs it (the seeded source's
    numbers come from numpy, the file format from DuckDB)."""
    import duckdb
    import numpy as np
    import pandas as pd

    parts = [repr(sc), _code_fingerprint() or "changed", sys.version, duckdb.__version__,
             np.__version__, pd.__version__]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _cached(sc: Scenario) -> Path | None:
    """A private copy (in this process's scratch folder) of the cache's file of ``sc``'s
    incident, when one is there whose content has the SHA-256 its name says; None otherwise
    (a file that does not is removed). The copy is checked, not the file: what is used is
    what was checked, whatever happens to the folder meanwhile."""
    folder = _folder()
    if folder is None:
        return None
    try:
        found = sorted(folder.glob(f"{sc.exercise}-{build_key(sc)}-*.duckdb"))
    except OSError:
        return None
    for path in found:
        mine = scratch_dir() / f"{sc.exercise}-{os.getpid()}-{uuid.uuid4().hex[:8]}.duckdb"
        try:
            if not path.is_file():  # a folder, a pipe, a dangling link: never read
                continue
            shutil.copyfile(path, mine)
            if file_digest(mine) == path.stem.rsplit("-", 1)[1]:
                return mine
            mine.unlink()
            path.unlink(missing_ok=True)  # changed or cut short: never used
        except OSError:
            mine.unlink(missing_ok=True)
    return None


def _write(folder: Path, name: str, fill: Callable[[Path], object]) -> Path | None:
    """``fill`` a file written aside in ``folder``, then renamed ``name`` (``{digest}`` in it
    replaced by the file's SHA-256): a reader never sees half a file. None, and nothing left
    behind, when the folder cannot be written."""
    part = folder / f".{uuid.uuid4().hex}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fill(part)
        target = folder / name.replace("{digest}", file_digest(part))
        os.replace(part, target)
        return target
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        return None


def _prune(folder: Path) -> None:
    """Keep the newest :data:`KEEP` incidents and truths; remove what a writer that died left
    half written (an hour old)."""
    def age(path: Path) -> float:
        try:
            return path.lstat().st_mtime
        except OSError:
            return 0.0

    try:
        for pattern in ("*.duckdb", "*.truth.json"):
            for old in sorted(folder.glob(pattern), key=age, reverse=True)[KEEP:]:
                old.unlink(missing_ok=True)
        for part in folder.glob(".*.part"):
            if age(part) < time.time() - 3600:
                part.unlink(missing_ok=True)
    except OSError:
        return


def _store(sc: Scenario, built: Path) -> None:
    """Put a copy of the freshly built ``built`` in the cache, named by its SHA-256; the oldest
    files past :data:`KEEP` go. Nothing happens when the folder cannot be written."""
    folder = _folder()
    if folder is not None and _write(folder, f"{sc.exercise}-{build_key(sc)}-{{digest}}.duckdb",
                                     lambda part: shutil.copyfile(built, part)) is not None:
        _prune(folder)


def cached_truth(sc: Scenario) -> dict[str, dict[str, str]] | None:
    """The reference checksums of ``sc`` the cache holds (as written: the file carries their
    SHA-256), or None."""
    folder = _folder()
    if folder is None:
        return None
    try:
        path = folder / f"{sc.exercise}-{build_key(sc)}.truth.json"
        if not path.is_file():
            return None
        data: Any = json.loads(path.read_text())
        checksums: dict[str, dict[str, str]] = data["checksums"]
        text = json.dumps(checksums, sort_keys=True)
        ok = data["sha256"] == hashlib.sha256(text.encode()).hexdigest() and all(
            isinstance(t, dict) and all(isinstance(v, str) for v in t.values())
            for t in checksums.values())
    except Exception:  # unreadable, not JSON, nested too deep, not this shape: not used
        return None
    return checksums if ok else None


def keep_truth(sc: Scenario, checksums: dict[str, dict[str, str]]) -> None:
    """Put the reference checksums of ``sc`` in the cache (when there is one to write)."""
    folder = _folder()
    if folder is None:
        return
    text = json.dumps(checksums, sort_keys=True)
    body = json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(),
                       "checksums": checksums}, sort_keys=True)
    if _write(folder, f"{sc.exercise}-{build_key(sc)}.truth.json",
              lambda part: part.write_text(body)) is not None:
        _prune(folder)


# -- the template file ---------------------------------------------------------------------------
def template(sc: Scenario) -> Path:
    """The file of ``sc``'s staged incident that a staged copy copies (built on first use, or
    taken from the cache folder).

    Building it is the slow part of staging (the scheduler loads the whole history); a copy
    takes milliseconds.
    """
    path = _TEMPLATES.get(sc)
    if path is None or not path.exists() or not usable_here("incident", sc):
        path = _cached(sc)
        taken_from_cache("incident", sc, path is not None)
        if path is None:
            built = sc.build()
            # private to this process: forked workers share _TMP but never build into one file
            path = scratch_dir() / f"{sc.exercise}-{os.getpid()}-{uuid.uuid4().hex[:8]}.duckdb"
            run(built.warehouse.cursor(), f"ATTACH '{path}' AS tpl")
            run(built.warehouse.cursor(), "COPY FROM DATABASE memory TO tpl")
            run(built.warehouse.cursor(), "DETACH tpl")
            built.warehouse.close()
            _store(sc, path)
        _TEMPLATES[sc] = path
    return path


def built_template(sc: Scenario) -> Path | None:
    """The file of ``sc``'s staged incident if this process has it already (built, adopted or
    taken from the cache), else None: nothing is built."""
    path = _TEMPLATES.get(sc)
    usable = path is not None and path.exists() and usable_here("incident", sc)
    return path if usable else None


def file_digest(path: Path) -> str:
    """SHA-256 of a file, to hand a template to another process and let it check the file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adopt_template(sc: Scenario, path: Path, sha256: str) -> bool:
    """Use ``path`` (built by :func:`template` in another process) as ``sc``'s template here.

    The file is used only if it still has the ``sha256`` its builder reported; otherwise (or
    if it is gone) nothing changes and this process builds its own template when it needs one.
    """
    try:
        if file_digest(path) != sha256:
            return False
    except OSError:
        return False
    _TEMPLATES[sc] = path
    taken_from_cache("incident", sc, False)
    return True


def copy_template(path: Path) -> Warehouse:
    """A new in-memory warehouse holding everything in the template file ``path`` (read only,
    never changed): no file to write, flush or remove per copy."""
    wh = Warehouse()
    cur = wh.cursor()
    run(cur, "SET threads=1")
    # the new warehouse made its empty system tables: the template's replace them
    for (name,) in run(cur, "SELECT table_name FROM duckdb_tables() "
                            "WHERE database_name = 'memory'"):
        run(cur, f"DROP TABLE {quote(name)}")
    literal = str(path).replace("'", "''")
    run(cur, f"ATTACH '{literal}' AS _bl_template (READ_ONLY)")
    try:
        run(cur, "COPY FROM DATABASE _bl_template TO memory")
    finally:
        run(cur, "DETACH _bl_template")
    return wh
