"""The random-features matrices U, V (paper sec. 4) and their population versions U~ = E_x[U], V~.

A feature of a noisy training point is sigma(h_i) with h_i = w_i.x_t / sqrt(d), x_t = e^{-t} x + sqrt(Delta_t) xi.
For fixed x the h_i are jointly Gaussian in the noise xi, so E_xi[sigma(h_i) sigma(h_j)] is a 2-d Gaussian
integral; Mehler's formula writes it as sum_k C_ij^k c_k(i) c_k(j), with C_ij the noise correlation of
h_i and h_j and c_k(i) = E_z[sigma(m_i + s_i z) He_k(z)] / sqrt(k!) a 1-d Gauss-Hermite integral. The sum is
cut at the order K where a rigorous bound on the neglected terms (in spectral norm) falls below TOLERANCE;
the diagonal E[sigma(h_i)^2] is exact. V follows from Stein's lemma: E_xi[sigma(h_i) xi] = c_1(i) w_i / |w_i|.
The population versions are the same expansions with x ~ N(0, Sigma) folded into the Gaussian h.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from freqdiff.core.registry import FreqdiffError
from freqdiff.theory.constants import Delta_t, activation, gauss_hermite

Array = np.ndarray

TOLERANCE = 1e-8  # bound on the spectral norm of the neglected Mehler terms
MAX_ORDER = 96  # highest Hermite order tried (and at most nodes - 1)
NODE_CHOICES = (16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512)  # node counts tried, in order
CHECKED_ORDER = 32  # quadrature is accepted when orders 0..CHECKED_ORDER agree with twice the nodes
QUAD_TOLERANCE = 1e-10  # on |c_k(N nodes) - c_k(2N nodes)| q^k
CHUNK_BYTES = 768 * 2**20  # memory for one block of Hermite coefficients
QUAD_BYTES = 128 * 2**20  # memory for the integrand values of one quadrature block


@dataclass(frozen=True)
class RFProblem:
    """One draw of the RF model: frozen weights W (p x d), training data X (n x d) ~ N(0, Sigma), time t."""

    W: Array
    X: Array
    Sigma: Array  # diagonal of the data covariance, length d
    t: float
    sigma: str = "tanh"

    @property
    def d(self) -> int:
        return self.W.shape[1]

    @property
    def p(self) -> int:
        return self.W.shape[0]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def psi_p(self) -> float:
        return self.p / self.d

    @property
    def psi_n(self) -> float:
        return self.n / self.d

    @property
    def Delta_t(self) -> float:
        return Delta_t(self.t)

    @property
    def sigma_x2(self) -> float:
        """sigma_x^2 = Tr Sigma / d."""
        return float(self.Sigma.mean())

    def Sigma_t(self) -> Array:
        """Diagonal of Sigma_t = e^{-2t} Sigma + Delta_t I, the covariance of x_t."""
        return math.exp(-2 * self.t) * self.Sigma + self.Delta_t


def Sigma_diagonal(d: int, levels: tuple[float, ...]) -> Array:
    """Diagonal of Sigma with the eigenvalues `levels` in equal blocks (the code's two-level rho_Sigma)."""
    if not levels or min(levels) <= 0:
        raise FreqdiffError(f"theory.Sigma_levels: need positive eigenvalues, got {levels}")
    return np.asarray(levels, float)[np.arange(d) * len(levels) // d]


def make_problem(d: int, psi_p: float, psi_n: float, t: float, seed: int,
                 Sigma_levels: tuple[float, ...] = (1.0,), sigma: str = "tanh") -> RFProblem:
    """Draw W ~ N(0, 1)^{p x d} and n = psi_n d points x ~ N(0, Sigma), p = psi_p d, from `seed`."""
    p, n = round(psi_p * d), round(psi_n * d)
    if d < 2 or p < 1 or n < 1 or t <= 0:
        raise FreqdiffError(f"theory: need d >= 2, p, n >= 1 and t > 0; got d={d}, p={p}, n={n}, t={t}")
    activation(sigma)
    rng = np.random.default_rng(seed)
    Sigma = Sigma_diagonal(d, Sigma_levels)
    W = rng.standard_normal((p, d))
    X = rng.standard_normal((n, d)) * np.sqrt(Sigma)
    return RFProblem(W=W, X=X, Sigma=Sigma, t=t, sigma=sigma)


def hermite_table(z: Array, order: int) -> Array:
    """He_k(z) / sqrt(k!) for k = 0..order (rows), by the stable three-term recursion."""
    table = np.empty((order + 1, len(z)))
    table[0] = 1.0
    if order:
        table[1] = z
    for k in range(1, order):
        table[k + 1] = (z * table[k] - math.sqrt(k) * table[k - 1]) / math.sqrt(k + 1)
    return table


def hermite_coefficients(mean: Array, std: Array, order: int, sigma: str, nodes: int) -> tuple[Array, Array]:
    """c_k = E[sigma(mean + std z) He_k(z)] / sqrt(k!) for k = 0..order (leading axis), and E[sigma(.)^2]."""
    z, w = gauss_hermite(nodes)
    project = (hermite_table(z, order) * w).T
    f = activation(sigma)[0]
    flat_mean, flat_std = mean.reshape(-1), np.broadcast_to(std, mean.shape).reshape(-1)
    c, norm2 = np.empty((order + 1, flat_mean.size)), np.empty(flat_mean.size)
    step = max(1, QUAD_BYTES // (8 * nodes))
    for start in range(0, flat_mean.size, step):
        part = slice(start, start + step)
        values = f(flat_mean[part, None] + flat_std[part, None] * z)
        c[:, part] = (values @ project).T
        norm2[part] = (values**2) @ w
    return c.reshape(order + 1, *mean.shape), norm2.reshape(mean.shape)


def _tails(mean: Array, std: Array, sigma: str, nodes: int) -> Array:
    """Largest Mehler tail E[sigma^2] - sum_{k<=K} c_k^2 over the given points, for K = 0..min(MAX_ORDER, nodes-1).

    With the same N-node rule for both terms the tails are exact for the quadrature (discrete Parseval).
    """
    order = min(MAX_ORDER, nodes - 1)
    c, norm2 = hermite_coefficients(mean, std, order, sigma, nodes)
    tails = norm2 - np.cumsum(c**2, axis=0)
    return np.maximum(tails.reshape(order + 1, -1).max(axis=1), 0.0)


def quadrature_nodes(mean_range: tuple[float, float], std_range: tuple[float, float], sigma: str, q: float) -> int:
    """Fewest Gauss-Hermite nodes whose coefficients c_k agree with twice as many to QUAD_TOLERANCE / q^k.

    q = max |C_ij| (i != j): the k-th coefficient enters an off-diagonal entry of U with weight C_ij^k.
    """
    mean, std = _probe_grid(mean_range, std_range)
    weight = q ** np.arange(CHECKED_ORDER + 1)
    for nodes in NODE_CHOICES:
        coarse = hermite_coefficients(mean, std, CHECKED_ORDER, sigma, nodes)[0]
        fine = hermite_coefficients(mean, std, CHECKED_ORDER, sigma, 2 * nodes)[0]
        if (np.abs(coarse - fine).reshape(CHECKED_ORDER + 1, -1).max(axis=1) * weight).max() < QUAD_TOLERANCE:
            return nodes
    raise FreqdiffError(f"theory: Gauss-Hermite quadrature did not converge with {NODE_CHOICES[-1]} nodes")


def _probe_grid(mean_range: tuple[float, float], std_range: tuple[float, float]) -> tuple[Array, Array]:
    """A grid of (mean, std) pairs covering the given ranges, on which tails and quadrature are checked."""
    mean = np.linspace(mean_range[0], mean_range[1], 257)
    std = np.linspace(std_range[0], std_range[1], 5)
    return np.broadcast_arrays(mean[:, None], std[None, :])


def expansion_plan(C: Array, mean_range: tuple[float, float], std_range: tuple[float, float],
                   sigma: str) -> tuple[int, int, float]:
    """Gauss-Hermite nodes, and the lowest order K whose neglected Mehler terms have norm <= TOLERANCE (and the bound).

    |error_ij| <= |C_ij|^{K+1} max_i tail_i(K) for i != j (Cauchy-Schwarz), and the diagonal is exact,
    so ||error||_2 <= ||offdiag(C)^{o(K+1)}||_F max tail(K); the tail is taken over a grid covering
    the actual means and standard deviations, with a safety factor 2.
    """
    off = np.abs(C - np.diag(np.diag(C)))
    nodes = quadrature_nodes(mean_range, std_range, sigma, float(off.max()))
    tails = 2 * _tails(*_probe_grid(mean_range, std_range), sigma, nodes)
    power = off.copy()
    for K in range(len(tails)):
        bound = float(np.sqrt((power**2).sum())) * tails[K]
        if bound <= TOLERANCE:
            return nodes, K, bound
        power *= off
    raise FreqdiffError(f"theory: the Mehler expansion of U did not converge by order {len(tails) - 1} "
                        f"(bound {bound:.1e}); raise d or use --noise_draws")


def _correlation(cov: Array) -> tuple[Array, Array]:
    """Standard deviations and correlation matrix of a covariance matrix."""
    std = np.sqrt(np.diag(cov))
    return std, cov / std[:, None] / std[None, :]


def _add_mehler_terms(total: Array, C: Array, F: Array, K: int) -> None:
    """total += sum_{k<=K} C^{o k} o (F_k^T F_k) for one block of coefficients F (orders x rows x p), by Horner."""
    acc = F[K].T @ F[K]
    for k in range(K - 1, -1, -1):
        acc *= C
        acc += F[k].T @ F[k]
    total += acc


def noise_statistics(problem: RFProblem) -> tuple[Array, Array, Array]:
    """Per-feature noise std s_i = sqrt(Delta_t) |w_i| / sqrt(d), noise correlations C_ij, and means m_{nu i}."""
    d = problem.d
    cov = problem.Delta_t * problem.W @ problem.W.T / d
    s, C = _correlation(cov)
    m = math.exp(-problem.t) * problem.X @ problem.W.T / math.sqrt(d)
    return s, C, m


def U_V_empirical(problem: RFProblem) -> tuple[Array, Array]:
    """U = (1/n) sum_nu E_xi[sigma sigma^T] (p x p), V = (1/n) sum_nu E_xi[sigma xi^T] (p x d), noise done exactly."""
    s, C, m = noise_statistics(problem)
    ranges = ((float(m.min()), float(m.max())), (float(s.min()), float(s.max())))
    nodes, K, _ = expansion_plan(C, *ranges, problem.sigma)
    order = max(K, 1)
    rows = max(1, CHUNK_BYTES // (8 * problem.p * (order + 1)))
    U, norm2, c1 = np.zeros_like(C), np.zeros(problem.p), np.zeros(problem.p)
    for start in range(0, problem.n, rows):
        chunk = m[start:start + rows]
        F, sq = hermite_coefficients(chunk, s, order, problem.sigma, nodes)
        _add_mehler_terms(U, C, F, K)
        norm2 += sq.sum(0)
        c1 += F[1].sum(0)
    U /= problem.n
    np.fill_diagonal(U, norm2 / problem.n)
    V = (c1 / problem.n)[:, None] * problem.W / np.linalg.norm(problem.W, axis=1, keepdims=True)
    return U, V


def U_V_population(problem: RFProblem) -> tuple[Array, Array]:
    """U~ = E_{x,xi}[sigma sigma^T] and V~ = E_{x,xi}[sigma xi^T] for x ~ N(0, Sigma), by the same expansion."""
    d = problem.d
    cov = (problem.W * problem.Sigma_t()) @ problem.W.T / d
    kappa, rho = _correlation(cov)
    ranges = ((0.0, 0.0), (float(kappa.min()), float(kappa.max())))
    nodes, K, _ = expansion_plan(rho, *ranges, problem.sigma)
    g, norm2 = hermite_coefficients(np.zeros_like(kappa), kappa, max(K, 1), problem.sigma, nodes)
    U = np.zeros_like(rho)
    _add_mehler_terms(U, rho, g[:, None, :], K)
    np.fill_diagonal(U, norm2)
    stein = g[1] / kappa  # E[sigma'(h_i)]
    V = (stein * math.sqrt(problem.Delta_t / d))[:, None] * problem.W
    return U, V


def U_V_monte_carlo(problem: RFProblem, draws: int, seed: int) -> tuple[Array, Array]:
    """U and V with the noise expectation replaced by an average over `draws` noise draws per point."""
    rng = np.random.default_rng(seed)
    sigma = activation(problem.sigma)[0]
    d, n = problem.d, problem.n
    U, V = np.zeros((problem.p, problem.p)), np.zeros((problem.p, d))
    for _ in range(draws):
        xi = rng.standard_normal((n, d))
        x_t = math.exp(-problem.t) * problem.X + math.sqrt(problem.Delta_t) * xi
        features = sigma(x_t @ problem.W.T / math.sqrt(d))
        U += features.T @ features
        V += features.T @ xi
    return U / (n * draws), V / (n * draws)


def U_population_linear(problem: RFProblem, mu_1: float, Gamma_t: float, sigma_norm2: float) -> Array:
    """The paper's U~ ~ (mu_1^2 / Gamma_t^2) W Sigma_t W^T / d + (||sigma||^2 - mu_1^2) I."""
    cov = (problem.W * problem.Sigma_t()) @ problem.W.T / problem.d
    return (mu_1 / Gamma_t) ** 2 * cov + (sigma_norm2 - mu_1**2) * np.eye(problem.p)


def V_population_linear(problem: RFProblem, mu_1: float, Gamma_t: float) -> Array:
    """The paper's V ~ V~ ~ (mu_1 sqrt(Delta_t) / Gamma_t) W / sqrt(d)."""
    return mu_1 * math.sqrt(problem.Delta_t) / Gamma_t * problem.W / math.sqrt(problem.d)
