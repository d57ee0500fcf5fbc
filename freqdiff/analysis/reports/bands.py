"""The mechanism section of a strength study: bands.png and the table of which band each recipe changes, and when.

Read by freqdiff.analysis.reading.bands from the runs' spectral.csv; written beside pareto.md by `freqdiff pareto`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from freqdiff.analysis.reading.bands import METRIC, BandRatio, at_step, band_ratios, reference_taus, significant
from freqdiff.analysis.reading.comparison import Comparison
from freqdiff.analysis.reports.report import markdown_table
from freqdiff.core.figures import save_figure

HOW = (f"{METRIC} (eps_hat against the training set's exact memorizer, power per Fourier coefficient in a radial "
       "band, on held-out images noised to the OU time) of each strength over the reference's: exp of the mean over "
       "seeds, paired by seed, of log(strength / reference), with a 95% Student-t interval. Above 1: farther from the "
       "memorizer in that band than the reference at the same step.")


def _band_text(ratio: BandRatio) -> str:
    return f"{ratio.band[0]:.2f}-{ratio.band[1]:.2f}"


def _cell(ratio: BandRatio, tau: float) -> str:
    step, value, low, high = at_step(ratio, tau)
    interval = "" if math.isnan(low) else f" [{low:.3g}, {high:.3g}]"
    return f"{value:.3g}{interval} (step {step})"


def bands_figure(ratios: Sequence[BandRatio], marks: dict[int, dict[str, float]]) -> Figure:
    """One panel per (n, OU time) row and band column: each strength's ratio against tau with its 95% band; dashed
    and dotted verticals at the reference's mean tau_mem and tau_gen."""
    rows = sorted({(r.n, r.ou_time) for r in ratios})
    bands = sorted({r.band for r in ratios})
    recipes = list(dict.fromkeys(r.recipe for r in ratios))
    fig = Figure(figsize=(3.3 * len(bands), 2.6 * len(rows) + 0.8))
    axes = np.atleast_2d(fig.subplots(len(rows), len(bands), sharex=True, sharey=True, squeeze=False))
    for (i, (n, ou_time)), (j, band) in ((row, col) for row in enumerate(rows) for col in enumerate(bands)):
        ax = axes[i, j]
        for k, recipe in enumerate(recipes):
            for r in (r for r in ratios if (r.recipe, r.n, r.ou_time, r.band) == (recipe, n, ou_time, band)):
                ax.plot(r.tau, r.ratio, "o-", ms=2.5, color=f"C{k % 10}", label=f"{recipe} ({r.seeds} seeds)")
                ax.fill_between(r.tau, r.low, r.high, color=f"C{k % 10}", alpha=0.18, lw=0)
        for name, style in (("tau_mem", "--"), ("tau_gen", ":")):
            if name in marks.get(n, {}):
                ax.axvline(marks[n][name], color="0.4", ls=style, lw=0.9)
        ax.axhline(1, color="0.5", lw=0.7)
        ax.set(xscale="log", title=f"n={n}, OU t={ou_time:.2g}, |f| {band[0]:.2f}-{band[1]:.2f}")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.title.set_fontsize(8)
    for ax in axes[-1]:
        ax.set_xlabel("training step tau")
    for ax in axes[:, 0]:
        ax.set_ylabel("error to memorizer:\nstrength / reference")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0), fontsize=7,
               ncol=len(recipes), frameon=False)
    fig.suptitle("Which band moves away from the memorizer, and when (dashed: reference tau_mem; dotted: tau_gen; "
                 "shade: 95% t interval over seeds)", fontsize=9)
    return fig


def bands_section(comparison: Comparison, out: Path) -> list[str]:
    """Write bands.png under `out` and return pareto.md's mechanism section; [] when no run has spectral.csv."""
    ratios = band_ratios(comparison)
    if not ratios:
        return []
    marks = {n: reference_taus(comparison, n) for n in sorted({r.n for r in ratios})}
    save_figure(bands_figure(ratios, marks), out / "bands.png")
    since = {id(r): r.tau[i] for r, i in significant(ratios)}
    table = []
    for r in ratios:
        gen, mem = marks[r.n].get("tau_gen"), marks[r.n].get("tau_mem")
        table.append([r.recipe, str(r.n), f"{r.ou_time:.2g}", _band_text(r),
                      _cell(r, gen) if gen else "—", _cell(r, mem) if mem else "—", _cell(r, r.tau[-1]),
                      str(since.get(id(r), "never"))])
    return ["## Mechanism: the error against the empirical score, per band", "", HOW, "",
            *markdown_table(("strength", "n", "OU t", "band (cycles/px)", "at the reference's tau_gen",
                             "at the reference's tau_mem", "at the last common step",
                             "interval first excludes 1 at step"), table), "", "![bands](bands.png)", ""]
