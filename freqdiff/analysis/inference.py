"""Recipe against reference over a few training seeds, with intervals whose coverage is what they claim.

Numbers in, numbers out, beside freqdiff.analysis.statistics (whose t_interval it reuses); it imports nothing
from freqdiff but FreqdiffError and that module. lifelines (with pandas and autograd: about 0.3 s to import,
measured after scipy) is imported only inside a fit.

Each tau per seed is interval-censored: (low, high) in optimizer steps, low None or 0 when it lies before the
first checkpoint (left-censored), high None or inf when the last checkpoint did not reach it (right-censored),
low == high for a point estimate.

- `aft_factor`: the tau_mem factor (recipe / reference) from an interval-censored accelerated-failure-time
  model fitted by lifelines, with a Wald interval.
- `permutation_test`: an exact two-sided permutation test over every relabeling of the pooled seeds, with the
  Gehan score (valid for censored values).
- `log_ratio_interval`: exp(mean log ratio) with a Student-t interval (paired by seed, else Welch).
- `scale_free_width` and `width_difference`: w = log(tau_mem / tau_gen) per seed, and two recipes' mean w
  compared by a t-interval, in log units and as a factor on tau_mem / tau_gen.
- `interval_label`: the words for an interval; no percentile bootstrap over fewer than 10 seeds is called 95%.

Every result names its method and the seeds on each side in `method`; `note` says what a reader must know
(why a factor is undefined, that a fit did not converge). Nothing is invented where the data give nothing:
an undefined factor or interval is None, with the reason.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from freqdiff.analysis.statistics import LEVEL, t_interval
from freqdiff.registry import FreqdiffError

Bracket = tuple[float | None, float | None]  # (low, high) of one seed's tau; None ends are censored
Interval = tuple[float | None, float | None]  # None: that end is unbounded (a one-sided statement)

RELIABLE_BOOTSTRAP_SEEDS = 10  # below this, a percentile bootstrap over seeds covers visibly less than it says
MAX_RELABELINGS = 2_000_000  # an exact permutation test enumerates every relabeling; beyond this it refuses
ZERO_SPREAD = 1e-12  # a standard error below this (in log units) is no spread at all
MAX_LOG_FACTOR = 30.0  # an AFT coefficient beyond this (a factor of 1e13) is a fit running off, not an estimate
# the AFT fits tried in turn until one converges without warnings: log-normal from a quick start, from
# lifelines' own start, then Weibull
FITS = (("log-normal", True), ("log-normal", False), ("Weibull", True), ("Weibull", False))


@dataclass(frozen=True)
class Inference:
    """An estimate with its interval, the method that gave both (with the seeds on each side) and a note."""

    estimate: float | None  # None: undefined (see note)
    interval: Interval | None  # None: undefined (see note)
    method: str
    note: str


@dataclass(frozen=True)
class AftFactor(Inference):
    """tau factor (recipe / reference) = exp(coef) of an AFT model; coef and se in log units."""

    coef: float | None
    se: float | None  # as used for the interval (after the small-sample correction, if any)
    model: str  # 'log-normal' | 'Weibull' | '' (no fit)
    converged: bool  # False: lifelines raised or warned; the interval should not be trusted (see note)


@dataclass(frozen=True)
class PermutationTest(Inference):
    """estimate: the observed Gehan score (recipe above reference counts +1 per pair); interval is None."""

    p: float  # two-sided: fraction of relabelings with |score| >= the observed |score|
    relabelings: int
    smallest_p: float  # the smallest p these seeds can give at all


@dataclass(frozen=True)
class LogRatio(Inference):
    """A factor exp(d) with d the mean log ratio; `log_estimate` and `log_interval` are d and its interval."""

    log_estimate: float | None
    log_interval: tuple[float, float] | None
    paired: bool
    dof: float | None


# ----------------------------------------------------------------------------- labels


def seeds_text(seeds: int | Sequence[int]) -> str:
    """'3 seeds' or '3 vs 4 seeds'."""
    counts = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    return f"{' vs '.join(str(int(c)) for c in counts)} seed{'' if counts == [1] else 's'}"


def interval_label(method: str, seeds: int | Sequence[int], level: float = LEVEL) -> str:
    """The words for an interval: its level, method and seeds; a percentile bootstrap over few seeds is not '95%'.

    A percentile bootstrap over fewer than 10 seeds (on the smaller side) covers less than its nominal
    level (about 82% for a nominal 95% over 3 seeds), so it is labelled 'percentile bootstrap over 3 seeds
    (nominal 95%, true coverage lower)'; every other interval reads '95% <method>, 3 vs 3 seeds'.
    """
    counts = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    percent = f"{100 * level:.4g}%"
    words = method.lower()
    if "bootstrap" in words and "percentile" in words and min(counts) < RELIABLE_BOOTSTRAP_SEEDS:
        return f"{method} over {seeds_text(counts)} (nominal {percent}, true coverage lower)"
    return f"{percent} {method}, {seeds_text(counts)}"


def _exp_interval(low: float, high: float) -> Interval:
    """exp of a log-unit interval; an end beyond exp's range is unbounded (None), not an overflow."""
    return (math.exp(low) if low > -700 else None, math.exp(high) if high < 700 else None)


# ----------------------------------------------------------------------------- interval-censored input


def _brackets(values: Sequence[Bracket], side: str) -> np.ndarray:
    """(k, 2) array of (low, high) with censored ends as 0 and inf; refuses an empty side or a reversed bracket."""
    if len(values) == 0:
        raise FreqdiffError(f"the {side} has no seeds")
    out = np.empty((len(values), 2))
    for i, pair in enumerate(values):
        if len(pair) != 2:
            raise FreqdiffError(f"{side} seed {i}: expected (low, high), got {pair!r}")
        low, high = pair
        out[i] = (0.0 if low is None else float(low), math.inf if high is None else float(high))
        if math.isnan(out[i, 0]) or math.isnan(out[i, 1]) or out[i, 0] < 0 or out[i, 1] < out[i, 0] or out[i, 1] <= 0:
            raise FreqdiffError(f"{side} seed {i}: need 0 <= low <= high and high > 0, got {pair!r}")
    return out


def _pinned(b: np.ndarray) -> np.ndarray:
    """Seeds whose tau lies between two known ends (neither left- nor right-censored)."""
    return (b[:, 0] > 0) & np.isfinite(b[:, 1])


def _common(b: np.ndarray) -> tuple[float, float] | None:
    """The (low, high) every seed's bracket shares, when the seeds show no spread at all; else None.

    A shared open stretch, or a point that is some seed's exact value: with either, a scale -> 0 fit
    explains every seed perfectly, so a location-scale model has no finite maximum.
    """
    low, high = float(b[:, 0].max()), float(b[:, 1].min())
    exact = b[:, 0] == b[:, 1]
    if low < high or (low == high and exact.any()):
        return low, high
    return None


def _midpoint(b: np.ndarray) -> np.ndarray:
    """A representative log tau per seed: log of the geometric mid of its bracket, or of its known end."""
    low, high = b[:, 0], b[:, 1]
    mid = np.where(low > 0, np.where(np.isfinite(high), np.sqrt(low * np.where(np.isfinite(high), high, 1.0)), low),
                   high)
    return np.log(mid)


# ----------------------------------------------------------------------------- AFT factor (lifelines)


def _moments(low: np.ndarray, high: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Reference mean, recipe - reference shift and pooled sd of the seeds' log midpoints (a fit's start)."""
    logs = _midpoint(np.column_stack([low, high]))
    mine = x > 0
    base, shift = float(logs[~mine].mean()), float(logs[mine].mean() - logs[~mine].mean())
    resid = np.concatenate([logs[mine] - logs[mine].mean(), logs[~mine] - base])
    sd = float(np.sqrt((resid ** 2).mean()))
    return base, shift, sd if sd > 1e-3 else 0.5


def _fitter(kind: str, start: tuple[float, float, float] | None) -> Any:
    """A lifelines AFT fitter; given `start` (see _moments), the optimizer begins there.

    lifelines' own start fits a univariate model by Nelder-Mead first, which costs as much as the fit
    itself; a start only moves where the optimizer begins (same likelihood, same maximum).
    """
    from lifelines import LogNormalAFTFitter, WeibullAFTFitter

    base_class = {"log-normal": LogNormalAFTFitter, "Weibull": WeibullAFTFitter}[kind]
    if start is None:
        return base_class()
    base, shift, sd = start
    location = "mu_" if kind == "log-normal" else "lambda_"
    shape = math.log(sd) if kind == "log-normal" else math.log(math.pi / (sd * math.sqrt(6)))

    def start_point(self: Any, Ts: Any, E: Any, entries: Any, weights: Any, Xs: Any) -> dict:
        scaled = float(np.asarray(Xs[(location, "recipe")], float).max())  # lifelines divides x by its std
        values = {"recipe": shift / scaled, "Intercept": base}
        return {param: np.array([values[c] if param == location else shape if c == "Intercept" else 0.0
                                 for c in Xs[param].columns])
                for param in Xs.columns.get_level_values(0).unique()}

    # the same name as the base class: lifelines names its messages after it
    return type(base_class.__name__, (base_class,), {"_create_initial_point": start_point})()


def _inverse_hessian(x: np.ndarray, sd: float) -> np.ndarray:
    """BFGS's first inverse Hessian for the log-normal fit, in lifelines' order (coef, intercept, log sigma).

    The exact one of a normal model without censoring at the start (mean negative log-likelihood, x divided
    by its std as lifelines does); without it BFGS starts from the identity and needs about twice the
    evaluations. Only a preconditioner: the maximum is the same.
    """
    design = np.column_stack([x / x.std(ddof=1), np.ones_like(x)])
    hessian = np.zeros((3, 3))
    hessian[:2, :2] = design.T @ design / len(x) / sd ** 2
    hessian[2, 2] = 2.0
    inverse = np.linalg.inv(hessian)
    return (inverse + inverse.T) / 2  # scipy refuses a matrix that is not exactly symmetric


def _fit_once(kind: str, quick: bool, low: np.ndarray, high: np.ndarray,
              x: np.ndarray) -> tuple[float, float, list[str]] | str:
    """(coef, se, lifelines' warnings) of the recipe covariate, or why the fit failed."""
    import pandas as pd
    from lifelines.exceptions import ConvergenceError

    frame = pd.DataFrame({"low": low, "high": high, "recipe": x})
    start = _moments(low, high, x) if quick else None
    fitter = _fitter(kind, start)
    options = {"hess_inv0": _inverse_hessian(x, start[2])} if start is not None and kind == "log-normal" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fitter.fit_interval_censoring(frame, "low", "high", fit_options=options)
        except (ConvergenceError, np.linalg.LinAlgError, ValueError, FloatingPointError, TypeError) as err:
            return f"{kind} fit failed ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
    location = "mu_" if kind == "log-normal" else "lambda_"
    coef = float(fitter.params_[(location, "recipe")])
    se = float(fitter.standard_errors_[(location, "recipe")])
    problems = sorted({str(w.message).strip().splitlines()[0] for w in caught
                       if w.category.__module__.startswith("lifelines")})
    if not math.isfinite(coef) or abs(coef) > MAX_LOG_FACTOR:
        return f"{kind} fit ran off to a factor of exp({coef:.3g}) (no finite maximum)"
    if not (math.isfinite(se) and se > 0):
        problems.append(f"standard error {se:g}")
    return coef, se, problems


def aft_factor(recipe: Sequence[Bracket], reference: Sequence[Bracket], level: float = LEVEL,
               small_sample: bool = True) -> AftFactor:
    """The tau factor recipe / reference = exp(coef) of an interval-censored AFT model with the recipe as 0/1.

    Model: log-normal AFT (lifelines LogNormalAFTFitter.fit_interval_censoring), log tau = b0 + coef * recipe
    + sigma * e with e standard normal; Weibull AFT (WeibullAFTFitter) only where the log-normal fit does
    not converge. Log-normal first because seed-to-seed noise in training times is multiplicative, and because
    without censoring its coef is exactly the difference of mean log taus, the same geometric-mean ratio
    that `log_ratio_interval` gives the widths, so the tau_mem and width factors speak one language.
    Times are divided by their geometric mean before the fit (only the intercept moves).

    Interval: Wald, coef -+ q * se. With small_sample (default) se is scaled by sqrt(k / (k - 2)) and q is
    Student's t with k - 2 dof over the k seeds of both sides: without censoring this is exactly the
    pooled-variance two-sample t-interval of the mean log taus. small_sample=False gives lifelines' own
    (normal quantile, maximum-likelihood sigma). Measured coverage of a factor 1.5 on log-normal taus
    (sigma 0.5) interval-censored on 9 log-spaced checkpoints, some right-censored (300 trials): 94.7% with
    the correction, 90.3% without, for 6 vs 6 seeds; 96.0% and 83.3% for 3 vs 3. A Weibull model on the
    same data (200 trials): 90.0% and 82.5% (6 vs 6), 92.5% and 78.5% (3 vs 3).
    The seeds' (low, high) may be 95% intervals of an estimate rather than hard brackets (Onset.low/high):
    the model then reads them as brackets, which is an approximation.

    Undefined (estimate None, with a note): a side whose every seed is censored (no seed between two
    checkpoints: its location has no finite maximum). No interval (estimate from the brackets' midpoints):
    when every seed of each side shares one bracket or value, so no seed-to-seed spread is visible (this
    includes one seed per side). Convergence warnings are silenced and named in `note`.
    """
    a, r = _brackets(recipe, "recipe"), _brackets(reference, "reference")
    seeds = (len(a), len(r))
    k = sum(seeds)
    names = {"log-normal": "interval-censored log-normal AFT (lifelines)",
             "Weibull": "interval-censored Weibull AFT (lifelines)"}
    wald = (f"Wald interval with a t({k - 2}) small-sample correction" if small_sample and k > 2
            else "Wald interval (normal quantile)")
    none_pinned = [side for side, b in (("recipe", a), ("reference", r)) if not _pinned(b).any()]
    if none_pinned:
        words = " and the ".join(none_pinned)
        return AftFactor(None, None, interval_label(names["log-normal"], seeds, level),
                         f"undefined: every seed of the {words} is censored (none lies between two checkpoints), "
                         "so the AFT model has no finite maximum", None, None, "", False)
    common = [_common(a), _common(r)]
    if common[0] is not None and common[1] is not None:
        (a_low, a_high), (r_low, r_high) = common
        estimate = math.sqrt(a_low * a_high) / math.sqrt(r_low * r_high)
        span = f"[{a_low / r_high:.3g}, {'∞' if r_low == 0 else f'{a_high / r_low:.3g}'}]"
        why = "one seed per side" if seeds == (1, 1) else "the seeds of each side share one bracket or value"
        return AftFactor(estimate, None, interval_label(names["log-normal"], seeds, level),
                         f"interval undefined: {why}, so no seed-to-seed spread is visible and the AFT model has "
                         f"no finite maximum; estimate from the brackets' midpoints, the brackets alone allow "
                         f"{span}", math.log(estimate), None, "", False)
    both = np.vstack([a, r])
    ends = both[(both > 0) & np.isfinite(both)]
    unit = float(np.exp(np.log(ends).mean()))
    low = np.maximum(both[:, 0] / unit, ends.min() / unit * 1e-9)  # log-normal needs low > 0: 0 -> far below
    high = both[:, 1] / unit
    x = np.r_[np.ones(len(a)), np.zeros(len(r))]
    attempts: list[str] = []  # what went wrong in each fit tried before (or instead of) the one used
    fits: list[tuple[str, float, float, list[str]]] = []
    for kind, quick in FITS:
        result = _fit_once(kind, quick, low, high, x)
        if isinstance(result, str):
            attempts.append(result)
            continue
        fits.append((kind, *result))
        if not result[2]:
            break
        attempts.append(f"{kind} fit: " + "; ".join(result[2]))
    if not fits:
        return AftFactor(None, None, interval_label(names["log-normal"], seeds, level),
                         "undefined: no AFT fit converged (" + "; ".join(attempts) + ")", None, None, "", False)
    clean = [f for f in fits if not f[3]]
    kind, coef, se, problems = clean[0] if clean else fits[0]
    method = interval_label(f"{names[kind]}, {wald}", seeds, level)
    notes = []
    if kind != "log-normal":
        notes.append("the log-normal fit did not converge (" + "; ".join(attempts) + "): Weibull instead")
    if problems:
        notes.append("the fit did not converge cleanly (" + "; ".join(problems) + "): do not trust its interval")
    interval = None
    used_se = se
    if math.isfinite(se) and se > 0:
        if small_sample and k > 2:
            used_se = se * math.sqrt(k / (k - 2))
            lo, hi = t_interval(coef, used_se, k - 2, level)
        else:
            half = float(stats.norm.ppf(0.5 + level / 2)) * se
            lo, hi = coef - half, coef + half
        interval = _exp_interval(lo, hi)
    else:
        notes.append("interval undefined: no finite standard error")
    return AftFactor(math.exp(coef), interval, method, "; ".join(notes), coef, used_se, kind, not problems)


# ----------------------------------------------------------------------------- permutation test


def gehan_scores(values: np.ndarray) -> np.ndarray:
    """Per seed: the number of other seeds its bracket lies wholly above minus those it lies wholly below.

    One bracket lies above another when its low end exceeds the other's high end; brackets that overlap or
    touch (ties, censored ends) count 0, so the score is valid for interval-censored values.
    """
    above = values[:, 0][:, None] > values[:, 1][None, :]
    return above.sum(1).astype(np.int64) - above.sum(0).astype(np.int64)


def permutation_test(recipe: Sequence[Bracket], reference: Sequence[Bracket]) -> PermutationTest:
    """Exact two-sided permutation test of 'the recipe's taus lie above (or below) the reference's'.

    Statistic: the Gehan score, the sum over (recipe, reference) pairs of +1 where the recipe's bracket lies
    wholly above the reference's, -1 wholly below, 0 where they overlap. Under no effect every relabeling of
    the pooled seeds into groups of the same sizes is equally likely; p is the fraction of all
    C(k, k_recipe) relabelings (itertools.combinations) whose |score| reaches the observed one. The
    smallest attainable p is 2 / C(k, k_recipe) with no ties (0.1 for 3 vs 3 seeds, 0.333 for 2 vs 2),
    so few seeds cannot give a small p however large the effect.
    """
    a, r = _brackets(recipe, "recipe"), _brackets(reference, "reference")
    seeds = (len(a), len(r))
    total = math.comb(sum(seeds), seeds[0])
    if total > MAX_RELABELINGS:
        raise FreqdiffError(f"permutation_test: {total} relabelings of {seeds_text(seeds)} is too many to enumerate "
                            f"(at most {MAX_RELABELINGS})")
    rows = gehan_scores(np.vstack([a, r]))  # with an antisymmetric pair score, a group's score is its rows' sum
    observed = int(rows[: seeds[0]].sum())
    picks = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(sum(seeds)), seeds[0])),
                        dtype=np.int64, count=total * seeds[0]).reshape(total, seeds[0])
    scores = np.abs(rows[picks].sum(1))
    p = float((scores >= abs(observed)).mean())
    smallest = float((scores >= scores.max()).mean())
    method = (f"exact two-sided permutation test, Gehan score, over all {total} relabelings, "
              f"{seeds_text(seeds)}")
    best = min(1.0, 2 / total)
    note = (f"smallest attainable p with these values: {smallest:.3g}" +
            ("" if smallest == best else f" (with no ties: {best:.3g})") +
            f"; {seeds_text(seeds)} cannot give p < {best:.3g}")
    return PermutationTest(float(observed), None, method, note, p, total, smallest)


# ----------------------------------------------------------------------------- t-intervals on logs


def _positive_logs(values: Sequence[float], side: str) -> np.ndarray:
    v = np.asarray(values, float).ravel()
    if v.size == 0 or not np.isfinite(v).all() or (v <= 0).any():
        raise FreqdiffError(f"the {side}'s values must be finite and > 0, got {list(values)}")
    return np.log(v)


def _logs_interval(a: np.ndarray, r: np.ndarray, paired: bool, level: float,
                   what: str) -> tuple[float, tuple[float, float] | None, float | None, str, str]:
    """(mean difference, its t-interval, dof, method, note) of log values a against r, paired or Welch."""
    seeds = (len(a), len(r))
    if paired:
        if len(a) != len(r):
            raise FreqdiffError(f"paired: need as many recipe seeds as reference seeds, got {len(a)} and {len(r)}")
        d = a - r
        center = float(d.mean())
        method = interval_label(f"paired t-interval on per-seed {what}", seeds, level)
        if len(d) < 2:
            return center, None, None, method, "interval undefined: one seed (a single pair)"
        se, dof = float(d.std(ddof=1) / math.sqrt(len(d))), float(len(d) - 1)
    else:
        center = float(a.mean() - r.mean())
        method = interval_label(f"Welch t-interval on {what}", seeds, level)
        if min(seeds) < 2:
            return center, None, None, method, f"interval undefined: one seed ({seeds_text(seeds)})"
        va, vr = a.var(ddof=1) / len(a), r.var(ddof=1) / len(r)
        se = float(math.sqrt(va + vr))
        dof = float((va + vr) ** 2 / (va ** 2 / (len(a) - 1) + vr ** 2 / (len(r) - 1))) if se > 0 else None
    if se < ZERO_SPREAD:
        return center, None, None, method, ("interval undefined: the per-seed values do not vary (zero spread), "
                                            "so few seeds cannot tell how much they would")
    return center, t_interval(center, se, dof, level), dof, method, ""


def log_ratio_interval(recipe_values: Sequence[float], reference_values: Sequence[float], paired: bool,
                       level: float = LEVEL) -> LogRatio:
    """The factor recipe / reference as exp(mean log ratio), with a Student-t interval.

    paired (the same seed ids on both sides, in the same order): one-sample t on the per-seed log ratios,
    k - 1 dof. Else Welch's t on the two sets of logs (Welch-Satterthwaite dof). The interval is undefined
    with one seed (pair) or when the values show no spread at all (a t-interval of zero width would claim
    certainty that a few seeds cannot give).
    """
    a, r = _positive_logs(recipe_values, "recipe"), _positive_logs(reference_values, "reference")
    what = "log ratios" if paired else "the logs"
    center, interval, dof, method, note = _logs_interval(a, r, paired, level, what)
    factor = None if interval is None else _exp_interval(*interval)
    return LogRatio(math.exp(center), factor, method, note, center, interval, paired, dof)


def scale_free_width(tau_gen: Sequence[float] | float, tau_mem: Sequence[float] | float) -> np.ndarray:
    """w = log(tau_mem / tau_gen) per seed: the window's width in e-folds, the same whatever the learning speed.

    A recipe that learns twice as fast (both taus halved) keeps its w; the absolute width tau_mem - tau_gen
    halves. Negative w: the window is closed (copies before the FD plateau).
    """
    gen, mem = np.atleast_1d(np.asarray(tau_gen, float)), np.atleast_1d(np.asarray(tau_mem, float))
    if gen.shape != mem.shape:
        raise FreqdiffError(f"scale_free_width: {gen.size} tau_gen against {mem.size} tau_mem")
    if not (np.isfinite(gen).all() and np.isfinite(mem).all()) or (gen <= 0).any() or (mem <= 0).any():
        raise FreqdiffError("scale_free_width: tau_gen and tau_mem must be finite and > 0")
    return np.log(mem / gen)


def width_difference(recipe_widths: Sequence[float], reference_widths: Sequence[float], paired: bool,
                     level: float = LEVEL) -> LogRatio:
    """Two recipes' scale-free widths: mean w (recipe) - mean w (reference), with a t-interval.

    Reported both ways: `log_estimate` / `log_interval` as the difference in log units (e-folds), and
    `estimate` / `interval` as the factor exp(difference) on tau_mem / tau_gen. Paired (same seed ids)
    or Welch, as in `log_ratio_interval`.
    """
    a, r = np.asarray(recipe_widths, float).ravel(), np.asarray(reference_widths, float).ravel()
    if a.size == 0 or r.size == 0 or not (np.isfinite(a).all() and np.isfinite(r).all()):
        raise FreqdiffError("width_difference: need finite scale-free widths on both sides")
    what = "differences of log(tau_mem/tau_gen)" if paired else "log(tau_mem/tau_gen)"
    center, interval, dof, method, note = _logs_interval(a, r, paired, level, what)
    factor = None if interval is None else _exp_interval(*interval)
    return LogRatio(math.exp(center), factor, method, note, center, interval, paired, dof)
