"""What to validate: the settings of the five per-partition checks, and reading them from a
plan's ``validations:`` section.

Each check is a frozen value object that checks its own settings when made (one clear line
naming what was wrong); :class:`Validations` says which checks are on. Running them is
:func:`backfill_lab.validations.validate`. Taught in notebooks/01_mental_model.ipynb,
notebooks/03_versioned_recompute.ipynb and notebooks/05_designing_safe_backfills.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._db import quote
from .errors import ConfigError, UnknownNameError

__all__ = [
    "CHECKS",
    "DownstreamRead",
    "Drift",
    "NullRate",
    "RowCount",
    "UniqueKeys",
    "Validations",
]

#: the five checks, in the order they run and are reported
CHECKS: tuple[str, ...] = ("row_count", "null_rate", "unique_keys", "drift", "downstream_read")


def _number(name: str, value: object, *, minimum: float = 0.0, integer: bool = False) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not isinstance(value, int | float) or not ok or value < minimum or (
            integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError.invalid(name, f"{kind} >= {minimum:g}", value)
    return value


def _keys(section: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            raise UnknownNameError.of(f"key in validations.{section}", str(key), allowed)


@dataclass(frozen=True)
class RowCount:
    """Rows within ``[min, max]``, and/or within ``relative`` (a share) of the trailing mean.

    Taught in notebooks/03_versioned_recompute.ipynb.
    """

    min: int | None = None
    max: int | None = None
    relative: float | None = None
    window: int = 7

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                _number(f"validations.row_count.{name}", value, integer=True)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(
                f"validations.row_count: min {self.min} is above max {self.max}; swap them"
            )
        if self.relative is not None:
            _number("validations.row_count.relative", self.relative)
        _number("validations.row_count.window", self.window, minimum=1, integer=True)

    @classmethod
    def between(cls, low: int, high: int) -> RowCount:
        """Between ``low`` and ``high`` rows, both included."""
        return cls(min=low, max=high)

    @classmethod
    def near_trailing_mean(cls, share: float = 0.5, window: int = 7) -> RowCount:
        """Within ``share`` of the mean row count of the ``window`` trusted partitions before."""
        return cls(relative=share, window=window)


@dataclass(frozen=True)
class NullRate:
    """The share of nulls in each checked column stays at or below ``max``.

    Taught in notebooks/01_mental_model.ipynb.
    """

    max: float = 0.01
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _number("validations.null_rate.max", self.max)
        if self.max > 1:
            raise ConfigError.invalid("validations.null_rate.max", "a share in [0, 1]", self.max)


@dataclass(frozen=True)
class UniqueKeys:
    """No two rows of the partition share the same values of ``keys``.

    Taught in notebooks/03_versioned_recompute.ipynb.
    """

    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.keys or not all(isinstance(k, str) and k for k in self.keys):
            raise ConfigError.invalid("validations.unique_keys", "a list of column names",
                                      list(self.keys))


@dataclass(frozen=True)
class Drift:
    """Numeric columns compared with ``baseline`` (a table's same partition) or, without one, with
    the ``reference_window`` partitions before this one in the same table.

    Taught in notebooks/03_versioned_recompute.ipynb.
    """

    baseline: str | None = None
    max_psi: float | None = 0.2
    max_ks: float | None = None
    columns: tuple[str, ...] | None = None
    reference_window: int = 7

    def __post_init__(self) -> None:
        if self.baseline is not None:
            quote(self.baseline)
        if self.max_psi is None and self.max_ks is None:
            raise ConfigError("validations.drift needs max_psi or max_ks (got neither)")
        if self.max_psi is not None:
            _number("validations.drift.max_psi", self.max_psi)
        if self.max_ks is not None:
            _number("validations.drift.max_ks", self.max_ks)
        _number("validations.drift.reference_window", self.reference_window, minimum=1,
                integer=True)


@dataclass(frozen=True)
class DownstreamRead:
    """A consumer's query over the partition must run and return at least one row.

    ``query`` may use ``{table}`` and ``$partition``; the default reads every column. Taught in
    notebooks/05_designing_safe_backfills.ipynb.
    """

    query: str | None = None


_SECTIONS: dict[str, tuple[str, ...]] = {
    "row_count": ("min", "max", "relative", "window"),
    "null_rate": ("max", "columns"),
    "drift": ("baseline", "max_psi", "max_ks", "columns", "reference_window"),
    "downstream_read": ("query",),
}


@dataclass(frozen=True)
class Validations:
    """Which checks to run on each partition; ``None`` means the check is off.

    Taught in notebooks/01_mental_model.ipynb and notebooks/05_designing_safe_backfills.ipynb.
    """

    row_count: RowCount | None = None
    null_rate: NullRate | None = None
    unique_keys: UniqueKeys | None = None
    drift: Drift | None = None
    downstream_read: DownstreamRead | None = None

    @classmethod
    def recommended(cls, keys: Sequence[str] = ("entity_id", "date"),
                    baseline: str | None = None) -> Validations:
        """All five checks with the lab's defaults: the guide's checklist, ready to use."""
        return cls(RowCount.near_trailing_mean(), NullRate(), UniqueKeys(tuple(keys)),
                   Drift(baseline=baseline), DownstreamRead())

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> Validations:
        """From a plan's ``validations:`` section. An empty mapping for a check means defaults.

        >>> Validations.from_dict({"row_count": {"min": 900, "max": 1100},
        ...                        "unique_keys": ["entity_id", "date"]}).enabled
        ['row_count', 'unique_keys']
        """
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise ConfigError.invalid("validations", "a mapping of check names", spec)
        _keys("", spec, CHECKS)
        made: dict[str, Any] = {}
        for name, value in spec.items():
            if value is None or value is False:
                continue
            if name == "unique_keys":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list | tuple):
                    raise ConfigError.invalid("validations.unique_keys", "a list of columns",
                                              value)
                made[name] = UniqueKeys(tuple(value))
                continue
            if value is True:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError.invalid(f"validations.{name}", "a mapping or true", value)
            _keys(name, value, _SECTIONS[name])
            args = {k: tuple(v) if k == "columns" and v is not None else v
                    for k, v in value.items()}
            made[name] = {"row_count": RowCount, "null_rate": NullRate, "drift": Drift,
                          "downstream_read": DownstreamRead}[name](**args)
        if "row_count" in made and made["row_count"] == RowCount():
            made["row_count"] = RowCount.near_trailing_mean()
        return cls(**made)

    @property
    def enabled(self) -> list[str]:
        """The names of the checks that are on, in :data:`CHECKS` order."""
        return [name for name in CHECKS if getattr(self, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        """These checks as a plan's ``validations:`` section (what :meth:`from_dict` reads)."""
        out: dict[str, Any] = {}
        for name in self.enabled:
            value = getattr(self, name)
            if name == "unique_keys":
                out[name] = list(value.keys)
                continue
            fields = {k: list(v) if isinstance(v, tuple) else v
                      for k, v in asdict(value).items() if v is not None}
            if name == "row_count" and value.relative is None:
                fields.pop("window")
            if name == "drift" and value.baseline is not None:
                fields.pop("reference_window")
            out[name] = fields
        return out
