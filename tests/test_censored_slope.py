"""aft_slope: tau ~ n^slope with censored runs counted, tried on synthetic power laws with a known slope."""
from __future__ import annotations

import numpy as np
import pytest

from freqdiff.analysis.inference.censored_slope import aft_slope
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import fit_power_law

N = np.repeat([128, 256, 512, 1024], 6).astype(float)


def _taus(rng: np.random.Generator, slope: float) -> np.ndarray:
    return np.exp(np.log(5.0) + slope * np.log(N) + 0.15 * rng.standard_normal(N.size))


def test_without_censoring_it_is_the_least_squares_t_interval() -> None:
    tau = _taus(np.random.default_rng(0), 1.0)
    fit, ols = aft_slope(N, [(t, t) for t in tau]), fit_power_law(N, tau)
    assert fit.estimate == pytest.approx(ols.slope, abs=1e-5)
    assert fit.interval == pytest.approx(ols.interval, abs=1e-5)
    assert fit.note == "0 of 24 runs censored" and "24 runs" in fit.method


def test_censored_largest_n_counted_recovers_the_slope_that_dropping_them_biases_low() -> None:
    """Half the n = 1024 runs (on average) end before tau_mem: the AFT slope stays on 1.5, least squares falls."""
    rng, truth = np.random.default_rng(1), 1.5
    last = np.where(N == 1024, 5.0 * 1024 ** truth, np.inf)  # the last checkpoint: the median tau at n = 1024
    estimates, dropped, covered = [], [], 0
    for _ in range(20):
        tau = _taus(rng, truth)
        fit = aft_slope(N, [(t, t) if t <= end else (end, None) for t, end in zip(tau, last)])
        estimates.append(fit.estimate)
        covered += fit.interval[0] <= truth <= fit.interval[1]
        dropped.append(fit_power_law(N[tau <= last], tau[tau <= last]).slope)
    assert abs(np.mean(estimates) - truth) < 0.02
    assert np.mean(dropped) < truth - 0.02
    assert covered >= 17  # a 95% interval: 19 of 20 expected, 17 is its binomial 1% lower end


def test_undefined_when_only_one_n_lies_between_two_ends() -> None:
    fit = aft_slope([128, 128, 256, 256], [(100, 100), (120, 120), (500, None), (600, None)])
    assert fit.estimate is None and fit.interval is None and fit.note.startswith("undefined")


def test_refuses_mismatched_lengths() -> None:
    with pytest.raises(FreqdiffError, match="3 values of n for 2 taus"):
        aft_slope([1, 2, 3], [(1, 1), (2, 2)])
