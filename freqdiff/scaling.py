"""Fits across runs: tau_mem against n (the paper: tau_mem ~ n), seeds pooled, and the collapse data.

Runs share a recipe when their configs differ only in n, seeds and run length; a scaling fit and
a collapse plot only ever mix runs of one recipe.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats

from freqdiff.registry import FreqdiffError
from freqdiff.window import Curves, Window

# Settings that vary between the runs of one scaling experiment, left out of the recipe.
RUN_KEYS = {
    "data": ("n", "subset_index", "data_seed"),
    "train": ("seed", "steps", "n_checkpoints", "first_checkpoint", "save_every", "log_every",
              "tensorboard", "eval_checkpoints"),
}
LEVEL = 0.95


class PowerLaw(NamedTuple):
    """tau ~ 10**intercept * n**slope; interval is the 95% interval of the slope, None when undefined."""

    slope: float
    intercept: float
    interval: tuple[float, float] | None


@dataclass(frozen=True)
class Spread:
    """Mean, sample std (ddof=1; 0 for one value), min and max over seeds.

    bound is '>=' when some value is a censored lower bound (then so is every statistic),
    '<=' when some value is an upper bound, '' otherwise.
    """

    mean: float
    std: float
    low: float
    high: float
    count: int
    bound: str

    def __str__(self) -> str:
        prefix = f"{self.bound} " if self.bound else ""
        if self.count == 1:
            return prefix + _num(self.mean)
        return f"{prefix}{_num(self.mean)} ± {_num(self.std)} [{_num(self.low)}, {_num(self.high)}]"


def _num(x: float) -> str:
    """Steps as whole numbers, small values with 3 significant digits."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


@dataclass(frozen=True)
class WindowGroup:
    """The windows of one recipe at one n, across seeds."""

    recipe: str
    n: int
    seeds: tuple[Any, ...]
    tau_gen: Spread | None
    tau_mem: Spread | None
    censored: int  # seeds whose tau_mem is censored


def recipe_of(config: Mapping[str, Any]) -> str:
    """A label shared by runs that differ only in n, seeds and run length: the unit of a scaling fit."""
    shared = {section: ({k: v for k, v in values.items() if k not in RUN_KEYS.get(section, ())}
                        if isinstance(values, Mapping) else values)
              for section, values in config.items()}
    digest = hashlib.sha1(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:6]
    names = "/".join(str(config.get(c, {}).get("name", "?")) for c in ("dataset", "process", "model", "regularizer"))
    return f"{names}#{digest}"


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y on x along the last axis (vectorized over bootstrap draws)."""
    xc = x - x.mean(-1, keepdims=True)
    return (xc * (y - y.mean(-1, keepdims=True))).sum(-1) / (xc ** 2).sum(-1)


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and the slope's standard error of the least-squares line y = a x + b."""
    slope = float(_slope(x, y))
    intercept = float(y.mean() - slope * x.mean())
    dof = len(x) - 2
    residual = ((y - slope * x - intercept) ** 2).sum()
    se = np.sqrt(residual / dof / ((x - x.mean()) ** 2).sum()) if dof > 0 else np.nan
    return slope, intercept, float(se)


def _bootstrap_interval(x: np.ndarray, y: np.ndarray, draws: int, seed: int) -> tuple[float, float]:
    """Percentile interval of the slope, resampling seeds with replacement within each n."""
    groups = [np.flatnonzero(x == v) for v in np.unique(x)]
    if all(len(g) < 2 for g in groups):
        raise FreqdiffError("fit_power_law: a bootstrap over seeds needs several seeds at some n")
    rng = np.random.default_rng(seed)
    picks = np.concatenate([g[rng.integers(0, len(g), (draws, len(g)))] for g in groups], axis=1)
    low, high = np.quantile(_slope(x[picks], y[picks]), [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


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
    slope, intercept, se = _ols(x, y)
    if bootstrap > 0:
        return PowerLaw(slope, intercept, _bootstrap_interval(x, y, bootstrap, seed))
    if len(x) == 2:
        return PowerLaw(slope, intercept, None)
    half = stats.t.ppf((1 + LEVEL) / 2, len(x) - 2) * se
    return PowerLaw(slope, intercept, (slope - half, slope + half))


def fit_tau_mem(windows: Iterable[Window], bootstrap: int = 0) -> PowerLaw | None:
    """tau_mem against n over the uncensored windows; None with fewer than 2 distinct n."""
    points = [(w.n, w.tau_mem) for w in windows
              if w.n and w.tau_mem and w.tau_mem > 0 and not w.tau_mem_censored]
    if len({n for n, _ in points}) < 2:
        return None
    n, tau = zip(*points)
    return fit_power_law(n, tau, bootstrap=bootstrap)


def spread(values: Sequence[float], bound: str = "") -> Spread:
    """Mean, std, min and max of per-seed values carrying the given bound."""
    a = np.asarray(values, float)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return Spread(float(a.mean()), std, float(a.min()), float(a.max()), len(a), bound)


def _tau_spread(windows: Sequence[Window], which: str) -> Spread | None:
    """Spread of tau_gen or tau_mem over seeds; censored values make it a bound, never dropped."""
    values = [getattr(w, which) for w in windows if getattr(w, which) is not None]
    if not values:
        return None
    censored = any(getattr(w, f"{which}_censored") for w in windows)
    return spread(values, ({"tau_mem": ">=", "tau_gen": "<="}[which]) if censored else "")


def group_windows(runs: Iterable[tuple[str, Any, Window]]) -> list[WindowGroup]:
    """Pool (recipe, seed, window) triples by (recipe, n), sorted by recipe then n."""
    pooled: dict[tuple[str, int], list[tuple[Any, Window]]] = defaultdict(list)
    for recipe, seed, window in runs:
        if window.n is not None:
            pooled[(recipe, window.n)].append((seed, window))
    groups = []
    for (recipe, n), members in sorted(pooled.items()):
        windows = [w for _, w in members]
        groups.append(WindowGroup(recipe, n, tuple(s for s, _ in members), _tau_spread(windows, "tau_gen"),
                                  _tau_spread(windows, "tau_mem"), sum(w.tau_mem_censored for w in windows)))
    return groups


def collapse_curve(curves: Curves, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """tau/n and f_mem(tau)/f_mem(tau_max) for the collapse plot; None when f_mem(tau_max) is 0."""
    ok = np.isfinite(curves.fmem)
    if not ok.any() or curves.fmem[ok][-1] <= 0:
        return None
    return curves.step[ok] / n, curves.fmem[ok] / curves.fmem[ok][-1]
