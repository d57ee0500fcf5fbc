"""Student-t intervals on logs: a factor as exp(mean log ratio), paired by seed or Welch, and two recipes'
scale-free widths w = log(tau_mem / tau_gen) compared in log units and as a factor on tau_mem / tau_gen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from freqdiff.analysis.inference.base import Inference, exp_interval, interval_label, seeds_text
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import LEVEL, t_interval

ZERO_SPREAD = 1e-12  # a standard error below this (in log units) is no spread at all


@dataclass(frozen=True)
class LogRatio(Inference):
    """A factor exp(d) with d the mean log ratio; `log_estimate` and `log_interval` are d and its interval."""

    log_estimate: float | None
    log_interval: tuple[float, float] | None
    paired: bool
    dof: float | None


def _positive_logs(values: Sequence[float], side: str) -> np.ndarray:
    v = np.asarray(values, float).ravel()
    if v.size == 0 or not np.isfinite(v).all() or (v <= 0).any():
        raise FreqdiffError(f"the {side}'s values must be finite and > 0, got {list(values)}")
    return np.log(v)


def _logs_interval(a: np.ndarray, r: np.ndarray, paired: bool, level: float,
                   what: str) -> tuple[float, tuple[float, float] | None, float | None, str, str]:
    """(mean difference, its t-interval, dof, method, note) of log values a against r, paired or Welch."""
    seeds = (len(a), len(r))
    if paired:
        if len(a) != len(r):
            raise FreqdiffError(f"paired: need as many recipe seeds as reference seeds, got {len(a)} and {len(r)}")
        d = a - r
        center = float(d.mean())
        method = interval_label(f"paired t-interval on per-seed {what}", seeds, level)
        if len(d) < 2:
            return center, None, None, method, "interval undefined: one seed (a single pair)"
        se, dof = float(d.std(ddof=1) / math.sqrt(len(d))), float(len(d) - 1)
    else:
        center = float(a.mean() - r.mean())
        method = interval_label(f"Welch t-interval on {what}", seeds, level)
        if min(seeds) < 2:
            return center, None, None, method, f"interval undefined: one seed ({seeds_text(seeds)})"
        va, vr = a.var(ddof=1) / len(a), r.var(ddof=1) / len(r)
        se = float(math.sqrt(va + vr))
        dof = float((va + vr) ** 2 / (va ** 2 / (len(a) - 1) + vr ** 2 / (len(r) - 1))) if se > 0 else None
    if se < ZERO_SPREAD:
        return center, None, None, method, ("interval undefined: the per-seed values do not vary (zero spread), "
                                            "so few seeds cannot tell how much they would")
    return center, t_interval(center, se, dof, level), dof, method, ""


def log_ratio_interval(recipe_values: Sequence[float], reference_values: Sequence[float], paired: bool,
                       level: float = LEVEL) -> LogRatio:
    """The factor recipe / reference as exp(mean log ratio), with a Student-t interval.

    paired (the same seed ids on both sides, in the same order): one-sample t on the per-seed log ratios,
    k - 1 dof. Else Welch's t on the two sets of logs (Welch-Satterthwaite dof). The interval is undefined
    with one seed (pair) or when the values show no spread at all (a t-interval of zero width would claim
    certainty that a few seeds cannot give).
    """
    a, r = _positive_logs(recipe_values, "recipe"), _positive_logs(reference_values, "reference")
    what = "log ratios" if paired else "the logs"
    center, interval, dof, method, note = _logs_interval(a, r, paired, level, what)
    factor = None if interval is None else exp_interval(*interval)
    return LogRatio(math.exp(center), factor, method, note, center, interval, paired, dof)


def scale_free_width(tau_gen: Sequence[float] | float, tau_mem: Sequence[float] | float) -> np.ndarray:
    """w = log(tau_mem / tau_gen) per seed: the window's width in e-folds, the same whatever the learning speed.

    A recipe that learns twice as fast (both taus halved) keeps its w; the absolute width tau_mem - tau_gen
    halves. Negative w: the window is closed (copies before the FD plateau).
    """
    gen, mem = np.atleast_1d(np.asarray(tau_gen, float)), np.atleast_1d(np.asarray(tau_mem, float))
    if gen.shape != mem.shape:
        raise FreqdiffError(f"scale_free_width: {gen.size} tau_gen against {mem.size} tau_mem")
    if not (np.isfinite(gen).all() and np.isfinite(mem).all()) or (gen <= 0).any() or (mem <= 0).any():
        raise FreqdiffError("scale_free_width: tau_gen and tau_mem must be finite and > 0")
    return np.log(mem / gen)


def width_difference(recipe_widths: Sequence[float], reference_widths: Sequence[float], paired: bool,
                     level: float = LEVEL) -> LogRatio:
    """Two recipes' scale-free widths: mean w (recipe) - mean w (reference), with a t-interval.

    Reported both ways: `log_estimate` / `log_interval` as the difference in log units (e-folds), and
    `estimate` / `interval` as the factor exp(difference) on tau_mem / tau_gen. Paired (same seed ids)
    or Welch, as in `log_ratio_interval`.
    """
    a, r = np.asarray(recipe_widths, float).ravel(), np.asarray(reference_widths, float).ravel()
    if a.size == 0 or r.size == 0 or not (np.isfinite(a).all() and np.isfinite(r).all()):
        raise FreqdiffError("width_difference: need finite scale-free widths on both sides")
    what = "differences of log(tau_mem/tau_gen)" if paired else "log(tau_mem/tau_gen)"
    center, interval, dof, method, note = _logs_interval(a, r, paired, level, what)
    factor = None if interval is None else exp_interval(*interval)
    return LogRatio(math.exp(center), factor, method, note, center, interval, paired, dof)
