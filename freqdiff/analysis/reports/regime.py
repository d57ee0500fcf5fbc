"""The regime map of a scan of n: tau_gen, tau_mem (both copy measures) and the split onset against n, with n*.

`python -m freqdiff.analysis.reports.regime DIR [--out DIR] [window options]` (and `recipes/regime.py`, after
its sweep) reads every run under DIR, which must all come from one recipe, and writes regime.png (left:
the times against n on log-log axes, n* marked; right: the fixed-t train and test losses of each n against
tau, their split marked), regime.csv (one row per run, every value with its bound) and regime.md.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from freqdiff.analysis.reading.curves import Curves, find_runs, load_run
from freqdiff.analysis.reading.onsets import Onset, WindowRule
from freqdiff.analysis.reading.regime import (MEM_MEASURES, Crossing, RunPoint, Slope, by_n, fit_slope, locate_crossing,
                                              split_onset, state_at)
from freqdiff.analysis.reading.scaling import component_label, onset_spread, recipe_of
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.plots import TAU_LABEL
from freqdiff.analysis.reports.report import markdown_table
from freqdiff.analysis.reports.run import directory_report_main
from freqdiff.core.figures import save_figure
from freqdiff.core.io import write_csv, write_text
from freqdiff.core.registry import FreqdiffError, build_params

HEADLINE = "fmem_robust"  # the copy measure n* is headlined with (the issue: the quality gate and the robust measure)
QUANTITIES = {"tau_gen": "tau_gen (fitted FD plateau; a run that never passes the quality gate has none)", **MEM_MEASURES,
              "split": "split onset (fixed-t test-loss minimum)"}
STYLE = {"tau_gen": ("C0", "o"), "fmem": ("C3", "s"), "fmem_robust": ("C1", "^"), "split": ("C2", "v")}


def onset_of(point: RunPoint, quantity: str) -> Onset:
    """One of QUANTITIES of a run."""
    if quantity == "tau_gen":
        return point.window.tau_gen
    return point.split if quantity == "split" else point.tau_mem(quantity)


def load_points(roots: Sequence[Path], **options: Any) -> tuple[list[RunPoint], dict[int, Curves], dict[str, Any]]:
    """Every run under the roots read (window with WindowRule `options`, split onset); one curve per n for the figure;
    the config of the first run. Runs of several recipes, or one (n, seed) twice, are refused: a regime map is one
    recipe's scan, each (n, seed) counted once."""
    build_params(WindowRule, options, "window")
    where = ", ".join(map(str, roots))
    runs = sorted({run for root in roots for run in find_runs(Path(root))})
    if not runs:
        raise FreqdiffError(f"{where}: no run directories (config.json + metrics.csv) found")
    points, curves, configs, seen = [], {}, {}, {}
    for run_dir in runs:
        config, run_curves = load_run(run_dir)
        n = config.get("data", {}).get("n")
        if not n:
            raise FreqdiffError(f"{run_dir / 'config.json'}: no data.n; not a run of a scan of n")
        seed = config.get("train", {}).get("seed")
        if (n, seed) in seen:
            raise FreqdiffError(f"{seen[n, seed]} and {run_dir} are both n = {n}, seed {seed}: a regime map counts "
                                "each (n, seed) once; name the run directories to use")
        seen[n, seed] = run_dir
        configs.setdefault(recipe_of(config), config)
        window = read_window(run_curves, n=n, **options)
        points.append(RunPoint(n, seed, window, split_onset(run_curves)))
        curves.setdefault(n, run_curves)
    if len(configs) > 1:
        raise FreqdiffError(f"{where}: runs of {len(configs)} recipes ({', '.join(sorted(configs))}); "
                            "a regime map scans n with one recipe")
    return points, curves, next(iter(configs.values()))


def slopes(points: Sequence[RunPoint], crossing: Crossing) -> list[Slope]:
    """Log-log slopes of every quantity over all n, and of tau_mem over the n above n* only."""
    fits = [fit_slope(QUANTITIES[q], [(p.n, onset_of(p, q)) for p in points]) for q in QUANTITIES]
    if crossing.high is not None:
        above = [p for p in points if p.n >= crossing.high]
        fits.append(fit_slope(f"{MEM_MEASURES[HEADLINE]}, n >= {crossing.high} (above n*)",
                              [(p.n, p.tau_mem(HEADLINE)) for p in above]))
    return fits


def csv_rows(points: Sequence[RunPoint]) -> list[dict[str, Any]]:
    """One row per run: every quantity as its step and bound, the window state by each copy measure."""
    rows = []
    for p in sorted(points, key=lambda p: (p.n, str(p.seed))):
        row: dict[str, Any] = {"n": p.n, "seed": p.seed, "generates": p.window.generation.generates}
        for q in QUANTITIES:
            onset = onset_of(p, q)
            row[q] = "" if onset.step is None else onset.step
            row[f"{q}_bound"] = onset.bound
        for measure in MEM_MEASURES:
            row[f"window_{measure}"] = state_at([p], measure)
        row.update(extractor=p.window.extractor, verdict=p.window.verdict.split(":")[0])
        rows.append(row)
    return rows


def _draw_times(ax: Axes, points: Sequence[RunPoint], crossing: Crossing) -> None:
    """Each quantity per run against n (open markers: bounds), seed means joined, n* marked."""
    groups = by_n(points)
    for q, label in QUANTITIES.items():
        if q == "earlier":
            continue
        color, marker = STYLE[q]
        exact = [(p.n, onset_of(p, q).step) for p in points if onset_of(p, q).step and not onset_of(p, q).bound]
        bounded = [(p.n, onset_of(p, q).step) for p in points if onset_of(p, q).step and onset_of(p, q).bound]
        if exact:
            ax.plot(*zip(*exact), marker, color=color, ls="none", ms=5, label=label)
        if bounded:
            ax.plot(*zip(*bounded), marker, color=color, mfc="none", ls="none", ms=7,
                    label=f"{label}: a bound (censored or first checkpoint)")
        means = [(n, math.exp(sum(math.log(t) for _, t in pairs) / len(pairs))) for n in groups
                 if (pairs := [(n, t) for m, t in exact if m == n])]
        if len(means) > 1:
            ax.plot(*zip(*means), "-", color=color, lw=1, alpha=0.6)
    if crossing.high is not None and crossing.low is not None:
        ax.axvspan(crossing.low, crossing.high, color="0.85", lw=0, label=f"n* {crossing} ({MEM_MEASURES[HEADLINE]})")
    if crossing.estimate is not None:
        ax.axvline(crossing.estimate, color="k", ls="--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="n (training-set size)", ylabel=TAU_LABEL)
    ax.set_xticks(sorted(groups), [str(n) for n in sorted(groups)], minor=False)  # the scanned n, no crowded minors
    ax.xaxis.set_minor_formatter("")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.14), ncol=2, frameon=False)  # below: no data hidden


def _draw_losses(ax: Axes, curves: dict[int, Curves], points: Sequence[RunPoint]) -> None:
    """Fixed-t train (dashed) and test (solid) losses against tau, one colour per n, the split onset dotted."""
    splits = {n: runs[0].split for n, runs in by_n(points).items()}
    for i, (n, c) in enumerate(sorted(curves.items())):
        color = f"C{i % 10}"
        ax.plot(c.step, c["loss_test"], "-", color=color, lw=1.2, label=f"n = {n}")
        ax.plot(c.step, c["loss_train"], "--", color=color, lw=0.8)
        if splits[n].step is not None:
            ax.axvline(splits[n].step, color=color, ls=":", lw=0.8)
    ax.set(xscale="log", xlabel=TAU_LABEL, ylabel="eps loss at fixed t (solid test, dashed train)")
    ax.xaxis.set_minor_formatter("")
    ax.legend(fontsize=6, title="dotted: split onset", title_fontsize=6)


def regime_figure(points: Sequence[RunPoint], curves: dict[int, Curves], crossing: Crossing, title: str) -> Figure:
    """Left: the times against n with n*; right: the fixed-t losses whose split the left panel's onsets read."""
    fig = Figure(figsize=(12, 6))
    left, right = fig.subplots(1, 2)
    fig.subplots_adjust(bottom=0.3)  # room for the left panel's legend below it
    _draw_times(left, points, crossing)
    _draw_losses(right, curves, points)
    fig.suptitle(title, fontsize=8)
    return fig


def _setup(config: dict[str, Any], extractor: str) -> str:
    """The scan's model, optimizer and eval settings in one line, from the first run's config.json."""
    train, evals = config.get("train", {}), config.get("eval", {})
    return (f"model {component_label(config, 'model')}, {train.get('optimizer')} lr {train.get('lr')}, batch "
            f"min(n, {train.get('batch_size')}), EMA {train.get('ema')}, sampler "
            f"{component_label(config, 'sampler')}, {evals.get('n_samples')} samples per checkpoint, "
            f"{train.get('n_checkpoints')} log-spaced checkpoints from step {train.get('first_checkpoint')}, "
            f"FD in {extractor} features")


def summary_rows(points: Sequence[RunPoint], crossings: dict[str, Crossing]) -> list[list[str]]:
    """Per n: each quantity as mean ± std [min, max] over seeds (a bound when some seed's is), window states."""
    rows = []
    for n, runs in by_n(points).items():
        values = [str(onset_spread([onset_of(r, q) for r in runs]) or "—") for q in QUANTITIES]
        steps = "/".join(sorted({str(r.window.last_step) for r in runs}))
        rows.append([str(n), str(len(runs)), steps, *values, *(crossings[m].states[n] for m in MEM_MEASURES)])
    return rows


def markdown(points: Sequence[RunPoint], crossings: dict[str, Crossing], fits: Sequence[Slope],
             config: dict[str, Any]) -> str:
    """regime.md: setup, n* by each copy measure, the per-n table, slopes, how each number was read."""
    extractor = points[0].window.extractor or "unknown"
    head = crossings[HEADLINE]
    lines = ["# Regime map", "", f"Setup: {_setup(config, extractor)}.", "",
             f"**n* {head}** ({MEM_MEASURES[HEADLINE]} passes tau_gen); by the paper's f_mem: {crossings['fmem']}; "
             f"by the earlier of the two: {crossings['earlier']}.", ""]
    for measure, crossing in crossings.items():
        lines += [f"- note ({MEM_MEASURES[measure]}): {note}" for note in crossing.notes]
    columns = ["n", "seeds", "last step", *QUANTITIES.values(), *(f"window by {m}" for m in MEM_MEASURES.values())]
    ref = next((p for p in points if p.window.tau_gen.reached and p.window.tau_mem.reached), points[0])
    lines += ["", "![regime map](regime.png)", "", "## Per n", "",
              "Steps at evaluated checkpoints, mean ± sample std [min, max] over seeds; '>=' a lower bound (not "
              "reached by the last checkpoint), '<=' an upper bound (reached at the first). Window: open when "
              "tau_mem > tau_gen for every seed whatever the bounds, closed when tau_mem <= tau_gen for every "
              "seed, else undecided.", "", *markdown_table(columns, summary_rows(points, crossings)), "",
              "## Slopes (log-log least squares, Student-t 95% interval)", "", *(f"- {f.quantity}: {f}" for f in fits),
              "", "## How each number was read", "",
              f"Quoted from the run n = {ref.n}, seed {ref.seed} (levels and bands are that run's):", "",
              f"- tau_gen: {ref.window.tau_gen.how}",
              f"- tau_mem (the paper's f_mem): {ref.window.tau_mem.how}",
              f"- tau_mem (robust f_mem): {ref.window.tau_mem_robust.how}",
              f"- split onset: {ref.split.how}",
              "- n*: above the largest n whose window is not open, at or below the next n, from which on every n "
              "is open; interpolated where the seed mean of log(tau_mem / tau_gen) changes sign, linear in log n, "
              "only between two n read exactly.", ""]
    return "\n".join(lines)


def write_regime(roots: Path | Sequence[Path], out: Path | None = None, **options: Any) -> Path:
    """Read the scan under the roots (one DIR, or run directories and DIRs to pool), write regime.png, regime.csv and
    regime.md into out (default: the one root)."""
    roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
    if out is None and len(roots) != 1:
        raise FreqdiffError(f"regime: {len(roots)} directories pooled need --out DIR")
    out = Path(out or roots[0])
    points, curves, config = load_points(roots, **options)
    out.mkdir(parents=True, exist_ok=True)
    crossings = {m: locate_crossing(points, m) for m in MEM_MEASURES}
    fits = slopes(points, crossings[HEADLINE])
    rows = csv_rows(points)
    write_csv(out / "regime.csv", rows, list(rows[0]))
    title = f"{component_label(config, 'model')} on {config.get('dataset', {}).get('name')}: n* {crossings[HEADLINE]}"
    save_figure(regime_figure(points, curves, crossings[HEADLINE], title), out / "regime.png")
    path = out / "regime.md"
    write_text(path, markdown(points, crossings, fits, config))
    return path


USAGE = ("usage: python -m freqdiff.analysis.reports.regime DIR... [--out DIR] [window options]\n"
         "  the regime map of the runs under each DIR (one recipe scanned over n; each (n, seed) once)\n"
         "  -> regime.png, regime.csv, regime.md (in DIR, or --out, which several DIRs need)")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: the regime report."""
    return directory_report_main("regime", USAGE, write_regime, argv, pooled=True)


if __name__ == "__main__":
    raise SystemExit(main())
