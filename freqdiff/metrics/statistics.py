"""The one statistics module of the analysis: bootstrap intervals, mean +- 2 sigma, log-log slope fits.

The bottom layer of freqdiff.analysis: numbers in, numbers out. It imports nothing from freqdiff but
FreqdiffError, so the metrics (f_mem's interval, the quality measures' errors) can use it too.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from scipy import stats

from freqdiff.core.registry import FreqdiffError

LEVEL = 0.95


def _tails(level: float) -> tuple[float, float]:
    """The two quantiles of a central interval at `level`, rounded so 0.95 gives exactly 0.025 and 0.975."""
    if not 0 < level < 1:
        raise FreqdiffError(f"level must be in (0, 1), got {level}")
    tail = round((1 - level) / 2, 12)
    return tail, 1 - tail


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Central percentile interval of bootstrap draws (numpy's linear interpolation)."""
    low, high = np.quantile(draws, _tails(level))
    return float(low), float(high)


def proportion_interval(flags: Any, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the fraction of true `flags` over `n_boot` seeded resamples of the flags.

    Resampling N 0/1 indicators with replacement and counting the ones is one Binomial(N, f) draw,
    so each resample costs O(1) instead of O(N).
    """
    flags = np.asarray(flags, dtype=np.float64).ravel()
    if flags.size == 0:
        raise FreqdiffError("proportion_interval: no flags (an empty sample has no fraction)")
    draws = np.random.default_rng(seed).binomial(flags.size, flags.mean(), size=n_boot) / flags.size
    return percentile_interval(draws, level)


def mean_and_err(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 2 sigma (ddof=1) of per-fold values, the paper's 'mean +- 2 sigma'; err is nan for one value."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise FreqdiffError("mean_and_err: no values")
    return float(a.mean()), float(2 * a.std(ddof=1)) if a.size > 1 else math.nan


def combined_err(*errs: float) -> float:
    """The error of a sum or difference of independent values, each given as its own 2 sigma."""
    return float(math.sqrt(sum(e * e for e in errs)))


def mean_of_measurements(values: Sequence[float], errs: Sequence[float]) -> tuple[float, float]:
    """Mean over seeds of values that each carry a 2-sigma error, and the 2-sigma error of that mean.

    The error is the larger of the seed scatter (2 sigma / sqrt(k), which includes the measurement
    noise but is itself unreliable for few seeds) and the propagated measurement error
    sqrt(sum err^2) / k (only when every error was computed); nan when neither can be had.
    """
    v, e = np.asarray(values, np.float64), np.asarray(errs, np.float64)
    if v.size == 0 or v.size != e.size:
        raise FreqdiffError(f"mean_of_measurements: need equally many values and errors, got {v.size} and {e.size}")
    scatter = 2 * v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else math.nan
    known = e[np.isfinite(e)]
    propagated = math.sqrt(float((known ** 2).sum())) / v.size if known.size == v.size else math.nan
    candidates = [float(x) for x in (scatter, propagated) if math.isfinite(x)]
    return float(v.mean()), max(candidates) if candidates else math.nan


def bootstrap_over_seeds(groups: Sequence[np.ndarray], statistic: Callable[[list[np.ndarray]], np.ndarray],
                         draws: int = 2000, seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of `statistic` over `draws` resamples of every group's seeds, with replacement.

    Groups are resampled independently (each keeps its size). `statistic` gets one (draws, len(group))
    array per group and returns the (draws,) statistic. With few seeds per group the interval is too
    narrow (a percentile bootstrap over 3 seeds covers about 82% instead of 95%).
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise FreqdiffError("bootstrap_over_seeds: every group needs at least one seed")
    rng = np.random.default_rng(seed)
    picks = [np.asarray(g)[rng.integers(0, len(g), (draws, len(g)))] for g in groups]
    return percentile_interval(statistic(picks), level)


def t_interval(center: float, se: float, dof: int, level: float = LEVEL) -> tuple[float, float]:
    """center -+ t((1+level)/2, dof) * se: Student's t interval of an estimate with standard error se."""
    half = float(stats.t.ppf(_tails(level)[1], dof)) * se
    return center - half, center + half


def mean_t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, tuple[float, float] | None]:
    """Mean of per-seed (per-draw) values and its Student-t interval over them (None for a single value)."""
    a = np.asarray(values, float)
    if a.size < 2:
        return float(a.mean()), None
    return float(a.mean()), t_interval(float(a.mean()), float(a.std(ddof=1)) / math.sqrt(a.size), a.size - 1, level)


class PowerLaw(NamedTuple):
    """tau ~ 10**intercept * n**slope; interval is the 95% interval of the slope, None when undefined."""

    slope: float
    intercept: float
    interval: tuple[float, float] | None

    def interval_text(self) -> str:
        """The slope's interval as every report writes it."""
        if self.interval is None:
            return "interval undefined (2 points)"
        return f"95% interval [{self.interval[0]:.2f}, {self.interval[1]:.2f}]"


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y on x along the last axis (vectorized over bootstrap draws)."""
    xc = x - x.mean(-1, keepdims=True)
    return (xc * (y - y.mean(-1, keepdims=True))).sum(-1) / (xc ** 2).sum(-1)


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and the slope's standard error of the least-squares line y = a x + b."""
    a = float(slope(x, y))
    b = float(y.mean() - a * x.mean())
    dof = len(x) - 2
    residual = ((y - a * x - b) ** 2).sum()
    se = np.sqrt(residual / dof / ((x - x.mean()) ** 2).sum()) if dof > 0 else np.nan
    return a, b, float(se)


def _slope_bootstrap(x: np.ndarray, y: np.ndarray, draws: int, seed: int) -> tuple[float, float]:
    """Percentile interval of the slope, resampling seeds (points) with replacement within each n."""
    groups = [np.flatnonzero(x == v) for v in np.unique(x)]
    if all(len(g) < 2 for g in groups):
        raise FreqdiffError("fit_power_law: a bootstrap over seeds needs several seeds at some n")

    def refit(picks: list[np.ndarray]) -> np.ndarray:
        chosen = np.concatenate(picks, axis=1)
        return slope(x[chosen], y[chosen])

    return bootstrap_over_seeds(groups, refit, draws, seed)


def fit_power_law(n: Sequence[float], tau: Sequence[float], bootstrap: int = 0, seed: int = 0) -> PowerLaw:
    """Least squares of log10 tau on log10 n (several seeds per n allowed, each one point).

    The slope's 95% interval is slope ± t(0.975, m-2) * se over m points; with only two points it
    is undefined (None). With bootstrap > 0 it is instead the percentile interval of `bootstrap`
    refits that resample seeds with replacement within each n; with few seeds per n it is too
    narrow (about 86% coverage with 3 seeds at each of 5 n, lognormal noise), so the t interval
    is the default.
    """
    x, y = np.log10(np.asarray(n, float)), np.log10(np.asarray(tau, float))
    if len(x) != len(y) or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise FreqdiffError("fit_power_law: n and tau must be positive numbers of equal length")
    if len(np.unique(x)) < 2:
        raise FreqdiffError(f"fit_power_law: need at least 2 distinct n, got {sorted(set(np.asarray(n).tolist()))}")
    a, b, se = _ols(x, y)
    if bootstrap > 0:
        return PowerLaw(a, b, _slope_bootstrap(x, y, bootstrap, seed))
    if len(x) == 2:
        return PowerLaw(a, b, None)
    return PowerLaw(a, b, t_interval(a, se, len(x) - 2))
