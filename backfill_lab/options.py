"""How a backfill runs, in one validated object: :class:`BackfillOptions`.

Every rule about a backfill's settings (``layers``, ``order``, ``concurrency``, ``retries``,
``backoff``, ``mode``, ``merge_keys``, ``target``, ``batch_size``, ``code_version``, and the
pins ``config_hash`` and ``runtime``, whose formats :mod:`backfill_lab.pins` defines) is applied
once, here, with one wording and one exception class (:class:`ConfigError` or a subclass). The
runner, the scheduler, plans, the warehouse and the command line all go through it; each only
says how *its* caller spells a setting (:class:`Spelling`), so the message names what the user
typed: ``concurrency=`` in Python, ``backfill.concurrency`` in a plan, ``--max-parallel`` on the
command line.

Modelled on Dagster's ``BackfillPolicy`` (a frozen value with named constructors) and Airflow's
``_validate_backfill_params`` (every check up front, before anything is written).

>>> BackfillOptions.parallel(4, retries=2)
BackfillOptions(concurrency=4, retries=2)
>>> BackfillOptions.parse({"concurency": 2})
Traceback (most recent call last):
...
backfill_lab.errors.UnknownNameError: unknown backfill option 'concurency'; ... 'concurrency'?
>>> BackfillOptions(concurrency="two")  # type: ignore[arg-type]
Traceback (most recent call last):
...
backfill_lab.errors.ConfigError: 'concurrency' must be an integer >= 1 (got 'two')
>>> BackfillOptions(backoff=float("nan"))
Traceback (most recent call last):
...
backfill_lab.errors.ConfigError: 'backoff' must be a number of seconds from 0 to 60 (got nan)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ._db import quote
from .errors import ConfigError, MergeKeyError, UnknownNameError
from .partitions import ORDERS
from .pins import check_config_hash, check_runtime

__all__ = [
    "CLI",
    "MAX_BACKOFF",
    "PLAN",
    "PYTHON",
    "WRITE_MODES",
    "BackfillOptions",
    "Spelling",
    "WriteMode",
    "check",
    "check_batch",
    "check_mode",
    "flag",
    "integer",
    "require_merge_keys",
]

WriteMode = Literal["overwrite", "merge", "append"]
WRITE_MODES: tuple[str, ...] = ("overwrite", "merge", "append")
MAX_BACKOFF = 60.0
"""The longest wait between two attempts of a step, in seconds: ``backoff`` may be at most this,
and the doubling wait (``backoff``, ``2*backoff``, ``4*backoff``, ...) stops growing here."""

Target = str | Mapping[str, str] | None


@dataclass(frozen=True)
class Spelling:
    """How one caller (Python, a plan file, the command line) writes option names in messages.

    ``style`` decides the shape: ``python`` (``'batch_size'``, ``mode 'overwrite'``), ``yaml``
    (``'backfill.batch_size'``, ``mode: overwrite``) or ``flag`` (``'--batch-size'``,
    ``'--write-mode overwrite'``); ``names`` maps an option to the caller's own name for it.
    """

    style: Literal["python", "yaml", "flag"] = "python"
    names: Mapping[str, str] = field(default_factory=dict)

    def name(self, option: str) -> str:
        """The caller's bare name for ``option`` (``max-parallel`` for ``concurrency``)."""
        return self.names.get(option, option)

    def full_name(self, option: str) -> str:
        """The name in "must be" messages: ``'concurrency'``, ``'backfill.concurrency'``."""
        prefix = "backfill." if self.style == "yaml" else ""
        return f"{prefix}{self.name(option)}"

    def label(self, option: str) -> str:
        """The name in "unknown ..." messages: ``write mode``, ``backfill.mode``, ``--order``."""
        if self.style == "python":
            return {"mode": "write mode"}.get(option, option)
        return f"backfill.{option}" if self.style == "yaml" else f"--{self.name(option)}"

    def subject(self, option: str) -> str:
        """The option a combined rule is about: ``'batch_size'``, ``backfill.batch_size``."""
        if self.style == "yaml":
            return f"backfill.{option}"
        return f"'--{self.name(option)}'" if self.style == "flag" else f"'{option}'"

    def setting(self, option: str, value: object) -> str:
        """A setting as the caller writes it: ``mode 'overwrite'``, ``mode: overwrite``."""
        if self.style == "yaml":
            return f"{option}: {value}"
        return f"'--{self.name(option)} {value}'" if self.style == "flag" else f"{option} {value!r}"


PYTHON = Spelling()
"""Keyword arguments (``run_backfill(..., concurrency=2)``)."""
PLAN = Spelling("yaml")
"""A plan's ``backfill:`` section."""
CLI = Spelling("flag", {"concurrency": "max-parallel", "mode": "write-mode",
                        "batch_size": "batch-size", "merge_keys": "merge-keys",
                        "code_version": "code-version", "config_hash": "config-hash"})
"""``backfill-lab backfill`` flags."""


# -- the rules, one per setting -------------------------------------------------------------
def integer(name: str, value: object, minimum: int) -> int:
    """An integer >= ``minimum`` (digit text such as ``'3'`` too), else one clear error.

    >>> integer("retries", "2", 0)
    2
    >>> integer("retries", -1, 0)
    Traceback (most recent call last):
    ...
    backfill_lab.errors.ConfigError: 'retries' must be an integer >= 0 (got -1)
    """
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return integer(name, int(value), minimum)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError.invalid(name, f"an integer >= {minimum}", value)
    return value


def flag(name: str, value: object) -> bool:
    """``True`` or ``False`` (not ``'yes'``, not ``1``), else one clear error.

    >>> flag("catchup", "yes")
    Traceback (most recent call last):
    ...
    backfill_lab.errors.ConfigError: 'catchup' must be true or false (got 'yes')
    """
    if not isinstance(value, bool):
        raise ConfigError.invalid(name, "true or false", value)
    return value


def check_mode(mode: object, label: str = "write mode") -> str:
    """One of :data:`WRITE_MODES`, else ``unknown write mode 'upsert'; known: ...``."""
    if not isinstance(mode, str) or mode not in WRITE_MODES:
        raise UnknownNameError.of(label, str(mode), WRITE_MODES)
    return mode


def require_merge_keys(mode: str, keys: Iterable[str]) -> None:
    """``merge`` upserts on keys: refuse it without any."""
    if mode == "merge" and not tuple(keys):
        raise MergeKeyError(
            "write mode 'merge' needs merge_keys, e.g. ['entity_id', 'date'] (got none)")


def check_batch(mode: str, batch_size: int, spelling: Spelling = PYTHON) -> None:
    """A batch (``batch_size`` > 1) replaces its partitions in one transaction: overwrite only."""
    if batch_size > 1 and mode != "overwrite":
        batch = spelling.subject("batch_size")
        raise ConfigError(
            f"{batch} > 1 needs {spelling.setting('mode', 'overwrite')} (got {mode!r}): a batch "
            f"replaces its partitions in one transaction; drop {batch.strip(chr(39))} to "
            f"{mode} one partition at a time")


def _names(name: str, value: object, *, empty_ok: bool) -> tuple[str, ...]:
    """Names from a list or comma-separated text."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError.invalid(name, "a list of names", value)
    if not value and not empty_ok:
        raise ConfigError.invalid(name, "at least one layer name", list(value))
    return tuple(value)


def _layers(name: str, value: object) -> tuple[str, ...] | None:
    return None if value is None else _names(name, value, empty_ok=False)


def _merge_keys(name: str, value: object) -> tuple[str, ...]:
    return () if value is None else _names(name, value, empty_ok=True)


def _backoff(name: str, value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 <= value <= MAX_BACKOFF):
        raise ConfigError.invalid(name, f"a number of seconds from 0 to {MAX_BACKOFF:g}", value)
    return float(value)


def _target(name: str, value: object) -> Target:
    if value is None:
        return None
    if isinstance(value, str):
        quote(value)
        return value
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError.invalid(name, "a table name or {layer: table}", value)
    for table in value.values():
        quote(table)
    return MappingProxyType(dict(value))


def _order(label: str, value: object) -> str:
    if not isinstance(value, str) or value not in ORDERS:
        raise UnknownNameError.of(label, str(value), ORDERS)
    return value


def _code_version(name: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError.invalid(name, "a version string like 'v1.4.2'", value)
    return value


_RULES: dict[str, Callable[[str, object, Spelling], Any]] = {
    "layers": lambda n, v, s: _layers(s.full_name(n), v),
    "order": lambda n, v, s: _order(s.label(n), v),
    "concurrency": lambda n, v, s: integer(s.full_name(n), v, 1),
    "retries": lambda n, v, s: integer(s.full_name(n), v, 0),
    "backoff": lambda n, v, s: _backoff(s.full_name(n), v),
    "mode": lambda n, v, s: check_mode(v, s.label(n)),
    "merge_keys": lambda n, v, s: _merge_keys(s.full_name(n), v),
    "target": lambda n, v, s: _target(s.full_name(n), v),
    "batch_size": lambda n, v, s: integer(s.full_name(n), v, 1),
    "code_version": lambda n, v, s: _code_version(s.full_name(n), v),
    "config_hash": lambda n, v, s: check_config_hash(s.full_name(n), v),
    "runtime": lambda n, v, s: check_runtime(s.full_name(n), v),
}


def check(option: str, value: object, spelling: Spelling = PYTHON) -> Any:
    """The one rule for ``option``: the value normalized, or a :class:`ConfigError`.

    >>> check("merge_keys", "entity_id, date")
    ('entity_id', 'date')
    >>> check("concurrency", 0, PLAN)
    Traceback (most recent call last):
    ...
    backfill_lab.errors.ConfigError: 'backfill.concurrency' must be an integer >= 1 (got 0)
    """
    return _RULES[option](option, value, spelling)


@dataclass(frozen=True)
class BackfillOptions:
    """The settings of one backfill, each checked once (see the module docstring).

    ``layers`` (default: all, upstream first), ``order`` (``ascending`` or ``descending``:
    which ready partition starts first), ``concurrency`` (steps in flight at most),
    ``retries`` (extra attempts per step) and ``backoff`` (seconds before the first retry,
    doubling, never more than :data:`MAX_BACKOFF`), ``mode`` (``overwrite``, ``merge`` on
    ``merge_keys``, or ``append``), ``target`` (the table of the last layer, or ``{layer:
    table}``), ``batch_size`` (partitions per transaction, overwrite only) and
    ``code_version``, ``config_hash`` and ``runtime`` (what the backfill is pinned to; default:
    what is deployed; see :mod:`backfill_lab.pins`).
    The notebooks pass these as keywords of ``run_backfill`` (notebooks/02_daily_backfill.ipynb,
    Step 2: freeze the code version).
    """

    layers: tuple[str, ...] | None = None
    order: str = "ascending"
    concurrency: int = 1
    retries: int = 0
    backoff: float = 0.05
    mode: str = "overwrite"
    merge_keys: tuple[str, ...] = ()
    target: Target = field(default=None, hash=False)
    batch_size: int = 1
    code_version: str | None = None
    config_hash: str | None = None
    runtime: str | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))
        check_batch(self.mode, self.batch_size)
        require_merge_keys(self.mode, self.merge_keys)

    # -- named constructors ------------------------------------------------------------------
    @classmethod
    def serial(cls, **options: Any) -> BackfillOptions:
        """One step at a time (the safest start, and the default)."""
        return cls.parse({**options, "concurrency": 1})

    @classmethod
    def parallel(cls, concurrency: int, **options: Any) -> BackfillOptions:
        """At most ``concurrency`` steps at once (Airflow's ``max_active_runs``)."""
        return cls.parse({**options, "concurrency": concurrency})

    @classmethod
    def batched(cls, batch_size: int, **options: Any) -> BackfillOptions:
        """``batch_size`` partitions per transaction, overwritten together (Dagster's
        ``BackfillPolicy.multi_run(max_partitions_per_run)``)."""
        return cls.parse({**options, "batch_size": batch_size})

    @classmethod
    def merging(cls, merge_keys: Iterable[str] | str, **options: Any) -> BackfillOptions:
        """Upsert on ``merge_keys`` instead of overwriting partitions."""
        keys = merge_keys if isinstance(merge_keys, str) else list(merge_keys)
        return cls.parse({**options, "mode": "merge", "merge_keys": keys})

    @classmethod
    def versioned(cls, target: str, code_version: str, **options: Any) -> BackfillOptions:
        """A recompute into a new table ``target`` at ``code_version`` (readers untouched)."""
        return cls.parse({**options, "target": target, "code_version": code_version})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls, values: Mapping[str, object], *, spelling: Spelling = PYTHON,
              base: BackfillOptions | None = None, what: str = "backfill option",
              also_known: Iterable[str] = ()) -> BackfillOptions:
        """Options from a mapping (keyword arguments, a plan section, parsed flags).

        Unknown names are refused with "Did you mean" (``also_known`` are the caller's other
        keywords, offered as suggestions too); messages use ``spelling``; ``base`` supplies
        the settings not given.
        """
        if not values and base is not None:
            return base  # every rule already held for it, and nothing changes
        known = cls.names()
        for name in values:
            if name not in known:
                raise UnknownNameError.of(what, str(name), (*known, *also_known))
        checked = {name: check(name, value, spelling) for name, value in values.items()}
        merged = {**(base.to_dict() if base is not None else {}), **checked}
        check_batch(merged.get("mode", "overwrite"), merged.get("batch_size", 1), spelling)
        return cls(**merged)

    def replace(self, **changes: Any) -> BackfillOptions:
        """A copy with some settings changed, every rule checked again."""
        return BackfillOptions.parse(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name."""
        return {name: getattr(self, name) for name in self.names()}

    def wait_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...): ``backoff * 2**(retry-1)``,
        capped at :data:`MAX_BACKOFF`.

        >>> [BackfillOptions(backoff=20).wait_before(n) for n in (1, 2, 3, 50)]
        [20.0, 40.0, 60.0, 60.0]
        """
        return min(self.backoff * 2.0 ** min(max(retry - 1, 0), 64), MAX_BACKOFF)

    def __repr__(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return f"BackfillOptions({', '.join(changed)})"
