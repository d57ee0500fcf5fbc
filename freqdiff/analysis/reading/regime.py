"""The regime map read off a scan of n: where tau_mem passes tau_gen (n*), and the fixed-t loss split against n.

Per run: tau_gen (the gated FD plateau) and tau_mem by each copy measure, as reading.window reads them, plus
the split onset: the checkpoint where the fixed-t test loss is lowest, after which it rises while the train
loss keeps falling (the paper's train/test split, read as the issue's "minimum of the fixed-t test loss"; its
noise is drawn once for every checkpoint, so the curve is smooth in tau and is read unsmoothed). Per n, seeds pooled, the window is open (tau_mem > tau_gen for every
seed, bounds included), closed (tau_mem <= tau_gen for every seed) or undecided (bounds that cannot be
ordered, or seeds that disagree). n* lies above the largest n that is not open and at or below the next n,
from which on every n is open; it is interpolated in log n where the seed mean of log(tau_mem / tau_gen)
changes sign between two n read exactly. Nothing censored is ever replaced by a number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from freqdiff.analysis.reading.curves import Curves
from freqdiff.analysis.reading.onsets import Onset
from freqdiff.analysis.reading.window import Window
from freqdiff.analysis.statistics import PowerLaw, fit_power_law
from freqdiff.registry import FreqdiffError

OPEN, CLOSED, UNDECIDED = "open", "closed", "undecided"
# The copy measures n* is located with: each of reading.window's two, and the earlier of them (the window's own).
MEM_MEASURES = {"fmem_robust": "tau_mem (robust f_mem)", "fmem": "tau_mem (the paper's f_mem)",
                "earlier": "tau_mem (earlier of the two)"}


@dataclass(frozen=True)
class RunPoint:
    """One run of the scan: its n and seed, its window and its split onset."""

    n: int
    seed: Any
    window: Window
    split: Onset  # the fixed-t test-loss minimum

    def tau_mem(self, measure: str) -> Onset:
        """tau_mem by one of MEM_MEASURES."""
        return {"fmem": self.window.tau_mem, "fmem_robust": self.window.tau_mem_robust,
                "earlier": self.window.tau_mem_earlier}[measure]


@dataclass(frozen=True)
class Crossing:
    """Where tau_mem passes tau_gen along n, for one copy measure."""

    measure: str
    states: dict[int, str]  # n -> open / closed / undecided
    low: int | None  # n* > low: the largest n that is not open (None: every n is open)
    high: int | None  # n* <= high: the smallest n from which every n is open (None: the largest n is not open)
    estimate: float | None  # log-log interpolation between low and high; None when an end is a bound
    notes: tuple[str, ...]

    def __str__(self) -> str:
        if self.high is None:
            return "not located" if self.states and self.states[max(self.states)] == UNDECIDED else \
                f"> {max(self.states)}"
        if self.low is None:
            return f"<= {self.high}"
        estimate = f" (interpolated {self.estimate:.0f})" if self.estimate is not None else ""
        return f"in ({self.low}, {self.high}]{estimate}"


def split_onset(curves: Curves) -> Onset:
    """The checkpoint where the fixed-t test loss is lowest: the onset of the train/test split.

    At the last checkpoint it is censored ('>=': the test loss is still falling), at the first an upper bound.
    """
    ok = np.isfinite(curves["loss_test"])
    if not ok.any():
        return Onset(None, "", "no fixed-t test loss computed")
    steps = curves.step[ok]
    i = int(np.argmin(curves["loss_test"][ok]))
    how = "minimum of the fixed-t test loss: the test loss rises after it while the train loss keeps falling"
    if i == len(steps) - 1:
        return Onset(int(steps[-1]), ">=", f"test loss still falling at the last checkpoint: censored; {how}")
    return Onset(int(steps[i]), "<=" if i == 0 else "", how)


def _interval(onset: Onset) -> tuple[float, float]:
    """The range an onset's true value lies in (an exact checkpoint is read as that step)."""
    if onset.step is None:
        return 0.0, math.inf
    return {"": (onset.step, onset.step), ">=": (onset.step, math.inf), "<=": (0.0, onset.step)}[onset.bound]


def order(gen: Onset, mem: Onset) -> str:
    """open: tau_mem > tau_gen whatever the bounds; closed: tau_mem <= tau_gen whatever the bounds; else undecided."""
    g_low, g_high = _interval(gen)
    m_low, m_high = _interval(mem)
    if m_low > g_high:
        return OPEN
    if m_high <= g_low:
        return CLOSED
    return UNDECIDED


def by_n(points: Sequence[RunPoint]) -> dict[int, list[RunPoint]]:
    """The runs grouped by n, n ascending."""
    groups: dict[int, list[RunPoint]] = {}
    for point in sorted(points, key=lambda p: (p.n, str(p.seed))):
        groups.setdefault(point.n, []).append(point)
    return groups


def state_at(runs: Sequence[RunPoint], measure: str) -> str:
    """open or closed when every seed agrees, else undecided."""
    states = {order(r.window.tau_gen, r.tau_mem(measure)) for r in runs}
    return states.pop() if len(states) == 1 else UNDECIDED


def log_ratio(runs: Sequence[RunPoint], measure: str) -> float | None:
    """Seed mean of log(tau_mem / tau_gen); None unless every seed has both read exactly."""
    pairs = [(r.window.tau_gen, r.tau_mem(measure)) for r in runs]
    if any(g.bound or m.bound or not g.step or not m.step for g, m in pairs):
        return None
    return float(np.mean([math.log(m.step / g.step) for g, m in pairs]))


def _interpolate(n_low: int, n_high: int, r_low: float | None, r_high: float | None) -> float | None:
    """n where the log ratio, linear in log n between the two, is 0; None when an end is missing or no sign change."""
    if r_low is None or r_high is None or not r_low <= 0 < r_high:
        return None
    frac = -r_low / (r_high - r_low)
    return float(math.exp(math.log(n_low) + frac * (math.log(n_high) - math.log(n_low))))


def locate_crossing(points: Sequence[RunPoint], measure: str = "fmem_robust") -> Crossing:
    """n*: above the largest n that is not open, at or below the next n, from which every n is open."""
    if measure not in MEM_MEASURES:
        raise FreqdiffError(f"regime: unknown copy measure {measure!r}; choices: {', '.join(MEM_MEASURES)}")
    groups = by_n(points)
    if not groups:
        raise FreqdiffError("regime: no runs with an n to locate n* from")
    ns = list(groups)
    states = {n: state_at(groups[n], measure) for n in ns}
    j = len(ns)
    while j > 0 and states[ns[j - 1]] == OPEN:
        j -= 1
    notes = []
    reopened = [n for n in ns[:max(j - 1, 0)] if states[n] == OPEN]
    if reopened:
        notes.append(f"not monotone: open at n = {', '.join(map(str, reopened))} below a closed or undecided n")
    undecided = [n for n in ns if states[n] == UNDECIDED]
    if undecided:
        notes.append(f"undecided at n = {', '.join(map(str, undecided))} (bounds that cannot be ordered, "
                     "or seeds that disagree)")
    if j == len(ns):
        return Crossing(measure, states, ns[-1], None, None, tuple(notes))
    if j == 0:
        return Crossing(measure, states, None, ns[0], None, tuple(notes))
    low, high = ns[j - 1], ns[j]
    estimate = _interpolate(low, high, log_ratio(groups[low], measure), log_ratio(groups[high], measure)) \
        if states[low] == CLOSED else None
    return Crossing(measure, states, low, high, estimate, tuple(notes))


@dataclass(frozen=True)
class Slope:
    """A log-log fit of one time against n over the runs that read it exactly."""

    quantity: str
    fit: PowerLaw | None  # None: fewer than 2 distinct n read exactly
    runs: int  # runs behind the fit
    excluded: int  # runs left out because their value is a bound or undefined

    def __str__(self) -> str:
        if self.fit is None:
            return f"no fit ({self.runs} runs read exactly, fewer than 2 distinct n)"
        interval = ("interval undefined (2 points)" if self.fit.interval is None
                    else f"95% interval [{self.fit.interval[0]:.2f}, {self.fit.interval[1]:.2f}]")
        return f"slope {self.fit.slope:.2f}, {interval}, over {self.runs} runs ({self.excluded} bounded, left out)"


def fit_slope(quantity: str, onsets: Sequence[tuple[int, Onset]]) -> Slope:
    """tau ~ n^slope over the (n, onset) pairs read exactly (no bound, positive step)."""
    exact = [(n, o.step) for n, o in onsets if o.step and not o.bound]
    excluded = len(onsets) - len(exact)
    if len({n for n, _ in exact}) < 2:
        return Slope(quantity, None, len(exact), excluded)
    n, tau = zip(*exact)
    return Slope(quantity, fit_power_law(n, tau), len(exact), excluded)
