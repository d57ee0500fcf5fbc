"""Figures of the RF study: loss curves, the spectrum of U with its predicted edges, tau_mem against psi_n, GD check."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from freqdiff.io import save_figure  # noqa: E402
from freqdiff.theory.spectrum import tau_floor  # noqa: E402

if TYPE_CHECKING:
    from freqdiff.theory.study import StudyResult

EDGE_STYLE = {"rho_2": ("tab:blue", r"$\rho_2$"), "rho_1": ("tab:orange", r"$\rho_1$ (Thm 3.2)"),
              "rho_x": ("tab:green", r"$\rho_x$")}


def losses_figure(result: StudyResult) -> Figure:
    """Per t: L_train (solid) and L_test (dashed), L_gen, E_score against tau; dots at the measured tau_mem."""
    ts = result.config.t
    fig, axes = plt.subplots(len(ts), 3, figsize=(15, 4.2 * len(ts)), squeeze=False)
    for row, t in zip(axes, ts):
        for s in result.at(t):
            c, label = s.curves, rf"$\psi_n$={s.psi_n:g}"
            line, = row[0].semilogx(c.tau, c.L_train, label=label)
            row[0].semilogx(c.tau, c.L_test, "--", color=line.get_color())
            row[1].loglog(c.tau, np.where(c.L_gen > 0, c.L_gen, np.nan), color=line.get_color(), label=label)
            row[2].semilogx(c.tau, c.E_score, color=line.get_color(), label=label)
            if s.tau_measured.tau_mem is not None:
                at = np.interp(np.log(s.tau_measured.tau_mem), np.log(c.tau), c.L_gen)
                row[1].plot([s.tau_measured.tau_mem], [at], "o", color=line.get_color())
        row[0].set_title(f"t={t:g}: L_train (solid), L_test (dashed)")
        row[1].set_title(r"$L_{gen} = L_{test} - L_{train}$ (dot: measured $\tau_{mem}$)")
        row[2].set_title(r"$E_{score}$")
        row[2].set_yscale("log")
        for ax in row:
            ax.set_xlabel(r"$\tau$")
            ax.grid(alpha=0.3)
        row[0].legend()
    fig.suptitle(f"RF model, d={result.config.d}, psi_p={result.config.psi_p:g}: closed-form gradient flow")
    fig.tight_layout()
    return fig


def spectrum_figure(result: StudyResult) -> Figure:
    """Histogram of the eigenvalues of U (log scale) with the predicted bulk edges shaded, one panel per setting."""
    ts, psis = result.config.t, result.config.psi_n
    fig, axes = plt.subplots(len(ts), len(psis), figsize=(4.2 * len(psis), 3.6 * len(ts)), squeeze=False)
    for row, t in zip(axes, ts):
        for ax, s in zip(row, result.at(t)):
            lam = s.eigenvalues[s.eigenvalues > 0]
            ax.hist(np.log10(lam), bins=120, color="0.4")
            for name, (color, label) in EDGE_STYLE.items():
                low, high = getattr(s.predicted, name)
                ax.axvspan(np.log10(low), np.log10(high), color=color, alpha=0.25, label=label)
            ax.axvline(np.log10(result.constants[t].s_t ** 2), color="k", ls=":", label=r"$s_t^2$")
            ax.set_yscale("log")
            ax.set_title(rf"t={t:g}, $\psi_n$={s.psi_n:g}")
            ax.set_xlabel(r"$\log_{10}\lambda$ (eigenvalues of U)")
        row[0].legend(fontsize=8)
    fig.suptitle("Spectrum of U with the predicted bulks (shaded)")
    fig.tight_layout()
    return fig


def tau_mem_figure(result: StudyResult) -> Figure:
    """tau_mem and tau_x against psi_n (log-log): measured, predicted, the fit of tau_mem and the ceiling tau_floor."""
    ts = result.config.t
    fig, axes = plt.subplots(1, len(ts), figsize=(6 * len(ts), 4.8), squeeze=False)
    for ax, t in zip(axes[0], ts):
        rows = result.at(t)
        psi = np.array([s.psi_n for s in rows])
        ax.loglog(psi, [s.tau_measured.tau_mem or np.nan for s in rows], "ko",
                  label=r"$\tau_{mem}$ measured ($L_{gen}$ at 50%)")
        ax.loglog(psi, [s.tau_measured.tau_x or np.nan for s in rows], "k^", mfc="none",
                  label=r"$\tau_x$ measured ($L_{gen}$ at 90%)")
        ax.loglog(psi, [s.tau_predicted.tau_mem for s in rows], "s--", color="tab:orange",
                  label=r"paper: $\psi_p/(\Delta_t\lambda_{min})$, $\rho_1$")
        ax.loglog(psi, [s.tau_predicted.tau_x for s in rows], "^--", color="tab:green",
                  label=r"$\psi_p/(\Delta_t\lambda_x^-)$, $\rho_x$")
        floor = tau_floor(result.constants[t], rows[0].eigenvalues.size / rows[0].d)
        ax.axhline(floor, color="0.5", ls=":", label=r"$\tau_{floor}=\psi_p/(\Delta_t s_t^2)$")
        law = result.fits[f"t={t:g}"]["tau_mem_measured"]
        if law is not None:
            ci = law["interval"]
            text = f"fit slope {law['slope']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            ax.loglog(psi, 10 ** (law["intercept"] + law["slope"] * np.log10(psi)), "k-", lw=0.8, label=text)
        ax.set_xlabel(r"$\psi_n = n/d$")
        ax.set_ylabel(r"$\tau$")
        ax.set_title(f"t={t:g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
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
    ax.set_title(f"GD with fresh noise vs closed form (d={result.config.d}, t={s.t:g}, "
                 rf"$\psi_n$={s.psi_n:g}, step {gd.step_tau:.3g} in $\tau$)")
    gap.set_title("(GD - closed form) / closed form [%]")
    for a in (ax, gap):
        a.set_xlabel(r"$\tau$")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    return fig


def write_figures(result: StudyResult, out: Path) -> None:
    """losses.png, spectrum.png, tau_mem.png and (with GD) gd_check.png."""
    save_figure(losses_figure(result), out / "losses.png")
    save_figure(spectrum_figure(result), out / "spectrum.png")
    save_figure(tau_mem_figure(result), out / "tau_mem.png")
    gd = gd_figure(result)
    if gd is not None:
        save_figure(gd, out / "gd_check.png")
