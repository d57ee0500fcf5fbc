"""Figures of the window: per run (curves, losses, nearest neighbours) and across n (collapse, scaling).

Figures are built on matplotlib's object API (no pyplot state, no display needed) and saved
atomically with freqdiff.core.figures.save_figure.
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
from freqdiff.analysis.reading.scaling import collapse_curve, exact_tau_mem
from freqdiff.analysis.reading.window import Window
from freqdiff.core.figures import save_figure
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import PowerLaw

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
    """Mark tau_gen and tau_mem; shade between them (hatched and open-ended when tau_mem is censored), only
    where the quality gate confirms generation."""
    gen, mem = window.tau_gen, window.tau_mem_earlier
    if window.generation.generates is False:
        ax.plot([], [], " ", label=f"no generation: no window ({window.generation.gate.measure} gate never passes)")
    if mem.step is not None and mem.bound != ">=":
        ax.axvline(mem.step, color="C3", ls="--", lw=1, label=f"tau_mem {mem}")
    if not gen.reached or not gen.step:
        return
    if window.generation.generates is None:
        ax.axvline(gen.step, color="C2", ls=":", lw=1, label=f"tau_gen {gen} (FD alone: no quality gate, unshaded)")
        return
    ax.axvline(gen.step, color="C2", ls="--", lw=1, label=f"tau_gen {gen}")
    if mem.bound == ">=":
        right = ax.get_xlim()[1]
        ax.axvspan(gen.step, right, fill=False, hatch="//", edgecolor="C2", lw=0,
                   label=f"window, open: tau_mem {mem} (censored)")
        ax.set_xlim(right=right)
    elif mem.step is not None and mem.step > gen.step:
        ax.axvspan(gen.step, mem.step, color="C2", alpha=0.15, lw=0, label="generalization window")


def _legend(*axes: Axes) -> None:
    """One legend for twin axes."""
    handles, labels = [], []
    for ax in axes:
        ax_handles, ax_labels = ax.get_legend_handles_labels()
        handles += ax_handles
        labels += ax_labels
    axes[0].legend(handles, labels, fontsize=7, loc="best")


def _errorbars(ax: Axes, curves: Curves, column: str, color: str, marker: str, label: str) -> None:
    """A measured curve with its 2-sigma error as bars (none where the error was not computed)."""
    ok = _positive(curves, curves[column])
    err = np.nan_to_num(curves[f"{column}_err"][ok]) if f"{column}_err" in curves.values else None
    ax.errorbar(curves.step[ok], curves[column][ok], yerr=err, fmt=f"{marker}-", ms=3, color=color, capsize=2,
                label=label)


def _quality_panel(ax: Axes, curves: Curves, window: Window) -> None:
    """FD ± 2 sigma against log tau; the gate's measure ± 2 sigma with its threshold on a twin axis."""
    label = fid_label(curves.extractor)
    _errorbars(ax, curves, "fid", "C0", "o", f"{label} ± 2 sigma")
    ax.set_ylabel(label, color="C0")
    gate = window.generation.gate
    axes = [ax]
    if gate is not None and np.isfinite(curves[gate.measure]).any():
        gate_ax = ax.twinx()
        _errorbars(gate_ax, curves, gate.measure, "C4", "d", f"{gate.measure} ± 2 sigma")
        gate_ax.axhline(gate.threshold, color="C4", ls=":", lw=1, label=f"gate: {gate.measure} - err >= {gate.threshold:g}")
        gate_ax.set_ylabel(f"{gate.measure} (quality gate)", color="C4")
        axes.append(gate_ax)
    _shade_window(ax, window)
    _legend(*axes)


def _copy_panel(ax: Axes, curves: Curves, window: Window) -> None:
    """The paper's f_mem and the robust copy measure, each with its 95% interval, against log tau."""
    for measure, color, marker, name in (("fmem", "C3", "s", "f_mem (paper)"),
                                         ("fmem_robust", "C1", "^", "f_mem robust to residual noise")):
        ok = _positive(curves, curves[measure])
        if not ok.any():
            continue
        steps = curves.step[ok]
        ax.fill_between(steps, curves[f"{measure}_low"][ok], curves[f"{measure}_high"][ok], color=color,
                        alpha=0.2, lw=0)
        ax.plot(steps, curves[measure][ok], f"{marker}-", ms=3, color=color, label=f"{name}, 95% interval")
    ax.set_ylabel("memorized fraction")
    ax.set_ylim(bottom=0)
    ax.set_xlabel(TAU_LABEL)
    _shade_window(ax, window)
    _legend(ax)


def curves_figure(curves: Curves, window: Window, title: str) -> Figure:
    """Top: FD and the quality gate's measure; bottom: both copy measures; the window shaded on both."""
    fig = Figure(figsize=(7, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_xscale("log")
    _quality_panel(top, curves, window)
    _copy_panel(bottom, curves, window)
    top.set_title(f"{title}\n{window.verdict}", fontsize=8)
    return fig


def losses_figure(curves: Curves, window: Window, title: str) -> Figure:
    """Train and test denoising losses at fixed t against log tau: they split near tau_mem."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    for column, name, color in (("loss_train", "train loss", "C0"), ("loss_test", "test loss", "C1")):
        ok = _positive(curves, curves[column])
        ax.plot(curves.step[ok], curves[column][ok], "o-", ms=3, color=color, label=name)
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


def pair_mosaic(samples: np.ndarray, nearest: np.ndarray, cols: int, gap: int) -> np.ndarray:
    """Pairs (sample above its nearest training image) tiled `cols` to a row, white gutters of 1 pixel inside a
    pair and `gap` pixels above each row of pairs (room for its labels): (H', W', C) in [0, 1]."""
    count, (c, h, w) = len(samples), samples.shape[1:]
    rows = math.ceil(count / cols)
    mosaic = np.ones((rows * (gap + 2 * h + 1), cols * (w + 1) - 1, c))
    for j in range(count):
        row, col = divmod(j, cols)
        y, x = row * (gap + 2 * h + 1) + gap, col * (w + 1)
        mosaic[y:y + h, x:x + w] = np.transpose(np.clip(samples[j], 0, 1), (1, 2, 0))
        mosaic[y + h + 1:y + 2 * h + 1, x:x + w] = np.transpose(np.clip(nearest[j], 0, 1), (1, 2, 0))
    return mosaic


def nearest_figure(path: Path, k: float | None = None, max_pairs: int = 16, label: str | None = None) -> Figure:
    """Each generated sample above its nearest training image, labelled with d1/d2 (red below k); `label` names what
    drew them (default: the step in the file name). One image: a grid of subplots costs seconds per figure."""
    with np.load(path) as data:
        missing = [a for a in NEAREST_ARRAYS if a not in data.files]
        if missing:
            raise FreqdiffError(f"{path}: missing arrays {', '.join(missing)}; expected {', '.join(NEAREST_ARRAYS)}")
        samples, nearest, ratio = (data[a] for a in NEAREST_ARRAYS)
    count = min(len(ratio), max_pairs)
    cols = min(count, 8)
    h, w = samples.shape[2:]
    gap = max(3, h // 2)
    mosaic = pair_mosaic(samples[:count], nearest[:count], cols, gap)
    fig = Figure(figsize=(1.1 * cols, 1.1 * cols * mosaic.shape[0] / mosaic.shape[1] + 0.4))
    ax = fig.add_axes((0, 0, 1, 0.93))
    ax.axis("off")
    pixels, style = _image(np.transpose(mosaic, (2, 0, 1)))
    ax.imshow(pixels, **style)
    for j in range(count):
        row, col = divmod(j, cols)
        memorized = k is not None and ratio[j] < k
        ax.text(col * (w + 1) + (w - 1) / 2, row * (gap + 2 * h + 1) + gap - 1, f"{ratio[j]:.2f}", ha="center",
                va="bottom", fontsize=7, color="C3" if memorized else "black")
    threshold = f"; red: below k = {k:.3g} (memorized)" if k is not None else ""
    drawn_by = label or f"step {step_of(path)}"
    fig.suptitle(f"{drawn_by}: sample (top) above nearest training image; d1/d2{threshold}", fontsize=8)
    return fig


def chosen_nearest(paths: Sequence[Path], window: Window) -> list[tuple[str, Path]]:
    """(role, file) of the nearest-neighbour files closest (in log step) to tau_gen, tau_mem and the last step."""
    if not paths:
        return []
    steps = np.array([step_of(p) for p in paths])
    targets = [(f"tau_gen {window.tau_gen}", window.tau_gen.step),
               (f"tau_mem {window.tau_mem_earlier}", window.tau_mem_earlier.step),
               ("the last checkpoint", window.last_step)]
    return [(role, paths[int(np.argmin(np.abs(np.log1p(steps) - math.log1p(t))))])
            for role, t in targets if t is not None]


def nearest_roles(run_dir: Path, window: Window) -> list[tuple[str, int, Path]]:
    """(role, step, figure path) of the samples-beside-nearest-training-images figures a run's report shows."""
    chosen = chosen_nearest(sorted((run_dir / "nearest").glob("step_*.npz")), window)
    return [(role, step_of(path), run_dir / "figures" / f"nearest_{path.stem}.png") for role, path in chosen]


def plot_run(run_dir: Path, curves: Curves, window: Window, k: float | None = None) -> list[Path]:
    """Write a run's figures under RUN_DIR/figures/ and return their paths."""
    out = run_dir / "figures"
    title = f"{run_dir.name}: n = {window.n}"
    figures = {out / "curves.png": curves_figure(curves, window, title),
               out / "losses.png": losses_figure(curves, window, title)}
    for _, path in chosen_nearest(sorted((run_dir / "nearest").glob("step_*.npz")), window):
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
    return f"fit: slope {fit.slope:.2f}, {fit.interval_text()}"


def scaling_figure(windows: Sequence[Window], fit: PowerLaw | None, title: str) -> Figure:
    """tau_mem (the earlier copy measure) and tau_gen against n, log-log, with the fitted slope; bounds drawn open."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    styles = {"": dict(marker="o", color="C3", label="tau_mem"),
              ">=": dict(marker="^", mfc="none", color="C3", label="tau_mem censored (>=, excluded from the fit)"),
              "<=": dict(marker="v", mfc="none", color="C3", label="tau_mem at the first checkpoint (<=, excluded)")}
    for bound, style in styles.items():
        points = [(w.n, w.tau_mem_earlier.step) for w in windows
                  if w.n and w.tau_mem_earlier.step and w.tau_mem_earlier.bound == bound]
        if points:
            ax.plot(*zip(*points), ls="none", **style)
    gen = [(w.n, w.tau_gen.step) for w in windows if w.n and w.tau_gen.reached and w.tau_gen.step > 0]
    if gen:
        ax.plot(*zip(*gen), "x", color="C0", label="tau_gen")
    if fit is not None:
        fitted = [n for n, _ in exact_tau_mem(windows)]
        n = np.geomspace(min(fitted), max(fitted), 50)
        ax.plot(n, 10 ** fit.intercept * n ** fit.slope, "-", color="C3", lw=1, label=_fit_label(fit))
    else:
        ax.plot([], [], " ", label="no fit: fewer than 2 n with a tau_mem that is no bound")
    ax.set_xlabel("n (training-set size)")
    ax.set_ylabel(TAU_LABEL)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig
