"""Figures of the RF study: losses, L_gen with its readouts, the spectrum, tau_mem against psi_n, the phase figure of
local slopes over (psi_p / psi_n, t), and the GD check."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from freqdiff.core.figures import save_figure  # noqa: E402
from freqdiff.theory.results import Setting, StudyResult  # noqa: E402
from freqdiff.theory.tables import READOUTS, Analysis, families  # noqa: E402

EDGE_STYLE = {"rho_2": ("tab:blue", r"$\rho_2$"), "rho_1": ("tab:orange", r"$\rho_1$ (Thm 3.2)"),
              "rho_x": ("tab:green", r"$\rho_x$")}
MARKERS = {"spectral": "x", "gap": "o", "onset": "v", "half": "s"}
MEM_READOUTS = ("theorem", "spectral", "gap", "onset", "half")


def shown_families(result: StudyResult) -> list[tuple[str, float]]:
    """The (model, psi_p) rows of the curve figures: the first exact psi_p and the largest equivalent psi_p."""
    rows = [("exact", result.config.exact_psi_p[0])] if result.select("exact") else []
    return rows + [("equivalent", max(result.config.psi_p))]


def _grid(result: StudyResult, width: float, height: float) -> tuple[Figure, np.ndarray, list[tuple[str, float]]]:
    rows, ts = shown_families(result), result.config.t
    fig, axes = plt.subplots(len(rows), len(ts), figsize=(width * len(ts), height * len(rows)), squeeze=False)
    return fig, axes, rows


def _curves_of(result: StudyResult, model: str, psi_p: float, t: float) -> list[Setting]:
    return result.select(model, psi_p, t, draw=0)


def losses_figure(result: StudyResult) -> Figure:
    """L_train (solid) and L_test (dashed) against tau, first draw, as in the paper's Fig. 5."""
    fig, axes, rows = _grid(result, 4.6, 3.8)
    for ax, (model, psi_p, t), shown in _panels(result, axes, rows):
        for s in shown:
            line, = ax.semilogx(s.curves.tau, s.curves.L_train, label=rf"$\psi_n$={s.psi_n:g}")
            ax.semilogx(s.curves.tau, s.curves.L_test, "--", color=line.get_color())
        ax.legend(fontsize=7, title="L_train solid, L_test dashed", title_fontsize=7)
    fig.tight_layout()
    return fig


def _panels(result: StudyResult, axes: np.ndarray,
            rows: list[tuple[str, float]]) -> Iterator[tuple[plt.Axes, tuple[str, float, float], list[Setting]]]:
    """(axis, (model, psi_p, t), first-draw settings) for every panel with settings; the others are switched off."""
    for row, (model, psi_p) in zip(axes, rows):
        for ax, t in zip(row, result.config.t):
            shown = _curves_of(result, model, psi_p, t)
            if not shown:
                ax.set_axis_off()
                continue
            ax.set_title(f"{model}, psi_p={psi_p:g}, t={t:g}", fontsize=9)
            ax.set_xlabel(r"$\tau$")
            ax.grid(alpha=0.3)
            yield ax, (model, psi_p, t), shown


def gen_figure(result: StudyResult) -> Figure:
    """L_gen = L_test - L_train (log-log), first draw, with the four tau_mem readouts marked and the gap level."""
    fig, axes, rows = _grid(result, 4.6, 3.8)
    for ax, (model, psi_p, t), shown in _panels(result, axes, rows):
        for s in shown:
            c = s.curves
            line, = ax.loglog(c.tau, np.where(c.L_gen > 0, c.L_gen, np.nan), label=rf"$\psi_n$={s.psi_n:g}")
            for name, marker in MARKERS.items():
                at = getattr(s.readouts, name)
                if at is not None and c.tau[0] <= at <= c.tau[-1]:
                    ax.plot([at], [np.interp(np.log(at), np.log(c.tau), c.L_gen)], marker, ms=5,
                            color=line.get_color(), mfc="none")
        ax.axhline(result.config.level(t), color="0.5", ls=":", lw=0.8)
        ax.set_ylim(bottom=1e-4)
        ax.legend(fontsize=6, title="L_gen; x spectral, o gap, v onset,\ns half; dotted: gap level", title_fontsize=6)
    fig.tight_layout()
    return fig


def spectrum_figure(result: StudyResult) -> Figure | None:
    """Eigenvalues of U, exact model (grey) against the Gaussian-equivalent one (line), first draw, predicted bulks."""
    exact = result.select("exact", draw=0)
    if not exact:
        return None
    ts, psis = sorted({s.t for s in exact}), sorted({s.psi_n for s in exact})
    fig, axes = plt.subplots(len(ts), len(psis), figsize=(4 * len(psis), 3.4 * len(ts)), squeeze=False)
    twins = {(s.psi_p, s.t, s.psi_n): s for s in result.select("equivalent", draw=0)}
    for s in exact:
        ax = axes[ts.index(s.t)][psis.index(s.psi_n)]
        bins = np.linspace(np.log10(s.eigenvalues[s.eigenvalues > 0].min()), np.log10(s.eigenvalues.max()), 100)
        ax.hist(np.log10(s.eigenvalues[s.eigenvalues > 0]), bins=bins, color="0.6", label="exact")
        twin = twins.get((s.psi_p, s.t, s.psi_n))
        if twin is not None:
            ax.hist(np.log10(twin.eigenvalues), bins=bins, histtype="step", color="k", label="Gauss.-equiv. (> s_t^2)")
        for name, (color, label) in EDGE_STYLE.items():
            low, high = getattr(s.predicted, name)
            ax.axvspan(np.log10(low), np.log10(high), color=color, alpha=0.2, label=label)
        ax.axvline(np.log10(result.constants[s.t].s_t ** 2), color="k", ls=":", label=r"$s_t^2$")
        ax.set_yscale("log")
        ax.set_title(rf"psi_p={s.psi_p:g}, t={s.t:g}, $\psi_n$={s.psi_n:g}", fontsize=9)
        ax.set_xlabel(r"$\log_{10}\lambda$")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def tau_mem_figure(result: StudyResult, analysis: Analysis) -> Figure:
    """The readouts against psi_n: geometric mean over draws with the range over draws, slope with its interval."""
    fig, axes, rows = _grid(result, 4.6, 4.0)
    for row, (model, psi_p) in zip(axes, rows):
        for ax, t in zip(row, result.config.t):
            settings = result.select(model, psi_p, t)
            if not settings:
                ax.set_axis_off()
                continue
            psi = np.array(sorted({s.psi_n for s in settings}))
            for name in MEM_READOUTS:
                values = np.array([[READOUTS[name](s) or np.nan for s in settings if s.psi_n == x] for x in psi])
                law = analysis.slopes[((model, psi_p, t), name)]
                text = "" if law is None else f" {law.mean:.2f}" + (
                    f" [{law.interval[0]:.2f}, {law.interval[1]:.2f}]" if law.interval else "")
                centre = np.exp(np.nanmean(np.log(values), axis=1))
                spread = [np.maximum(centre - np.nanmin(values, 1), 0), np.maximum(np.nanmax(values, 1) - centre, 0)]
                ax.errorbar(psi, centre, yerr=spread,
                            marker=MARKERS.get(name, "*"), capsize=2, label=name + text)
            anchor = np.nanmedian([READOUTS["theorem"](s) for s in settings if s.psi_n == psi[0]])
            ax.loglog(psi, anchor * psi / psi[0], "k:", lw=0.8, label="slope 1")
            ax.set_xticks(psi, [f"{x:g}" for x in psi])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_title(f"{model}, psi_p={psi_p:g}, t={t:g}", fontsize=9)
            ax.set_xlabel(r"$\psi_n$")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def phase_figure(result: StudyResult, analysis: Analysis) -> Figure:
    """Local slope d log tau / d log psi_n between neighbouring psi_n (mean over draws), over (psi_p/psi_n, t)."""
    fams = [f for f in families(result) if f[0] == "equivalent"]
    fams.sort(key=lambda f: (f[2], f[1]))
    fig, axes = plt.subplots(1, len(MEM_READOUTS), figsize=(4.2 * len(MEM_READOUTS), 0.42 * len(fams) + 1.8),
                             sharey=True, squeeze=False)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=2.0)
    cmap = plt.get_cmap("RdBu_r")
    for ax, name in zip(axes[0], MEM_READOUTS):
        for y, family in enumerate(fams):
            for cell in analysis.cells[(family, name)]:
                low, high = np.log2(cell.ratio[1]), np.log2(cell.ratio[0])
                value = np.nan if cell.slope is None else cell.slope.mean
                color = "0.85" if np.isnan(value) else cmap(norm(np.clip(value, 0, 2)))
                ax.add_patch(plt.Rectangle((low, y - 0.45), high - low, 0.9, color=color))
                ax.text((low + high) / 2, y, "-" if np.isnan(value) else f"{value:.2f}", ha="center", va="center",
                        fontsize=6)
        ax.set_xlim(0.8, max(np.log2(f[1] / min(result.config.psi_n)) for f in fams) + 0.2)
        ax.set_ylim(-0.6, len(fams) - 0.4)
        ax.set_xlabel(r"$\log_2(\psi_p/\psi_n)$")
        ax.set_title(name, fontsize=10)
    axes[0][0].set_yticks(range(len(fams)), [f"t={f[2]:g}, psi_p={f[1]:g}" for f in fams], fontsize=7)
    axes[0][0].invert_yaxis()
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), label="local slope (1: linear)")
    fig.suptitle("Gaussian-equivalent model: d log tau_mem / d log psi_n between neighbouring psi_n, mean over draws")
    return fig


def gd_figure(result: StudyResult) -> Figure | None:
    """Closed form (lines) against gradient descent (dots), and their relative gap in percent."""
    done = [s for s in result.settings if s.gd is not None and s.gd_closed_form is not None]
    if not done:
        return None
    s = done[0]
    gd, cf = s.gd, s.gd_closed_form
    assert gd is not None and cf is not None
    fig, (ax, gap) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, color in (("L_train", "tab:blue"), ("L_test", "tab:red")):
        ax.semilogx(cf.tau[1:], getattr(cf, name)[1:], color=color, label=f"{name} closed form")
        ax.semilogx(gd.tau[1:], getattr(gd, name)[1:], "o", ms=4, color=color, mfc="none", label=f"{name} GD")
        gap.semilogx(gd.tau[1:], 100 * (getattr(gd, name)[1:] / getattr(cf, name)[1:] - 1), "o-", ms=3,
                     color=color, label=name)
    ax.set_title(f"GD with fresh noise vs closed form (exact model, d={s.d}, psi_p={s.psi_p:g}, t={s.t:g}, "
                 rf"$\psi_n$={s.psi_n:g})", fontsize=9)
    gap.set_title("(GD - closed form) / closed form [%]")
    for a in (ax, gap):
        a.set_xlabel(r"$\tau$")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    return fig


def write_figures(result: StudyResult, analysis: Analysis, out: Path) -> None:
    """losses.png, gen.png, tau_mem.png, phase.png and, when the exact model ran, spectrum.png and gd_check.png."""
    save_figure(losses_figure(result), out / "losses.png")
    save_figure(gen_figure(result), out / "gen.png")
    save_figure(tau_mem_figure(result, analysis), out / "tau_mem.png")
    save_figure(phase_figure(result, analysis), out / "phase.png")
    for name, fig in (("spectrum.png", spectrum_figure(result)), ("gd_check.png", gd_figure(result))):
        if fig is not None:
            save_figure(fig, out / name)
