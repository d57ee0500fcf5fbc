"""The RF-model study behind `freqdiff theory` and recipes/random_features.py (the paper's Fig. 4 and 5).

For every (t, psi_n): draw W and X, build U, V, U~, V~, diagonalize U, evaluate the closed-form losses on a
log grid of tau, read the bulk edges and the timescales; at one setting also run gradient descent. Each
setting is saved under OUT/settings/ as soon as it is done, so an interrupted study resumes where it stopped;
a saved setting made with other parameters is an error unless --overwrite true.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from freqdiff.analysis.statistics import PowerLaw, fit_power_law
from freqdiff.io import atomic_path, write_csv, write_json, write_text
from freqdiff.registry import FreqdiffError, check_choice
from freqdiff.theory import report, spectrum
from freqdiff.theory.constants import ACTIVATIONS, GEConstants, ge_constants
from freqdiff.theory.dynamics import LossCurves, loss_curves, modes
from freqdiff.theory.features import RFProblem, U_V_empirical, U_V_monte_carlo, U_V_population, make_problem
from freqdiff.theory.simulate import GDTrace, gd_step_tau, gradient_descent

Array = np.ndarray


@dataclass
class TheoryConfig:
    """Every setting of the RF study; `freqdiff theory --name value` sets them (lists comma-separated)."""

    d: int = 100
    psi_p: float = 64.0  # p = psi_p d random features
    psi_n: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)  # n = psi_n d training points
    t: tuple[float, ...] = (0.01, 0.1)  # diffusion times
    Sigma_levels: tuple[float, ...] = (1.0,)  # eigenvalues of the diagonal data covariance, in equal blocks
    sigma: str = "tanh"
    seed: int = 0  # draws W and X (X nested across psi_n); GD noise uses seed + 1
    noise_draws: int = 0  # 0: noise expectation in U, V done exactly; > 0: Monte Carlo with this many draws
    tau_min: float = 1e-2
    tau_max: float = 1e8
    tau_points: int = 241
    gd: bool = True  # run gradient descent at (gd_t, gd_psi_n), one of the settings
    gd_t: float = 0.1
    gd_psi_n: float = 4.0
    gd_step: float = 0.5  # GD step in tau, in units of 1 / (c lambda_max) (2 is the stability limit)
    gd_tau_end: float = 3000.0
    gd_checkpoints: int = 40
    out: str = "results/random_features"
    overwrite: bool = False

    def validate(self) -> None:
        check_choice(self.sigma, tuple(ACTIVATIONS), "theory.sigma")
        if not self.psi_n or not self.t:
            raise FreqdiffError("theory: --psi_n and --t need at least one value each")
        if min(self.psi_n) <= 1:
            raise FreqdiffError(f"theory.psi_n: need psi_n > 1 (n > d) to count the bulks, got {self.psi_n}")
        if min(self.t) <= 0 or self.tau_min <= 0 or self.tau_max <= self.tau_min or self.tau_points < 10:
            raise FreqdiffError("theory: need t > 0, 0 < tau_min < tau_max and tau_points >= 10")
        if self.gd and (self.gd_t not in self.t or self.gd_psi_n not in self.psi_n):
            raise FreqdiffError(f"theory: the GD setting (gd_t={self.gd_t}, gd_psi_n={self.gd_psi_n}) "
                                f"must be one of --t {self.t} and --psi_n {self.psi_n}")
        if self.gd and not 0 < self.gd_step < 2:
            raise FreqdiffError(f"theory.gd_step: need 0 < gd_step < 2 (stability), got {self.gd_step}")

    def tau_grid(self) -> Array:
        return np.geomspace(self.tau_min, self.tau_max, self.tau_points)

    def setting_key(self, t: float, psi_n: float) -> dict[str, Any]:
        """Every parameter one setting's numbers depend on (what a saved setting must match)."""
        keep = ("d", "psi_p", "Sigma_levels", "sigma", "seed", "noise_draws", "tau_min", "tau_max", "tau_points")
        key: dict[str, Any] = {k: getattr(self, k) for k in keep}
        key.update(t=t, psi_n=psi_n)
        if self.gd and (t, psi_n) == (self.gd_t, self.gd_psi_n):
            key.update({k: getattr(self, k) for k in ("gd_step", "gd_tau_end", "gd_checkpoints")})
        return json.loads(json.dumps(key))


@dataclass
class Setting:
    """Everything measured at one (t, psi_n)."""

    t: float
    psi_n: float
    d: int
    n: int
    eigenvalues: Array
    weights: Array  # |V^T q_k|^2 per mode of U
    curves: LossCurves
    predicted: spectrum.BulkEdges
    numerical: spectrum.BulkEdges
    tau_predicted: spectrum.Timescales
    tau_measured: spectrum.Timescales
    seconds: float
    gd: GDTrace | None = None
    gd_closed_form: LossCurves | None = None

    def summary(self) -> dict[str, Any]:
        """The numbers of this setting as JSON values."""
        i = int(np.argmin(self.curves.L_test))
        out = {"t": self.t, "psi_n": self.psi_n, "d": self.d, "n": self.n, "seconds": round(self.seconds, 1),
               "edges_predicted": self.predicted.to_dict(), "edges_numerical": self.numerical.to_dict(),
               "tau_predicted": dataclasses.asdict(self.tau_predicted),
               "tau_measured": dataclasses.asdict(self.tau_measured),
               "tau_L_test_min": float(self.curves.tau[i]), "L_test_min": float(self.curves.L_test[i]),
               "E_score_min": float(self.curves.E_score.min()),
               "train_drop_share": spectrum.group_shares(self.eigenvalues, self.weights, self.n, self.d),
               "final": {k: float(getattr(self.curves, k)[-1]) for k in ("L_train", "L_test", "L_gen", "E_score")}}
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


def _matrices(cfg: TheoryConfig, problem: RFProblem) -> tuple[Array, Array]:
    """U and V, exactly or by Monte Carlo over the noise."""
    if cfg.noise_draws > 0:
        return U_V_monte_carlo(problem, cfg.noise_draws, cfg.seed + 2)
    return U_V_empirical(problem)


def make_setting(cfg: TheoryConfig, t: float, psi_n: float, d: int, n: int, eigenvalues: Array, weights: Array,
                 curves: LossCurves, seconds: float, gd: GDTrace | None = None,
                 gd_closed_form: LossCurves | None = None) -> Setting:
    """A Setting from its raw results, with the predicted and numerical edges and both sets of timescales."""
    psi_p, ratio_n = len(eigenvalues) / d, n / d
    c = ge_constants(t, float(np.mean(cfg.Sigma_levels)), cfg.sigma)
    predicted = spectrum.predicted_edges(c, psi_p, ratio_n)
    return Setting(t=t, psi_n=psi_n, d=d, n=n, eigenvalues=eigenvalues, weights=weights, curves=curves,
                   predicted=predicted, numerical=spectrum.numerical_edges(eigenvalues, n, d),
                   tau_predicted=spectrum.predicted_timescales(predicted, c.Delta_t, psi_p),
                   tau_measured=spectrum.measured_timescales(curves), seconds=seconds,
                   gd=gd, gd_closed_form=gd_closed_form)


def run_setting(cfg: TheoryConfig, t: float, psi_n: float, population: dict[float, tuple[Array, Array]]) -> Setting:
    """Compute one (t, psi_n); U~, V~ (which depend only on W and t) are cached in `population`."""
    start = time.time()
    problem = make_problem(cfg.d, cfg.psi_p, psi_n, t, cfg.seed, cfg.Sigma_levels, cfg.sigma)
    if t not in population:
        population[t] = U_V_population(problem)
    U_pop, V_pop = population[t]
    U, V = _matrices(cfg, problem)
    m = modes(U, V, U_pop, V_pop)
    curves = loss_curves(cfg.tau_grid(), m, problem.Delta_t, problem.Sigma_t())
    gd = gd_closed_form = None
    if cfg.gd and (t, psi_n) == (cfg.gd_t, cfg.gd_psi_n):
        step = gd_step_tau(m.eigenvalues, problem.Delta_t, problem.psi_p, cfg.gd_step)
        steps = max(1, int(round(cfg.gd_tau_end / step)))
        gd = gradient_descent(problem, U, V, U_pop, V_pop, step, steps, cfg.gd_checkpoints, cfg.seed + 1)
        gd_closed_form = loss_curves(gd.tau, m, problem.Delta_t, problem.Sigma_t())
    return make_setting(cfg, t, psi_n, problem.d, problem.n, m.eigenvalues, m.weights, curves,
                        time.time() - start, gd, gd_closed_form)


def _setting_path(out: Path, t: float, psi_n: float) -> Path:
    return out / "settings" / f"t{t:g}_psi_n{psi_n:g}.npz"


def save_setting(path: Path, key: dict[str, Any], s: Setting) -> None:
    """Write one setting's raw results (everything else is derived from them) atomically."""
    arrays: dict[str, Any] = {"key": json.dumps(key), "d": s.d, "n": s.n, "seconds": s.seconds,
                              "eigenvalues": s.eigenvalues, "weights": s.weights}
    arrays.update({f"curve_{k}": v for k, v in dataclasses.asdict(s.curves).items()})
    if s.gd is not None and s.gd_closed_form is not None:
        arrays.update({f"gd_{k}": v for k, v in dataclasses.asdict(s.gd).items()})
        arrays.update({f"gdcf_{k}": v for k, v in dataclasses.asdict(s.gd_closed_form).items()})
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def load_setting(cfg: TheoryConfig, t: float, psi_n: float, path: Path) -> Setting | None:
    """The saved setting if it matches this config; None if absent (or stale with --overwrite true); else an error."""
    if not path.exists():
        return None
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    if json.loads(str(data["key"])) != cfg.setting_key(t, psi_n):
        if cfg.overwrite:
            return None
        raise FreqdiffError(f"theory: {path} was made with other parameters; pass --overwrite true or another --out")

    def pick(prefix: str, cls: type) -> Any:
        names = [f.name for f in dataclasses.fields(cls)]
        if f"{prefix}{names[0]}" not in data:
            return None
        return cls(**{k: (float(data[prefix + k]) if data[prefix + k].ndim == 0 else data[prefix + k]) for k in names})

    return make_setting(cfg, t, psi_n, int(data["d"]), int(data["n"]), data["eigenvalues"], data["weights"],
                        pick("curve_", LossCurves), float(data["seconds"]), pick("gd_", GDTrace),
                        pick("gdcf_", LossCurves))


def fit(psi_n: list[float], tau: list[float | None]) -> PowerLaw | None:
    """log-log slope of tau against psi_n with its 95% t-interval; None with fewer than 2 usable points."""
    points = [(x, y) for x, y in zip(psi_n, tau) if y is not None and y > 0]
    if len({x for x, _ in points}) < 2:
        return None
    return fit_power_law([x for x, _ in points], [y for _, y in points])


@dataclass
class StudyResult:
    """All settings of a study, with the constants per t and the tau_mem fits."""

    config: TheoryConfig
    settings: list[Setting]
    constants: dict[float, GEConstants] = field(default_factory=dict)
    fits: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def at(self, t: float) -> list[Setting]:
        return sorted((s for s in self.settings if s.t == t), key=lambda s: s.psi_n)


def fits_per_t(result: StudyResult) -> dict[str, Any]:
    """Slopes of log tau against log psi_n, per t: tau_mem and tau_x, measured and predicted."""
    out: dict[str, Any] = {}
    for t in result.config.t:
        rows = result.at(t)
        psi = [s.psi_n for s in rows]
        entry = {}
        for name, values in (("tau_mem_measured", [s.tau_measured.tau_mem for s in rows]),
                             ("tau_mem_predicted", [s.tau_predicted.tau_mem for s in rows]),
                             ("tau_x_measured", [s.tau_measured.tau_x for s in rows]),
                             ("tau_x_predicted", [s.tau_predicted.tau_x for s in rows])):
            law = fit(psi, values)
            entry[name] = None if law is None else {"slope": law.slope, "intercept": law.intercept,
                                                    "interval": law.interval}
        out[f"t={t:g}"] = entry
    return out


def run_study(cfg: TheoryConfig, log: Callable[[str], object] = print) -> StudyResult:
    """Run (or resume) every setting, then write summary.json, summary.csv, the figures and report.md."""
    from freqdiff.theory import plots  # matplotlib is imported only when figures are written

    cfg.validate()
    start = time.time()
    out = Path(cfg.out)
    population: dict[float, tuple[Array, Array]] = {}
    settings = []
    for t in cfg.t:
        for psi_n in cfg.psi_n:
            path = _setting_path(out, t, psi_n)
            setting = load_setting(cfg, t, psi_n, path)
            if setting is None:
                setting = run_setting(cfg, t, psi_n, population)
                save_setting(path, cfg.setting_key(t, psi_n), setting)
                log(f"theory: t={t:g} psi_n={psi_n:g} done in {setting.seconds:.0f} s")
            else:
                log(f"theory: t={t:g} psi_n={psi_n:g} loaded from {path}")
            settings.append(setting)
        population.clear()
    sigma_x2 = float(np.mean(cfg.Sigma_levels))
    result = StudyResult(config=cfg, settings=settings,
                         constants={t: ge_constants(t, sigma_x2, cfg.sigma) for t in cfg.t})
    result.fits = fits_per_t(result)
    result.seconds = time.time() - start
    write_json(out / "config.json", dataclasses.asdict(cfg))
    write_json(out / "summary.json", {"constants": {f"t={t:g}": c.to_dict() for t, c in result.constants.items()},
                                      "fits": result.fits, "settings": [s.summary() for s in settings],
                                      "compute_seconds": round(sum(s.seconds for s in settings), 1),
                                      "seconds_this_run": round(result.seconds, 1)})
    write_csv(out / "summary.csv", report.csv_rows(result), report.CSV_COLUMNS)
    plots.write_figures(result, out)
    write_text(out / "report.md", report.markdown(result))
    return result
