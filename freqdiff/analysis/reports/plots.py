"""Figures of the window: per run (curves, losses, nearest neighbours) and across n (collapse, scaling).

Figures are built on matplotlib's object API (no pyplot state, no display needed) and saved
atomically with freqdiff.io.save_figure.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from freqdiff.analysis.reading.curves import Curves
from freqdiff.analysis.reading.scaling import collapse_curve
from freqdiff.analysis.reading.window import Window
from freqdiff.analysis.statistics import PowerLaw
from freqdiff.io import save_figure
from freqdiff.registry import FreqdiffError

TAU_LABEL = "tau (optimizer steps)"
NEAREST_ARRAYS = ("samples", "nearest", "ratio")


def fid_label(extractor: str) -> str:
    """Axis label naming the features behind the distance: values of different extractors differ."""
    if "inception" in extractor.lower():
        return "FID (Inception)"
    return f"FD ({extractor or 'unknown'} features)"


def _positive(curves: Curves, values: np.ndarray) -> np.ndarray:
    """Checkpoints drawable on a log tau axis that have this value."""
    return (curves.step > 0) & np.isfinite(values)


def _shade_window(ax: Axes, window: Window) -> None:
    """Mark tau_gen and tau_mem; shade between them, hatched and open-ended when tau_mem is censored."""
    if window.tau_gen is None or window.tau_mem is None or window.tau_gen <= 0:
        return
    ax.axvline(window.tau_gen, color="C2", ls="--", lw=1, label=f"tau_gen = {window.tau_gen}")
    if window.tau_mem_censored:
        right = ax.get_xlim()[1]
        ax.axvspan(window.tau_gen, right, fill=False, hatch="//", edgecolor="C2", lw=0,
                   label=f"window, open: tau_mem >= {window.tau_mem} (censored)")
        ax.set_xlim(right=right)
        return
    ax.axvline(window.tau_mem, color="C3", ls="--", lw=1, label=f"tau_mem = {window.tau_mem}")
    if window.tau_mem > window.tau_gen:
        ax.axvspan(window.tau_gen, window.tau_mem, color="C2", alpha=0.15, lw=0, label="generalization window")


def _legend(*axes: Axes) -> None:
    """One legend for twin axes."""
    handles, labels = [], []
    for ax in axes:
        ax_handles, ax_labels = ax.get_legend_handles_labels()
        handles += ax_handles
        labels += ax_labels
    axes[0].legend(handles, labels, fontsize=7, loc="best")


def curves_figure(curves: Curves, window: Window, title: str) -> Figure:
    """FID (left) and f_mem with its 95% band (right) against log tau, with the window shaded."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    label = fid_label(curves.extractor)
    has_fid = _positive(curves, curves.fid)
    ax.plot(curves.step[has_fid], curves.fid[has_fid], "o-", ms=3, color="C0", label=label)
    ax.set_xlabel(TAU_LABEL)
    ax.set_ylabel(label, color="C0")
    fmem_ax = ax.twinx()
    has_fmem = _positive(curves, curves.fmem)
    steps = curves.step[has_fmem]
    fmem_ax.fill_between(steps, curves.fmem_low[has_fmem], curves.fmem_high[has_fmem], color="C3", alpha=0.2,
                         lw=0, label="f_mem 95% interval")
    fmem_ax.plot(steps, curves.fmem[has_fmem], "s-", ms=3, color="C3", label="f_mem")
    fmem_ax.set_ylabel("f_mem (memorized fraction)", color="C3")
    fmem_ax.set_ylim(bottom=0)
    _shade_window(ax, window)
    _legend(ax, fmem_ax)
    ax.set_title(title, fontsize=9)
    return fig


def losses_figure(curves: Curves, window: Window, title: str) -> Figure:
    """Train and test denoising losses at fixed t against log tau: they split near tau_mem."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    for values, name, color in ((curves.loss_train, "train loss", "C0"), (curves.loss_test, "test loss", "C1")):
        ok = _positive(curves, values)
        ax.plot(curves.step[ok], values[ok], "o-", ms=3, color=color, label=name)
    ax.set_xlabel(TAU_LABEL)
    ax.set_ylabel("denoising loss at fixed t")
    _shade_window(ax, window)
    _legend(ax)
    ax.set_title(title, fontsize=9)
    return fig


def step_of(path: Path) -> int:
    """The step in a nearest/step_XXXXXXXX.npz file name."""
    match = re.fullmatch(r"step_(\d+)", path.stem)
    if not match:
        raise FreqdiffError(f"{path}: expected a name like step_00001000.npz")
    return int(match.group(1))


def _image(x: np.ndarray) -> tuple[np.ndarray, dict[str, object]]:
    """A (C,H,W) image in [0,1] as imshow input: gray for one channel, RGB for three."""
    x = np.clip(x, 0, 1)
    if x.shape[0] == 1:
        return x[0], {"cmap": "gray", "vmin": 0, "vmax": 1}
    return np.transpose(x, (1, 2, 0)), {}


def nearest_figure(path: Path, k: float | None = None, max_pairs: int = 16) -> Figure:
    """Each generated sample above its nearest training image, titled with d1/d2 (red below k)."""
    with np.load(path) as data:
        missing = [a for a in NEAREST_ARRAYS if a not in data.files]
        if missing:
            raise FreqdiffError(f"{path}: missing arrays {', '.join(missing)}; expected {', '.join(NEAREST_ARRAYS)}")
        samples, nearest, ratio = (data[a] for a in NEAREST_ARRAYS)
    count = min(len(ratio), max_pairs)
    cols = min(count, 8)
    pair_rows = math.ceil(count / cols)
    fig = Figure(figsize=(1.1 * cols, 2.4 * pair_rows + 0.4))
    axes = fig.subplots(2 * pair_rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j in range(count):
        row, col = divmod(j, cols)
        for ax, image in ((axes[2 * row, col], samples[j]), (axes[2 * row + 1, col], nearest[j])):
            pixels, style = _image(image)
            ax.imshow(pixels, **style)
        memorized = k is not None and ratio[j] < k
        axes[2 * row, col].set_title(f"{ratio[j]:.2f}", fontsize=7, color="C3" if memorized else "black")
    threshold = f"; red: below k = {k:.3g} (memorized)" if k is not None else ""
    fig.suptitle(f"step {step_of(path)}: sample (top) above nearest training image; d1/d2{threshold}", fontsize=8)
    return fig


def chosen_nearest(paths: Sequence[Path], window: Window) -> list[Path]:
    """The nearest-neighbour files closest (in log step) to tau_gen, tau_mem and the last step."""
    if not paths:
        return []
    steps = np.array([step_of(p) for p in paths])
    targets = [t for t in (window.tau_gen, window.tau_mem, window.last_step) if t is not None]
    picks = {int(np.argmin(np.abs(np.log1p(steps) - math.log1p(t)))) for t in targets}
    return [paths[i] for i in sorted(picks, key=lambda i: steps[i])]


def plot_run(run_dir: Path, curves: Curves, window: Window, k: float | None = None) -> list[Path]:
    """Write a run's figures under RUN_DIR/figures/ and return their paths."""
    out = run_dir / "figures"
    title = f"{run_dir.name}: n = {window.n}"
    figures = {out / "curves.png": curves_figure(curves, window, title),
               out / "losses.png": losses_figure(curves, window, title)}
    for path in chosen_nearest(sorted((run_dir / "nearest").glob("step_*.npz")), window):
        figures[out / f"nearest_{path.stem}.png"] = nearest_figure(path, k)
    for path, fig in figures.items():
        save_figure(fig, path)
    return list(figures)


def collapse_figure(runs: Sequence[tuple[int, Curves]], title: str) -> Figure:
    """The paper's collapse: f_mem(tau)/f_mem(tau_max) against tau/n, one colour per n."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ns = sorted({n for n, _ in runs})
    colors = {n: f"C{i % 10}" for i, n in enumerate(ns)}
    labelled, skipped = set(), []
    for n, curves in runs:
        data = collapse_curve(curves, n)
        if data is None:
            skipped.append(n)
            continue
        x, y = data
        ax.plot(x[x > 0], y[x > 0], "o-", ms=3, color=colors[n], label=None if n in labelled else f"n = {n}")
        labelled.add(n)
    if skipped:
        ax.plot([], [], " ", label=f"not drawn, f_mem(tau_max) = 0: n = {', '.join(map(str, sorted(set(skipped))))}")
    ax.set_xlabel("tau / n")
    ax.set_ylabel("f_mem(tau) / f_mem(tau_max)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig


def _fit_label(fit: PowerLaw) -> str:
    """Legend text of a slope fit with its interval, or why there is none."""
    if fit.interval is None:
        return f"fit: slope {fit.slope:.2f} (interval undefined: 2 points)"
    low, high = fit.interval
    return f"fit: slope {fit.slope:.2f}, 95% interval [{low:.2f}, {high:.2f}]"


def scaling_figure(windows: Sequence[Window], fit: PowerLaw | None, title: str) -> Figure:
    """tau_mem (and tau_gen) against n, log-log, with the fitted slope; censored runs drawn open."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    drawn = [w for w in windows if w.n and w.tau_mem and w.tau_mem > 0]
    for censored, style in ((False, dict(marker="o", color="C3", label="tau_mem")),
                            (True, dict(marker="^", mfc="none", color="C3",
                                        label="tau_mem censored (>=, excluded from the fit)"))):
        points = [(w.n, w.tau_mem) for w in drawn if w.tau_mem_censored == censored]
        if points:
            ax.plot(*zip(*points), ls="none", **style)
    gen = [(w.n, w.tau_gen) for w in windows if w.n and w.tau_gen and w.tau_gen > 0]
    if gen:
        ax.plot(*zip(*gen), "x", color="C0", label="tau_gen")
    if fit is not None:
        fitted = [w.n for w in drawn if not w.tau_mem_censored]
        n = np.geomspace(min(fitted), max(fitted), 50)
        ax.plot(n, 10 ** fit.intercept * n ** fit.slope, "-", color="C3", lw=1, label=_fit_label(fit))
    else:
        ax.plot([], [], " ", label="no fit: fewer than 2 n with uncensored tau_mem")
    ax.set_xlabel("n (training-set size)")
    ax.set_ylabel(TAU_LABEL)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig
