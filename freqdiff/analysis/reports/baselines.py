"""Baseline runs in report.md (their measures over their own parameter) and the copy-to-smooth placement of trained
checkpoints (reading.baselines): tables and figures."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from freqdiff.analysis.reading.baselines import (ONE_POINT, BaselineRun, Equivalent, file_label, load_baseline,
                                                 sigma_by_fmem, sigma_by_profile, spectral_profiles)
from freqdiff.analysis.reading.curves import Curves, load_run
from freqdiff.analysis.reports.plots import fid_label, nearest_figure
from freqdiff.core.figures import save_figure
from freqdiff.core.registry import FreqdiffError

SIGMA_LABEL = "smoothing sigma (units of x_t: centered pixels)"
COPY_MEASURES = (("fmem", "C3", "s", "f_mem (paper)"), ("fmem_robust", "C1", "^", "f_mem robust to residual noise"))


def _interval(curves: Curves, column: str, i: int) -> str:
    value, low, high = (curves[c][i] for c in (column, f"{column}_low", f"{column}_high"))
    if not math.isfinite(value):
        return "—"
    return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if math.isfinite(low) and math.isfinite(high) else "")


def _pm(curves: Curves, column: str, i: int) -> str:
    value, err = curves[column][i], curves[f"{column}_err"][i] if f"{column}_err" in curves.values else math.nan
    if not math.isfinite(value):
        return "—"
    return f"{value:.4g}" + (f" ± {err:.2g}" if math.isfinite(err) else "")


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _positions(run: BaselineRun) -> tuple[np.ndarray, bool]:
    """x positions of the values: the numbers themselves, or their order when a value is not one number."""
    x = run.x
    return (x, True) if np.isfinite(x).all() and len(x) > 1 else (np.arange(len(x), dtype=float), False)


def _along_axis(ax: Axes, run: BaselineRun, x: np.ndarray, numeric: bool) -> None:
    ax.set_xlabel(run.parameter or "model")
    if not numeric:
        ax.set_xticks(x, run.values)


def baseline_figure(run: BaselineRun) -> Figure:
    """Both copy measures with their 95% intervals and the FD ± 2 sigma against the baseline's parameter."""
    x, numeric = _positions(run)
    curves = run.curves
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    copy_ax, fd_ax = fig.subplots(1, 2)
    for measure, color, marker, name in COPY_MEASURES:
        copy_ax.fill_between(x, curves[f"{measure}_low"], curves[f"{measure}_high"], color=color, alpha=0.2, lw=0)
        copy_ax.plot(x, curves[measure], f"{marker}-", ms=4, color=color, label=f"{name}, 95% interval")
    copy_ax.set(ylabel="memorized fraction", ylim=(0, 1.05))
    copy_ax.legend(fontsize=7)
    fd_ax.errorbar(x, curves["fid"], yerr=np.nan_to_num(curves["fid_err"]), fmt="o-", ms=4, capsize=2, color="C0")
    fd_ax.set_ylabel(f"{fid_label(curves.extractor)} ± 2 sigma")
    for ax in (copy_ax, fd_ax):
        _along_axis(ax, run, x, numeric)
    fig.suptitle(f"{run.run_dir.name}: {run.label}", fontsize=9)
    return fig


def _value_rows(run: BaselineRun, root: Path) -> list[list[str]]:
    c = run.curves
    where = run.run_dir.relative_to(root).as_posix()
    return [[where, run.model, run.parameter or "—", value, f"{_pm(c, 'fid', i)} ({c.extractor or 'unknown'})",
             _pm(c, "recognizable", i), _interval(c, "fmem", i), _interval(c, "fmem_robust", i),
             f"{c['loss_test'][i]:.4g}"] for i, value in enumerate(run.values)]


def _grids(run: BaselineRun, root: Path) -> list[str]:
    """Links to each value's sample grid and nearest-training-image figure."""
    column = run.parameter or ONE_POINT
    lines = []
    for value in run.values:
        path = run.run_dir / "nearest" / f"{file_label(column, value)}.npz"
        if not path.is_file():
            continue
        figure = run.run_dir / "figures" / f"nearest_{path.stem}.png"
        save_figure(nearest_figure(path, run.config.get("eval", {}).get("k"), label=path.stem), figure)
        grid = run.run_dir / "samples" / f"{path.stem}.png"
        lines.append(f"- {column} = {value}: samples ![grid]({grid.relative_to(root).as_posix()}), "
                     f"beside their nearest training images ![nearest]({figure.relative_to(root).as_posix()})")
    return lines


def baseline_section(run_dirs: Sequence[Path], root: Path) -> list[str]:
    """The report's section on baseline runs: one row per value, a figure per run, sample grids."""
    runs, skipped = [], []
    for run_dir in run_dirs:
        try:
            runs.append(load_baseline(run_dir))
        except FreqdiffError as err:
            skipped.append(f"- {run_dir.relative_to(root).as_posix()}: {err}")
    if not runs and not skipped:
        return []
    columns = ("run", "model", "parameter", "value", "FD ± 2 sigma (features)", "recognizable ± 2 sigma",
               "f_mem [95% CI]", "f_mem robust [95% CI]", "test loss at fixed t")
    table = [row for run in runs for row in _value_rows(run, root)]
    lines = ["## Closed-form baselines", "",
             "Models that are never trained (freqdiff.baselines), each measured over its own parameter exactly as a "
             "checkpoint is (same samples count, sampler and seeded noise, test set, extractor).", "",
             *_table(columns, table), ""]
    for run in runs:
        figure = run.run_dir / "figures" / "baseline.png"
        save_figure(baseline_figure(run), figure)
        lines += [f"### {run.run_dir.relative_to(root).as_posix()}: {run.label}", "",
                  f"![{run.run_dir.name}]({figure.relative_to(root).as_posix()})", "", *_grids(run, root), ""]
    return lines + (["Baseline runs not shown:", "", *skipped, ""] if skipped else [])


def placements(run_dir: Path, smoothed: BaselineRun) -> list[tuple[int, float, Equivalent, Equivalent]]:
    """(tau, f_mem, sigma by f_mem, sigma by spectral profile) of every evaluated checkpoint of a trained run."""
    _, curves = load_run(run_dir)
    sigma = smoothed.x
    by_tau = spectral_profiles(run_dir, "tau")
    candidates = {float(s): p for s, p in spectral_profiles(smoothed.run_dir, "sigma").items()}
    return [(int(tau), float(f), sigma_by_fmem(float(f), sigma, smoothed.curves["fmem"]),
             sigma_by_profile(by_tau.get(str(int(tau)), {}), candidates))
            for tau, f in zip(curves.step, curves["fmem"])]


def _bound_marker(bound: str) -> str:
    return {"<=": "v", ">=": "^"}.get(bound, "o")


def copy_to_smooth_figure(run_dir: Path, smoothed: BaselineRun) -> Figure:
    """Left: f_mem against sigma of the smoothed memorizer, each checkpoint placed at its f_mem-equivalent sigma;
    middle: the FD there; right: both equivalent sigmas against training step tau."""
    _, curves = load_run(run_dir)
    placed = placements(run_dir, smoothed)
    sigma, base = smoothed.x, smoothed.curves
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    copy_ax, fd_ax, tau_ax = fig.subplots(1, 3)
    copy_ax.fill_between(sigma, base["fmem_low"], base["fmem_high"], color="0.6", alpha=0.3, lw=0)
    copy_ax.plot(sigma, base["fmem"], "k.-", label="smoothed_empirical, 95% interval")
    fd_ax.errorbar(sigma, base["fid"], yerr=np.nan_to_num(base["fid_err"]), fmt="k.-", capsize=2,
                   label="smoothed_empirical ± 2 sigma")
    colors = _tau_colors([tau for tau, *_ in placed])
    tau_ax.plot([], [], "o", color="C3", label="by f_mem")
    tau_ax.plot([], [], "o", mfc="none", color="C0", label="by spectral profile")
    for i, (tau, fmem, by_fmem, by_profile) in enumerate(placed):
        if by_fmem.sigma is not None:
            marker = _bound_marker(by_fmem.bound)
            copy_ax.plot(by_fmem.sigma, fmem, marker, color=colors[tau], ms=6)
            fd_ax.plot(by_fmem.sigma, curves["fid"][i], marker, color=colors[tau], ms=6)
            tau_ax.plot(tau, by_fmem.sigma, marker, color="C3", ms=6)
        if by_profile.sigma is not None:
            tau_ax.plot(tau, by_profile.sigma, _bound_marker(by_profile.bound), mfc="none", color="C0", ms=8)
    copy_ax.set(xlabel=SIGMA_LABEL, ylabel="f_mem", ylim=(-0.02, 1.05),
                title="checkpoints (colour: log tau) at their f_mem-equivalent sigma")
    fd_ax.set(xlabel=SIGMA_LABEL, ylabel=fid_label(curves.extractor), title="quality at that sigma")
    tau_ax.set(xscale="log", xlabel="tau (optimizer steps)", ylabel="equivalent sigma",
               title="copy (0) to smooth: v upper bound, ^ lower bound")
    for ax in (copy_ax, fd_ax, tau_ax):
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    fig.suptitle(f"{run_dir.name} on the copy-to-smooth axis of {smoothed.run_dir.name}", fontsize=9)
    return fig


def _tau_colors(taus: Sequence[int]) -> dict[int, tuple]:
    from matplotlib import colormaps

    logs = np.log10(np.maximum(taus, 1))
    span = max(float(logs.max() - logs.min()), 1e-9) if len(taus) else 1.0
    return {tau: colormaps["plasma"](0.9 * (v - logs.min()) / span) for tau, v in zip(taus, logs)}


def spectral_profile_figure(run_dir: Path, smoothed: BaselineRun) -> Figure:
    """model_vs_memorizer per radial band, one panel per OU time: each smoothing sigma (grey to black) and each
    checkpoint (colour: log tau): where the curves meet is where a checkpoint denoises like the smoothed memorizer
    (the spectral match reads the least noisy panel)."""
    trained, baseline = spectral_profiles(run_dir, "tau"), spectral_profiles(smoothed.run_dir, "sigma")
    ou_times = sorted({t for profile in baseline.values() for t, _ in profile}, reverse=True)
    if not ou_times:
        raise FreqdiffError(f"{smoothed.run_dir}: no spectral.csv (measure it with --spectral true)")
    fig = Figure(figsize=(4.2 * len(ou_times), 3.4), layout="constrained")
    axes = fig.subplots(1, len(ou_times), squeeze=False)[0]
    colors = _tau_colors([int(t) for t in trained])
    for ax, ou_time in zip(axes, ou_times):
        for j, (sigma, profile) in enumerate(sorted(baseline.items(), key=lambda kv: float(kv[0]))):
            _profile_line(ax, profile, ou_time, color=str(0.75 * (1 - j / max(len(baseline) - 1, 1))), ls="-",
                          label=f"sigma {sigma}")
        for tau, profile in trained.items():
            _profile_line(ax, profile, ou_time, color=colors[int(tau)], ls="--", label=f"tau {tau}")
        ax.set(yscale="log", xlabel="radial band (low to high frequency)", title=f"OU time {ou_time:.3g}")
    axes[0].set_ylabel("model_vs_memorizer (power per coefficient)")
    axes[-1].legend(fontsize=6, ncol=2)
    return fig


def _profile_line(ax: Axes, profile: dict[tuple[float, int], float], ou_time: float, **style: object) -> None:
    points = sorted((band, value) for (t, band), value in profile.items() if t == ou_time and value > 0)
    if points:
        ax.plot(*zip(*points), marker=".", **style)


def copy_to_smooth_section(trained: Sequence[Path], smoothed: BaselineRun, root: Path) -> list[str]:
    """Per trained run: its checkpoints' equivalent sigmas (table) and the placement and spectral figures."""
    lines = ["## Trained checkpoints on the copy-to-smooth axis", "",
             f"The axis is the smoothing sigma of {smoothed.run_dir.relative_to(root).as_posix()} (smoothed_empirical: "
             "sigma = 0 is the exact memorizer). Each checkpoint's equivalent sigma is read by f_mem (the sigma at "
             "which the smoothed memorizer copies as often, linear between measured sigmas on its non-increasing "
             "envelope; a bound where the checkpoint copies more than the least or less than the most smoothed "
             "one) and by spectral profile (the measured sigma whose per-band distance to the memorizer at the "
             "least noisy level, the paper's t = 0.01, is nearest in log scale). f_mem is the window's own "
             "measure; the profile does not saturate where f_mem is 0 or 1.", ""]
    for run_dir in trained:
        name = run_dir.relative_to(root).as_posix()
        rows = [[str(tau), f"{fmem:.3f}", str(by_fmem), str(by_profile)]
                for tau, fmem, by_fmem, by_profile in placements(run_dir, smoothed)]
        figures = {f"figures/copy_to_smooth_{run_dir.name}.png": copy_to_smooth_figure(run_dir, smoothed),
                   f"figures/spectral_profiles_{run_dir.name}.png": spectral_profile_figure(run_dir, smoothed)}
        for rel, fig in figures.items():
            save_figure(fig, root / rel)
        lines += [f"### {name}", "", *_table(("tau", "f_mem", "sigma by f_mem", "sigma by spectral profile"), rows), "",
                  *(f"![{Path(rel).stem}]({rel})" for rel in figures), ""]
    return lines
