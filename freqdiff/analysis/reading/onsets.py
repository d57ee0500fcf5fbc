"""The two ends of the window, read off one run's curves: tau_gen (FD plateau, gated) and tau_mem (copies).

Both are evaluated checkpoint steps: the true crossing lies between the previous evaluated checkpoint
and the one reported. An end not reached by the last checkpoint is censored ('>=' the last step); an
end already reached at the first checkpoint is an upper bound ('<=' the first step). Neither is ever
replaced by an invented number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from freqdiff.analysis.reading.curves import Curves
from freqdiff.registry import FreqdiffError, param

if TYPE_CHECKING:
    from freqdiff.metrics.quality import Gate

COPY_MEASURES = {"fmem": "the paper's f_mem", "fmem_robust": "f_mem robust to residual noise"}


@dataclass(frozen=True)
class WindowRule:
    """Parameters of the detection rules; each is a `freqdiff window --name value` option."""

    rel_tol: float = param(0.1, ge=0)  # tau_gen band: FD <= level + max(rel_tol * |level|, abs_tol, the FD's error)
    abs_tol: float = param(0.0, ge=0)  # floor of the band, for distances whose minimum is near 0
    smooth: int = param(3, ge=1)  # width (odd) of the running median applied to the FD before reading tau_gen
    threshold: float = param(0.01, gt=0, lt=0.5)  # q: tau_mem is where the expected copy fraction reaches q
    confirm: int = param(1, ge=0)  # following checkpoints that must agree before a crossing counts

    def __post_init__(self) -> None:
        if self.smooth % 2 == 0:
            raise FreqdiffError(f"window.smooth: need an odd width >= 1, got {self.smooth}")


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


@dataclass(frozen=True)
class Plateau:
    """The FD plateau that sets tau_gen: its level, the FD's sampling error there, and the band."""

    level: float
    err: float | None  # 2 sigma of the FD at the checkpoints that set the level; None when not computed
    band: float  # level + max(rel_tol * |level|, abs_tol, err)


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Centered running median over `width` points, the window truncated at both ends."""
    half = width // 2
    return np.array([np.median(values[max(0, i - half): i + half + 1]) for i in range(len(values))])


def first_confirmed(mask: np.ndarray, confirm: int) -> int | None:
    """First index i with mask true at i and at the next `confirm` indices, all of which exist."""
    for i in range(len(mask) - confirm):
        if mask[i: i + confirm + 1].all():
            return i
    return None


def plateau(smoothed: np.ndarray, err: np.ndarray, rule: WindowRule) -> Plateau | None:
    """The lowest smoothed FD held for confirm+1 checkpoints, read from full median windows only.

    A truncated window at either end holds fewer points (two at the last checkpoint for width 3), so
    one low value there could set the level alone; only full windows may. None: too few checkpoints.
    """
    half = rule.smooth // 2
    starts = range(half, len(smoothed) - half - rule.confirm)
    if not starts:
        return None
    held = np.array([smoothed[i: i + rule.confirm + 1].max() for i in starts])
    j = starts[int(held.argmin())]
    level = float(held.min())
    errors = err[j - half: j + rule.confirm + half + 1]
    errors = errors[np.isfinite(errors)]
    e = float(np.median(errors)) if errors.size else None
    return Plateau(level, e, level + max(rule.rel_tol * abs(level), rule.abs_tol, e or 0.0))


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


def _gen_how(rule: WindowRule, plateau: Plateau, extractor: str, gate: Gate | None) -> str:
    """How tau_gen was read, with every number that set it."""
    err = "not computed" if plateau.err is None else f"{plateau.err:.4g}"
    gated = f" while the quality gate passes ({gate_text(gate)})" if gate is not None else ""
    return (f"FD ({extractor or 'unknown'} features) smoothed by a running median over {rule.smooth} checkpoints; "
            f"plateau level {plateau.level:.4g} = lowest value held for {rule.confirm + 1} consecutive full "
            f"windows; band {plateau.band:.4g} = level + max({rule.rel_tol:g} x level, {rule.abs_tol:g}, the FD's "
            f"2-sigma sampling error {err}); tau_gen = first checkpoint in the band{gated}, there and at the next "
            f"{rule.confirm} checkpoint(s)")


def read_tau_gen(curves: Curves, rule: WindowRule, gate: Gate | None,
                 passes: np.ndarray | None) -> tuple[Onset, Plateau | None, list[str]]:
    """tau_gen: the first checkpoint whose smoothed FD is on its plateau and, with a gate, that passes it."""
    ok = np.isfinite(curves["fid"])
    if not ok.any():
        return Onset(None, "", "no FD computed"), None, ["no_fid: no checkpoint has an FD; tau_gen undefined"]
    steps, smoothed = curves.step[ok], running_median(curves["fid"][ok], rule.smooth)
    level = plateau(smoothed, curves["fid_err"][ok], rule)
    if level is None:
        need = rule.smooth + rule.confirm
        return (Onset(None, "", f"fewer than {need} checkpoints with an FD: no plateau level"), None,
                [f"too_few_checkpoints: a plateau needs {need} checkpoints with an FD (smooth + confirm)"])
    mask = smoothed <= level.band
    if passes is not None:
        mask &= passes[ok]
    how = _gen_how(rule, level, curves.extractor, gate)
    flags = []
    if smoothed.argmin() == len(smoothed) - 1:
        flags.append("fid_still_falling: the lowest smoothed FD is at the last checkpoint; the plateau may lie later")
    i = first_confirmed(mask, rule.confirm)
    if i is None:
        return Onset(int(steps[-1]), ">=", f"not reached by the last checkpoint: {how}"), level, flags
    if i == 0:
        flags.append("tau_gen_at_first_checkpoint: on the plateau at the first checkpoint; tau_gen <= this")
    return Onset(int(steps[i]), "<=" if i == 0 else "", how), level, flags


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
