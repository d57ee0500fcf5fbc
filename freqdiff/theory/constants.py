"""Gaussian-equivalence constants of the RF model (paper sec. 4), by Gauss-Hermite quadrature.

With u, v, w iid N(0, 1), sigma_x^2 = Tr Sigma / d and Gamma_t^2 = e^{-2t} sigma_x^2 + Delta_t, a
feature sigma(w.x_t / sqrt d) of a training point splits into a linear data part (a_t), a
nonlinear data part (v_t), a linear noise part (b_t) and a nonlinear noise part (s_t).
By Stein's lemma a_t = E[sigma'(Gamma_t u)], b_t = sqrt(Delta_t) a_t and mu_1 = Gamma_t a_t.
[paper!=code] the public script (Theory/src/plot_spectrum_U.py) squares Tr Sigma / d where the paper has
sigma_x^2 = Tr Sigma / d; both agree for Sigma = I. freqdiff follows the paper.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy.special import roots_hermitenorm

from freqdiff.core.registry import check_choice

Array = np.ndarray


def _tanh_prime(x: Array) -> Array:
    return 1.0 / np.cosh(x) ** 2


# sigma and sigma' by name; the paper uses tanh.
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "tanh": (np.tanh, _tanh_prime),
}


def activation(name: str) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """(sigma, sigma') of the named activation."""
    check_choice(name, tuple(ACTIVATIONS), "theory.sigma")
    return ACTIVATIONS[name]


@lru_cache(maxsize=8)
def gauss_hermite(nodes: int) -> tuple[Array, Array]:
    """Nodes z_i and weights w_i with sum_i w_i f(z_i) ~ E[f(z)], z ~ N(0, 1)."""
    z, w = roots_hermitenorm(nodes)
    return z, w / math.sqrt(2 * math.pi)


QUAD_NODES = 80  # Gauss-Hermite nodes per axis for the constants


def Delta_t(t: float) -> float:
    """Delta_t = 1 - e^{-2t}: the noise variance of the OU process at time t."""
    return -math.expm1(-2.0 * t)


def Gamma_t(t: float, sigma_x2: float) -> float:
    """Gamma_t = sqrt(e^{-2t} sigma_x^2 + Delta_t): the standard deviation of a pre-activation."""
    return math.sqrt(math.exp(-2.0 * t) * sigma_x2 + Delta_t(t))


def _signal(t: float, sigma_x2: float) -> float:
    """e^{-t} sigma_x: the data part of a pre-activation's standard deviation."""
    return math.exp(-t) * math.sqrt(sigma_x2)


def _grid(t: float, sigma_x2: float, sigma: Callable[[Array], Array]) -> tuple[Array, Array, Array]:
    """sigma(e^{-t} sigma_x u + sqrt(Delta_t) v) on the 2-d quadrature grid, with u, v and the weights."""
    z, w = gauss_hermite(QUAD_NODES)
    u, v = z[:, None], z[None, :]
    return sigma(_signal(t, sigma_x2) * u + math.sqrt(Delta_t(t)) * v), u, w[:, None] * w[None, :]


def a_t(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> float:
    """a_t = E[u sigma(e^{-t} sigma_x u + sqrt(Delta_t) v)] / (e^{-t} sigma_x)."""
    values, u, weights = _grid(t, sigma_x2, activation(sigma)[0])
    return float((weights * values * u).sum() / _signal(t, sigma_x2))


def b_t(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> float:
    """b_t = E[v sigma(e^{-t} sigma_x u + sqrt(Delta_t) v)]."""
    values, u, weights = _grid(t, sigma_x2, activation(sigma)[0])
    return float((weights * values * u.T).sum())


def v_t(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> float:
    """v_t = sqrt(E_u[E_v[sigma(e^{-t} sigma_x u + sqrt(Delta_t) v)]^2] - a_t^2 e^{-2t} sigma_x^2)."""
    values, _, weights = _grid(t, sigma_x2, activation(sigma)[0])
    _, w = gauss_hermite(QUAD_NODES)
    mean_over_v = values @ w
    v2 = float(w @ mean_over_v**2) - (a_t(t, sigma_x2, sigma) * _signal(t, sigma_x2)) ** 2
    return math.sqrt(max(v2, 0.0))


def sigma_norm2(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> float:
    """||sigma||^2 = E[sigma(Gamma_t u)^2]."""
    z, w = gauss_hermite(QUAD_NODES)
    return float(w @ activation(sigma)[0](Gamma_t(t, sigma_x2) * z) ** 2)


def mu_1(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> float:
    """mu_1 = E[u sigma(Gamma_t u)]."""
    z, w = gauss_hermite(QUAD_NODES)
    return float(w @ (z * activation(sigma)[0](Gamma_t(t, sigma_x2) * z)))


def s_t(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> float:
    """s_t = sqrt(||sigma||^2 - a_t^2 e^{-2t} sigma_x^2 - v_t^2 - b_t^2)."""
    s2 = (sigma_norm2(t, sigma_x2, sigma) - (a_t(t, sigma_x2, sigma) * _signal(t, sigma_x2)) ** 2
          - v_t(t, sigma_x2, sigma) ** 2 - b_t(t, sigma_x2, sigma) ** 2)
    return math.sqrt(max(s2, 0.0))


@dataclass(frozen=True)
class GEConstants:
    """The Gaussian-equivalence constants at one diffusion time t (v_t, s_t are the square roots)."""

    t: float
    sigma_x2: float
    Delta_t: float
    Gamma_t: float
    a_t: float
    b_t: float
    v_t: float
    s_t: float
    mu_1: float
    sigma_norm2: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def ge_constants(t: float, sigma_x2: float = 1.0, sigma: str = "tanh") -> GEConstants:
    """All Gaussian-equivalence constants at time t for data with Tr Sigma / d = sigma_x2."""
    return GEConstants(t=t, sigma_x2=sigma_x2, Delta_t=Delta_t(t), Gamma_t=Gamma_t(t, sigma_x2),
                       a_t=a_t(t, sigma_x2, sigma), b_t=b_t(t, sigma_x2, sigma), v_t=v_t(t, sigma_x2, sigma),
                       s_t=s_t(t, sigma_x2, sigma), mu_1=mu_1(t, sigma_x2, sigma),
                       sigma_norm2=sigma_norm2(t, sigma_x2, sigma))
