"""The RF-model study behind `freqdiff theory` and recipes/random_features.py.

Two models, each over (psi_p, t, psi_n) and several independent draws of W and the data:
  equivalent  the Gaussian-equivalent model Theorem 3.2 describes, solved in n + d dimensions (equivalent.py), so
              psi_p in the hundreds or thousands costs what psi_p = 2 costs: the theorem's regime psi_p >> psi_n >> 1;
  exact       the RF model itself, noise expectation done exactly (Mehler), O(p^3) per setting: modest psi_p only.
For each setting: the closed-form losses on a log grid of tau, the spectrum (compute.py), and the readouts
(readouts.py); at one exact setting also gradient descent. Each setting is saved under OUT/settings/ as soon as it is
done, so an interrupted study resumes; a saved setting made with other parameters is an error unless --overwrite true.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from freqdiff.io import write_csv, write_json, write_text
from freqdiff.registry import FreqdiffError, check_choice, param
from freqdiff.theory import report, spectrum, tables
from freqdiff.theory.compute import (EquivalentDraw, Raw, Where, load_raw, run_equivalent, run_exact, save_raw,
                                     setting_path)
from freqdiff.theory.constants import ACTIVATIONS, GEConstants, ge_constants
from freqdiff.theory.dynamics import LossCurves
from freqdiff.theory.readouts import Readouts, read_all
from freqdiff.theory.simulate import GDTrace

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


@dataclass
class Setting:
    """Everything computed at one (model, psi_p, t, psi_n, draw)."""

    model: str
    psi_p: float
    t: float
    psi_n: float
    draw: int
    d: int
    n: int
    p: int
    eigenvalues: Array  # U's eigenvalues (equivalent model: the n + d above s_t^2; the rest carry no weight)
    weights: Array  # |V^T q_k|^2 per mode
    curves: LossCurves
    readouts: Readouts
    predicted: spectrum.BulkEdges
    numerical: spectrum.BulkEdges
    tau_predicted: spectrum.Timescales
    seconds: float
    gd: GDTrace | None = None
    gd_closed_form: LossCurves | None = None

    def summary(self) -> dict[str, Any]:
        """The numbers of this setting as JSON values."""
        out = {"model": self.model, "psi_p": self.psi_p, "t": self.t, "psi_n": self.psi_n, "draw": self.draw,
               "d": self.d, "n": self.n, "p": self.p, "seconds": round(self.seconds, 2),
               "readouts": self.readouts.to_dict(), "tau_predicted": dataclasses.asdict(self.tau_predicted),
               "edges_predicted": self.predicted.to_dict(), "edges_numerical": self.numerical.to_dict(),
               "train_drop_share": spectrum.group_shares(self.eigenvalues, self.weights, self.n, self.d)}
        if self.gd is not None and self.gd_closed_form is not None:
            out["gd"] = gd_agreement(self.gd, self.gd_closed_form)
        return out


def gd_agreement(gd: GDTrace, closed: LossCurves) -> dict[str, float]:
    """Largest gaps between GD and the closed form over the checkpoints (tau > 0), in percent.

    Losses: relative to the closed form. E_score: relative to E_score(0) (it passes near 0, where a relative gap
    means little).
    """
    def worst(a: Array, b: Array, scale: Array | float) -> float:
        return float(100 * np.max(np.abs(a[1:] - b[1:]) / np.abs(scale)))

    return {"step_tau": gd.step_tau, "steps": int(round(gd.tau[-1] / gd.step_tau)), "tau_end": float(gd.tau[-1]),
            "L_train_max_rel_pct": worst(gd.L_train, closed.L_train, closed.L_train[1:]),
            "L_test_max_rel_pct": worst(gd.L_test, closed.L_test, closed.L_test[1:]),
            "E_score_max_gap_pct_of_initial": worst(gd.E_score, closed.E_score, closed.E_score[0])}


def make_setting(cfg: TheoryConfig, where: Where, raw: Raw) -> Setting:
    """A Setting from its raw results: predicted and numerical edges, predicted timescales, readouts."""
    model, psi_p, t, psi_n, draw = where
    c = ge_constants(t, float(np.mean(cfg.Sigma_levels)), cfg.sigma)
    predicted = spectrum.predicted_edges(c, psi_p, psi_n)
    return Setting(model=model, psi_p=psi_p, t=t, psi_n=psi_n, draw=draw, d=cfg.d, n=raw.n, p=raw.p,
                   eigenvalues=raw.eigenvalues, weights=raw.weights, curves=raw.curves,
                   readouts=read_all(raw.curves, raw.eigenvalues, raw.n, cfg.d, raw.p, c.Delta_t, cfg.level(t)),
                   predicted=predicted, numerical=spectrum.numerical_edges(raw.eigenvalues, raw.n, cfg.d),
                   tau_predicted=spectrum.predicted_timescales(c, predicted, psi_p, psi_n), seconds=raw.seconds,
                   gd=raw.gd, gd_closed_form=raw.gd_closed_form)


@dataclass
class StudyResult:
    """All settings of a study with the constants per t."""

    config: TheoryConfig
    settings: list[Setting]
    constants: dict[float, GEConstants] = field(default_factory=dict)
    seconds: float = 0.0

    def select(self, model: str, psi_p: float | None = None, t: float | None = None,
               draw: int | None = None) -> list[Setting]:
        """Settings of one model, optionally of one psi_p, t and draw, sorted by (psi_p, t, draw, psi_n)."""
        chosen = [s for s in self.settings if s.model == model and psi_p in (None, s.psi_p) and t in (None, s.t)
                  and draw in (None, s.draw)]
        return sorted(chosen, key=lambda s: (s.psi_p, s.t, s.draw, s.psi_n))


def run_model(cfg: TheoryConfig, model: str, log: Callable[[str], object]) -> list[Setting]:
    """Every setting of one model over its draws, computed or loaded."""
    out, settings = Path(cfg.out), []
    population: dict[tuple[float, float, int], tuple[Array, Array]] = {}
    for draw in range(cfg.draw_count(model)):
        sample: EquivalentDraw | None = None
        for psi_p, t, psi_n in cfg.grid(model):
            where = (model, psi_p, t, psi_n, draw)
            key, path = cfg.setting_key(*where), setting_path(out, where)
            raw = load_raw(cfg, path, key)
            if raw is None:
                if model == "equivalent":
                    sample = sample or EquivalentDraw.make(cfg, draw)
                    raw = run_equivalent(cfg, psi_p, t, psi_n, sample)
                else:
                    raw = run_exact(cfg, psi_p, t, psi_n, draw, population)
                save_raw(path, key, raw)
                log(f"theory: {model} psi_p={psi_p:g} t={t:g} psi_n={psi_n:g} draw {draw}: {raw.seconds:.1f} s")
            settings.append(make_setting(cfg, where, raw))
        population.clear()
    return settings


def run_study(cfg: TheoryConfig, log: Callable[[str], object] = print) -> StudyResult:
    """Run (or resume) every setting, then write summary.json, summary.csv, the figures and report.md."""
    from freqdiff.theory import plots  # matplotlib is imported only when figures are written

    cfg.validate()
    start = time.time()
    with threadpool_limits(limits=cfg.threads, user_api="blas"):
        settings = [s for model in MODELS for s in run_model(cfg, model, log)]
    sigma_x2 = float(np.mean(cfg.Sigma_levels))
    result = StudyResult(config=cfg, settings=settings,
                         constants={t: ge_constants(t, sigma_x2, cfg.sigma) for t in cfg.t})
    analysis = tables.analyze(result)
    result.seconds = time.time() - start
    out = Path(cfg.out)
    write_json(out / "config.json", dataclasses.asdict(cfg))
    write_json(out / "summary.json", {"constants": {f"t={t:g}": c.to_dict() for t, c in result.constants.items()},
                                      "slopes": analysis.slopes_json(),
                                      "gd": [s.summary() for s in settings if s.gd is not None],
                                      "compute_seconds": round(sum(s.seconds for s in settings), 1),
                                      "seconds_this_run": round(result.seconds, 1)})
    write_csv(out / "summary.csv", tables.csv_rows(result), tables.CSV_COLUMNS)
    plots.write_figures(result, analysis, out)
    write_text(out / "report.md", report.markdown(result, analysis))
    return result
