"""How the window's reading depends on its two arbitrary choices: the quality gate's level and the plateau tolerance.

A window is "open" only where its two intervals are apart: tau_mem's lower end above tau_gen's upper end;
"closed" where tau_mem's upper end lies below tau_gen's lower end; otherwise undecided. Re-reading each run
over a grid of gate levels (generation is a precondition) and plateau tolerances (tau_gen moves) shows the
range over which a claim "the window is open" holds, and a claim names that range.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from freqdiff.analysis.reading.curves import Curves
from freqdiff.analysis.reading.onsets import Onset, first_confirmed, gate_passes
from freqdiff.metrics.quality import Gate

GATE_LEVELS = (0.30, 0.45, 0.50, 0.55, 0.60)  # the calibrated level is added to these
TOLERANCES = (0.5, 1.0, 2.0)  # tau_gen: where the fitted FD is within tol x its sampling error of the plateau
OPEN, CLOSED, UNDECIDED, NO_GENERATION = "open", "closed", "undecided", "no generation"


@dataclass(frozen=True)
class Reading:
    """The window of one run read at one gate level and one plateau tolerance."""

    gate_level: float
    tol: float
    generates: bool
    tau_gen: Onset
    state: str  # open | closed | undecided | no generation


def window_state(tau_gen: Onset, tau_mem: Onset) -> str:
    """open: tau_mem's interval lies above tau_gen's; closed: below it; undecided: they overlap or an end is missing."""
    if tau_gen.step is None or tau_mem.step is None:
        return UNDECIDED
    if tau_mem.low is not None and tau_gen.high is not None and tau_mem.low > tau_gen.high:
        return OPEN
    if tau_mem.high is not None and tau_gen.low is not None and tau_mem.high < tau_gen.low:
        return CLOSED
    return UNDECIDED


def generates_at(curves: Curves, gate: Gate, level: float, confirm: int) -> bool:
    """Does the run pass the gate with its threshold set to `level` at confirm+1 consecutive checkpoints?"""
    passes, _ = gate_passes(curves, replace(gate, threshold=level))
    return first_confirmed(passes, confirm) is not None


def read_over(curves: Curves, tau_mem: Onset, gate: Gate | None, confirm: int, gens: Mapping[float, Onset],
              levels: Sequence[float] = GATE_LEVELS) -> list[Reading]:
    """The window at every (gate level, tolerance), given tau_gen read at each tolerance (`gens`); without a gate,
    generation is taken as given."""
    grid = sorted(set(levels) | {gate.threshold}) if gate is not None else [np.nan]
    readings = []
    for level in grid:
        generates = gate is None or generates_at(curves, gate, level, confirm)
        for tol, tau_gen in gens.items():
            state = window_state(tau_gen, tau_mem) if generates else NO_GENERATION
            readings.append(Reading(float(level), tol, generates, tau_gen, state))
    return readings


def open_range(readings: Sequence[Reading]) -> str:
    """One phrase: the gate levels and tolerances at which the window is open (every reading of every seed given)."""
    opened = [r for r in readings if r.state == OPEN]
    if not opened:
        return "open at no gate level and tolerance tried"
    if len(opened) == len(readings):
        return "open at every gate level and tolerance tried"
    levels = sorted({r.gate_level for r in readings if all(
        x.state == OPEN for x in readings if x.gate_level == r.gate_level)})
    tols = sorted({r.tol for r in readings if all(x.state == OPEN for x in readings if x.tol == r.tol
                                                  and x.generates)})
    by_level = f"at every tolerance for gate levels {', '.join(f'{v:g}' for v in levels)}" if levels else ""
    by_tol = f"at tolerances {', '.join(f'{v:g}' for v in tols)} wherever the gate passes" if tols else ""
    parts = [p for p in (by_level, by_tol) if p]
    return "open " + ("; ".join(parts) if parts else f"in {len(opened)} of {len(readings)} readings only")
