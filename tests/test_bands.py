"""The mechanism reading (analysis/reading/bands.py) on spectral.csv files with a known per-band answer."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_compare import read_each_curve_once  # noqa: F401 (a fixture)
from test_pareto import gate_lookup, strengths  # noqa: F401 (a fixture)

from freqdiff.analysis.reading.bands import band_ratios, paired_ratio, significant
from freqdiff.analysis.reading.comparison import compare
from freqdiff.analysis.reports.pareto import write_pareto
from freqdiff.core.io import write_csv

TAUS = (100, 300, 1000, 3000)
OU_TIMES = (0.01, 1.0)
BANDS = 4


def write_spectral(run_dir, seed, factor_of_band):
    """A spectral.csv whose model_vs_memorizer is 1/tau times factor_of_band(band), with 3% seed noise."""
    rng = np.random.default_rng(seed)
    rows = [{"tau": tau, "level": 40, "ou_time": t, "band": b, "f_low": b / 8, "f_high": (b + 1) / 8,
             "model_vs_memorizer": factor_of_band(b) / tau * math.exp(0.03 * rng.standard_normal()),
             "model_vs_eps": 1.0, "memorizer_vs_eps": 1.0} for tau in TAUS for t in OU_TIMES for b in range(BANDS)]
    write_csv(run_dir / "spectral.csv", rows, list(rows[0]))


@pytest.fixture
def study(tmp_path):
    """weight-0 and weight-1 runs; weight-1 is twice as far from the memorizer in the top band, equal elsewhere."""
    dirs = strengths(tmp_path, **{"weight-1": (1000, {})})
    for k, (root, factor) in enumerate(zip(dirs, (lambda b: 1.0, lambda b: 2.0 if b == BANDS - 1 else 1.0))):
        for run_dir in sorted(root.glob("n*-seed*")):
            write_spectral(run_dir, 1000 * k + 7 * int(run_dir.name[-1]) + int(run_dir.name[1:6]), factor)
    return dirs


def test_the_band_the_recipe_moves_reads_its_factor_and_the_others_read_one(study):
    ratios = band_ratios(compare(study))
    assert {(r.n, r.ou_time) for r in ratios} == {(n, t) for n in (16, 64) for t in OU_TIMES}
    misses = 0
    for r in ratios:
        assert r.tau == TAUS and r.seeds == 3
        truth = 2.0 if r.band == (3 / 8, 4 / 8) else 1.0
        misses += sum(not low < truth < high for low, high in zip(r.low, r.high))
        assert r.ratio == pytest.approx([truth] * len(TAUS), rel=0.08)
    assert misses <= 8  # 64 intervals at 95%: about 3 miss (P(> 8) ~ 0.5%)
    moved = [(r, i) for r, i in significant(ratios) if r.band == (3 / 8, 4 / 8)]
    assert len(moved) == 4 and {i for _, i in moved} == {0}  # every top-band reading, from the first step


def test_pareto_writes_the_mechanism_section_and_figure(study, tmp_path):
    write_pareto(study, tmp_path)
    text = (tmp_path / "pareto.md").read_text()
    assert "## Mechanism: the error against the empirical score, per band" in text and "![bands](bands.png)" in text
    assert (tmp_path / "bands.png").stat().st_size > 5000


def test_a_paired_ratio_of_one_seed_has_no_interval():
    ratio, low, high = paired_ratio(np.array([2.0]), np.array([1.0]))
    assert ratio == pytest.approx(2.0) and math.isnan(low) and math.isnan(high)
