"""`freqdiff report DIR`: one markdown page with every run's window, the seed spread and the n scaling."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from freqdiff.analysis.inference.censored_slope import slope_text
from freqdiff.analysis.reading.baselines import is_baseline_run
from freqdiff.analysis.reading.curves import find_runs
from freqdiff.analysis.reading.scaling import (WindowGroup, component_label, exact_tau_mem, fit_tau_mem,
                                               fit_tau_mem_censored, fit_width, group_windows, recipe_of,
                                               tau_gen_flatness)
from freqdiff.analysis.reading.window import Window, WindowRule, interval_text
from freqdiff.analysis.reports.baselines import baseline_section
from freqdiff.analysis.reports.plots import collapse_figure, nearest_roles, scaling_figure
from freqdiff.analysis.reports.run import RunAnalysis, analyse_run
from freqdiff.core.figures import save_figure
from freqdiff.core.io import check_own_file, check_writable, one_line_errors, write_text, writing_into
from freqdiff.core.registry import FreqdiffError, build_params
from freqdiff.metrics.statistics import PowerLaw

HEADING = "# freqdiff report"  # report.md's first line: a report.md without it is the user's, never replaced
RUN_COLUMNS = ("run", "recipe", "n", "seed", "regularizer", "verdict", "tau_gen [95%]", "tau_mem (f_mem) [95%]",
               "tau_mem (robust) [95%]", "window", "log(tau_mem/tau_gen) [ends]", "width", "ratio",
               "FD plateau ± 2 sigma (features)", "final f_mem [95% CI]", "final f_mem robust [95% CI]")


def _seed(run: RunAnalysis) -> Any:
    """The run's training seed (None when the config has none)."""
    return run.config.get("train", {}).get("seed")


def _order(run: RunAnalysis) -> tuple[str, int, str, str]:
    """Report order: by recipe, then n, then seed."""
    return (recipe_of(run.config), run.window.n or 0, str(_seed(run)), str(run.run_dir))


def markdown_table(columns: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _fraction_text(final: tuple[float, float | None, float | None] | None) -> str:
    """A final copy fraction with its interval."""
    if final is None:
        return "—"
    value, low, high = final
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def span_text(w: Window) -> tuple[str, str]:
    """Width and ratio with their bound sign, or why they are undefined."""
    if w.width is None:
        return f"— ({w.width_note})", "—"
    sign = f"{w.bound} " if w.bound else ""
    return f"{sign}{w.width}", "—" if w.ratio is None else f"{sign}{w.ratio:.3g}"


def _plateau_text(w: Window) -> str:
    """The FD plateau level with its 2-sigma error and the features that made it."""
    if w.fd_plateau is None:
        return "—"
    err = "" if w.fid_err is None else f" ± {w.fid_err:.3g}"
    return f"{w.fd_plateau:.4g}{err} ({w.extractor or 'unknown'})"


def log_ratio_text(w: Window) -> str:
    """The scale-free width log(tau_mem/tau_gen) with the ends its intervals allow ('..' where censored)."""
    estimate, low, high = w.log_ratio
    show = lambda v: ".." if v is None else f"{v:.2f}"  # noqa: E731
    return f"{show(estimate)} [{show(low)}, {show(high)}]"


def _run_row(run: RunAnalysis, root: Path) -> list[str]:
    """One run's line of the runs table."""
    w = run.window
    return [run.run_dir.relative_to(root).as_posix(), recipe_of(run.config), str(w.n), str(_seed(run)),
            component_label(run.config, "regularizer"), w.verdict.split(":")[0], interval_text(w.tau_gen),
            interval_text(w.tau_mem), interval_text(w.tau_mem_robust), w.state, log_ratio_text(w), *span_text(w),
            _plateau_text(w), _fraction_text(w.final_fmem),
            _fraction_text(w.final_fmem_robust)]


def _seeds_section(runs: list[RunAnalysis]) -> list[str]:
    """Mean ± std [min, max] over seeds of each (recipe, n); a bounded seed makes it a bound."""
    groups = group_windows((recipe_of(r.config), _seed(r), r.window) for r in runs)
    rows = [[g.recipe, str(g.n), str(len(g.seeds)), str(g.no_generation), str(g.tau_gen or "—"),
             str(g.tau_mem or "—"), str(g.censored)] for g in groups]
    return ["## Across seeds", "",
            "Mean ± sample std [min, max] over seeds. '>=': some seed's value is a lower bound (tau_mem censored, "
            "or tau_gen not reached), and so is the mean; '<=': an upper bound (reached at the first checkpoint). "
            "tau_mem is the earlier of the two copy measures.", "",
            *markdown_table(("recipe", "n", "seeds", "seeds without generation", "tau_gen", "tau_mem",
                             "censored seeds"), rows), ""]


def _sensitivity_section(runs: list[RunAnalysis]) -> list[str]:
    """Per (recipe, n): in how many seeds the window is open at each gate level and plateau tolerance."""
    groups: dict[tuple[str, Any], list[Window]] = defaultdict(list)
    for r in runs:
        groups[(recipe_of(r.config), r.window.n)].append(r.window)
    rows = []
    for (recipe, n), windows in groups.items():
        cells = defaultdict(int)
        for w in windows:
            for reading in w.sensitivity:
                cells[(reading.gate_level, reading.tol)] += reading.state == "open"
        rows += [[recipe, str(n), f"{level:g}", f"{tol:g}", f"{count} of {len(windows)}"]
                 for (level, tol), count in sorted(cells.items())]
    return ["## How the window depends on the gate level and the plateau tolerance", "",
            "Seeds whose window is open (tau_mem's 95% interval above tau_gen's) when the quality gate's threshold "
            "is the given level (generation is a precondition) and tau_gen is where the fitted FD comes within "
            "tol x its 2-sigma sampling error of its plateau. A claim that a window is open holds only over the "
            "rows where every seed is open.", "",
            *markdown_table(("recipe", "n", "gate level", "tol", "open"), rows), ""]


def fit_text(fit: PowerLaw | None, count: int) -> str:
    """One sentence on the tau_mem ~ n^slope fit."""
    if fit is None:
        return "No fit: fewer than 2 values of n with a tau_mem that is no bound."
    return (f"tau_mem ~ n^slope: slope {fit.slope:.2f}, {fit.interval_text()}, over {count} runs whose tau_mem is "
            "no bound (the paper: slope 1). Censored runs are excluded, which biases the slope low when the "
            "largest n are censored.")


def censored_fit_text(windows: list[Window]) -> str:
    """One sentence on the tau_mem ~ n^slope fit that counts the censored runs; '' where none is censored."""
    fit = fit_tau_mem_censored(windows)
    if fit is None:
        return ""
    return (f"With the censored runs counted: {slope_text(fit)}; a straight power law through every n, where the law "
            "may bend.")


def width_fit_text(windows: list[Window]) -> str:
    """One sentence on the slope of the scale-free width w = log(tau_mem/tau_gen) against log n."""
    fitted = fit_width(windows)
    if fitted is None:
        return "Scale-free width against n: no fit (fewer than 2 values of n with an exact tau_mem/tau_gen)."
    fit, count = fitted
    return (f"Scale-free width against n: d log(tau_mem/tau_gen) / d log n = {fit.slope:.2f}, {fit.interval_text()}, "
            f"over {count} runs with an exact ratio (the paper: 1, tau_mem ~ n with tau_gen flat); runs with a bound "
            "are excluded.")


def flatness_text(groups: list[WindowGroup]) -> str:
    """One sentence on tau_gen across n (the paper: independent of n) and on the window at every n."""
    ratio = tau_gen_flatness(groups)
    flat = ("tau_gen across n: no ratio (some n's tau_gen is a bound)" if ratio is None else
            f"tau_gen across n: largest over smallest seed mean {ratio:.2f} (the paper: about 1)")
    open_at = [g.n for g in groups if g.window_open]
    return f"{flat}; window open for every seed (95% intervals apart, calibrated gate, tol 1) at n = {open_at or 'none'} of {[g.n for g in groups]}."


def _slug(recipe: str) -> str:
    """A file-name-safe form of a recipe label."""
    return re.sub(r"[^A-Za-z0-9]+", "_", recipe).strip("_")


def _scaling_sections(runs: list[RunAnalysis], root: Path) -> list[str]:
    """Collapse and tau_mem-vs-n figures for each recipe measured at several n."""
    by_recipe: dict[str, list[RunAnalysis]] = defaultdict(list)
    for run in runs:
        if run.window.n is not None:
            by_recipe[recipe_of(run.config)].append(run)
    lines = []
    for recipe, members in sorted(by_recipe.items()):
        if len({r.window.n for r in members}) < 2:
            continue
        windows = [r.window for r in members]
        fit = fit_tau_mem(windows)
        stem = f"figures/{_slug(recipe)}"
        figures = {f"{stem}_collapse.png": collapse_figure([(r.window.n, r.curves) for r in members], recipe),
                   f"{stem}_scaling.png": scaling_figure(windows, fit, recipe)}
        for rel, fig in figures.items():
            save_figure(fig, root / rel)
        censored = censored_fit_text(windows)
        lines += [f"### {recipe}", "", fit_text(fit, len(exact_tau_mem(windows))), "",
                  *([censored, ""] if censored else []), width_fit_text(windows), "",
                  flatness_text(group_windows((recipe, _seed(r), r.window) for r in members)), "",
                  *(f"![{Path(rel).stem}]({rel})" for rel in figures), ""]
    return ["## Scaling with n", "", *lines] if lines else []


def _nearest_lines(run: RunAnalysis, root: Path) -> list[str]:
    """The sample grids beside their nearest training images at tau_gen, tau_mem and the last checkpoint."""
    roles = nearest_roles(run.run_dir, run.window)
    if not roles:
        return ["No nearest-neighbour files (nearest/step_*.npz): no sample grids to show.", ""]
    lines = ["Samples (upper image of each pair) above their nearest training image, titled with d1/d2 "
             "(red: below k, a copy):", ""]
    for role, step, figure in roles:
        lines += [f"- at {role} (evaluated checkpoint {step}):", "",
                  f"  ![{role}]({figure.relative_to(root).as_posix()})", ""]
    return lines


def _details(run: RunAnalysis, root: Path) -> list[str]:
    """How a run's window was read, its verdict, flags, figures and nearest-neighbour grids."""
    w = run.window
    lines = [f"### {run.run_dir.relative_to(root).as_posix()}", "", f"- verdict: {w.verdict}",
             f"- generation: {w.generation.how}", f"- tau_gen {w.tau_gen}: {w.tau_gen.how}",
             f"- tau_mem {w.tau_mem} (the paper's f_mem): {w.tau_mem.how}",
             f"- tau_mem {w.tau_mem_robust} (robust to residual noise): {w.tau_mem_robust.how}"]
    lines += [f"- flag: {flag}" for flag in w.flags]
    curves = [p for p in run.figures if not p.name.startswith("nearest_")]
    lines += [""] + [f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in curves] + [""]
    return lines + _nearest_lines(run, root)


@one_line_errors  # a read-only DIR: one line naming the path
def write_report(root: Path, redraw: bool = True, **options: Any) -> Path:
    """Read every run's window under `root` (WindowRule `options`), draw figures (redraw False: keep current ones,
    see analyse_run), write root/report.md. Refused before any write: a report.md freqdiff did not write (its first
    line is not HEADING), a report.md or figures/ that is a symlink; no write below root follows a symlink."""
    root = Path(root)
    if not root.is_dir():
        raise FreqdiffError(f"{root}: not a directory")
    build_params(WindowRule, options, "window")
    with writing_into(root):
        check_writable(root / "figures", folder=True)
        check_own_file(root / "report.md", HEADING)
        return _write_report(root, redraw, options)


def _write_report(root: Path, redraw: bool, options: dict[str, Any]) -> Path:
    """write_report once root and its report.md are checked."""
    runs, skipped = [], []
    found = find_runs(root)
    baselines = [run_dir for run_dir in found if is_baseline_run(run_dir)]  # measured over a parameter, not tau
    for run_dir in (d for d in found if d not in baselines):
        try:
            runs.append(analyse_run(run_dir, redraw, **options))
        except FreqdiffError as err:
            skipped.append(f"- {run_dir.relative_to(root).as_posix()}: {err}")
    runs.sort(key=_order)
    if not runs and not skipped and not baselines:
        raise FreqdiffError(f"{root}: no run directories (config.json + metrics.csv) found")
    lines = [HEADING, "",
             f"{len(runs)} runs under {root}. Steps are optimizer steps. tau_gen: where the fitted FD comes within "
             "its sampling error of its plateau (parametric bootstrap interval); tau_mem: where the expected copy "
             "fraction reaches the threshold (binomial profile-likelihood interval); both 95%. '>=' marks a "
             "right-censored end (the data allow it to lie past the last checkpoint), '<=' a left-censored one. "
             "A run generates when its quality gate passes; one that never does has no window. The window is "
             "open where tau_mem's interval lies above tau_gen's. Width and ratio use the earlier tau_mem.", "",
             "## Runs", "", *markdown_table(RUN_COLUMNS, [_run_row(r, root) for r in runs]), "",
             *_seeds_section(runs), *_sensitivity_section(runs), *_scaling_sections(runs, root),
             "## Run details", "", *(line for r in runs for line in _details(r, root)),
             *baseline_section(baselines, root)]
    if skipped:
        lines += ["## Skipped runs", "", *skipped, ""]
    path = check_own_file(root / "report.md", HEADING)
    write_text(path, "\n".join(lines))
    return path
