"""Log-log slopes of a time against psi_n, with intervals over independent draws of W and the data.

Each draw (one W, one data set nested across psi_n) gives one least-squares slope of log tau on log psi_n. The
interval is Student's t over the K draws, mean -+ t(0.975, K - 1) sd / sqrt(K): it measures how the slope varies from
draw to draw, the sampling error of the study, not the curvature of one draw's few points. A draw in which a readout
is not reached at some psi_n (censored) is left out of that slope and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from freqdiff.metrics.statistics import mean_t_interval, slope

LINEAR_BAND = (0.8, 1.25)  # a slope whose whole interval lies here is called linear in psi_n


@dataclass(frozen=True)
class DrawSlope:
    """Mean slope over the usable draws, its 95% t-interval over draws (None with one draw), each draw's slope."""

    mean: float
    interval: tuple[float, float] | None
    per_draw: tuple[float, ...]
    censored: int  # draws left out: the readout was not reached at some psi_n

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "interval": self.interval, "per_draw": list(self.per_draw),
                "censored": self.censored}


def draw_slope(psi_n: Sequence[float], tau: Sequence[Sequence[float | None]]) -> DrawSlope | None:
    """Slope of log tau on log psi_n per draw (tau[k][i]: draw k at psi_n[i]), summarized over draws; None if no draw
    reaches the readout at every psi_n."""
    complete = [row for row in tau if all(x is not None and x > 0 for x in row)]
    if not complete or len(psi_n) < 2:
        return None
    x = np.log10(np.asarray(psi_n, float))
    per_draw = slope(np.broadcast_to(x, (len(complete), x.size)), np.log10(np.asarray(complete, float)))
    mean, interval = mean_t_interval(per_draw)
    return DrawSlope(mean=mean, interval=interval, per_draw=tuple(float(v) for v in per_draw),
                     censored=len(tau) - len(complete))


@dataclass(frozen=True)
class Cell:
    """The local slope between two neighbouring psi_n at one psi_p: one cell of the phase figure."""

    psi_n: tuple[float, float]
    ratio: tuple[float, float]  # psi_p / psi_n at the two ends
    slope: DrawSlope | None


def local_slopes(psi_p: float, psi_n: Sequence[float], tau: Sequence[Sequence[float | None]]) -> list[Cell]:
    """Slopes between each pair of neighbouring psi_n (sorted), each over draws."""
    order = np.argsort(psi_n)
    cells = []
    for i, j in zip(order, order[1:]):
        pair = (float(psi_n[i]), float(psi_n[j]))
        cells.append(Cell(psi_n=pair, ratio=(psi_p / pair[0], psi_p / pair[1]),
                          slope=draw_slope(pair, [[row[i], row[j]] for row in tau])))
    return cells


def verdict(s: DrawSlope | None) -> str:
    """'~ psi_n' when the whole interval lies in LINEAR_BAND, '< psi_n' / '> psi_n' when it lies below / above it."""
    if s is None:
        return "not reached"
    if s.interval is None:
        return "one draw"
    low, high = s.interval
    if LINEAR_BAND[0] <= low and high <= LINEAR_BAND[1]:
        return "~ psi_n"
    if high < LINEAR_BAND[0]:
        return "< psi_n"
    if low > LINEAR_BAND[1]:
        return "> psi_n"
    return "undecided"
