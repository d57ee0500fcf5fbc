"""The figure of `freqdiff compare`: each recipe's window against n, its scale-free width, and its quality at the
window's start."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from freqdiff.analysis.reading.comparison import Comparison
from freqdiff.analysis.reading.pooling import Recipe
from freqdiff.analysis.reading.scaling import Spread
from freqdiff.analysis.reports.plots import TAU_LABEL, fid_label
from freqdiff.metrics.statistics import mean_t_interval


def _bars(spreads: Sequence[Spread]) -> np.ndarray:
    """Error-bar lengths (below, above) from the mean to min and max."""
    return np.array([[s.mean - s.low for s in spreads], [s.high - s.mean for s in spreads]])


def _draw_window(ax: Any, recipe: Recipe, color: Any, shift: float) -> None:
    """Window band from tau_gen to tau_mem where the gate says every seed generates; tau_mem alone elsewhere."""
    rows = [r for r in recipe.rows if r.group.tau_mem]
    if not rows:
        return
    n = np.array([r.group.n for r in rows]) * shift
    mem = [r.group.tau_mem for r in rows]
    mem_mean = np.array([s.mean for s in mem])
    ax.errorbar(n, mem_mean, yerr=_bars(mem), fmt="-", color=color, label=f"{recipe.label}: tau_mem")
    censored = np.array([r.group.censored > 0 for r in rows])
    ax.plot(n[~censored], mem_mean[~censored], "o", color=color)
    if censored.any():
        ax.plot(n[censored], mem_mean[censored], "^", mfc="none", ms=9, color=color,
                label=f"{recipe.label}: tau_mem censored (>=)")
    windowed = [i for i, r in enumerate(rows) if r.group.tau_gen and not r.group.no_generation
                and r.group.tau_gen.bound not in (">=", "mixed")]
    if windowed:
        gen = [rows[i].group.tau_gen for i in windowed]
        gen_mean = np.array([s.mean for s in gen])
        judged = recipe.gate is not None
        if judged:
            ax.fill_between(n[windowed], gen_mean, mem_mean[windowed], color=color, alpha=0.12, lw=0)
        ax.errorbar(n[windowed], gen_mean, yerr=_bars(gen), fmt="x--" if judged else "x:", color=color,
                    label=f"{recipe.label}: tau_gen" + ("" if judged else " (FD alone: no quality gate, unshaded)"))
    silent = [i for i, r in enumerate(rows) if r.group.no_generation]
    if silent:
        ax.plot(n[silent], mem_mean[silent], "X", ms=10, color=color,
                label=f"{recipe.label}: no generation (no window)")


def _draw_quality(ax: Any, recipe: Recipe, color: Any, shift: float) -> None:
    """The FD at tau_gen (mean over seeds ± its 2-sigma error) where tau_gen is reached."""
    rows = [r for r in recipe.rows if "fid" in r.at_gen]
    if rows:
        levels = [r.at_gen["fid"] for r in rows]
        errs = np.nan_to_num(np.array([lv.err for lv in levels]))
        ax.errorbar(np.array([r.group.n for r in rows]) * shift, [lv.value for lv in levels], yerr=errs,
                    fmt="o-", color=color, label=f"{recipe.label} ({recipe.extractor or 'unknown'})")


def _draw_width(ax: Any, recipe: Recipe, color: Any, shift: float, refined: Sequence[int] = ()) -> None:
    """w = log(tau_mem / tau_gen) per seed (dots; triangles: a bound, pointing the way it may move; a seed without a
    width is not drawn) and, where every seed has an exact w and there are >= 2, their mean with its 95% t interval,
    joined across n. The legend names the n read off refined curves."""
    means: list[tuple[float, float, float, float]] = []
    label: str | None = f"{recipe.label}: seeds" + (f" (refined at n = {', '.join(map(str, refined))})"
                                                    if refined else "")
    for n in sorted({run.window.n for run in recipe.runs if run.window.n is not None}):
        seeds = recipe.at(n)
        windows = [w for w in seeds if w.ratio is not None and w.ratio > 0]
        w = np.log([x.ratio for x in windows])
        for marker, bound in (("o", ""), ("^", ">="), ("v", "<=")):
            picked = w[[x.bound == bound for x in windows]]
            if picked.size:
                ax.plot(np.full(picked.size, n * shift), picked, marker, ms=3.5, mfc="none" if bound else color,
                        color=color, alpha=0.6, label=label)
                label = None
        if len(seeds) == len(windows) >= 2 and all(x.bound == "" for x in windows):
            center, interval = mean_t_interval(w)
            means.append((n * shift, center, *interval))
    if means:
        x, center, low, high = np.array(means).T
        ax.errorbar(x, center, yerr=[center - low, high - center], fmt="s-", ms=6, capsize=3, color=color,
                    label=f"{recipe.label}: mean over seeds, 95% t interval")


def comparison_figure(comparison: Comparison) -> Figure:
    """Left: the scale-free width against n per recipe, with intervals over seeds. Middle: tau_gen and tau_mem against
    n (log-log), window shaded, censored tau_mem open, no-generation points crossed. Right: the FD at tau_gen against
    n with its 2-sigma error.
    """
    fig = Figure(figsize=(17, 4.8))
    width_ax, ax, fid_ax = fig.subplots(1, 3)
    ax.set_yscale("log")
    middle = (len(comparison.recipes) - 1) / 2
    refined = {label: sizes for label, sizes, _ in comparison.refined}
    for i, recipe in enumerate(comparison.recipes):
        shift = 1.03 ** (i - middle)  # side by side around each n
        color = f"C{i}" if len(comparison.recipes) <= 10 else colormaps["tab20"](i % 20)  # no two recipes alike
        _draw_width(width_ax, recipe, color, shift, refined.get(recipe.label, ()))
        _draw_window(ax, recipe, color, shift)
        _draw_quality(fid_ax, recipe, color, shift)
    width_ax.axhline(0, color="0.5", lw=0.8)
    width_ax.set_ylabel("scale-free width w = log(tau_mem / tau_gen)")
    width_ax.set_title("width per seed (o exact, ^ lower bound, v upper bound; < 0: closed) and\n"
                       "the mean over seeds with its 95% t interval where every seed is exact", fontsize=9)
    ns = sorted({row.group.n for r in comparison.recipes for row in r.rows})
    for axis in (width_ax, ax, fid_ax):
        axis.set_xscale("log")
        axis.set_xticks(ns, [str(n) for n in ns])
        axis.minorticks_off()
        axis.set_xlabel("n (training-set size)")
    ax.set_ylabel(TAU_LABEL)
    ax.set_title("generalization window: tau_gen (x, dashed) to tau_mem (o, solid),\n"
                 "shaded where the quality gate confirms generation", fontsize=9)
    extractors = {r.extractor for r in comparison.recipes}
    fid_ax.set_ylabel(f"{fid_label(extractors.pop()) if len(extractors) == 1 else 'FD (features differ)'} at tau_gen")
    fid_ax.set_title("quality at the window's start (mean over seeds ± 2 sigma)", fontsize=9)
    for axis in (width_ax, ax, fid_ax):
        if axis.get_legend_handles_labels()[0]:  # below the panel: no data hidden
            axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False)
    if not fid_ax.get_legend_handles_labels()[0]:
        fid_ax.text(0.5, 0.5, "no recipe reaches tau_gen at any n", ha="center", transform=fid_ax.transAxes)
    return fig
