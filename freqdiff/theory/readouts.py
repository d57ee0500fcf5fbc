"""Times read off one setting: tau_gen, and four readouts of tau_mem side by side.

tau_mem (all in the paper's time tau):
  spectral  the paper's tau_mem = psi_p / (Delta_t lambda_min), lambda_min = the left edge of rho_1 read off the
            numerical spectrum (the n-th largest eigenvalue of U: top d = rho_2, next n - d = rho_1);
  gap       the first tau at which L_test - L_train exceeds a fixed absolute level (the same for every psi_n);
  onset     the onset of the train/test split: where the tangent to L_gen at its steepest rise (against log tau)
            meets L_gen = 0, the usual reading of an onset off a sigmoid on a log axis;
  half      the first tau at which L_gen reaches half its tau -> infinity value (the last grid point).
tau_gen: measured, the first tau at which E_score has made GEN_LEVEL of its fall to its minimum; spectral, the tau at
which the top d modes of U (rho_2), weighted equally, have made GEN_LEVEL of their loss fall (spectrum.tau_gen_bulk).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from freqdiff.theory.dynamics import LossCurves
from freqdiff.theory.spectrum import GEN_LEVEL, tau_from_lambda, tau_gen_bulk

Array = np.ndarray

HALF_LEVEL = 0.5  # the half readout: fraction of the final L_gen
TAU_MEM_READOUTS = ("spectral", "gap", "onset", "half")


def first_crossing(tau: Array, values: Array, level: float) -> float | None:
    """First tau where `values` reaches `level` from below (interpolated in log tau), None if it never does."""
    above = np.flatnonzero(values >= level)
    if len(above) == 0:
        return None
    i = int(above[0])
    if i == 0:
        return float(tau[0])
    frac = (level - values[i - 1]) / (values[i] - values[i - 1])
    return float(np.exp(np.log(tau[i - 1]) + frac * (np.log(tau[i]) - np.log(tau[i - 1]))))


def tau_gen_measured(curves: LossCurves) -> float | None:
    """First tau where E_score has made GEN_LEVEL of its fall from tau = 0 to its minimum."""
    low = int(np.argmin(curves.E_score))
    target = curves.E_score[0] - GEN_LEVEL * (curves.E_score[0] - curves.E_score[low])
    return first_crossing(curves.tau[:low + 1], -curves.E_score[:low + 1], -target)


def split_onset(tau: Array, L_gen: Array) -> float | None:
    """Onset of the rise of L_gen: the tangent at its steepest point in log tau, continued down to L_gen = 0."""
    log_tau = np.log(tau)
    rise = np.gradient(L_gen, log_tau)
    i = int(np.argmax(rise))
    if rise[i] <= 0:
        return None
    return float(np.exp(log_tau[i] - L_gen[i] / rise[i]))


def lambda_min_numerical(eigenvalues: Array, n: int) -> float:
    """The left edge of rho_1 in the numerical spectrum: the n-th largest eigenvalue of U."""
    return float(np.sort(eigenvalues)[::-1][n - 1])


@dataclass(frozen=True)
class Readouts:
    """Every time read off one setting (None: not reached on the tau grid), with the levels they depend on."""

    tau_gen: float | None
    tau_gen_bulk: float
    spectral: float
    gap: float | None
    onset: float | None
    half: float | None
    tau_test_min: float  # where L_test turns up (its minimum on the grid)
    L_gen_final: float
    E_score_min: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def read_all(curves: LossCurves, eigenvalues: Array, n: int, d: int, p: int, Delta_t: float,
             gap_level: float) -> Readouts:
    """All readouts of one setting with p random features (U's eigenvalues may be only its nontrivial ones)."""
    psi_p = p / d
    final = float(curves.L_gen[-1])
    top = np.sort(eigenvalues)[::-1][:d]
    return Readouts(tau_gen=tau_gen_measured(curves), tau_gen_bulk=tau_gen_bulk(top, Delta_t, psi_p),
                    spectral=tau_from_lambda(lambda_min_numerical(eigenvalues, n), Delta_t, psi_p),
                    gap=first_crossing(curves.tau, curves.L_gen, gap_level),
                    onset=split_onset(curves.tau, curves.L_gen),
                    half=first_crossing(curves.tau, curves.L_gen / final, HALF_LEVEL) if final > 0 else None,
                    tau_test_min=float(curves.tau[int(np.argmin(curves.L_test))]), L_gen_final=final,
                    E_score_min=float(curves.E_score.min()))
