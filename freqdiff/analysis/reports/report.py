"""`freqdiff report DIR`: one markdown page with every run's window, the seed spread and the n scaling."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from freqdiff.analysis.reports.plots import collapse_figure, scaling_figure
from freqdiff.analysis.reports.run import RunAnalysis, analyse_run
from freqdiff.analysis.reading.curves import find_runs
from freqdiff.analysis.reading.scaling import component_label, fit_tau_mem, group_windows, recipe_of
from freqdiff.analysis.reading.window import Window, WindowRule
from freqdiff.analysis.statistics import PowerLaw
from freqdiff.io import save_figure, write_text
from freqdiff.registry import FreqdiffError, build_params

RUN_COLUMNS = ("run", "recipe", "n", "seed", "regularizer", "tau_gen", "tau_mem", "width", "ratio",
               "min FID (extractor)", "final f_mem [95% CI]")


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


def _bounded(value: float | int | None, bound: bool, sign: str, spec: str = "") -> str:
    """A number with its bound sign ('>=' / '<=') when it is only a bound; an em dash when undefined."""
    if value is None:
        return "—"
    return f"{sign + ' ' if bound else ''}{value:{spec}}"


def _fmem_text(window: Window) -> str:
    """Final f_mem with its interval."""
    if window.final_fmem is None:
        return "—"
    value, low, high = window.final_fmem
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _run_row(run: RunAnalysis, root: Path) -> list[str]:
    """One run's line of the runs table."""
    w = run.window
    fid = "—" if w.min_fid is None else f"{w.min_fid:.4g} ({w.extractor or 'unknown'})"
    return [run.run_dir.relative_to(root).as_posix(), recipe_of(run.config), str(w.n),
            str(_seed(run)), component_label(run.config, "regularizer"),
            _bounded(w.tau_gen, w.tau_gen_censored, "<="), _bounded(w.tau_mem, w.tau_mem_censored, ">="),
            _bounded(w.width, w.lower_bounds, ">="), _bounded(w.ratio, w.lower_bounds, ">=", ".3g"),
            fid, _fmem_text(w)]


def _seeds_section(runs: list[RunAnalysis]) -> list[str]:
    """Mean ± std [min, max] over seeds of each (recipe, n); a censored seed makes it a bound."""
    groups = group_windows((recipe_of(r.config), _seed(r), r.window) for r in runs)
    rows = [[g.recipe, str(g.n), str(len(g.seeds)), str(g.tau_gen or "—"), str(g.tau_mem or "—"), str(g.censored)]
            for g in groups]
    return ["## Across seeds", "",
            "Mean ± sample std [min, max] over seeds. '>=': some seed never memorized, its tau_mem is a "
            "lower bound and so is the mean; '<=': FID was already on its plateau at a first checkpoint.", "",
            *markdown_table(("recipe", "n", "seeds", "tau_gen", "tau_mem", "censored seeds"), rows), ""]


def fit_text(fit: PowerLaw | None, count: int) -> str:
    """One sentence on the tau_mem ~ n^slope fit."""
    if fit is None:
        return "No fit: fewer than 2 values of n with an uncensored tau_mem."
    interval = ("interval undefined (2 points)" if fit.interval is None
                else f"95% interval [{fit.interval[0]:.2f}, {fit.interval[1]:.2f}]")
    return (f"tau_mem ~ n^slope: slope {fit.slope:.2f}, {interval}, over {count} uncensored runs "
            "(the paper: slope 1). Censored runs are excluded, which biases the slope low when the "
            "largest n are censored.")


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
        count = sum(1 for w in windows if w.tau_mem and not w.tau_mem_censored)
        lines += [f"### {recipe}", "", fit_text(fit, count), "",
                  *(f"![{Path(rel).stem}]({rel})" for rel in figures), ""]
    return ["## Scaling with n", "", *lines] if lines else []


def _details(run: RunAnalysis, root: Path) -> list[str]:
    """How a run's window was read, its flags and its figures."""
    w = run.window
    lines = [f"### {run.run_dir.relative_to(root).as_posix()}", "",
             f"- tau_gen: {w.tau_gen_how}", f"- tau_mem: {w.tau_mem_how}"]
    lines += [f"- flag: {flag}" for flag in w.flags]
    lines += [""] + [f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in run.figures] + [""]
    return lines


def write_report(root: Path, **options: Any) -> Path:
    """Read every run's window under `root` (WindowRule `options`), draw figures, write root/report.md."""
    root = Path(root)
    if not root.is_dir():
        raise FreqdiffError(f"{root}: not a directory")
    build_params(WindowRule, options, "window")
    runs, skipped = [], []
    for run_dir in find_runs(root):
        try:
            runs.append(analyse_run(run_dir, **options))
        except FreqdiffError as err:
            skipped.append(f"- {run_dir.relative_to(root).as_posix()}: {err}")
    runs.sort(key=_order)
    if not runs and not skipped:
        raise FreqdiffError(f"{root}: no run directories (config.json + metrics.csv) found")
    lines = ["# freqdiff report", "",
             f"{len(runs)} runs under {root}. Steps are optimizer steps at evaluated checkpoints; "
             "'>=' marks a censored tau_mem (no memorization seen), so width and ratio are lower bounds.", "",
             "## Runs", "", *markdown_table(RUN_COLUMNS, [_run_row(r, root) for r in runs]), "",
             *_seeds_section(runs), *_scaling_sections(runs, root),
             "## Run details", "", *(line for r in runs for line in _details(r, root))]
    if skipped:
        lines += ["## Skipped runs", "", *skipped, ""]
    path = root / "report.md"
    write_text(path, "\n".join(lines))
    return path
