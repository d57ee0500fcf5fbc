"""The Gaussian-equivalent RF model, the model Theorem 3.2 describes, solved in n + d dimensions.

Gaussian equivalence (paper sec. 4) replaces a feature of a noisy training point by its four parts:
    U_GE = G G^T / n + b_t^2 W W^T / d + s_t^2 I,   G = e^{-t} a_t W X^T / sqrt(d) + v_t Omega,
    V_GE = V~_GE = b_t W / sqrt(d),   U~_GE = a_t^2 W Sigma_t W^T / d + (v_t^2 + s_t^2) I,
with Omega (p x n) iid N(0, 1). U_GE is s_t^2 I plus F F^T, F = Z B, where Z = [W, Omega] (p x (d + n)) and
B holds the coefficients above. V lies in range(F), so the p - n - d modes outside it carry no weight in either
loss, and every quantity of the closed form is a function of the Gram matrix H = Z^T Z alone:
    F^T F = B^T H B = Y K Y^T,  U's modes q_k = Z B Y_k / sqrt(K_k) with eigenvalue s_t^2 + K_k,
    R = V^T Q = (b_t / sqrt d) P,  Q^T U~ Q = (a_t^2 / d) P^T Sigma_t P + (v_t^2 + s_t^2) I,  P = H_W B Y K^{-1/2},
H_W being H's first d rows. As Z has iid N(0, 1) entries, H ~ Wishart_{d+n}(p, I) can be drawn directly
(Bartlett), so the cost is O((n + d)^3) whatever psi_p: psi_p in the thousands costs what psi_p = 2 costs.
"""
from __future__ import annotations

import math

import numpy as np

from freqdiff.core.registry import FreqdiffError
from freqdiff.theory.constants import GEConstants
from freqdiff.theory.dynamics import Modes

Array = np.ndarray

RANK_TOLERANCE = 1e-12  # eigenvalues of F^T F below this times the largest are dropped (not in range(F))


def wishart(m: int, dof: int, rng: np.random.Generator) -> Array:
    """A draw of Wishart_m(dof, I) = Z^T Z for Z (dof x m) iid N(0, 1): Bartlett's decomposition when dof >= m."""
    if dof < m:
        Z = rng.standard_normal((dof, m))
        return Z.T @ Z
    L = np.tril(rng.standard_normal((m, m)), -1)
    L[np.diag_indices(m)] = np.sqrt(rng.chisquare(dof - np.arange(m)))
    return L @ L.T


def gram_increments(m: int, p_values: list[int], rng: np.random.Generator) -> dict[int, Array]:
    """H = Z^T Z for nested Z (rows appended as p grows): one Wishart draw per increment of p, ascending."""
    grams, total, previous = {}, np.zeros((m, m)), 0
    for p in sorted(set(p_values)):
        total = total + wishart(m, p - previous, rng)
        grams[p], previous = total.copy(), p
    return grams


def coefficients(X: Array, c: GEConstants) -> Array:
    """B ((d + n) x (n + d)) with F = Z B = [G / sqrt(n), b_t W / sqrt(d)] for Z = [W, Omega]."""
    n, d = X.shape
    B = np.zeros((d + n, n + d))
    B[:d, :n] = math.exp(-c.t) * c.a_t * X.T / math.sqrt(d * n)
    B[d:, :n] = c.v_t * np.eye(n) / math.sqrt(n)
    B[:d, n:] = c.b_t * np.eye(d) / math.sqrt(d)
    return B


def equivalent_modes(H: Array, X: Array, Sigma: Array, c: GEConstants, p: int) -> Modes:
    """The modes of the Gaussian-equivalent U with V, U~, V~ projected on them, from the Gram matrix H of [W, Omega]."""
    n, d = X.shape
    if H.shape != (d + n, d + n):
        raise FreqdiffError(f"theory: the Gram matrix must be {(d + n, d + n)} for d={d}, n={n}; got {H.shape}")
    B = coefficients(X, c)
    HB = H[:, :d] @ B[:d] + H[:, d:] @ B[d:]  # B's lower-left block is diagonal and its lower-right block zero
    K, Y = np.linalg.eigh(B[:d].T @ HB[:d] + B[d:].T @ HB[d:])
    keep = K > RANK_TOLERANCE * K.max()
    K, Y = K[keep], Y[:, keep]
    P = (H[:d] @ B @ Y) / np.sqrt(K)
    R = c.b_t / math.sqrt(d) * P
    Sigma_t = math.exp(-2 * c.t) * Sigma + c.Delta_t
    U_pop = c.a_t**2 / d * (P.T * Sigma_t) @ P + (c.v_t**2 + c.s_t**2) * np.eye(K.size)
    weights = (R**2).sum(0)
    return Modes(eigenvalues=c.s_t**2 + K, weights=weights, M=(R.T @ R) * U_pop, g=weights, d=d, p=p)


def equivalent_matrices(W: Array, Omega: Array, X: Array, Sigma: Array, c: GEConstants) -> tuple[Array, ...]:
    """U_GE, V_GE, U~_GE, V~_GE as explicit p x p and p x d matrices (for checks at small p)."""
    d, n = W.shape[1], X.shape[0]
    G = math.exp(-c.t) * c.a_t * W @ X.T / math.sqrt(d) + c.v_t * Omega
    U = G @ G.T / n + c.b_t**2 * W @ W.T / d + c.s_t**2 * np.eye(W.shape[0])
    V = c.b_t * W / math.sqrt(d)
    Sigma_t = math.exp(-2 * c.t) * Sigma + c.Delta_t
    U_pop = c.a_t**2 * (W * Sigma_t) @ W.T / d + (c.v_t**2 + c.s_t**2) * np.eye(W.shape[0])
    return U, V, U_pop, V
