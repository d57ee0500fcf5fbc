"""tau ~ n^slope with censored runs counted: an interval-censored log-normal AFT regression of tau on log n
(lifelines), so runs that never reach tau_mem pull the slope up instead of dropping out of the fit.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from freqdiff.analysis.inference.aft import fit_aft
from freqdiff.analysis.inference.base import Bracket, Inference, brackets
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import LEVEL

METHOD = "Wald interval of an interval-censored log-normal AFT regression on log n (lifelines)"


def aft_slope(n: Sequence[float], taus: Sequence[Bracket], level: float = LEVEL) -> Inference:
    """The slope b of log tau = a + b log n + sigma e (e standard normal), each run's tau a (low, high) bracket.

    Exact runs (low == high) enter as observations, censored ones through the probability of their bracket. The
    Wald interval scales se by sqrt(k / (k - 2)) and takes Student's t with k - 2 dof over k runs: without
    censoring it is exactly the least-squares t interval of `fit_power_law`. Undefined (None, with a note) below
    3 runs or 2 values of n among the runs that lie between two ends, or when the fit fails.
    """
    if len(n) != len(taus):
        raise FreqdiffError(f"aft_slope: {len(n)} values of n for {len(taus)} taus")
    b, x = brackets(taus, "runs"), np.log(np.asarray(n, float))
    k = len(x)
    label = f"{100 * level:.4g}% {METHOD}, {k} runs"
    pinned = (b[:, 0] > 0) & np.isfinite(b[:, 1])
    if k < 3 or len(np.unique(x[pinned])) < 2:
        return Inference(None, None, label, "undefined: needs 3 runs and 2 values of n with a tau between two ends")
    ends = b[(b > 0) & np.isfinite(b)]
    unit = float(np.exp(np.log(ends).mean()))  # only the intercept moves
    fitted = fit_aft("log-normal", False, np.maximum(b[:, 0] / unit, ends.min() / unit * 1e-9), b[:, 1] / unit,
                     x - x.mean())
    if isinstance(fitted, str) or fitted[2]:
        why = fitted if isinstance(fitted, str) else f"log-normal fit did not converge ({'; '.join(fitted[2])})"
        return Inference(None, None, label, f"undefined: {why}")
    coef, se, _ = fitted
    se *= math.sqrt(k / (k - 2))
    q = float(stats.t.ppf(0.5 + level / 2, k - 2))
    censored = int((~pinned | (b[:, 0] != b[:, 1])).sum())
    return Inference(coef, (coef - q * se, coef + q * se), label, f"{censored} of {k} runs censored")


def slope_text(fit: Inference) -> str:
    """'slope b, [low, high] (method; k of m runs censored)', or why the slope is undefined."""
    if fit.estimate is None or fit.interval is None:
        return fit.note
    return f"slope {fit.estimate:.2f}, [{fit.interval[0]:.2f}, {fit.interval[1]:.2f}] ({fit.method}; {fit.note})"
