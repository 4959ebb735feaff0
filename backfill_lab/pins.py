"""Pins besides the code version: the pipeline's config and the runtime, frozen for a backfill.

Three things decide the rows a partition gets: the code (``code_version``), the settings its
transforms read (the pipeline's *config*: a window, a threshold, the source's seed) and what
executes them (the *runtime*: Python, DuckDB, backfill_lab). A rerun of an old partition with a
changed window or a new DuckDB can give other rows than its neighbours got, silently. So a
backfill freezes all three, and each has a short, stable fingerprint:

* ``config_hash``: ``sha256:`` and the first 8 hex digits of the SHA-256 of the config's
  canonical JSON (keys sorted, no spaces): the same settings give the same hash on every machine;
* ``runtime``: ``python 3.11 / duckdb 2.0.1 / backfill_lab 0.1.0`` (Python's major.minor, the
  others in full). A pin may name only the parts it cares about (``runtime: duckdb 2.0.1``).

A plan pins them next to ``code_version`` (top-level ``config_hash:`` and ``runtime:``), Python
passes ``config_hash=``/``runtime=``, the command line ``--config-hash``/``--runtime``. The rules
are here, once; the runner refuses a pin the deployment does not match before anything is written,
and a resume that would mix configs or runtimes. Taught in notebooks/02_daily_backfill.ipynb
(Step 2: freeze the code version).

>>> config_hash({"window": 7, "seed": 7}) == config_hash({"seed": 7, "window": 7})
True
>>> config_hash({})
'sha256:44136fa3'
>>> check_config_hash("config_hash", "1a2b")
Traceback (most recent call last):
...
backfill_lab.errors.ConfigError: 'config_hash' must be 'sha256:' and 8 hex digits, like \
'sha256:1a2b3c4d' (the pipeline's config_hash) (got '1a2b')
>>> check_runtime("runtime", "pyhton 3.11")
Traceback (most recent call last):
...
backfill_lab.errors.UnknownNameError: unknown runtime part 'pyhton'; known: 'backfill_lab', \
'duckdb', 'python'. Did you mean 'python'?
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

import duckdb

from .errors import ConfigError, PinMismatch, UnknownNameError

__all__ = ["PARTS", "canonical_json", "check_config_hash", "check_deployed", "check_resume",
           "check_runtime", "config_hash", "parse_runtime", "runtime"]

PARTS = ("python", "duckdb", "backfill_lab")
"""What a runtime names, in the order it names them."""
_HASH = re.compile(r"sha256:[0-9a-f]{8}")
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+-]*")
_RUNTIME_EXAMPLE = "'python 3.11 / duckdb 2.0.1 / backfill_lab 0.1.0'"


def _plain(value: object, where: str) -> Any:
    """``value`` as JSON data: mappings with text keys, lists, text, numbers, true/false, null;
    dates as ISO text and durations as seconds."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError.invalid(where, "a finite number", value)
        return value
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError.invalid(where, "a mapping with text keys", dict(value))
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ConfigError.invalid(where, "JSON data (text, numbers, lists, mappings)", value)


def canonical_json(config: Mapping[str, Any]) -> str:
    """The config as canonical JSON: keys sorted, no spaces (what :func:`config_hash` hashes).

    >>> canonical_json({"window": 7, "source": {"seed": 7}})
    '{"source":{"seed":7},"window":7}'
    """
    data = _plain(config, "config")
    if not isinstance(data, dict):
        raise ConfigError.invalid("config", "a mapping of settings", config)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: Mapping[str, Any]) -> str:
    """``sha256:`` and the first 8 hex digits of the SHA-256 of the config's canonical JSON."""
    digest = hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:8]}"


def runtime() -> str:
    """What executes a pipeline here: ``python 3.11 / duckdb 2.0.1 / backfill_lab 0.1.0``."""
    from . import __version__  # the package has finished importing by the time this runs

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"python {python} / duckdb {duckdb.__version__} / backfill_lab {__version__}"


def parse_runtime(text: str, where: str = "runtime") -> dict[str, str]:
    """``{part: version}`` from ``'python 3.11 / duckdb 2.0.1'``; every part checked.

    >>> parse_runtime("duckdb 2.0.1 / python 3.11")
    {'python': '3.11', 'duckdb': '2.0.1'}
    """
    found: dict[str, str] = {}
    for piece in text.split("/"):
        words = piece.split()
        if len(words) != 2 or not _VERSION.fullmatch(words[1]):
            raise ConfigError.invalid(where, f"parts like {_RUNTIME_EXAMPLE}", text)
        name, version = words
        if name not in PARTS:
            raise UnknownNameError.of(f"{where} part", name, PARTS)
        if name in found:
            raise ConfigError(f"{where!r} names {name} twice (got {text!r}); name it once")
        found[name] = version
    return {p: found[p] for p in PARTS if p in found}


def check_runtime(name: str, value: object) -> str | None:
    """A runtime pin, normalized (parts in :data:`PARTS` order, one space each), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError.invalid(name, f"text like {_RUNTIME_EXAMPLE}", value)
    return " / ".join(f"{p} {v}" for p, v in parse_runtime(value, name).items())


def check_config_hash(name: str, value: object) -> str | None:
    """A config hash pin (``sha256:1a2b3c4d``; upper-case digits are lowered), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _HASH.fullmatch(value.strip().lower()):
        raise ConfigError.invalid(name, "'sha256:' and 8 hex digits, like 'sha256:1a2b3c4d' "
                                        "(the pipeline's config_hash)", value)
    return value.strip().lower()


def check_deployed(pipeline: str, deployed_hash: str, pinned_hash: str | None,
                   pinned_runtime: str | None) -> tuple[str, str]:
    """Refuse pins the deployment does not match; return ``(config hash, runtime)`` it runs."""
    here = runtime()
    if pinned_hash is not None and pinned_hash != deployed_hash:
        raise PinMismatch(
            f"backfill pinned to config {pinned_hash} but pipeline {pipeline!r} runs config "
            f"{deployed_hash}; deploy the config that hashes to {pinned_hash} first, or pin "
            f"config_hash {deployed_hash}")
    if pinned_runtime is not None:
        have = parse_runtime(here)
        for part, want in parse_runtime(pinned_runtime).items():
            if have[part] != want:
                raise PinMismatch(
                    f"backfill pinned to runtime {pinned_runtime!r} but it runs on {here!r} "
                    f"({part} {have[part]}, not {want}); run it where {part} {want} is "
                    f"installed, or pin runtime {here!r}")
    return deployed_hash, here


def check_resume(backfill_id: str, started: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse to resume a backfill with another config or runtime than it was started with
    (a backfill started before pins were recorded has none to compare)."""
    for key, what in (("config_hash", "config"), ("runtime", "runtime")):
        before = started.get(key)
        if before is not None and before != now[key]:
            raise PinMismatch(
                f"backfill {backfill_id!r} was started with {what} {before!r}; resuming it "
                f"with {now[key]!r} would mix {what}s in one range; restore {before!r} or "
                f"start a new backfill id")
