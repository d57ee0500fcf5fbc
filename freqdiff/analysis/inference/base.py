"""What every method of freqdiff.analysis.inference shares: the Inference result, the words for an interval
(`interval_label`) and the check of the seeds' interval-censored (low, high) brackets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import LEVEL

Bracket = tuple[float | None, float | None]  # (low, high) of one seed's tau; None ends are censored
Interval = tuple[float | None, float | None]  # None: that end is unbounded (a one-sided statement)

RELIABLE_BOOTSTRAP_SEEDS = 10  # below this, a percentile bootstrap over seeds covers visibly less than it says


@dataclass(frozen=True)
class Inference:
    """An estimate with its interval, the method that gave both (with the seeds on each side) and a note."""

    estimate: float | None  # None: undefined (see note)
    interval: Interval | None  # None: undefined (see note)
    method: str
    note: str


def seeds_text(seeds: int | Sequence[int]) -> str:
    """'3 seeds' or '3 vs 4 seeds'."""
    counts = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    return f"{' vs '.join(str(int(c)) for c in counts)} seed{'' if counts == [1] else 's'}"


def interval_label(method: str, seeds: int | Sequence[int], level: float = LEVEL) -> str:
    """The words for an interval: its level, method and seeds; a percentile bootstrap over few seeds is not '95%'.

    A percentile bootstrap over fewer than 10 seeds (on the smaller side) covers less than its nominal
    level (about 82% for a nominal 95% over 3 seeds), so it is labelled 'percentile bootstrap over 3 seeds
    (nominal 95%, true coverage lower)'; every other interval reads '95% <method>, 3 vs 3 seeds'.
    """
    counts = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    percent = f"{100 * level:.4g}%"
    words = method.lower()
    if "bootstrap" in words and "percentile" in words and min(counts) < RELIABLE_BOOTSTRAP_SEEDS:
        return f"{method} over {seeds_text(counts)} (nominal {percent}, true coverage lower)"
    return f"{percent} {method}, {seeds_text(counts)}"


def exp_interval(low: float, high: float) -> Interval:
    """exp of a log-unit interval; an end beyond exp's range is unbounded (None), not an overflow."""
    return (math.exp(low) if low > -700 else None, math.exp(high) if high < 700 else None)


def brackets(values: Sequence[Bracket], side: str) -> np.ndarray:
    """(k, 2) array of (low, high) with censored ends as 0 and inf; refuses an empty side or a reversed bracket."""
    if len(values) == 0:
        raise FreqdiffError(f"the {side} has no seeds")
    out = np.empty((len(values), 2))
    for i, pair in enumerate(values):
        if len(pair) != 2:
            raise FreqdiffError(f"{side} seed {i}: expected (low, high), got {pair!r}")
        low, high = pair
        out[i] = (0.0 if low is None else float(low), math.inf if high is None else float(high))
        if math.isnan(out[i, 0]) or math.isnan(out[i, 1]) or out[i, 0] < 0 or out[i, 1] < out[i, 0] or out[i, 1] <= 0:
            raise FreqdiffError(f"{side} seed {i}: need 0 <= low <= high and high > 0, got {pair!r}")
    return out
