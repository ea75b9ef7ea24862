"""95 % intervals for the effects that decide claims: a paired bootstrap over units, a t-interval over seeds.

Units are what a claim's evidence is made of: photos, grids, seeds. Two methods compared on the same photos
give *paired* values ``a_i, b_i``; the bootstrap resamples the units (the pairs, never the two sides
separately), so the interval of ``mean(a - b)`` is as narrow as the pairing allows.

- Percentile bootstrap: draw ``resamples`` index vectors ``I`` of length ``n`` with replacement (a seeded
  generator), compute the statistic ``s(a[I], b[I])`` on each, take the 2.5 % and 97.5 % quantiles.
- t-interval over seeds (few units, each an independent training run): ``mean ± t_{0.975, n-1} · sd / √n``.
- ``n_to_decide``: the half-width of either interval shrinks like ``1 / √n``; an interval of half-width ``h``
  around ``e`` clears a threshold ``τ`` once ``h · √(n / n') < |e − τ|``, i.e. ``n' > n · (h / |e − τ|)²``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 4000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95 % interval over ``n`` units, and how it was computed."""

    estimate: float
    low: float
    high: float
    n: int
    method: str                      # "paired bootstrap", "bootstrap", "t over seeds", "exact (n = 1)"…

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def format(self, digits: int = 1, unit: str = "") -> str:
        """``+12.3 [8.1, 16.0], n = 16`` (signed estimate; ``unit`` appended to the numbers, e.g. ``×``)."""
        def num(v: float, sign: str = "") -> str:
            return "—" if not math.isfinite(v) else f"{v:{sign}.{digits}f}{unit}"
        return f"{num(self.estimate, '+')} [{num(self.low)}, {num(self.high)}], n = {self.n}"


def _as_units(values: object, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name}: no units to compute an interval over")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int((~np.isfinite(array)).sum())} of {array.size} values are not finite")
    return array


def mean_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mean over units of ``a - b`` (rows of resampled index sets along the last axis)."""
    return (a - b).mean(axis=-1)


def mean(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    return a.mean(axis=-1)


def geometric_mean_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """exp(mean log(a / b)): the typical ratio of paired positive values (times, costs)."""
    return np.exp((np.log(a) - np.log(b)).mean(axis=-1))


STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mean difference": mean_difference,
    "mean": mean,
    "geometric mean ratio": geometric_mean_ratio,
}


def bootstrap(a: object, b: object | None = None, *, statistic: str = "mean difference",
              resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over units; ``a`` and ``b`` are paired by position.

    ``b=None`` for a one-sample statistic (``"mean"``). ``resamples`` ≥ 2000; the same ``seed`` gives the same
    interval. With one unit the interval is the point itself (``method = "exact (n = 1)"``): nothing can be
    resampled, and :func:`camrepro.evidence.claims.decide` reads a zero-width interval from one unit as
    undecided unless the measure is exact.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected one of {sorted(STATISTICS)}")
    if resamples < 2000:
        raise ValueError(f"resamples must be ≥ 2000 for a 95 % percentile interval, got {resamples}")
    x = _as_units(a, "a")
    y = None if b is None else _as_units(b, "b")
    if y is not None and y.shape != x.shape:
        raise ValueError(f"paired values need as many units on both sides, got {x.size} and {y.size}")
    if statistic != "mean" and y is None:
        raise ValueError(f"statistic {statistic!r} compares two paired sides: pass b")
    if statistic == "geometric mean ratio" and ((x <= 0).any() or (y <= 0).any()):
        raise ValueError("a geometric mean ratio needs positive values on both sides")
    fn = STATISTICS[statistic]
    estimate = float(fn(x, y) if y is not None else fn(x))
    n = x.size
    if n == 1:
        return Interval(estimate, estimate, estimate, 1, "exact (n = 1)")
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    draws = fn(x[index], y[index]) if y is not None else fn(x[index])
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    kind = "paired bootstrap" if y is not None else "bootstrap"
    return Interval(estimate, float(low), float(high), n, kind)


def t_interval(a: object, b: object | None = None, *, level: float = LEVEL) -> Interval:
    """Student-t interval of the mean of ``a`` (or of the paired differences ``a - b``), for few independent
    units such as training seeds: ``mean ± t_{(1+level)/2, n-1} · sd / √n``. One unit: no interval (±inf)."""
    x = _as_units(a, "a")
    if b is not None:
        y = _as_units(b, "b")
        if y.shape != x.shape:
            raise ValueError(f"paired values need as many units on both sides, got {x.size} and {y.size}")
        x = x - y
    n = x.size
    m = float(x.mean())
    if n == 1:
        return Interval(m, -math.inf, math.inf, 1, "t over seeds")
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(m, m - half, m + half, n, "t over seeds")


def n_to_decide(interval: Interval, threshold: float) -> int | None:
    """The number of units at which an interval as wide as this one (per √n) would clear ``threshold``:
    ``ceil(n · (h / |e − τ|)²)``, at least ``n + 1``. None when the estimate sits on the threshold or the
    interval has no width to scale (n = 1): no sample size can be read from it."""
    gap = abs(interval.estimate - threshold)
    h = interval.half_width
    if gap == 0 or not math.isfinite(h) or interval.n < 2:
        return None
    if h == 0:
        return interval.n
    return max(interval.n + 1, math.ceil(interval.n * (h / gap) ** 2))
