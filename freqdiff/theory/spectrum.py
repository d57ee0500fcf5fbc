"""The spectrum of U (Theorem 3.2) and the training timescales it predicts (readouts.py measures them).

Gaussian equivalence writes U ~ G G^T / n + b_t^2 W W^T / d + s_t^2 I, G = e^{-t} a_t W X^T / sqrt(d) + v_t Omega.
Counted from the top, its p eigenvalues form four groups:
  rho_2  d eigenvalues at scale psi_p: the population directions (range of W); learned by tau_gen.
  rho_1  n - d eigenvalues on s_t^2 + v_t^2 (1 -+ sqrt(psi_p/psi_n))^2 (Theorem 3.2): one per training point.
  rho_x  d eigenvalues between s_t^2 and rho_1 (a freqdiff derivation, not in the paper, checked numerically):
         range(W) carries two rank-d pieces, the data part of G G^T/n and b_t^2 W W^T/d; their sum has d large
         eigenvalues (rho_2) and d small ones, lambda = s_t^2 + Delta_t v_t^2 (psi_p/psi_n) / (e^{-2t} sigma_x^2 mu
         + Delta_t) for mu in the Marchenko-Pastur law of X^T X / n. These modes separate signal e^{-t} x from noise
         sqrt(Delta_t) xi along the data directions; they carry most of V's weight beyond rho_2, so they, not
         rho_1 (nearly orthogonal to V), drive the late fall of L_train and the rise of L_gen at finite psi.
  the remaining p - n - d eigenvalues near s_t^2, nearly orthogonal to V (in the Gaussian-equivalent model exactly
         s_t^2 and orthogonal; in the exact model at finite d they spread around s_t^2, the more as p / d^2 grows:
         the higher Hermite terms C^{ok} of the noise correlations are far from the identity when p >~ d^2).
Timescales. A mode of eigenvalue lambda is learned as 1 - exp(-c lambda tau) in A (c = 2 Delta_t / psi_p) and as
1 - exp(-2 c lambda tau) in the loss: its loss has made 90% of its fall at tau = ln(10) psi_p / (4 Delta_t lambda),
0.58 of the paper's time psi_p / (Delta_t lambda) (two e-folding times of A).
  tau_gen: E_score's fall is the learning of rho_2, each of whose d modes carries the same weight |V~^T q|^2/lambda
    (for U~ ~ a_t^2 W Sigma_t W^T/d + const, V~ ~ b_t W/sqrt d both in range(W)). So the predicted tau_gen is the tau
    at which the equally weighted rho_2 bulk has made GEN_LEVEL of its loss fall (tau_gen_bulk), with rho_2 taken as
    psi_p a_t^2 (e^{-2t} sigma_x^2 mu + Delta_t) + v_t^2 + s_t^2, mu ~ MP(1/psi_n) (its psi_p >> 1 limit): about
    1/Delta_t, independent of psi_p and n. The former prediction psi_p / (Delta_t lambda_2^-), the slowest mode at the
    paper's constant, was 3-9x above the measurement: 1.7x from the constant, the rest from the edge against the bulk.
  tau_mem = psi_p / (Delta_t lambda_min), lambda_min the left edge of rho_1 (the paper's, ~ psi_n / (Delta_t v_t^2)
    for psi_p >> psi_n >> 1); tau_x = psi_p / (Delta_t lambda_x^-) the same for rho_x. As lambda_x^- > s_t^2, tau_x
    saturates at tau_floor = psi_p / (Delta_t s_t^2) as psi_n grows: tau_mem ~ psi_n needs Delta_t v_t^2 psi_p / psi_n
    >> s_t^2 for rho_x, v_t^2 psi_p / psi_n >> s_t^2 for rho_1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from freqdiff.theory.constants import GEConstants
from freqdiff.theory.dynamics import rate

Array = np.ndarray

GEN_LEVEL = 0.9  # tau_gen: fraction of the fall (of E_score, measured; of the rho_2 bulk, predicted)


def rho_1_edges(c: GEConstants, psi_p: float, psi_n: float) -> tuple[float, float]:
    """Theorem 3.2: rho_1 is supported on s_t^2 + v_t^2 (1 -+ sqrt(psi_p / psi_n))^2."""
    root = math.sqrt(psi_p / psi_n)
    return c.s_t**2 + c.v_t**2 * (1 - root) ** 2, c.s_t**2 + c.v_t**2 * (1 + root) ** 2


def lambda_min(c: GEConstants, psi_p: float, psi_n: float) -> float:
    """lambda_min: the left edge of rho_1."""
    return rho_1_edges(c, psi_p, psi_n)[0]


def marchenko_pastur_edges(ratio: float) -> tuple[float, float]:
    """Support (1 -+ sqrt(ratio))^2 of the Marchenko-Pastur law of X^T X / n, ratio = d / n."""
    return (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2


def rho_x_edges(c: GEConstants, psi_p: float, psi_n: float) -> tuple[float, float]:
    """rho_x: s_t^2 + Delta_t v_t^2 (psi_p/psi_n) / (e^{-2t} sigma_x^2 mu + Delta_t) over mu's MP support (freqdiff)."""
    low, high = marchenko_pastur_edges(min(1.0 / psi_n, 1.0))
    scale = c.Delta_t * c.v_t**2 * psi_p / psi_n
    signal = math.exp(-2 * c.t) * c.sigma_x2
    return c.s_t**2 + scale / (signal * high + c.Delta_t), c.s_t**2 + scale / (signal * low + c.Delta_t)


def marchenko_pastur_atoms(ratio: float, count: int = 4000) -> Array:
    """Quantiles of the Marchenko-Pastur law of X^T X / n (ratio = d / n <= 1, mean 1)."""
    low, high = marchenko_pastur_edges(ratio)
    theta = np.linspace(0.0, math.pi, 20001)  # x = centre - half cos(theta) clusters points at the edges
    x = 0.5 * (low + high) - 0.5 * (high - low) * np.cos(theta)
    density = np.sqrt(np.maximum((high - x) * (x - low), 0.0)) / (2 * math.pi * ratio * x)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(x))])
    return np.interp((np.arange(count) + 0.5) / count, cdf / cdf[-1], x)


def silverstein_edges(atoms: Array, gamma: float) -> tuple[float, float]:
    """Support edges of (1/N) T^{1/2} Y Y^T T^{1/2} (dim/N = gamma, spec T = atoms) via z(m) = -1/m + gamma E[t/(1+tm)].

    The right edge is the minimum of z on (-1/t_max, 0), the left edge its maximum on (-inf, -1/t_min).
    """
    def z(m: float) -> float:
        return -1.0 / m + gamma * float(np.mean(atoms / (1.0 + atoms * m)))

    t_min, t_max = float(atoms.min()), float(atoms.max())
    right = minimize_scalar(z, bounds=(-(1 - 1e-9) / t_max, -1e-9 / t_max), method="bounded",
                            options={"xatol": 1e-12})
    left = minimize_scalar(lambda m: -z(m), bounds=(-1e6 / t_min, -(1 + 1e-9) / t_min), method="bounded",
                           options={"xatol": 1e-12})
    return float(-left.fun), float(right.fun)


def rho_2_edges(c: GEConstants, psi_p: float, psi_n: float) -> tuple[float, float]:
    """Edges of rho_2 to leading order, for Sigma = sigma_x^2 I (freqdiff; the paper gives only its scale psi_p).

    rho_2 is the nonzero spectrum of a_t^2 W M W^T / d, M = e^{-2t} X^T X / n + Delta_t I, shifted by the O(1)
    background v_t^2 + s_t^2: psi_p a_t^2 times the Silverstein law of p samples with population covariance M,
    M's law being e^{-2t} sigma_x^2 MP(1/psi_n) + Delta_t.
    """
    atoms = math.exp(-2 * c.t) * c.sigma_x2 * marchenko_pastur_atoms(min(1.0 / psi_n, 1.0)) + c.Delta_t
    low, high = silverstein_edges(atoms, 1.0 / psi_p)
    shift = c.v_t**2 + c.s_t**2
    return psi_p * c.a_t**2 * low + shift, psi_p * c.a_t**2 * high + shift


@dataclass(frozen=True)
class BulkEdges:
    """Edges (low, high) of the three groups of U's spectrum above s_t^2."""

    rho_2: tuple[float, float]
    rho_1: tuple[float, float]
    rho_x: tuple[float, float]

    def to_dict(self) -> dict[str, list[float]]:
        return {"rho_2": list(self.rho_2), "rho_1": list(self.rho_1), "rho_x": list(self.rho_x)}


def predicted_edges(c: GEConstants, psi_p: float, psi_n: float) -> BulkEdges:
    """rho_1 from Theorem 3.2; rho_2 and rho_x from the freqdiff estimates above."""
    return BulkEdges(rho_2=rho_2_edges(c, psi_p, psi_n), rho_1=rho_1_edges(c, psi_p, psi_n),
                     rho_x=rho_x_edges(c, psi_p, psi_n))


def numerical_edges(eigenvalues: Array, n: int, d: int) -> BulkEdges:
    """Edges read by counting down U's sorted spectrum: rho_2 = top d, rho_1 = next n - d, rho_x = next d (n > d)."""
    lam = np.sort(eigenvalues)[::-1]
    groups = lam[:d], lam[d:n], lam[n:n + d]
    low_high = [(float(g[-1]), float(g[0])) for g in groups]
    return BulkEdges(rho_2=low_high[0], rho_1=low_high[1], rho_x=low_high[2])


def group_shares(eigenvalues: Array, weights: Array, n: int, d: int) -> dict[str, float]:
    """Share of each group in the total fall of L_train, sum_k |V^T q_k|^2 / lambda_k (the tau -> infinity drop)."""
    order = np.argsort(eigenvalues)[::-1]
    drop = (weights / eigenvalues)[order]
    total = float(drop.sum())
    parts = {"rho_2": drop[:d], "rho_1": drop[d:n], "rho_x": drop[n:n + d], "rest": drop[n + d:]}
    return {name: float(part.sum()) / total for name, part in parts.items()}


def tau_from_lambda(lam: float, Delta_t: float, psi_p: float) -> float:
    """tau = psi_p / (Delta_t lambda): the paper's training time of a mode with eigenvalue lambda."""
    return psi_p / (Delta_t * lam)


def tau_floor(c: GEConstants, psi_p: float) -> float:
    """tau_floor = psi_p / (Delta_t s_t^2): the time of a mode at s_t^2, where tau_x saturates as psi_n grows."""
    return tau_from_lambda(c.s_t**2, c.Delta_t, psi_p)


def rho_2_atoms(c: GEConstants, psi_p: float, psi_n: float) -> Array:
    """Quantiles of rho_2 in its psi_p >> 1 limit: psi_p a_t^2 (e^{-2t} sigma_x^2 mu + Delta_t) + v_t^2 + s_t^2."""
    mu = marchenko_pastur_atoms(min(1.0 / psi_n, 1.0))
    return psi_p * c.a_t**2 * (math.exp(-2 * c.t) * c.sigma_x2 * mu + c.Delta_t) + c.v_t**2 + c.s_t**2


def tau_gen_bulk(eigenvalues: Array, Delta_t: float, psi_p: float, level: float = GEN_LEVEL) -> float:
    """The tau at which equally weighted modes have made `level` of their loss fall: mean exp(-2 c lambda tau) =
    1 - level (one mode: ln(1/(1 - level)) psi_p / (4 Delta_t lambda))."""
    lam = np.asarray(eigenvalues, float)
    c = rate(Delta_t, psi_p)

    def remaining(log_tau: float) -> float:
        return float(np.mean(np.exp(-2 * c * lam * math.exp(log_tau)))) - (1 - level)

    low = math.log(1e-3 / (2 * c * lam.max()))
    high = math.log(1e3 / (2 * c * lam.min()))
    return math.exp(brentq(remaining, low, high, xtol=1e-10))


@dataclass(frozen=True)
class Timescales:
    """Predicted tau_gen (rho_2 bulk), tau_mem (paper: rho_1's left edge) and tau_x (rho_x's left edge)."""

    tau_gen: float
    tau_mem: float
    tau_x: float


def predicted_timescales(c: GEConstants, edges: BulkEdges, psi_p: float, psi_n: float) -> Timescales:
    """tau_gen from the predicted rho_2 law, tau_mem and tau_x from the left edges of rho_1 and rho_x."""
    return Timescales(tau_gen=tau_gen_bulk(rho_2_atoms(c, psi_p, psi_n), c.Delta_t, psi_p),
                      tau_mem=tau_from_lambda(edges.rho_1[0], c.Delta_t, psi_p),
                      tau_x=tau_from_lambda(edges.rho_x[0], c.Delta_t, psi_p))
