"""tau_gen as a fitted approach of the FD to its plateau, with a 95% interval (the paper's definition).

tau_gen is the step where the FD comes within `tol` x its sampling error of its plateau level L, read
from a curve fitted to the declining part of the FD rather than from one checkpoint.

Model: FD(s) = L + A g(s), A >= 0, with g one of two shapes of u = (s / s_c)^beta:

    Hill                    g = 1 / (1 + u)     (m = 1: a logistic in log-step)
    stretched exponential   g = exp(-u)         (m = inf: beta = 1 is an exponential in step)

Why these two: the Hill curve has a shoulder before s_c (the decline starting after a peak) and a
power-law tail A (s_c / s)^beta, the slow 'still falling slightly' end of 8 of 12 real runs; the
stretched exponential has the same shoulder but a tail that dies out, the sharp arrival at a plateau
(an exponential in step, or faster). Both are the members m = 1 and m = inf of g = (1 + u/m)^-m, both
have the same four parameters (L, A, s_c, beta), so the one with the smaller residual sum of squares
is taken, per run and per bootstrap draw. g falls monotonically, so FD - L = tol x err has one root:

    tau_gen = s_c u*^(1/beta),  u* = A / (tol err) - 1 (Hill) or ln(A / (tol err)) (stretched exp.),

and tau_gen lies before the data when A <= tol err (the whole fitted decline is within the tolerance).
The fit only admits curves that have made at least half of their decline by the last checkpoint (see
_grid): a plateau must be seen to be read. So a run whose FD falls by less than tol x err in all reads
as on its plateau throughout (left-censored), unless it still falls measurably at its last checkpoints
(still_falling): then it may be the start of a larger decline, and tau_gen is not determined.

Fit: for fixed (shape, s_c, beta) the model is linear in (L, A), so (L, A) are solved in closed form
over a grid of (shape, s_c, beta) and the best cell is refined by one parabolic step per axis
(variable projection). All bootstrap draws are fitted at once, one matrix product, so a call takes
well under 0.3 s. The fit starts at the last peak before the decline: early checkpoints may rise
before they fall, which neither shape can follow.

err: the median fid_err (a 2-sigma sampling error) over the plateau checkpoints, the last third of the
fitted ones (at least 3). With no finite fid_err there, 2 x the checkpoint-to-checkpoint noise sd
estimated from the residuals stands in; that is much smaller, so tau_gen then reads later. A refined curve
(re-measured with more samples, so a smaller error) is read with its run's own err instead (argument err):
refinement then measures the same tau_gen, not a later one.

Interval: a parametric bootstrap, N_DRAWS = 1000 draws of the fitted curve plus Gaussian AR(1) noise,
refitted. The noise sd and lag-1 correlation are estimated from the residuals (calibrated by simulation,
see calibrate_noise), not taken from fid_err: fid_err is mostly an offset shared by all checkpoints
(samples come from the same seeded noise at every checkpoint), which moves the curve and L together
and leaves tau_gen alone; what moves tau_gen is the scatter between checkpoints, which the residuals
measure. Both noise parameters come from ~16 residuals, so each draw takes its own correlation and sd
from their sampling spread (see draw_noise), as a t interval does for an estimated scale. The tolerance
tol x err is fixed across draws: it is the definition, not an estimate. The interval is the percentile
interval of tau_gen over the draws; an end before the first checkpoint is censored (None), and so is
a high end after the last; a low end after the last checkpoint reads as the last step, beyond which
nothing was measured.

Coverage is checked on synthetic curves with a known tau_gen in tests/test_fd_plateau.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from freqdiff.analysis.reading.onsets import Onset

MIN_POINTS = 5  # fewer finite FD values than this: tau_gen undefined
N_DRAWS = 1000  # bootstrap draws of the interval
N_CALIBRATE = 100  # draws per rung of RHO_LADDER that calibrate the noise model
RHO_LADDER = (0.0, 0.2, 0.4, 0.6, 0.75, 0.9)  # lag-1 correlations the noise calibration chooses among
FAMILIES = (1.0, np.inf)  # m of g = (1 + u/m)^-m: Hill, stretched exponential
SHAPE_TEXT = {1.0: "Hill approach FD(s) = L + A / (1 + (s/s_c)^beta)",
              np.inf: "stretched-exponential approach FD(s) = L + A exp(-(s/s_c)^beta)"}
N_SC, N_BETA = 48, 40  # grid of the nonlinear parameters (s_c, beta) per shape
SC_SPAN = (1 / 8, 4.0)  # s_c searched from first fitted step / 8 to last step x 4
BETA_RANGE = (0.2, 20.0)  # exponents searched: a near-linear decline in log-step up to a cliff
LATE_MAX = 0.5  # largest g allowed at the last fitted step: at least half of the decline is observed
PEAK_SHARE = 0.25  # a peak where the final descent starts stands this share of the FD's range above its lowest
TAU_MAX = 1e15  # steps; stands for 'never' (no plateau within reach) in the draws


@dataclass(frozen=True)
class PlateauFit:
    """The fitted approach: plateau level L, the error and tolerance that set tau_gen, all parameters."""

    level: float  # L, the fitted plateau of the FD
    err: float  # the FD's 2-sigma sampling error at the plateau, in the tolerance tol x err
    tol: float  # tau_gen: fitted FD - L = tol x err
    params: dict[str, float] = field(default_factory=dict)  # A, s_c, beta, m, start, sigma, rho, draws
    method: str = ""  # how err and the interval were obtained


@dataclass(frozen=True)
class _Grid:
    """The (shape, s_c, beta) grid over one run's steps: per cell the shape centered and of unit norm."""

    log_sc: np.ndarray  # (N_SC,)
    log_beta: np.ndarray  # (N_BETA,)
    unit: np.ndarray  # (len(FAMILIES) * N_SC * N_BETA, n); a zero row where g is flat over the steps


def shape(s: np.ndarray, sc: np.ndarray, beta: np.ndarray, m: np.ndarray) -> np.ndarray:
    """g = (1 + u/m)^-m with u = (s/s_c)^beta: Hill at m = 1, exp(-u) at m = inf; broadcast, overflow-safe."""
    u = np.exp(np.clip(beta * (np.log(s) - np.log(sc)), -700, 700))
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.exp(-m * np.log1p(u / np.where(np.isinf(m), 1.0, m)))
    return np.where(np.isinf(m), np.exp(-u), finite)


def _grid(s: np.ndarray) -> _Grid:
    """Unit shapes of every grid cell; a row is zero (the cell fits nothing) where g is flat over the steps
    or where less than half of the decline would have happened by the last step (g there > LATE_MAX).

    Without the second rule, a flat run would fit as well as the first percent of a large decline still
    to come, a plateau far below every checkpoint: the data cannot tell the two apart, so the fit
    requires that the checkpoints show at least half of the decline they are read from.
    """
    log_sc = np.linspace(np.log(s[0] * SC_SPAN[0]), np.log(s[-1] * SC_SPAN[1]), N_SC)
    log_beta = np.linspace(np.log(BETA_RANGE[0]), np.log(BETA_RANGE[1]), N_BETA)
    m = np.array(FAMILIES)
    g = shape(s[None, None, None, :], np.exp(log_sc)[None, :, None, None], np.exp(log_beta)[None, None, :, None],
              m[:, None, None, None]).reshape(-1, s.size)
    centered = g - g.mean(axis=1, keepdims=True)
    norm = np.sqrt((centered ** 2).sum(axis=1))
    flat = (np.ptp(g, axis=1) < 1e-3) | (g[:, -1] > LATE_MAX)
    return _Grid(log_sc, log_beta, np.where(flat[:, None], 0.0, centered / np.where(flat, 1.0, norm)[:, None]))


def _parabola_min(r0: np.ndarray, rm: np.ndarray, rp: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Offset in cells, within [-1, 1], of the minimum of the parabola through (-1, rm), (0, r0), (1, rp)."""
    curv = rm - 2 * r0 + rp
    ok = inner & (curv > 0)
    return np.clip(np.where(ok, 0.5 * (rm - rp) / np.where(ok, curv, 1.0), 0.0), -1.0, 1.0)


def fit_approach(grid: _Grid, s: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Least-squares fit of L + A g(s) to each column of y (n, B): L, A, s_c, beta, m and residuals per column.

    In a cell with unit shape w, the best (L, A >= 0) leaves RSS = |y - mean y|^2 - max(w . y, 0)^2, so
    the best cell maximizes w . y: one matrix product for all columns. Then one parabolic step per axis
    from the best cell, and (L, A) solved exactly at the refined (s_c, beta).
    """
    yc = y - y.mean(axis=0)
    proj = grid.unit @ yc  # (cells, B)
    cols = np.arange(y.shape[1])
    f, i, j = np.unravel_index(proj.argmax(axis=0), (len(FAMILIES), N_SC, N_BETA))

    def rss(ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
        """RSS up to a constant, -max(w . y, 0)^2, at cells (f, ii, jj) clipped into the grid."""
        cell = (f * N_SC + np.clip(ii, 0, N_SC - 1)) * N_BETA + np.clip(jj, 0, N_BETA - 1)
        return -np.maximum(proj[cell, cols], 0.0) ** 2

    r0 = rss(i, j)
    di = _parabola_min(r0, rss(i - 1, j), rss(i + 1, j), (i > 0) & (i < N_SC - 1))
    dj = _parabola_min(r0, rss(i, j - 1), rss(i, j + 1), (j > 0) & (j < N_BETA - 1))
    sc = np.exp(grid.log_sc[i] + di * (grid.log_sc[1] - grid.log_sc[0]))
    beta = np.exp(grid.log_beta[j] + dj * (grid.log_beta[1] - grid.log_beta[0]))
    m = np.array(FAMILIES)[f]
    g = shape(s[:, None], sc[None, :], beta[None, :], m[None, :])  # (n, B)
    gc = g - g.mean(axis=0)
    amp = np.maximum((gc * yc).sum(axis=0) / np.maximum((gc ** 2).sum(axis=0), 1e-300), 0.0)
    level = y.mean(axis=0) - amp * g.mean(axis=0)
    return {"L": level, "A": amp, "s_c": sc, "beta": beta, "m": m, "resid": y - level - amp * g}


def tau_of(fit: dict[str, np.ndarray], tol_err: float) -> np.ndarray:
    """Step where the fitted FD - L = A g(s) falls to tol x err; 0 where the whole decline is within it.

    Capped at TAU_MAX ('never', e.g. a zero tolerance).
    """
    r = np.minimum(tol_err / np.maximum(fit["A"], 1e-300), 1.0)  # the g at tau_gen
    m = fit["m"]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        u = np.where(np.isinf(m), -np.log(r), m * np.expm1(-np.log(r) / np.where(np.isinf(m), 1.0, m)))
        tau = fit["s_c"] * np.power(u, 1.0 / fit["beta"])
    return np.where(r < 1.0, np.minimum(np.nan_to_num(tau, nan=TAU_MAX, posinf=TAU_MAX), TAU_MAX), 0.0)


def decline_start(fd: np.ndarray) -> int:
    """Index of the last peak before the FD's final descent: where the fit starts.

    A peak is a local maximum (not lower than either neighbour) before the lowest FD that stands at
    least PEAK_SHARE of the way from that lowest value up to the highest one before it (an uptick on the
    plateau or low in the descent is no peak) and, unless it is the first checkpoint, rises above the
    lowest FD before it by more than 4 noise sd (a noise blip on a flat curve is no rise either). The
    noise sd is read from the second differences, 1.4826 x median |d2| / sqrt(6), which a smooth decline
    hardly moves. 0 when there is no such peak. A quarter, not a half: refinement adds checkpoints before
    the first, at the FD of pure noise, which nearly doubles the range; the peak before the final descent of
    two refined n = 128 baseline runs then stands 0.41 and 0.45 of the way up, so a half fitted across their
    dip and rise. No committed curve's start moves with a quarter.
    """
    low = int(np.argmin(fd))
    if low == 0:
        return 0
    noise_sd = 1.4826 * float(np.median(np.abs(np.diff(fd, 2)))) / np.sqrt(6) if fd.size > 2 else 0.0
    least = fd[low] + PEAK_SHARE * (fd[: low + 1].max() - fd[low])
    peaks = [i for i in range(low) if fd[i] >= least and fd[i] >= fd[i + 1]
             and (i == 0 or (fd[i] >= fd[i - 1] and fd[i] - fd[:i].min() > 4 * noise_sd))]
    return peaks[-1] if peaks else 0


def _ar1(e: np.ndarray, rho: float | np.ndarray) -> np.ndarray:
    """Stationary AR(1) series along axis 0 from standard normals e (n, B): unit sd, lag-1 correlation rho
    (one value, or one per column)."""
    out = np.empty_like(e)
    out[0] = e[0]
    for k in range(1, e.shape[0]):
        out[k] = rho * out[k - 1] + np.sqrt(1 - rho ** 2) * e[k]
    return out


def _lag1(resid: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each residual column (n, B)."""
    denom = (resid ** 2).sum(axis=0)
    return (resid[1:] * resid[:-1]).sum(axis=0) / np.where(denom > 0, denom, 1.0)


@dataclass(frozen=True)
class NoiseModel:
    """AR(1) noise of the FD between checkpoints, calibrated from one fit's residuals."""

    rho: float  # lag-1 correlation
    rms: float  # root mean square of the observed residuals
    kept: np.ndarray  # per RHO_LADDER rung: residual rms of a refit per unit noise sd

    def sd(self, rho: float | np.ndarray) -> float | np.ndarray:
        """Noise sd that leaves the observed residual rms after a fit, if the correlation were rho."""
        return self.rms / np.interp(rho, RHO_LADDER, self.kept)


def calibrate_noise(grid: _Grid, s: np.ndarray, curve: np.ndarray, resid: np.ndarray,
                    rng: np.random.Generator) -> NoiseModel:
    """The AR(1) noise whose refit residuals look, on average, like the observed ones.

    A fit absorbs part of the noise, the more the more correlated the noise is, so the residuals
    understate both its scale and its correlation. Simulate the fitted curve plus AR(1) noise at each
    correlation of RHO_LADDER (the same normals for all), refit, and invert: rho is where the simulated
    residuals' mean lag-1 correlation equals the observed one, and the sd is the residual rms divided by
    the share of the noise that survives a fit at that rho.
    """
    n = s.size
    rms = float(np.sqrt(np.mean(resid ** 2)))
    if rms == 0.0:
        return NoiseModel(0.0, 0.0, np.ones(len(RHO_LADDER)))
    e = rng.standard_normal((n, N_CALIBRATE))
    noise = rms * np.concatenate([_ar1(e, rho) for rho in RHO_LADDER], axis=1)
    sim = fit_approach(grid, s, curve[:, None] + noise)["resid"]
    lag1 = np.maximum.accumulate(_lag1(sim).reshape(len(RHO_LADDER), N_CALIBRATE).mean(axis=1))
    kept = np.sqrt((sim.reshape(n, len(RHO_LADDER), N_CALIBRATE) ** 2).mean(axis=(0, 2))) / rms
    rho = float(np.interp(float(_lag1(resid[:, None])[0]), lag1, RHO_LADDER))
    return NoiseModel(rho, rms, kept)


def draw_noise(rng: np.random.Generator, model: NoiseModel, n: int) -> np.ndarray:
    """N_DRAWS noise series (n, N_DRAWS) that carry the uncertainty of the noise model itself.

    rho is estimated from n residuals to about +-sqrt((1 - rho^2) / n), and the sd from about
    dof = (n - 4)(1 - rho)/(1 + rho) effective degrees of freedom; each draw takes its own rho
    (normal around the estimate, clipped to the ladder) and its own sd, the calibrated sd at that rho
    times sqrt(dof / chi2(dof)), as a t interval would for an estimated scale.
    """
    rho = np.clip(model.rho + np.sqrt((1 - model.rho ** 2) / n) * rng.standard_normal(N_DRAWS),
                  RHO_LADDER[0], RHO_LADDER[-1])
    dof = max((n - 4) * (1 - model.rho) / (1 + model.rho), 2.0)
    sd = model.sd(rho) * np.sqrt(dof / rng.chisquare(dof, N_DRAWS))
    return sd * _ar1(rng.standard_normal((n, N_DRAWS)), rho)


def plateau_err(fd_err: np.ndarray, sigma: float) -> tuple[float, str]:
    """The FD's 2-sigma error at the plateau: median fid_err over the last third (>= 3) of the fitted checkpoints.

    With no finite fid_err there, 2 x sigma (the noise sd estimated from the residuals) stands in.
    """
    tail = fd_err[-max(3, fd_err.size // 3):]
    tail = tail[np.isfinite(tail)]
    if tail.size:
        return float(np.median(tail)), "median fid_err (2 sigma) over the plateau checkpoints (last third)"
    return 2.0 * sigma, "2 x the noise sd estimated from the fit's residuals (fid_err not computed)"


def still_falling(s: np.ndarray, y: np.ndarray, sigma: float) -> bool:
    """Whether the FD still falls measurably at the end: the slope of FD on log-step over the last half of
    the fitted checkpoints (at least 3) is below -2 standard errors, the noise sd being sigma."""
    k = max(3, s.size // 2)
    x = np.log(s[-k:]) - np.log(s[-k:]).mean()
    slope = float((x * (y[-k:] - y[-k:].mean())).sum() / (x ** 2).sum())
    return slope < -2 * sigma / float(np.sqrt((x ** 2).sum()))


def percentile_interval(taus: np.ndarray, level: float, s: np.ndarray) -> tuple[float | None, float | None]:
    """The level percentile interval of tau_gen draws within the checkpoints s: an end before s[0] is None
    (left-censored), a high end after s[-1] is None (right-censored), a low end after s[-1] reads as s[-1]
    and a high end before s[0] as s[0], as nothing was measured beyond them."""
    q_lo, q_hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    low = float(min(q_lo, s[-1])) if q_lo >= s[0] else None
    high = float(max(q_hi, s[0])) if q_hi <= s[-1] else None
    return low, high


def _display(estimate: float | None, low: float | None, high: float | None, s: np.ndarray) -> tuple[int, str]:
    """The step and bound a reader sees: the estimate; '>=' the interval's low end; '<=' its high end."""
    if high is None:
        return (min(round(low), int(s[-1])) if low is not None else int(s[0])), ">="
    if low is None:
        return round(high), "<="
    return round(estimate), ""


def _fitted_rows(step: np.ndarray, fd: np.ndarray, fd_err: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The finite checkpoints in step order (step, FD, fid_err) and the index where the fit starts (the decline's
    start); None with fewer than MIN_POINTS."""
    step, fd = np.asarray(step, dtype=float), np.asarray(fd, dtype=float)
    fd_err = np.full(step.shape, np.nan) if fd_err is None else np.asarray(fd_err, dtype=float)
    ok = np.isfinite(fd) & np.isfinite(step) & (step > 0)
    if ok.sum() < MIN_POINTS:
        return None
    order = np.argsort(step[ok], kind="stable")
    s_all, y_all, e_all = step[ok][order], fd[ok][order], fd_err[ok][order]
    return s_all, y_all, e_all, min(decline_start(y_all), s_all.size - MIN_POINTS)


def plateau_tolerance(step: np.ndarray, fd: np.ndarray, fd_err: np.ndarray | None) -> float | None:
    """The err fit_tau_gen would use on these checkpoints (PlateauFit.err), without its bootstrap where fid_err
    gives it: a refined curve's tolerance, read off its run's own curve. None where no plateau fit is possible."""
    rows = _fitted_rows(step, fd, fd_err)
    if rows is None:
        return None
    err = plateau_err(rows[2][rows[3]:], math.nan)[0]
    return err if math.isfinite(err) else fit_tau_gen(step, fd, fd_err)[1].err


def fit_tau_gen(step: np.ndarray, fd: np.ndarray, fd_err: np.ndarray | None, tol: float = 1.0,
                level: float = 0.95, seed: int = 0,
                err: tuple[float, str] | None = None) -> tuple[Onset, PlateauFit | None]:
    """tau_gen of one run: where the fitted FD comes within tol x err of its plateau L, with an interval.

    step, fd, fd_err: one run's checkpoints (nan: not computed). err: (value, why) to use instead of the
    plateau's fid_err (a refined curve keeps its run's own tolerance). Returns the Onset (estimate, low, high in
    steps; a None end is censored; estimate None when the fit puts tau_gen outside the checkpoints) and the fit;
    (undefined Onset, None) with fewer than MIN_POINTS finite FD values.
    """
    rows = _fitted_rows(step, fd, fd_err)
    if rows is None:
        return Onset(None, "", f"fewer than {MIN_POINTS} checkpoints with an FD: no plateau fit"), None
    s_all, y_all, e_all, start = rows
    s, y = s_all[start:], y_all[start:]

    grid = _grid(s)
    fit = fit_approach(grid, s, y[:, None])
    rng = np.random.default_rng(seed)
    curve = y - fit["resid"][:, 0]
    noise_model = calibrate_noise(grid, s, curve, fit["resid"][:, 0], rng)
    sigma, rho = float(noise_model.sd(noise_model.rho)), noise_model.rho
    err, err_text = err or plateau_err(e_all[start:], sigma)
    estimate = float(tau_of(fit, tol * err)[0])

    L, m = float(fit["L"][0]), float(fit["m"][0])
    params = {"A": float(fit["A"][0]), "s_c": float(fit["s_c"][0]), "beta": float(fit["beta"][0]), "m": m,
              "start": float(s[0]), "sigma": sigma, "rho": rho, "draws": float(N_DRAWS)}
    if curve[0] - curve[-1] < tol * err and still_falling(s, y, sigma):
        how = (f"FD fitted from step {s[0]:.0f} has fallen {curve[0] - curve[-1]:.3g} in all, less than {tol:g} x "
               f"{err:.3g}, and still falls measurably at the last checkpoint: its plateau is not in sight, so "
               f"tau_gen is not determined (>= the first step); err = {err_text}")
        method = f"err = {err_text}; no interval: the plateau is not in sight"
        return Onset(int(s_all[0]), ">=", how), PlateauFit(L, err, tol, {**params, "draws": 0.0}, method)

    draws = fit_approach(grid, s, curve[:, None] + draw_noise(rng, noise_model, s.size))
    low, high = percentile_interval(tau_of(draws, tol * err), level, s_all)
    shown = estimate if s_all[0] <= estimate <= s_all[-1] else None
    at, bound = _display(shown, low, high, s_all)
    method = (f"err = {err_text}; {level:.0%} interval: percentiles of a parametric bootstrap, {N_DRAWS} draws "
              f"of the fitted curve + AR(1) noise (sd {sigma:.3g}, lag-1 correlation {rho:.2f}, calibrated "
              f"from the residuals; each draw's sd and correlation drawn from their sampling spread)")
    where = "" if shown is not None else (
        f" (the fit puts it at {estimate:.0f}, outside the checkpoints)" if estimate > 0
        else " (the whole fitted decline is within it)")
    how = (f"{SHAPE_TEXT[m]} (s_c {params['s_c']:.4g}, beta {params['beta']:.3g}; the shape of smaller squared "
           f"residuals of the two) fitted from step {s[0]:.0f}, where the decline starts: L = {L:.4g}; "
           f"tau_gen = step where FD - L = {tol:g} x {err:.3g}{where}; {method}")
    return Onset(at, bound, how, estimate=shown, low=low, high=high), PlateauFit(L, err, tol, params, method)
