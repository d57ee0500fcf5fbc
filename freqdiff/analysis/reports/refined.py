"""What `freqdiff refine` did to each run's window: both taus before (the run's own curve) and after (refined).

`python -m freqdiff.analysis.reports.refined DIR [--out DIR] [window options]` reads every refined run under DIR
(RUN/refine/metrics.csv present) twice, off its own metrics.csv and off the merged refined curve, and writes
refined.md, refined.csv and refined.png (each tau's 95% interval before and after, per run). Two checks of the
unrefined estimator: whether its interval covers the refined estimate (a different sample count measures a
slightly different tau_gen, see fd_plateau), and the paired factor refined / unrefined over the runs, with a
t interval on the log ratios (freqdiff.analysis.inference.log_ratio).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from freqdiff.analysis.inference.log_ratio import log_ratio_interval
from freqdiff.analysis.reading.curves import REFINED, find_runs, load_run
from freqdiff.analysis.reading.onsets import Onset
from freqdiff.analysis.reading.window import Window, interval_text, read_window
from freqdiff.analysis.reports.report import markdown_table
from freqdiff.analysis.reports.run import directory_report_main
from freqdiff.core.figures import save_figure
from freqdiff.core.io import write_csv, write_text
from freqdiff.core.registry import FreqdiffError

TAUS = ("tau_gen", "tau_mem_earlier")  # the two ends of the window, as the width reads them


@dataclass(frozen=True)
class Refined:
    """One refined run's window read off its own curve (before) and off the refined one (after)."""

    name: str
    before: Window
    after: Window
    samples: tuple[float, float]  # samples per checkpoint: the run's own eval, the refinement's


def read_refined(run_dir: Path, name: str | None = None, **options: Any) -> Refined:
    """Both readings of one refined run, with the same window options; `name` labels it (default: its folder)."""
    config, merged = load_run(run_dir)
    own = merged.own  # load_run keeps a refined run's own curve beside the merged one
    if own is None:
        raise FreqdiffError(f"{run_dir}: not refined (no {REFINED}/metrics.csv)")
    n = config.get("data", {}).get("n")
    samples = (float(np.nanmax(own["n_samples"])), float(np.nanmax(merged["n_samples"])))
    return Refined(name or run_dir.name, read_window(own, n=n, **options), read_window(merged, n=n, **options),
                   samples)


def covers(before: Onset, after: Onset) -> str:
    """Whether the unrefined 95% interval holds the refined estimate ('yes', 'no', or '—' without both)."""
    if after.estimate is None or (before.estimate is None and before.low is None and before.high is None):
        return "—"
    low, high = before.low or 0.0, before.high or np.inf
    return "yes" if low <= after.estimate <= high else "no"


def coverage_line(tau: str, checks: Sequence[str]) -> str:
    """How many runs' unrefined intervals hold the refined estimate, over the runs where both readings allow the
    check (a censored refined tau has no estimate to hold)."""
    judged = [c for c in checks if c != "—"]
    left = len(checks) - len(judged)
    return (f"- {tau}: the unrefined interval covers the refined estimate in {judged.count('yes')} of {len(judged)} "
            f"runs" + (f" ({left} without a refined estimate or an unrefined interval)" if left else ""))


def half_width(onset: Onset) -> str:
    """(high - low) / 2 over the estimate, in percent, or '—' where an end is censored."""
    if onset.estimate is None or onset.low is None or onset.high is None:
        return "—"
    return f"±{50 * (onset.high - onset.low) / onset.estimate:.1f}%"


def csv_rows(runs: Sequence[Refined]) -> list[dict[str, Any]]:
    """One row per run and tau: both readings with their intervals and the coverage check."""
    rows = []
    for run in runs:
        for tau in TAUS:
            b, a = getattr(run.before, tau), getattr(run.after, tau)
            rows.append({"run": run.name, "tau": tau, "samples_before": run.samples[0], "samples_after": run.samples[1],
                         "before": b.estimate, "before_low": b.low, "before_high": b.high, "before_bound": b.bound,
                         "after": a.estimate, "after_low": a.low, "after_high": a.high, "after_bound": a.bound,
                         "covered": covers(b, a)})
    return rows


def factor_line(runs: Sequence[Refined], tau: str, where: str = "") -> str:
    """The paired factor refined / unrefined of one tau over the runs with both estimates."""
    pairs = [(getattr(r.after, tau).estimate, getattr(r.before, tau).estimate) for r in runs]
    pairs = [(a, b) for a, b in pairs if a and b]
    if len(pairs) < 2:
        return f"- {tau}{where}, refined / unrefined: fewer than 2 runs with both estimates"
    result = log_ratio_interval([a for a, _ in pairs], [b for _, b in pairs], paired=True)
    interval = "no interval" if result.interval is None else f"[{result.interval[0]:.3g}, {result.interval[1]:.3g}]"
    return (f"- {tau}{where}, refined / unrefined: {result.estimate:.3g}x {interval} over {len(pairs)} runs "
            f"({result.method})")


def spread_line(runs: Sequence[Refined], tau: str, where: str = "") -> str:
    """The range of one tau's interval half-widths over the runs, before and after (censored ones counted apart)."""
    def spread(windows: Sequence[Window]) -> str:
        widths = [(o.high - o.low) / 2 / o.estimate for o in (getattr(w, tau) for w in windows)
                  if o.estimate and o.low and o.high]
        rest = len(windows) - len(widths)
        shown = f"±{100 * min(widths):.1f}-{100 * max(widths):.1f}%" if widths else "none exact"
        return shown + (f" ({rest} with a censored end or no estimate)" if rest else "")
    return (f"- {tau}{where}, half-width: {spread([r.before for r in runs])} before, "
            f"{spread([r.after for r in runs])} refined")


def by_n(runs: Sequence[Refined]) -> list[tuple[str, list[Refined]]]:
    """(' at n = N', its runs) per training-set size when the runs span several, then ('', all runs)."""
    sizes = sorted({r.after.n for r in runs}, key=lambda n: (n is None, n or 0))
    groups = [(f" at n = {n}", [r for r in runs if r.after.n == n]) for n in sizes] if len(sizes) > 1 else []
    return [*groups, ("", list(runs))]


def markdown(runs: Sequence[Refined]) -> str:
    """refined.md: per run both readings, the coverage check and the paired factors."""
    table = [[r.name, f"{r.samples[0]:.0f} -> {r.samples[1]:.0f}",
              *(f"{interval_text(getattr(w, tau))} ({half_width(getattr(w, tau))})" for tau in TAUS
                for w in (r.before, r.after)),
              *(covers(getattr(r.before, tau), getattr(r.after, tau)) for tau in TAUS),
              f"{r.before.state} -> {r.after.state}"]
             for r in runs]
    columns = ("run", "samples", "tau_gen before", "tau_gen refined", "tau_mem before", "tau_mem refined",
               "tau_gen covered", "tau_mem covered", "window")
    checks = {tau: [covers(getattr(r.before, tau), getattr(r.after, tau)) for r in runs] for tau in TAUS}
    return "\n".join([
        "# Refined windows", "",
        f"{len(runs)} refined runs, each read off its own curve (before) and off its refined curve (after: every "
        "checkpoint re-measured with the refinement's sample count, denser checkpoints where the taus fall). "
        "Intervals are 95%; tau_mem is the earlier copy measure; '(±x%)' is the interval's half-width over the "
        "estimate. 'covered': the unrefined interval holds the refined estimate.", "",
        *markdown_table(columns, table), "", "![each tau's interval before and after](refined.png)", "",
        *(coverage_line(tau, checks[tau]) for tau in TAUS),
        *(line(group, tau, where) for tau in TAUS for where, group in by_n(runs)
          for line in (spread_line, factor_line)),
        "",
        f"Both readings use the window rule {runs[0].after.rule}: tau_gen off the fitted FD approach "
        "(freqdiff.analysis.reading.fd_plateau), tau_mem off the copy counts (copy_onset).", ""])


def refined_figure(runs: Sequence[Refined]) -> Figure:
    """Each tau's 95% interval per run, unrefined (grey) above refined (colour); censored ends drawn to the axis."""
    fig = Figure(figsize=(9, 1.2 + 0.45 * len(runs)))
    for ax, tau, colour in zip(fig.subplots(1, 2), TAUS, ("C0", "C3")):
        onsets = [getattr(w, tau) for r in runs for w in (r.before, r.after)]
        ends = [v for o in onsets for v in (o.low, o.estimate, o.high) if v]
        if not ends:
            continue
        floor, ceiling = 0.7 * min(ends), 1.4 * max(ends)  # where a censored end is drawn
        for row, run in enumerate(runs):
            for offset, window, shade in ((0.15, run.before, "0.6"), (-0.15, run.after, colour)):
                onset = getattr(window, tau)
                if onset.estimate or onset.low or onset.high:
                    ax.plot([onset.low or floor, onset.high or ceiling], [row + offset] * 2, color=shade, lw=2)
                if onset.estimate:
                    ax.plot(onset.estimate, row + offset, "o", color=shade, ms=4)
        ax.set_xscale("log")
        ax.tick_params(which="both", labelsize=6)
        ax.set_yticks(range(len(runs)), [r.name for r in runs], fontsize=7)
        ax.set_xlabel(f"{tau} (steps): grey unrefined, colour refined")
    fig.tight_layout()
    return fig


def write_refined(root: Path, out: Path | None = None, **options: Any) -> Path:
    """Read every refined run under root; write refined.md, refined.csv and refined.png into out (default root)."""
    run_dirs = [d for d in find_runs(Path(root)) if (d / REFINED / "metrics.csv").is_file()]
    if not run_dirs:
        raise FreqdiffError(f"refined: no refined run under {root} (none holds {REFINED}/metrics.csv)")
    runs = [read_refined(d, d.relative_to(root).as_posix() if d != Path(root) else None, **options)
            for d in run_dirs]
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    rows = csv_rows(runs)
    write_csv(out / "refined.csv", rows, list(rows[0]))
    save_figure(refined_figure(runs), out / "refined.png")
    write_text(out / "refined.md", markdown(runs))
    return out / "refined.md"


USAGE = ("usage: python -m freqdiff.analysis.reports.refined DIR [--out DIR] [window options]\n"
         "  every refined run under DIR read before and after `freqdiff refine`\n"
         "  -> refined.md, refined.csv, refined.png")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: the refined report."""
    return directory_report_main("refined", USAGE, write_refined, argv)


if __name__ == "__main__":
    raise SystemExit(main())
