"""The settings of the RF study (TheoryConfig): every flag of `freqdiff theory`, its range and its help line,
the (psi_p, t, psi_n) grid of each model and the key a saved setting must match.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from freqdiff.core.registry import FreqdiffError, check_choice, param
from freqdiff.theory.constants import ACTIVATIONS

Array = np.ndarray

MODELS = ("equivalent", "exact")
MIN_RATIO = 2.0  # settings with psi_p / psi_n below this are skipped (the theorem needs psi_p > psi_n)


def option(default: Any, help: str, **bounds: float) -> Any:
    """A TheoryConfig field: its default, its valid range (registry.param) and the line `--help` prints."""
    return field(default=default, metadata={**param(default, **bounds).metadata, "help": help})


@dataclass
class TheoryConfig:
    """Every setting of the RF study; `freqdiff theory --name value` sets them (lists comma-separated)."""

    d: int = option(32, "data dimension (p = psi_p d features, n = psi_n d points)", ge=2)
    psi_p: tuple[float, ...] = option((64.0, 256.0, 1024.0, 4096.0), "Gaussian-equivalent model: psi_p = p/d", gt=1)
    psi_n: tuple[float, ...] = option((2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
                                      "psi_n = n/d; pairs with psi_p/psi_n < 2 are skipped", gt=1)
    t: tuple[float, ...] = option((0.01, 0.1, 0.3, 1.0), "diffusion times", gt=0)
    draws: int = option(5, "independent draws of W, X, Omega (Gaussian-equivalent model)", ge=1)
    gap_level: tuple[float, ...] = option((2.0, 0.5, 0.3, 0.02),
                                          "the gap readout's absolute level of L_test - L_train, one per t or one",
                                          gt=0)
    exact_psi_p: tuple[float, ...] = option((64.0,), "exact model (O(p^3) per setting): psi_p values, empty: none",
                                            gt=1)
    exact_psi_n: tuple[float, ...] = option((2.0, 4.0, 8.0, 16.0, 32.0), "exact model: psi_n values", gt=1)
    exact_t: tuple[float, ...] = option((0.01, 0.1), "exact model: diffusion times, each one of --t", gt=0)
    exact_draws: int = option(3, "exact model: independent draws of W and X (0: none)", ge=0)
    Sigma_levels: tuple[float, ...] = option((1.0,), "eigenvalues of the diagonal data covariance, equal blocks", gt=0)
    sigma: str = option("tanh", "activation")
    seed: int = option(0, "draw k uses seed + k")
    noise_draws: int = option(0, "exact model: 0 = noise expectation done exactly, > 0 = Monte Carlo draws", ge=0)
    tau_min: float = option(1e-2, "first tau of the log grid", gt=0)
    tau_max: float = option(1e10, "last tau of the grid (stands for tau -> infinity)", gt=0)
    tau_points: int = option(301, "points of the log grid of tau", ge=10)
    gd: bool = option(True, "gradient descent at (exact_psi_p[0], gd_t, gd_psi_n), first draw")
    gd_t: float = option(0.1, "GD check: t")
    gd_psi_n: float = option(4.0, "GD check: psi_n")
    gd_step: float = option(0.5, "GD step in tau, in units of 1/(c lambda_max) (2: stability limit)", gt=0, lt=2)
    gd_tau_end: float = option(3000.0, "GD check: last tau", gt=0)
    gd_checkpoints: int = option(40, "GD check: log-spaced checkpoints", ge=2)
    threads: int = option(1, "BLAS threads (1 is fastest on a shared 2-core machine)", ge=1)
    out: str = option("results/random_features", "output folder")
    overwrite: bool = option(False, "replace saved settings made with other parameters")

    def validate(self) -> None:
        check_choice(self.sigma, tuple(ACTIVATIONS), "theory.sigma")
        if not self.psi_p or not self.psi_n or not self.t:
            raise FreqdiffError("theory: --psi_p, --psi_n and --t need at least one value each")
        if self.tau_max <= self.tau_min:
            raise FreqdiffError(f"theory: need tau_min < tau_max, got {self.tau_min:g} >= {self.tau_max:g}")
        if len(self.gap_level) not in (1, len(self.t)):
            raise FreqdiffError(f"theory.gap_level: give one level or one per t ({len(self.t)}), got {self.gap_level}")
        if self.exact and not set(self.exact_t) <= set(self.t):
            raise FreqdiffError(f"theory.exact_t: each must be one of --t {self.t}, got {self.exact_t}")
        if self.exact and self.gd and (self.gd_t not in self.exact_t or self.gd_psi_n not in self.exact_psi_n):
            raise FreqdiffError(f"theory: the GD setting (gd_t={self.gd_t:g}, gd_psi_n={self.gd_psi_n:g}) must be one "
                                f"of --exact_t {self.exact_t} and --exact_psi_n {self.exact_psi_n}")
        if not self.grid("equivalent"):
            raise FreqdiffError(f"theory: no (psi_p, psi_n) with psi_p / psi_n >= {MIN_RATIO:g}")

    @property
    def exact(self) -> bool:
        return bool(self.exact_psi_p) and self.exact_draws > 0

    def level(self, t: float) -> float:
        """The gap readout's absolute level of L_test - L_train at time t."""
        return self.gap_level[0] if len(self.gap_level) == 1 else self.gap_level[self.t.index(t)]

    def tau_grid(self) -> Array:
        return np.geomspace(self.tau_min, self.tau_max, self.tau_points)

    def grid(self, model: str) -> list[tuple[float, float, float]]:
        """Every (psi_p, t, psi_n) of one model with psi_p / psi_n >= MIN_RATIO."""
        psi_p, t, psi_n = ((self.psi_p, self.t, self.psi_n) if model == "equivalent"
                           else (self.exact_psi_p, self.exact_t, self.exact_psi_n))
        return [(a, b, c) for a in psi_p for b in t for c in psi_n if a / c >= MIN_RATIO]

    def draw_count(self, model: str) -> int:
        return self.draws if model == "equivalent" else (self.exact_draws if self.exact else 0)

    def setting_key(self, model: str, psi_p: float, t: float, psi_n: float, draw: int) -> dict[str, Any]:
        """Every parameter one setting's numbers depend on (what a saved setting must match)."""
        keep = ["d", "Sigma_levels", "sigma", "seed", "tau_min", "tau_max", "tau_points"]
        key: dict[str, Any] = {k: getattr(self, k) for k in keep}
        key.update(model=model, psi_p=psi_p, t=t, psi_n=psi_n, draw=draw)
        if model == "equivalent":  # the Gram matrices are nested across psi_p and sized for the largest n
            key.update(all_psi_p=self.psi_p, all_psi_n=self.psi_n)
        else:
            key.update(noise_draws=self.noise_draws)
            if self.gd and draw == 0 and (psi_p, t, psi_n) == (self.exact_psi_p[0], self.gd_t, self.gd_psi_n):
                key.update({k: getattr(self, k) for k in ("gd_step", "gd_tau_end", "gd_checkpoints")})
        return json.loads(json.dumps(key))
