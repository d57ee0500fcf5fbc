"""One setting of the RF study: compute it (Gaussian-equivalent or exact model), save it, load it back.

What is saved is the raw result (spectrum, mode weights, loss curves, the GD trace); every readout is derived from it
when the study is assembled, so a rerun with other readout levels needs no recomputation.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freqdiff.core.io import atomic_path
from freqdiff.core.registry import FreqdiffError
from freqdiff.theory.config import TheoryConfig
from freqdiff.theory.constants import ge_constants
from freqdiff.theory.dynamics import LossCurves, Modes, loss_curves, modes
from freqdiff.theory.equivalent import equivalent_modes, gram_increments
from freqdiff.theory.features import (RFProblem, Sigma_diagonal, U_V_empirical, U_V_monte_carlo, U_V_population,
                                      make_problem)
from freqdiff.theory.simulate import GDTrace, gd_step_tau, gradient_descent

Array = np.ndarray
Where = tuple[str, float, float, float, int]  # (model, psi_p, t, psi_n, draw)


@dataclass(frozen=True)
class Raw:
    """What one setting's computation produces; everything else is derived from it (and saved)."""

    n: int
    p: int
    eigenvalues: Array
    weights: Array
    curves: LossCurves
    seconds: float
    gd: GDTrace | None = None
    gd_closed_form: LossCurves | None = None


def _Sigma_t(cfg: TheoryConfig, t: float) -> Array:
    return math.exp(-2 * t) * Sigma_diagonal(cfg.d, cfg.Sigma_levels) - math.expm1(-2 * t)


def _raw_from_modes(cfg: TheoryConfig, m: Modes, n: int, t: float, start: float, **gd: Any) -> Raw:
    curves = loss_curves(cfg.tau_grid(), m, -math.expm1(-2 * t), _Sigma_t(cfg, t))
    return Raw(n=n, p=m.p, eigenvalues=m.eigenvalues, weights=m.weights, curves=curves,
               seconds=time.time() - start, **gd)


@dataclass
class EquivalentDraw:
    """One draw of the Gaussian-equivalent model: data X (largest n) and the Gram matrix of [W, Omega] per p."""

    X: Array
    grams: dict[int, Array]

    @classmethod
    def make(cls, cfg: TheoryConfig, draw: int) -> "EquivalentDraw":
        rng = np.random.default_rng(cfg.seed + draw)
        n_max = max(round(psi_n * cfg.d) for _, _, psi_n in cfg.grid("equivalent"))
        X = rng.standard_normal((n_max, cfg.d)) * np.sqrt(Sigma_diagonal(cfg.d, cfg.Sigma_levels))
        return cls(X=X, grams=gram_increments(cfg.d + n_max, [round(a * cfg.d) for a in cfg.psi_p], rng))


def run_equivalent(cfg: TheoryConfig, psi_p: float, t: float, psi_n: float, sample: EquivalentDraw) -> Raw:
    """One setting of the Gaussian-equivalent model: the leading (d + n) block of the draw's Gram matrix."""
    start = time.time()
    d, n, p = cfg.d, round(psi_n * cfg.d), round(psi_p * cfg.d)
    c = ge_constants(t, float(np.mean(cfg.Sigma_levels)), cfg.sigma)
    H = sample.grams[p][:d + n, :d + n]
    m = equivalent_modes(H, sample.X[:n], Sigma_diagonal(d, cfg.Sigma_levels), c, p)
    return _raw_from_modes(cfg, m, n, t, start)


def run_exact(cfg: TheoryConfig, psi_p: float, t: float, psi_n: float, draw: int,
              population: dict[tuple[float, float, int], tuple[Array, Array]]) -> Raw:
    """One setting of the exact model; U~, V~ (which depend only on W and t) are cached in `population`."""
    start = time.time()
    problem = make_problem(cfg.d, psi_p, psi_n, t, cfg.seed + draw, cfg.Sigma_levels, cfg.sigma)
    if (psi_p, t, draw) not in population:
        population[(psi_p, t, draw)] = U_V_population(problem)
    U_pop, V_pop = population[(psi_p, t, draw)]
    U, V = U_V_monte_carlo(problem, cfg.noise_draws, cfg.seed + 2) if cfg.noise_draws else U_V_empirical(problem)
    m = modes(U, V, U_pop, V_pop)
    extra: dict[str, Any] = {}
    if cfg.gd and draw == 0 and (psi_p, t, psi_n) == (cfg.exact_psi_p[0], cfg.gd_t, cfg.gd_psi_n):
        extra = _gradient_descent(cfg, problem, (U, V, U_pop, V_pop), m)
    return _raw_from_modes(cfg, m, problem.n, t, start, **extra)


def _gradient_descent(cfg: TheoryConfig, problem: RFProblem, matrices: tuple[Array, ...], m: Modes) -> dict[str, Any]:
    step = gd_step_tau(m.eigenvalues, problem.Delta_t, problem.psi_p, cfg.gd_step)
    steps = max(1, int(round(cfg.gd_tau_end / step)))
    gd = gradient_descent(problem, *matrices, step, steps, cfg.gd_checkpoints, cfg.seed + 1)
    return {"gd": gd, "gd_closed_form": loss_curves(gd.tau, m, problem.Delta_t, problem.Sigma_t())}


def setting_path(out: Path, where: Where) -> Path:
    model, psi_p, t, psi_n, draw = where
    return out / "settings" / f"{model}_psi_p{psi_p:g}_t{t:g}_psi_n{psi_n:g}_draw{draw}.npz"


def save_raw(path: Path, key: dict[str, Any], raw: Raw) -> None:
    """Write one setting's raw results atomically."""
    arrays: dict[str, Any] = {"key": json.dumps(key), "n": raw.n, "p": raw.p, "seconds": raw.seconds,
                              "eigenvalues": raw.eigenvalues, "weights": raw.weights}
    arrays.update({f"curve_{k}": v for k, v in dataclasses.asdict(raw.curves).items()})
    if raw.gd is not None and raw.gd_closed_form is not None:
        arrays.update({f"gd_{k}": v for k, v in dataclasses.asdict(raw.gd).items()})
        arrays.update({f"gdcf_{k}": v for k, v in dataclasses.asdict(raw.gd_closed_form).items()})
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def load_raw(cfg: TheoryConfig, path: Path, key: dict[str, Any]) -> Raw | None:
    """The saved setting if it matches `key`; None if absent (or stale with --overwrite true); else an error."""
    if not path.exists():
        return None
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    if json.loads(str(data["key"])) != key:
        if cfg.overwrite:
            return None
        raise FreqdiffError(f"theory: {path} was made with other parameters; pass --overwrite true or another --out")

    def pick(prefix: str, cls: type) -> Any:
        names = [f.name for f in dataclasses.fields(cls)]
        if f"{prefix}{names[0]}" not in data:
            return None
        return cls(**{k: (float(data[prefix + k]) if data[prefix + k].ndim == 0 else data[prefix + k]) for k in names})

    return Raw(n=int(data["n"]), p=int(data["p"]), eigenvalues=data["eigenvalues"], weights=data["weights"],
               curves=pick("curve_", LossCurves), seconds=float(data["seconds"]), gd=pick("gd_", GDTrace),
               gd_closed_form=pick("gdcf_", LossCurves))
