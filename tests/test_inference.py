"""Recipe against reference over few seeds: the AFT factor's coverage on interval-censored data, the exact
permutation test, the t-intervals' coverage, censored and degenerate input, and the words of every interval."""
from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from freqdiff.analysis import inference
from freqdiff.analysis.inference.aft import aft_factor
from freqdiff.analysis.inference.base import RELIABLE_BOOTSTRAP_SEEDS, interval_label
from freqdiff.analysis.inference.log_ratio import log_ratio_interval, scale_free_width, width_difference
from freqdiff.analysis.inference.permutation import permutation_test
from freqdiff.core.registry import FreqdiffError

GRID = np.geomspace(500, 8000, 9)  # log-spaced checkpoints: a tau is only known to lie between two of them


def bracket(tau):
    """The checkpoint bracket of a true tau: (previous checkpoint, first checkpoint at or after it)."""
    i = int(np.searchsorted(GRID, tau))
    if i == 0:
        return (None, float(GRID[0]))  # before the first checkpoint: left-censored
    if i == len(GRID):
        return (float(GRID[-1]), None)  # never reached: right-censored
    return (float(GRID[i - 1]), float(GRID[i]))


def lognormal_trials(trials, k, factor=1.5, sigma=0.5, seed=0):
    """(recipe, reference) brackets of k seeds each: log tau ~ N(log 3000, sigma), the recipe's times `factor`."""
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        ref = np.exp(rng.normal(math.log(3000), sigma, k))
        mine = factor * np.exp(rng.normal(math.log(3000), sigma, k))
        yield [bracket(t) for t in mine], [bracket(t) for t in ref]


def covers(interval, truth):
    low, high = interval
    return (low if low is not None else 0.0) <= truth <= (high if high is not None else math.inf)


# ----------------------------------------------------------------------------- AFT factor


def test_aft_factor_covers_a_known_factor_on_interval_censored_data():
    """Factor 1.5, 6 vs 6 seeds on a log-spaced grid (some right-censored): >= 85% coverage, median within 10%.

    Measured over 300 trials: 94.7% (lifelines' plain Wald interval: 90.3%), median 1.500.
    """
    results, censored = [], 0
    for mine, ref in lognormal_trials(100, 6):
        censored += sum(high is None for _, high in mine + ref)
        results.append(aft_factor(mine, ref))
    assert censored > 0  # the test data do censor some seeds
    assert all(r.interval is not None and r.converged for r in results)
    coverage = np.mean([covers(r.interval, 1.5) for r in results])
    assert coverage >= 0.85
    assert np.median([r.estimate for r in results]) == pytest.approx(1.5, rel=0.10)
    assert results[0].method == ("95% interval-censored log-normal AFT (lifelines), Wald interval with a t(10) "
                                 "small-sample correction, 6 vs 6 seeds")


def test_without_censoring_the_aft_factor_is_the_pooled_t_interval_of_the_logs():
    mine, ref = [2100.0, 2900.0, 4000.0, 3300.0], [1000.0, 1500.0, 2200.0, 1800.0]
    f = aft_factor([(t, t) for t in mine], [(t, t) for t in ref])
    a, r = np.log(mine), np.log(ref)
    pooled = math.sqrt((((a - a.mean()) ** 2).sum() + ((r - r.mean()) ** 2).sum()) / 6)
    half = 2.44691 * pooled * math.sqrt(1 / 4 + 1 / 4)  # t(0.975, 6)
    d = a.mean() - r.mean()
    assert f.estimate == pytest.approx(math.exp(d), rel=1e-4)
    assert f.interval == pytest.approx((math.exp(d - half), math.exp(d + half)), rel=1e-3)
    plain = aft_factor([(t, t) for t in mine], [(t, t) for t in ref], small_sample=False)
    assert plain.interval[1] < f.interval[1] and "normal quantile" in plain.method  # lifelines' own: narrower


def test_all_censored_side_gives_an_undefined_factor_with_a_note():
    f = aft_factor([(8000, None), (8000, None), (8000, None)], [(1000, 1500), (1500, 2000), (2000, 3000)])
    assert f.estimate is None and f.interval is None and "every seed of the recipe is censored" in f.note
    g = aft_factor([(1000, 1500), (2000, 3000)], [(None, 500), (None, 500)])
    assert g.estimate is None and "every seed of the reference is censored" in g.note
    both = aft_factor([(8000, None)], [(None, 500)])
    assert both.estimate is None and "recipe and the reference" in both.note
    assert "1 vs 1 seed" in both.method


def test_identical_values_give_an_estimate_without_an_interval():
    same = aft_factor([(3000, 3000)] * 3, [(1500, 1500)] * 3)
    assert same.estimate == pytest.approx(2.0) and same.interval is None and "no seed-to-seed spread" in same.note
    bracketed = aft_factor([(2000, 3000)] * 2, [(1000, 1500)] * 2)  # every seed in one checkpoint bracket
    assert bracketed.interval is None and "[1.33, 3]" in bracketed.note
    one = aft_factor([(3000, 3000)], [(1000, 1000)])
    assert one.estimate == pytest.approx(3.0) and one.interval is None and "one seed per side" in one.note


def test_a_fit_that_does_not_converge_falls_back_to_weibull_and_says_so(monkeypatch):
    from lifelines import LogNormalAFTFitter
    from lifelines.exceptions import ConvergenceError

    def refuse(self, *args, **kwargs):
        raise ConvergenceError("Fitting did not converge.")

    monkeypatch.setattr(LogNormalAFTFitter, "fit_interval_censoring", refuse)
    mine, ref = next(lognormal_trials(1, 6, seed=3))
    f = aft_factor(mine, ref)
    assert f.model == "Weibull" and "Weibull AFT" in f.method and "6 vs 6 seeds" in f.method
    assert "the log-normal fit did not converge" in f.note and f.interval is not None


def test_convergence_warnings_are_silenced_and_named(monkeypatch):
    from lifelines import LogNormalAFTFitter, WeibullAFTFitter
    from lifelines.exceptions import ConvergenceWarning

    for fitter in (LogNormalAFTFitter, WeibullAFTFitter):
        original = fitter.fit_interval_censoring

        def warn(self, *args, _original=original, **kwargs):
            warnings.warn("Newton-Raphson failed to converge sufficiently.", ConvergenceWarning)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(fitter, "fit_interval_censoring", warn)
    mine, ref = next(lognormal_trials(1, 6, seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape
        f = aft_factor(mine, ref)
    assert not f.converged and f.model == "log-normal" and f.estimate is not None
    assert "did not converge cleanly (Newton-Raphson failed to converge sufficiently.)" in f.note


def test_bad_brackets_are_refused():
    with pytest.raises(FreqdiffError, match="recipe seed 0: need 0 <= low <= high"):
        aft_factor([(3000, 2000)], [(1000, 1000)])
    with pytest.raises(FreqdiffError, match="reference has no seeds"):
        permutation_test([(1, 1)], [])


def test_lifelines_is_imported_only_when_a_factor_is_fitted():
    """lifelines (with pandas and autograd) takes about 0.3 s to import: not at the module's top level."""
    for path in Path(inference.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not top & {"lifelines", "pandas", "autograd"}, path.name


# ----------------------------------------------------------------------------- permutation test


def test_permutation_p_for_three_separated_seeds_is_exactly_a_tenth():
    t = permutation_test([(3000, 3000), (4000, 4000), (5000, None)], [(None, 500), (1000, 1500), (1500, 2000)])
    assert t.p == 0.1 and t.relabelings == 20 and t.smallest_p == 0.1 and t.estimate == 9.0
    assert "3 vs 3 seeds cannot give p < 0.1" in t.note and "3 vs 3 seeds" in t.method
    below = permutation_test([(1000, 1000)] * 3, [(3000, 3000), (4000, 4000), (5000, 5000)])
    assert below.p == 0.1 and below.estimate == -9.0  # two-sided


def test_permutation_p_for_identical_data_is_one():
    values = [(1000, 1000), (2000, 2000), (3000, 3000)]
    t = permutation_test(values, values)
    assert t.p == 1.0 and t.estimate == 0.0


def test_overlapping_brackets_count_as_ties():
    # every bracket overlaps every other: no pair is ordered, the score is 0 whatever the labels
    t = permutation_test([(1000, 3000), (2000, None)], [(None, 2500), (1500, 2000)])
    assert t.estimate == 0.0 and t.p == 1.0


def test_permutation_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    a, r = rng.lognormal(0, 1, 4), rng.lognormal(0.5, 1, 3)
    t = permutation_test([(x, x) for x in a], [(x, x) for x in r])
    pooled = np.r_[a, r]
    score = lambda idx: sum(np.sign(pooled[i] - pooled[j]) for i in idx for j in range(7) if j not in idx)
    from itertools import combinations

    scores = [abs(score(c)) for c in combinations(range(7), 4)]
    assert t.relabelings == 35 and t.p == pytest.approx(np.mean([s >= abs(score(range(4))) for s in scores]))


# ----------------------------------------------------------------------------- t-intervals


@pytest.mark.parametrize("paired", [True, False])
def test_log_ratio_interval_covers_at_its_level_on_normal_log_data(paired):
    rng = np.random.default_rng(1)
    hits, trials, truth = 0, 4000, 1.5
    for _ in range(trials):
        ref = np.exp(rng.normal(7, 0.4, 3))
        mine = (ref * truth * np.exp(rng.normal(0, 0.3, 3)) if paired
                else np.exp(rng.normal(7 + math.log(truth), 0.4, 3)))
        hits += covers(log_ratio_interval(mine, ref, paired).interval, truth)
    assert hits / trials == pytest.approx(0.95, abs=0.015)  # Welch is slightly conservative, paired exact


def test_log_ratio_interval_paired_and_welch_arithmetic():
    p = log_ratio_interval([2.0, 3.0, 4.0], [1.0, 1.5, 2.5], paired=True)
    d = np.log([2.0, 2.0, 1.6])
    half = 4.30265 * d.std(ddof=1) / math.sqrt(3)
    assert p.estimate == pytest.approx(math.exp(d.mean()))
    assert p.log_interval == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-5) and p.dof == 2
    assert p.method == "95% paired t-interval on per-seed log ratios, 3 vs 3 seeds"
    w = log_ratio_interval([2.0, 3.0, 4.0], [1.0, 1.5, 2.5, 2.0], paired=False)
    assert w.method == "95% Welch t-interval on the logs, 3 vs 4 seeds" and 2 < w.dof < 5
    with pytest.raises(FreqdiffError, match="as many recipe seeds"):
        log_ratio_interval([2.0, 3.0], [1.0], paired=True)


def test_no_spread_or_one_seed_gives_no_interval():
    flat = log_ratio_interval([2.0, 3.0], [1.0, 1.5], paired=True)
    assert flat.estimate == pytest.approx(2.0) and flat.interval is None and "zero spread" in flat.note
    one = log_ratio_interval([2.0], [1.0], paired=False)
    assert one.interval is None and "one seed" in one.note


def test_scale_free_width_and_its_difference():
    gen, mem = [100.0, 200.0, 400.0], [1000.0, 1500.0, 5000.0]
    assert scale_free_width(gen, mem) == pytest.approx(np.log([10.0, 7.5, 12.5]))
    # twice as fast (both taus halved) keeps the scale-free width, halves the absolute one
    assert scale_free_width(np.array(gen) / 2, np.array(mem) / 2) == pytest.approx(scale_free_width(gen, mem))
    mine = scale_free_width([100.0, 100.0, 100.0], [2500.0, 2600.0, 4000.0])
    ref = scale_free_width([100.0, 100.0, 100.0], [1000.0, 1500.0, 2000.0])
    d = width_difference(mine, ref, paired=True)
    assert d.log_estimate == pytest.approx(float((mine - ref).mean()))
    assert d.estimate == pytest.approx(math.exp(d.log_estimate))
    assert d.interval == pytest.approx(tuple(math.exp(x) for x in d.log_interval))
    assert d.method == "95% paired t-interval on per-seed differences of log(tau_mem/tau_gen), 3 vs 3 seeds"
    assert "Welch" in width_difference(mine, ref[:2], paired=False).method
    with pytest.raises(FreqdiffError, match="finite and > 0"):
        scale_free_width([0.0], [100.0])


def test_width_difference_covers_at_its_level():
    rng = np.random.default_rng(2)
    hits, trials = 0, 4000
    for _ in range(trials):
        gen = np.exp(rng.normal(5, 0.3, (2, 4)))
        mine, ref = gen[0] * np.exp(rng.normal(3.0, 0.3, 4)), gen[1] * np.exp(rng.normal(2.5, 0.3, 4))
        d = width_difference(scale_free_width(gen[0], mine), scale_free_width(gen[1], ref), paired=False)
        low, high = d.log_interval
        hits += low <= 0.5 <= high
    assert hits / trials == pytest.approx(0.95, abs=0.015)


# ----------------------------------------------------------------------------- labels


def test_interval_label_never_calls_a_few_seed_percentile_bootstrap_95():
    assert interval_label("percentile bootstrap", 3) == ("percentile bootstrap over 3 seeds (nominal 95%, "
                                                         "true coverage lower)")
    assert interval_label("percentile bootstrap", (3, 12)).endswith("over 3 vs 12 seeds (nominal 95%, true coverage "
                                                                    "lower)")
    assert interval_label("percentile bootstrap", (10, 10)) == "95% percentile bootstrap, 10 vs 10 seeds"
    assert interval_label("paired t-interval", 3) == "95% paired t-interval, 3 seeds"
    assert interval_label("Welch t-interval", (2, 5), level=0.9) == "90% Welch t-interval, 2 vs 5 seeds"


def test_every_method_names_the_seeds_on_each_side():
    mine, ref = next(lognormal_trials(1, 6, seed=5))
    texts = [aft_factor(mine, ref).method, permutation_test(mine[:3], ref[:4]).method,
             log_ratio_interval([2.0, 3.0, 4.0], [1.0, 1.5], paired=False).method]
    assert "6 vs 6 seeds" in texts[0] and "3 vs 4 seeds" in texts[1] and "3 vs 2 seeds" in texts[2]
    assert RELIABLE_BOOTSTRAP_SEEDS == 10
