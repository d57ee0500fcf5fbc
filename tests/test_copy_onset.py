"""tau_mem's estimator on synthetic copy curves with a known answer: accuracy, coverage, censoring."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from freqdiff.analysis.reading.copy_onset import CopyCounts, estimate_tau_mem

Q = 0.01
STEPS = np.unique(np.round(np.geomspace(250, 7168, 20)))  # the studies' checkpoints: 19% apart


def logistic_curve(rng: np.random.Generator, tau: float) -> np.ndarray:
    """p(s) = c sigmoid(b log(s / tau) + logit(q / c)): the model's own family, saturating at a random ceiling c."""
    c, b = rng.uniform(0.05, 1.0), rng.uniform(1.5, 6.0)
    return c * expit(b * np.log(STEPS / tau) + logit(Q / c))


def weibull_curve(rng: np.random.Generator, tau: float) -> np.ndarray:
    """p(s) = c (1 - exp(-(s / l)^b)) with p(tau) = q: a family the estimator does not assume."""
    c, b = rng.uniform(0.05, 1.0), rng.uniform(1.5, 5.0)
    scale = tau / (-np.log(1 - Q / c)) ** (1 / b)
    return c * (1 - np.exp(-(STEPS / scale) ** b))


def trials(curve, count: int, seed: int, samples: int = 512, taus=(1500, 6000)):
    """(truth, Onset) for `count` runs with tau_mem log-uniform in `taus`, copies drawn binomially."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        tau = float(np.exp(rng.uniform(*np.log(taus))))
        copies = rng.binomial(samples, curve(rng, tau))
        yield tau, estimate_tau_mem(CopyCounts(STEPS, copies.astype(float), np.full(len(STEPS), float(samples))), Q)


def covers(tau: float, onset) -> bool:
    return (onset.low is None or onset.low <= tau) and (onset.high is None or tau <= onset.high)


@pytest.mark.parametrize("curve", [logistic_curve, weibull_curve])
def test_estimate_within_ten_percent_and_interval_covers(curve):
    results = list(trials(curve, 150, seed=7))
    errors = [abs(o.estimate / tau - 1) for tau, o in results if o.estimate is not None]
    coverage = np.mean([covers(tau, o) for tau, o in results])
    assert len(errors) >= 140, "nearly every run with tau_mem inside the observed range must get an estimate"
    assert np.median(errors) <= 0.10, np.median(errors)
    assert coverage >= 0.85, coverage


def test_first_crossing_rule_was_worse():
    """The rule it replaces (first checkpoint whose count is above 0 at 95%, confirmed) misses by far more."""
    rng = np.random.default_rng(3)
    old, new = [], []
    for _ in range(60):
        tau = float(np.exp(rng.uniform(np.log(1500), np.log(6000))))
        copies = rng.binomial(512, logistic_curve(rng, tau))
        hit = np.flatnonzero((copies[:-1] >= 4) & (copies[1:] >= 4))  # 4 of 512: bootstrap lower bound > 0
        onset = estimate_tau_mem(CopyCounts(STEPS, copies.astype(float), np.full(len(STEPS), 512.0)), Q)
        if hit.size and onset.estimate is not None:
            old.append(abs(STEPS[hit[0]] / tau - 1))
            new.append(abs(onset.estimate / tau - 1))
    assert len(new) >= 50 and np.median(new) < np.median(old) / 2, (np.median(new), np.median(old))


def test_no_copies_is_right_censored_with_a_lower_bound():
    counts = CopyCounts(STEPS, np.zeros(len(STEPS)), np.full(len(STEPS), 512.0))
    onset = estimate_tau_mem(counts, Q)
    assert onset.bound == ">=" and onset.high is None and onset.estimate is None
    assert onset.low is not None and STEPS[-1] / 2 < onset.low <= STEPS[-1] * 4


def test_a_few_copies_at_the_end_is_censored_only_where_the_data_allow_it():
    """Copies rising steadily over the last checkpoints pin tau_mem inside the run; one stray copy does not."""
    rising = np.zeros(len(STEPS))
    rising[-6:] = [1, 2, 4, 7, 12, 20]
    pinned = estimate_tau_mem(CopyCounts(STEPS, rising, np.full(len(STEPS), 512.0)), Q)
    assert pinned.bound == "" and pinned.low < pinned.estimate < pinned.high <= STEPS[-1]
    stray = np.zeros(len(STEPS))
    stray[-1] = 1
    assert estimate_tau_mem(CopyCounts(STEPS, stray, np.full(len(STEPS), 512.0)), Q).bound == ">="


def test_copying_from_the_first_checkpoint_is_left_censored():
    copies = np.full(len(STEPS), 200.0)
    onset = estimate_tau_mem(CopyCounts(STEPS, copies, np.full(len(STEPS), 512.0)), Q)
    assert onset.bound == "<=" and onset.low is None and onset.high is not None


def test_more_samples_narrow_the_interval():
    """The interval reflects the information: 4x the samples at every checkpoint give a narrower one."""
    rng = np.random.default_rng(11)
    p = expit(4 * np.log(STEPS / 3000) + logit(Q))
    widths = []
    for samples in (512, 2048):
        onset = estimate_tau_mem(CopyCounts(STEPS, rng.binomial(samples, p).astype(float),
                                            np.full(len(STEPS), float(samples))), Q)
        widths.append(np.log(onset.high / onset.low))
    assert widths[1] < 0.75 * widths[0]


def test_counts_from_fractions_use_each_rows_sample_count():
    counts = CopyCounts.from_fractions(np.array([100, 200, 300]), np.array([0.5, np.nan, 0.25]),
                                       np.array([512, 512, 2048]))
    assert counts.step.tolist() == [100, 300] and counts.copies.tolist() == [256, 512]
