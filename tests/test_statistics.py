"""The statistics layer: f_mem's proportion interval, mean +- 2 sigma, bootstrap over seeds, slope fits."""
from __future__ import annotations

import ast
import inspect
import math

import numpy as np
import pytest

from freqdiff.metrics import statistics
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import (bootstrap_over_seeds, combined_err, fit_power_law, mean_and_err,
                                         mean_of_measurements, proportion_interval, t_interval)


def old_fmem_interval(memorized, n_boot=1000, seed=0):
    """freqdiff.metrics.fmem.bootstrap_interval as it was before this module replaced it."""
    n = memorized.size
    draws = np.random.default_rng(seed).binomial(n, memorized.astype(np.float64).mean(), size=n_boot) / n
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def test_proportion_interval_is_bit_identical_to_the_old_fmem_interval():
    rng = np.random.default_rng(0)
    for seed in range(200):
        flags = rng.random(int(rng.integers(1, 600))) < rng.random()
        assert proportion_interval(flags, 1000, seed) == old_fmem_interval(flags, 1000, seed)
    torch = pytest.importorskip("torch")
    flags = torch.rand(256, generator=torch.Generator().manual_seed(1)) < 0.3
    assert proportion_interval(flags, seed=3) == old_fmem_interval(flags.numpy(), seed=3)


def test_proportion_interval_covers_the_true_fraction():
    rng = np.random.default_rng(1)
    p, n = 0.2, 256
    covers = [low <= p <= high for low, high in
              (proportion_interval(rng.random(n) < p, 1000, seed) for seed in range(300))]
    assert 0.9 <= np.mean(covers) <= 0.99
    assert proportion_interval(np.zeros(64, bool)) == (0.0, 0.0)
    with pytest.raises(FreqdiffError, match="empty"):
        proportion_interval([])


def test_mean_and_err_is_two_sigma_over_folds():
    assert mean_and_err([1.0, 2.0, 3.0]) == (2.0, 2.0)
    mean, err = mean_and_err([5.0])
    assert mean == 5.0 and math.isnan(err)
    rng = np.random.default_rng(2)
    variances = [(mean_and_err(rng.normal(10, 3, 5))[1] / 2) ** 2 for _ in range(4000)]
    assert np.mean(variances) == pytest.approx(9, rel=0.05)  # ddof=1: unbiased for sigma^2
    with pytest.raises(FreqdiffError, match="no values"):
        mean_and_err([])
    assert combined_err(3.0, 4.0) == 5.0


def test_mean_of_measurements_takes_the_larger_error():
    assert mean_of_measurements([10.0, 10.0], [2.0, 2.0]) == (10.0, pytest.approx(math.sqrt(8) / 2))  # propagated
    mean, err = mean_of_measurements([8.0, 12.0], [0.1, 0.1])
    assert mean == 10.0 and err == pytest.approx(2 * math.sqrt(8) / math.sqrt(2))  # seed scatter
    assert mean_of_measurements([5.0], [0.4]) == (5.0, 0.4)
    assert math.isnan(mean_of_measurements([5.0], [math.nan])[1])
    assert mean_of_measurements([4.0, 6.0], [math.nan, 0.1])[1] == pytest.approx(2 * math.sqrt(2) / math.sqrt(2))
    rng = np.random.default_rng(4)  # 3 seeds, each value measured with a 2-sigma error of 1: the error covers
    covers = []
    for _ in range(2000):
        truth = rng.normal(0, 0.5, 3)
        values = truth + rng.normal(0, 0.5, 3)
        mean, err = mean_of_measurements(values, [1.0] * 3)
        covers.append(abs(mean) <= err)
    assert 0.9 <= np.mean(covers) <= 0.995
    with pytest.raises(FreqdiffError, match="equally many"):
        mean_of_measurements([1.0, 2.0], [0.1])


def test_bootstrap_over_seeds_spans_every_pairing_and_covers():
    a, r = np.log([1900.0, 2900.0]), np.log([900.0, 1400.0])
    low, high = bootstrap_over_seeds([a, r], lambda p: p[0].mean(1) - p[1].mean(1))
    assert (math.exp(low), math.exp(high)) == pytest.approx((1900 / 1400, 2900 / 900))
    rng = np.random.default_rng(3)
    covers = []
    for trial in range(200):
        x, y = rng.normal(0, 1, 10), rng.normal(0.5, 1, 10)
        low, high = bootstrap_over_seeds([x, y], lambda p: p[1].mean(1) - p[0].mean(1), 1000, trial)
        covers.append(low <= 0.5 <= high)
    assert 0.85 <= np.mean(covers) <= 0.97  # a percentile bootstrap over 10 seeds: a little under 95%
    with pytest.raises(FreqdiffError, match="at least one seed"):
        bootstrap_over_seeds([a, np.array([])], lambda p: p[0].mean(1))


def test_t_interval():
    low, high = t_interval(1.0, 0.5, 1)
    assert (high - 1) / 0.5 == pytest.approx(12.7062, rel=1e-4) and low == pytest.approx(2 - high)
    with pytest.raises(FreqdiffError, match="level"):
        t_interval(1.0, 0.5, 3, level=1.5)


def test_power_law_exact_and_two_points():
    n = np.array([128, 256, 512, 1024])
    fit = fit_power_law(n, 300 * n)
    assert fit.slope == pytest.approx(1) and fit.intercept == pytest.approx(np.log10(300))
    assert fit.interval == pytest.approx((1, 1))
    assert fit.interval_text() == "95% interval [1.00, 1.00]"
    assert fit_power_law([128, 256], [1e4, 2e4]).interval is None
    assert fit_power_law([128, 256], [1e4, 2e4]).interval_text() == "interval undefined (2 points)"
    with pytest.raises(FreqdiffError, match="distinct"):
        fit_power_law([128, 128], [1e4, 2e4])
    with pytest.raises(FreqdiffError, match="several seeds"):
        fit_power_law([128, 256], [1e4, 2e4], bootstrap=100)


def test_power_law_interval_covers_true_slope_on_noisy_data():
    rng = np.random.default_rng(0)
    n = np.repeat([128, 256, 512, 1024, 2048], 3)
    draws = [300 * n * np.exp(rng.normal(0, 0.3, len(n))) for _ in range(200)]
    t_covers = [low < 1 < high for low, high in (fit_power_law(n, tau).interval for tau in draws)]
    assert 0.9 <= np.mean(t_covers) <= 0.99
    boot_covers = [low < 1 < high for low, high in (fit_power_law(n, tau, bootstrap=200).interval for tau in draws)]
    assert 0.75 <= np.mean(boot_covers) < np.mean(t_covers)


def test_statistics_is_the_bottom_layer():
    tree = ast.parse(inspect.getsource(statistics))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.startswith("freqdiff")} == {"freqdiff.core.registry"}
