"""Gradient flow of the RF model in closed form and its losses (paper sec. 4).

Time tau is the paper's rescaled time: dA/dtau = -2 Delta_t (d/p) A U - (2 d sqrt(Delta_t) / sqrt(p)) V^T,
i.e. gradient flow on L_train with rate d^2 (a GD step of learning rate lr on L_train advances tau by lr / d^2).
From A(0) = 0 each eigenvector q_k of U (eigenvalue lambda_k) is learned as 1 - exp(-c lambda_k tau) with
c = 2 Delta_t / psi_p, so the mode's e-folding time is psi_p / (2 Delta_t lambda_k).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def rate(Delta_t: float, psi_p: float) -> float:
    """c = 2 Delta_t / psi_p: mode lambda relaxes as exp(-c lambda tau)."""
    return 2.0 * Delta_t / psi_p


def mode_timescales(eigenvalues: Array, Delta_t: float, psi_p: float) -> Array:
    """tau_lambda = psi_p / (2 Delta_t lambda): the e-folding time of each mode of U."""
    return 1.0 / (rate(Delta_t, psi_p) * np.asarray(eigenvalues))


def gradient_flow_rhs(A: Array, U: Array, V: Array, Delta_t: float) -> Array:
    """dA/dtau = -2 Delta_t (d/p) A U - (2 d sqrt(Delta_t) / sqrt(p)) V^T."""
    d, p = A.shape
    return -2.0 * Delta_t * (d / p) * A @ U - 2.0 * d * math.sqrt(Delta_t) / math.sqrt(p) * V.T


def A_star(U: Array, V: Array, Delta_t: float) -> Array:
    """A* = -sqrt(p) Delta_t^{-1/2} V^T U^{-1}: the fixed point of the flow (the tau -> infinity limit)."""
    p = U.shape[0]
    return -math.sqrt(p / Delta_t) * np.linalg.solve(U, V).T


def A_closed_form(tau: float, U: Array, V: Array, Delta_t: float, A0: Array | None = None) -> Array:
    """A(tau) = A* + (A0 - A*) exp(-(2 Delta_t / psi_p) U tau) (U symmetric)."""
    d, p = V.shape[1], U.shape[0]
    lam, Q = np.linalg.eigh(U)
    target = A_star(U, V, Delta_t)
    start = np.zeros((d, p)) if A0 is None else A0
    decay = (Q * np.exp(-rate(Delta_t, p / d) * lam * tau)) @ Q.T
    return target + (start - target) @ decay


def denoising_loss(A: Array, U: Array, V: Array, Delta_t: float) -> float:
    """L = 1 + (Delta_t/d) Tr(A^T A U/p) + (2 sqrt(Delta_t)/d) Tr(A V/sqrt p): L_train with U, V; L_test with U~, V~."""
    d, p = A.shape
    quadratic = np.einsum("ij,ij->", A @ U, A) / p
    linear = np.einsum("ij,ji->", A, V) / math.sqrt(p)
    return float(1.0 + Delta_t / d * quadratic + 2.0 * math.sqrt(Delta_t) / d * linear)


def score_error(L_test: Array, Delta_t: float, Sigma_t: Array) -> Array:
    """E_score = (1/d) E||s_A(x_t) - grad log P_t(x_t)||^2 = (L_test - 1)/Delta_t + Tr(Sigma_t^-1)/d, Gaussian data."""
    return (np.asarray(L_test) - 1.0) / Delta_t + float(np.mean(1.0 / Sigma_t))


@dataclass(frozen=True)
class Modes:
    """U in its eigenbasis, with what the losses need: L_train, L_test are then sums over modes.

    With R = V^T Q and R~ = V~^T Q (Q: eigenvectors of U), f_k(tau) = (1 - exp(-c lambda_k tau)) / lambda_k:
    L_train = 1 - (1/d) sum_k (|R_k|^2 / lambda_k) (1 - exp(-2 c lambda_k tau)),
    L_test = 1 + (1/d) (f^T M f - 2 g^T f), M = (R^T R) o (Q^T U~ Q), g_k = R~_k . R_k.
    """

    eigenvalues: Array  # lambda_k, ascending
    weights: Array  # |R_k|^2 = |V^T q_k|^2
    M: Array
    g: Array
    d: int
    p: int


def modes(U: Array, V: Array, U_pop: Array, V_pop: Array) -> Modes:
    """Diagonalize U and project V, U~, V~ on its eigenvectors (O(p^3): two products and one eigh)."""
    lam, Q = np.linalg.eigh(U)
    R, R_pop = V.T @ Q, V_pop.T @ Q
    M = (R.T @ R) * (Q.T @ U_pop @ Q)
    return Modes(eigenvalues=lam, weights=(R**2).sum(0), M=M, g=(R_pop * R).sum(0), d=V.shape[1], p=U.shape[0])


def L_train_curve(tau: Array, m: Modes, Delta_t: float) -> Array:
    """L_train(tau) from A(0) = 0: 1 - (1/d) sum_k (|R_k|^2 / lambda_k)(1 - exp(-2 c lambda_k tau))."""
    c = rate(Delta_t, m.p / m.d)
    learned = -np.expm1(-2.0 * c * np.outer(m.eigenvalues, tau))
    return 1.0 - (m.weights / m.eigenvalues) @ learned / m.d


def _f(tau: Array, m: Modes, Delta_t: float) -> Array:
    """f_k(tau) = (1 - exp(-c lambda_k tau)) / lambda_k, one column per tau."""
    c = rate(Delta_t, m.p / m.d)
    return -np.expm1(-c * np.outer(m.eigenvalues, tau)) / m.eigenvalues[:, None]


def L_test_curve(tau: Array, m: Modes, Delta_t: float) -> Array:
    """L_test(tau) from A(0) = 0: 1 + (1/d)(f^T M f - 2 g^T f)."""
    f = _f(tau, m, Delta_t)
    return 1.0 + (np.einsum("kt,kt->t", f, m.M @ f) - 2.0 * m.g @ f) / m.d


@dataclass(frozen=True)
class LossCurves:
    """L_train, L_test, L_gen = L_test - L_train and E_score on a grid of tau."""

    tau: Array
    L_train: Array
    L_test: Array
    L_gen: Array
    E_score: Array


def loss_curves(tau: Array, m: Modes, Delta_t: float, Sigma_t: Array) -> LossCurves:
    """All four curves of the closed-form flow from A(0) = 0."""
    tau = np.asarray(tau, float)
    train, test = L_train_curve(tau, m, Delta_t), L_test_curve(tau, m, Delta_t)
    return LossCurves(tau=tau, L_train=train, L_test=test, L_gen=test - train,
                      E_score=score_error(test, Delta_t, Sigma_t))
