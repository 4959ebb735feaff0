"""How far apart two samples' distributions are: the population stability index and the
Kolmogorov-Smirnov statistic, the two measures of the drift validation.

Used by :class:`backfill_lab.validations.Drift` and by the canary comparison of
:func:`backfill_lab.versions.canary_compare`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Sample", "ks_statistic", "psi"]

#: numbers to compare: a list, a pandas column's values or a numpy array (NaN is ignored)
Sample = Sequence[float] | npt.NDArray[np.generic]


def psi(expected: Sample, actual: Sample, *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins of expected).

    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant drift.

    >>> base = list(range(100))
    >>> psi(base, base)
    0.0
    >>> round(psi(base, [x + 50 for x in base]), 2)
    4.35
    """
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_share = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    a_share = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    floor = 1e-4  # an empty bin would make the index infinite
    ep = np.maximum(e_share / len(e), floor)
    ap = np.maximum(a_share / len(a), floor)
    value = float(np.sum((ap - ep) * np.log(ap / ep)))
    return 0.0 if abs(value) < 1e-12 else value


def ks_statistic(expected: Sample, actual: Sample) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs (0..1).

    >>> ks_statistic([1, 2, 3, 4], [1, 2, 3, 4])
    0.0
    >>> ks_statistic([1, 2, 3, 4], [11, 12, 13, 14])
    1.0
    """
    e = np.sort(np.asarray(expected, dtype="float64"))
    a = np.sort(np.asarray(actual, dtype="float64"))
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    grid = np.concatenate([e, a])
    cdf_e = np.searchsorted(e, grid, side="right") / len(e)
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    return float(np.max(np.abs(cdf_e - cdf_a)))
