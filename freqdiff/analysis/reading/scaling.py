"""Fits across runs: tau_mem against n (the paper: tau_mem ~ n), seeds pooled, and the collapse data.

Runs share a recipe when their configs differ only in n, seeds and run length; a scaling fit and
a collapse plot only ever mix runs of one recipe.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from freqdiff.analysis.inference.base import Inference
from freqdiff.analysis.inference.censored_slope import aft_slope
from freqdiff.analysis.reading.curves import Curves
from freqdiff.analysis.reading.onsets import Onset, tau_of
from freqdiff.analysis.reading.sensitivity import OPEN
from freqdiff.analysis.reading.window import Window
from freqdiff.metrics.statistics import PowerLaw, fit_power_law

# Settings that vary between the runs of one scaling experiment, left out of the recipe.
DERIVED = "derived"  # values measured on each run's own training subset (config.json): they vary with n, like n
RUN_KEYS = {
    "data": ("n", "subset_index", "data_seed"),
    "train": ("seed", "steps", "n_checkpoints", "first_checkpoint", "save_every", "log_every",
              "tensorboard", "eval_checkpoints", "keep_states"),
}


@dataclass(frozen=True)
class Spread:
    """Mean, sample std (ddof=1; 0 for one value), min and max over seeds.

    bound is '>=' when some value is a censored lower bound (then so is every statistic),
    '<=' when some value is an upper bound, 'mixed' when there are bounds both ways (then the
    statistics bound nothing), '' otherwise.
    """

    mean: float
    std: float
    low: float
    high: float
    count: int
    bound: str

    def __str__(self) -> str:
        prefix = "mixed bounds: " if self.bound == "mixed" else f"{self.bound} " if self.bound else ""
        if self.count == 1:
            return prefix + _num(self.mean)
        return f"{prefix}{_num(self.mean)} ± {_num(self.std)} [{_num(self.low)}, {_num(self.high)}]"


def _num(x: float) -> str:
    """Steps as whole numbers, small values with 3 significant digits."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


@dataclass(frozen=True)
class WindowGroup:
    """The windows of one recipe at one n, across seeds."""

    recipe: str
    n: int
    seeds: tuple[Any, ...]
    tau_gen: Spread | None
    tau_mem: Spread | None  # the earlier of the two copy measures' tau_mem
    censored: int  # seeds whose tau_mem is censored (never memorized)
    no_generation: int  # seeds that never pass the quality gate
    open: int  # seeds whose window is open: tau_mem > tau_gen, exactly or as a lower bound

    @property
    def window_open(self) -> bool:
        """Open for every seed."""
        return self.open == len(self.seeds)


def recipe_of(config: Mapping[str, Any]) -> str:
    """A label shared by runs that differ only in n, seeds and run length: the unit of a scaling fit."""
    shared = {section: ({k: v for k, v in values.items() if k not in RUN_KEYS.get(section, ())}
                        if isinstance(values, Mapping) else values)
              for section, values in config.items() if section != DERIVED}
    digest = hashlib.sha1(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:6]
    names = "/".join(str(config.get(c, {}).get("name", "?")) for c in ("dataset", "process", "model", "regularizer"))
    return f"{names}#{digest}"


def component_label(config: dict[str, Any], name: str) -> str:
    """'name(key=value, ...)' of a config component."""
    comp = config.get(name, {})
    params = ", ".join(f"{k}={v}" for k, v in comp.get("params", {}).items())
    return f"{comp.get('name', '?')}({params})" if params else str(comp.get("name", "?"))


def exact_tau_mem(windows: Iterable[Window]) -> list[tuple[int, int]]:
    """(n, tau_mem) of the windows whose tau_mem (the earlier of the two copy measures) is no bound."""
    return [(w.n, w.tau_mem_earlier.step) for w in windows
            if w.n and w.tau_mem_earlier.step and w.tau_mem_earlier.step > 0 and not w.tau_mem_earlier.bound]


def fit_tau_mem(windows: Iterable[Window], bootstrap: int = 0) -> PowerLaw | None:
    """tau_mem against n over the windows whose tau_mem is no bound; None with fewer than 2 distinct n."""
    points = exact_tau_mem(windows)
    if len({n for n, _ in points}) < 2:
        return None
    n, tau = zip(*points)
    return fit_power_law(n, tau, bootstrap=bootstrap)


def censored_slope(onsets: Sequence[tuple[int, Onset]]) -> Inference | None:
    """tau ~ n^slope with the bounded onsets counted as censored (`aft_slope`, brackets by `tau_of`); None where
    none is a bound."""
    taus = [(n, tau_of(o)) for n, o in onsets if n]
    read = [(n, t) for n, t in taus if t is not None]
    if not any(t.side for _, t in read):
        return None
    return aft_slope([n for n, _ in read], [(t.low, t.high) for _, t in read])


def fit_tau_mem_censored(windows: Iterable[Window]) -> Inference | None:
    """tau_mem against n with the censored runs counted; None where no run's tau_mem is a bound."""
    return censored_slope([(w.n, w.tau_mem_earlier) for w in windows])


def fit_width(windows: Iterable[Window]) -> tuple[PowerLaw, int] | None:
    """tau_mem/tau_gen ~ n^slope over the windows whose ratio is exact, and their count: the slope is d w / d ln n of the
    scale-free width w = log(tau_mem/tau_gen), the tau_mem slope minus the tau_gen slope; None below 2 distinct n."""
    points = [(w.n, w.ratio) for w in windows if w.n and w.ratio and w.ratio > 0 and not w.bound]
    if len({n for n, _ in points}) < 2:
        return None
    return fit_power_law(*zip(*points)), len(points)


def spread(values: Sequence[float], bound: str = "") -> Spread:
    """Mean, std, min and max of per-seed values carrying the given bound."""
    a = np.asarray(values, float)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return Spread(float(a.mean()), std, float(a.min()), float(a.max()), len(a), bound)


def onset_spread(onsets: Sequence[Onset]) -> Spread | None:
    """Spread of one window end over seeds; bounded values make it a bound, never dropped."""
    defined = [o for o in onsets if o.step is not None]
    if not defined:
        return None
    bounds = {o.bound for o in defined} - {""}
    return spread([o.step for o in defined], "mixed" if len(bounds) > 1 else bounds.pop() if bounds else "")


def is_open(window: Window) -> bool:
    """tau_mem's 95% interval lies above tau_gen's for this run (freqdiff.analysis.reading.sensitivity)."""
    return window.state == OPEN


def group_windows(runs: Iterable[tuple[str, Any, Window]]) -> list[WindowGroup]:
    """Pool (recipe, seed, window) triples by (recipe, n), sorted by recipe then n."""
    pooled: dict[tuple[str, int], list[tuple[Any, Window]]] = defaultdict(list)
    for recipe, seed, window in runs:
        if window.n is not None:
            pooled[(recipe, window.n)].append((seed, window))
    groups = []
    for (recipe, n), members in sorted(pooled.items()):
        windows = [w for _, w in members]
        groups.append(WindowGroup(recipe, n, tuple(s for s, _ in members),
                                  onset_spread([w.tau_gen for w in windows]),
                                  onset_spread([w.tau_mem_earlier for w in windows]),
                                  sum(w.tau_mem_earlier.bound == ">=" for w in windows),
                                  sum(w.generation.generates is False for w in windows),
                                  sum(is_open(w) for w in windows)))
    return groups


def tau_gen_flatness(groups: Sequence[WindowGroup]) -> float | None:
    """Largest over smallest seed-mean tau_gen across n (the paper: about 1); None unless every n's is no bound."""
    means = [g.tau_gen.mean for g in groups if g.tau_gen is not None and not g.tau_gen.bound]
    if len(means) < 2 or len(means) < len(groups):
        return None
    return max(means) / min(means)


def collapse_curve(curves: Curves, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """tau/n and f_mem(tau)/f_mem(tau_max) for the collapse plot; None when f_mem(tau_max) is 0."""
    fmem = curves["fmem"]
    ok = np.isfinite(fmem)
    if not ok.any() or fmem[ok][-1] <= 0:
        return None
    return curves.step[ok] / n, fmem[ok] / fmem[ok][-1]
