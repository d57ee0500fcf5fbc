"""The mechanism reading: which radial band of the error against the empirical score a recipe changes, and when.

From each run's spectral.csv (metrics.diagnostics.band_errors: model_vs_memorizer, the power of eps_hat minus the
training set's exact memorizer, per OU time and radial band at every checkpoint tau), per n, OU time, band and tau:
the recipe's error over the reference's, as exp of the mean over seeds (paired by seed) of log(recipe / reference),
with a 95% Student-t interval. Above 1: the recipe stays farther from the memorizer in that band, so copies less there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from freqdiff.analysis.inference.log_ratio import log_ratio_interval
from freqdiff.analysis.reading.comparison import Comparison
from freqdiff.analysis.reading.pooling import Recipe
from freqdiff.core.io import read_csv

METRIC = "model_vs_memorizer"
Key = tuple[float, int, int]  # (OU time, band, tau)


@dataclass(frozen=True)
class BandRatio:
    """One recipe over the reference in one band at one OU time and n, at each common checkpoint."""

    recipe: str
    n: int
    ou_time: float
    band: tuple[float, float]  # radial frequency range in cycles/pixel
    tau: tuple[int, ...]
    ratio: tuple[float, ...]  # exp(mean over seeds of log(recipe / reference))
    low: tuple[float, ...]  # 95% t interval over seeds (nan with one seed)
    high: tuple[float, ...]
    seeds: int


def band_errors(run_dir: Path) -> tuple[dict[Key, float], dict[int, tuple[float, float]]]:
    """{(OU time, band, tau): model_vs_memorizer} of one run and {band: (f_low, f_high)}; empty without spectral.csv."""
    path = Path(run_dir) / "spectral.csv"
    errors, edges = {}, {}
    for row in read_csv(path) if path.is_file() else []:
        band = int(row["band"])
        errors[(round(float(row["ou_time"]), 6), band, int(row["tau"]))] = float(row[METRIC])
        edges[band] = (float(row["f_low"]), float(row["f_high"]))
    return errors, edges


def paired_ratio(mine: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """mine / ref as exp of the mean over seeds of log(mine / ref) and its 95% t interval (inference.log_ratio, paired
    by seed): nan where it is undefined (one seed, or no spread), 0 or inf at an end beyond exp's range."""
    ratio = log_ratio_interval(mine, ref, paired=True)
    if ratio.interval is None:
        return ratio.estimate, math.nan, math.nan
    low, high = ratio.interval
    return ratio.estimate, 0.0 if low is None else low, math.inf if high is None else high


def _by_seed(recipe: Recipe, n: int) -> dict[object, tuple[dict[Key, float], dict[int, tuple[float, float]]]]:
    """The band errors and band edges of each seed of `recipe` at n that has a spectral.csv."""
    runs = {run.seed: band_errors(run.path) for run in recipe.runs if run.window.n == n}
    return {seed: read for seed, read in runs.items() if read[0]}


def versus_reference(mine: Recipe, ref: Recipe, n: int) -> list[BandRatio]:
    """`mine` over `ref` at n in every (OU time, band), at the checkpoints both measured in every common seed."""
    read_mine, read_ref = _by_seed(mine, n), _by_seed(ref, n)
    seeds = sorted(set(read_mine) & set(read_ref), key=str)
    if not seeds:
        return []
    a, r = ({s: read[s][0] for s in seeds} for read in (read_mine, read_ref))
    keys = set.intersection(*(set(errors) for errors in [*a.values(), *r.values()]))
    edges = read_ref[seeds[0]][1]
    out = []
    for ou_time, band in sorted({(k[0], k[1]) for k in keys}):
        taus = sorted(k[2] for k in keys if k[:2] == (ou_time, band))
        cells = [paired_ratio(np.array([a[s][(ou_time, band, tau)] for s in seeds]),
                                  np.array([r[s][(ou_time, band, tau)] for s in seeds])) for tau in taus]
        ratio, low, high = (tuple(c[i] for c in cells) for i in range(3))
        out.append(BandRatio(mine.label, n, ou_time, edges[band], tuple(taus), ratio, low, high, len(seeds)))
    return out


def band_ratios(comparison: Comparison) -> list[BandRatio]:
    """Every recipe over the reference, at every n both ran, in every (OU time, band) both measured."""
    ref = next(r for r in comparison.recipes if r.label == comparison.reference)
    ns = sorted({row.group.n for row in ref.rows})
    return [ratio for mine in comparison.recipes if mine is not ref for n in ns
            if any(row.group.n == n for row in mine.rows) for ratio in versus_reference(mine, ref, n)]


def at_step(ratio: BandRatio, tau: float) -> tuple[int, float, float, float]:
    """The checkpoint nearest `tau` (in log steps) and the ratio with its interval there."""
    i = int(np.argmin(np.abs(np.log(np.array(ratio.tau, float)) - math.log(tau))))
    return ratio.tau[i], ratio.ratio[i], ratio.low[i], ratio.high[i]


def reference_taus(comparison: Comparison, n: int) -> dict[str, float]:
    """The reference's tau_gen and tau_mem at n, mean over seeds (a bound's mean where seeds are bounds one way), for
    the marks; none where the seeds' bounds are mixed."""
    ref = next(r for r in comparison.recipes if r.label == comparison.reference)
    group = ref.row(n).group
    marks = {"tau_gen": group.tau_gen, "tau_mem": group.tau_mem}
    return {name: s.mean for name, s in marks.items() if s is not None and s.bound != "mixed"}


def significant(ratios: Sequence[BandRatio]) -> list[tuple[BandRatio, int]]:
    """(ratio, first checkpoint index) where the 95% interval first excludes 1, for each reading that ever does."""
    out = []
    for ratio in ratios:
        apart = [i for i, (lo, hi) in enumerate(zip(ratio.low, ratio.high)) if lo > 1 or hi < 1]
        if apart:
            out.append((ratio, apart[0]))
    return out
