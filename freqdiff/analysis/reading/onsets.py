"""The shared vocabulary of the window's two ends: the rule's options, the Onset, the quality gate's passes.

An Onset is an estimate with a 95% interval in optimizer steps (tau_gen: fd_plateau.py; tau_mem:
copy_onset.py). An end the data allow to lie past the last checkpoint is right-censored ('>=' its lower
end); one that may lie before the first checkpoint is left-censored ('<=' its upper end). Neither is ever
replaced by an invented number. `tau_of` turns an Onset into the interval-censored bracket that the models
across seeds (tau_mem factors) and across n (censored slopes) read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from freqdiff.analysis.reading.curves import Curves
from freqdiff.core.registry import param
from freqdiff.metrics.quality import Gate

COPY_MEASURES = {"fmem": "the paper's f_mem", "fmem_robust": "f_mem robust to residual noise"}


@dataclass(frozen=True)
class WindowRule:
    """Parameters of the detection rules; each is a `freqdiff window --name value` option."""

    tol: float = param(1.0, gt=0)  # tau_gen: where the fitted FD - its plateau = tol x the FD's sampling error
    threshold: float = param(0.01, gt=0, lt=0.5)  # q: tau_mem is where the expected copy fraction reaches q
    confirm: int = param(1, ge=0)  # following checkpoints that must also pass the quality gate ('generates')


@dataclass(frozen=True)
class Onset:
    """One end of the window: a checkpoint step, the side its true value lies on, and how it was read."""

    step: int | None  # None: the measure behind it was never computed; else the step a reader sees (see bound)
    bound: str  # '': step is the point estimate; '<=': at or before step (left-censored); '>=': at or after step
    how: str
    estimate: float | None = None  # point estimate in steps; None where not estimated (or right-censored)
    low: float | None = None  # 95% interval's lower end; None: before the first checkpoint (left-censored)
    high: float | None = None  # upper end; None: the data allow 'not reached by the last checkpoint' (right-censored)

    def __str__(self) -> str:
        return "undefined" if self.step is None else f"{self.bound + ' ' if self.bound else ''}{self.step}"

    @property
    def reached(self) -> bool:
        """The end was seen inside the run (exactly or at the first checkpoint)."""
        return self.step is not None and self.bound != ">="


def first_confirmed(mask: np.ndarray, confirm: int) -> int | None:
    """First index i with mask true at i and at the next `confirm` indices, all of which exist."""
    for i in range(len(mask) - confirm):
        if mask[i: i + confirm + 1].all():
            return i
    return None


def gate_passes(curves: Curves, gate: Gate) -> tuple[np.ndarray, list[str]]:
    """Per checkpoint: value - err >= threshold of the gate's measure (the error counts against it)."""
    value, err = curves[gate.measure], curves[f"{gate.measure}_err"]
    flags = []
    if (np.isfinite(value) & ~np.isfinite(err)).any():
        flags.append(f"gate_err_missing: {gate.measure}_err not computed at some checkpoints; "
                     "there the value alone is tested against the threshold")
    return np.array([gate.passes(float(v), float(e)) for v, e in zip(value, err)], dtype=bool), flags


def gate_text(gate: Gate) -> str:
    """The gate as a rule a reader can check."""
    return f"{gate.measure} - {gate.measure}_err >= {gate.threshold:g} ({gate.extractor}; {gate.source})"


def earlier(a: Onset, b: Onset) -> Onset:
    """The earlier of two onsets of the same event: min(tau_a, tau_b), whose ends are min(low) and min(high).

    A censored end (None) on one side leaves the other side's end in charge; the estimate is the lower of
    the two that exist.
    """
    if a.step is None or b.step is None:
        return b if a.step is None else a
    low = None if a.low is None or b.low is None else min(a.low, b.low)
    highs = [h for h in (a.high, b.high) if h is not None]
    estimates = [e for e in (a.estimate, b.estimate) if e is not None]
    high, estimate = min(highs, default=None), min(estimates, default=None)
    if high is None:
        step, bound = low if low is not None else min(a.step, b.step), ">="
    elif low is None:
        step, bound = high, "<="
    else:
        step, bound = estimate if estimate is not None else high, ""
    how = a.how if a.how == b.how else f"{a.how}; and {b.how}"
    return Onset(int(round(step)), bound, how, estimate, low, high)


class Tau(NamedTuple):
    """One seed's tau: its interval-censored (low, high), a point value and the side the true value lies on."""

    low: float | None  # None: before the first checkpoint (left-censored)
    high: float | None  # None: not reached by the last checkpoint (right-censored)
    point: float  # the estimate where both ends are known, else the known end
    side: str  # '': both ends known; '>=': right-censored (point = low); '<=': left-censored (point = high)


def tau_of(onset: Onset) -> Tau | None:
    """One seed's tau for the models across seeds; None: not computed.

    An estimated tau is an exact observation at its estimate: its 95% interval is measurement uncertainty, not
    censoring, and the seed-to-seed scatter the models fit already contains it. A right-censored one is the
    open interval (low, inf), a left-censored one (0, high]. Without an estimate, the checkpoint bracket: a
    reached step is the point, a censored one ('>=') the low end of an open interval, one at the first
    checkpoint ('<=') the high end of (0, step].
    """
    if onset.step is None:
        return None
    if onset.low is not None or onset.high is not None:
        low, high = onset.low, onset.high
        if high is None:
            return Tau(low, None, float(low), ">=")
        if low is None:
            return Tau(None, high, float(high), "<=")
        point = float(onset.estimate if onset.estimate is not None else onset.step)
        return Tau(point, point, point, "")
    point = float(onset.estimate if onset.estimate is not None and not onset.bound else onset.step)
    return Tau(None if onset.bound == "<=" else point, None if onset.bound == ">=" else point, point, onset.bound)
