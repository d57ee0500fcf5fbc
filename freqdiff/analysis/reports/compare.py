"""`freqdiff compare DIR...`: the comparison of freqdiff.analysis.reading.comparison as markdown, csv, json, figure.

One DIR per recipe; the first is the reference unless --reference names another. Writes report.md,
comparison.png, comparison.csv and comparison.json under --out, refusing to overwrite anything but an
earlier comparison of the same DIRs.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from freqdiff.analysis.reports.plots import TAU_LABEL, fid_label
from freqdiff.analysis.reports.report import fit_text, markdown_table
from freqdiff.analysis.reading.comparison import (COVERAGE, DRAWS, SEED, Comparison, Factor, Recipe, Versus, compare,
                                               interval_text)
from freqdiff.analysis.reading.scaling import Spread
from freqdiff.analysis.statistics import PowerLaw
from freqdiff.config import split_argv
from freqdiff.io import read_json, save_figure, write_csv, write_json, write_text
from freqdiff.registry import FreqdiffError, check_choice

FORMATS = ("text", "csv", "json")
FILES = ("report.md", "comparison.png", "comparison.csv", "comparison.json")
CSV_COLUMNS = ["kind", "recipe", "reference", "n", "quantity", "value", "std", "min", "max", "bound", "seeds",
               "ci_low", "ci_high", "tolerance", "flag", "method", "note"]
QUANTITIES = ("tau_gen", "tau_mem", "width", "ratio", "fid_at_tau_gen", "final_fmem")


# ----------------------------------------------------------------------------- rendering


def _cell(s: Spread | None, suffix: str = "") -> str:
    """A spread as text, or an em dash."""
    return "—" if s is None else f"{s}{suffix}"


def _window_rows(comparison: Comparison) -> list[list[str]]:
    """The per-(recipe, n) table rows."""
    return [[f"{r.label} ({r.regularizer})", str(row.group.n), str(len(row.group.seeds)), _cell(row.group.tau_gen),
             _cell(row.group.tau_mem), _cell(row.width), _cell(row.ratio),
             _cell(row.fid_at_gen, f" ({row.extractor or 'unknown'})"), _cell(row.final_fmem), str(row.group.censored)]
            for r in comparison.recipes for row in r.rows]


def _factor_text(f: Factor | None) -> str:
    """A factor as '>= 2.34', or why there is none."""
    if f is None:
        return "—"
    if f.estimate is None:
        return f"— ({f.note})"
    return f"{f.bound + ' ' if f.bound else ''}{f.estimate:.3g}"


def _versus_rows(v: Versus) -> list[list[str]]:
    """The factor table rows of one recipe against the reference, pooled row last."""
    rows = []
    for w, t, q in zip(v.width, v.tau_mem, v.quality):
        fid = "—" if q.difference is None else f"{q.difference:+.3g} (tolerance {q.tolerance:.3g})"
        equal = {None: f"unchecked: {q.note}", True: "NO: worse", False: "yes"}[q.worse]
        rows.append([v.recipe, str(w.n), _factor_text(w), interval_text(w), _factor_text(t), interval_text(t),
                     fid, equal])
    if v.pooled_width or v.pooled_tau_mem:
        pw, pt = v.pooled_width, v.pooled_tau_mem
        rows.append([v.recipe, "pooled", _factor_text(pw), interval_text(pw) if pw else "—",
                     _factor_text(pt), interval_text(pt) if pt else "—", "", ""])
    return rows


def render(comparison: Comparison) -> str:
    """The comparison as markdown: windows table, factors against the reference, slopes, verdicts."""
    rule = comparison.rule
    recipes = [[r.label, str(r.path), r.recipe, r.regularizer, str(len(r.runs)), str(len(r.skipped))]
               for r in comparison.recipes]
    lines = ["# freqdiff comparison", "",
             f"Reference: {comparison.reference}. Steps are optimizer steps at evaluated checkpoints. "
             "'>=' marks a lower bound (a censored tau_mem: no memorization seen), '<=' an upper bound "
             "(FID already on its plateau at the first checkpoint).", "",
             *markdown_table(("recipe", "directory", "recipe id", "regularizer", "runs", "skipped"), recipes), "",
             "## Windows", "", "Mean ± sample std [min, max] over seeds. FID at tau_gen: the FID measured at the "
             "tau_gen checkpoint, with the features that made it.", "",
             *markdown_table(("recipe", "n", "seeds", "tau_gen", "tau_mem", "width", "ratio", "FID at tau_gen",
                      "final f_mem", "censored seeds"), _window_rows(comparison)), ""]
    if comparison.versus:
        lines += [f"## Against {comparison.reference}", "",
                  "Factor = geometric mean over seeds of the recipe's value / the reference's, at each n both have. "
                  f"Interval: percentile bootstrap ({DRAWS} draws, seed {SEED}), resampling each recipe's seeds "
                  f"with replacement; undefined with one seed. {COVERAGE} When no n has an interval, a 'pooled' row "
                  "gives the geometric mean of the per-n factors with a t-interval over n (needs 2 n; assumes the "
                  "factor does not depend on n). A censored tau_mem makes a factor a bound: then only one end of "
                  "its interval is given. Equal quality: the recipe's mean FID at tau_gen exceeds the reference's by "
                  f"no more than max(either seed std, the plateau band max({rule['rel_tol']:g} x FID, "
                  f"{rule['abs_tol']:g})).", "",
                  *markdown_table(("recipe", "n", "width factor", "95% interval", "tau_mem factor", "95% interval",
                           "FID at tau_gen difference", "equal quality"),
                          [row for v in comparison.versus for row in _versus_rows(v)]), ""]
    lines += ["## tau_mem against n", "", *(f"- {r.label}: {fit_text(r.fit, r.fit_runs)}" for r in comparison.recipes),
              "", "## Verdict", ""]
    lines += [f"- {v.verdict}" for v in comparison.versus] or ["- One recipe only: nothing to compare against."]
    lines += ["", "![comparison](comparison.png)", ""]
    skipped = [f"- {line}" for r in comparison.recipes for line in r.skipped]
    return "\n".join(lines + (["## Skipped runs", "", *skipped, ""] if skipped else []))


def _csv_spread(s: Spread | None) -> dict[str, Any]:
    """The csv fields of a spread."""
    if s is None:
        return {}
    return {"value": s.mean, "std": s.std, "min": s.low, "max": s.high, "bound": s.bound, "seeds": s.count}


def _csv_factor(v: Versus, f: Factor) -> dict[str, Any]:
    """The csv row of a factor."""
    low, high = f.interval or (None, None)
    return {"kind": "factor", "recipe": v.recipe, "reference": v.reference, "n": "pooled" if f.n is None else f.n,
            "quantity": f"{f.quantity}_factor", "value": f.estimate, "bound": f.bound, "ci_low": low, "ci_high": high,
            "method": f.method, "note": f.note}


def csv_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Long-format rows: kind window | factor | quality | slope | verdict."""
    rows = []
    for r in comparison.recipes:
        for row in r.rows:
            spreads = (row.group.tau_gen, row.group.tau_mem, row.width, row.ratio, row.fid_at_gen, row.final_fmem)
            rows += [{"kind": "window", "recipe": r.label, "n": row.group.n, "quantity": q, **_csv_spread(s),
                      "note": row.extractor if q == "fid_at_tau_gen" else ""} for q, s in zip(QUANTITIES, spreads)]
        fit = r.fit
        rows.append({"kind": "slope", "recipe": r.label, "quantity": "tau_mem_vs_n_slope", "seeds": r.fit_runs,
                     "value": fit.slope if fit else None, "ci_low": fit.interval[0] if fit and fit.interval else None,
                     "ci_high": fit.interval[1] if fit and fit.interval else None, "note": fit_text(fit, r.fit_runs)})
    for v in comparison.versus:
        factors = [*v.width, *v.tau_mem, *(f for f in (v.pooled_width, v.pooled_tau_mem) if f)]
        rows += [_csv_factor(v, f) for f in factors]
        rows += [{"kind": "quality", "recipe": v.recipe, "reference": v.reference, "n": q.n,
                  "quantity": "fid_at_tau_gen_difference", "value": q.difference, "tolerance": q.tolerance,
                  "flag": {None: "unchecked", True: "worse", False: "equal"}[q.worse], "note": q.note}
                 for q in v.quality]
        rows.append({"kind": "verdict", "recipe": v.recipe, "reference": v.reference, "note": v.verdict})
    return rows


def _jsonable(obj: Any) -> Any:
    """Plain JSON values: dataclasses and named tuples as objects, paths as strings, nan as null."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, PowerLaw):
        return _jsonable(obj._asdict())
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The whole comparison as JSON, with the compared DIRs (resolved) to recognise a rerun."""
    return {"dirs": _dir_key(comparison), **_jsonable(comparison)}


def _dir_key(comparison: Comparison) -> list[str]:
    """The compared DIRs, resolved and sorted: what makes two comparisons 'the same'."""
    return sorted(str(r.path.resolve()) for r in comparison.recipes)


def comparison_figure(comparison: Comparison) -> Figure:
    """Left: tau_gen and tau_mem against n per recipe (log-log), window shaded, censored tau_mem open.

    Right: the FID at tau_gen against n. Bars span min..max over seeds; markers are means.
    """
    fig = Figure(figsize=(12, 4.5))
    ax, fid_ax = fig.subplots(1, 2)
    ax.set_yscale("log")
    for i, recipe in enumerate(comparison.recipes):
        _draw_recipe(ax, fid_ax, recipe, f"C{i % 10}", 1.04 ** i)
    ns = sorted({row.group.n for r in comparison.recipes for row in r.rows})
    for axis in (ax, fid_ax):
        axis.set_xscale("log")
        axis.set_xticks(ns, [str(n) for n in ns])
        axis.minorticks_off()
    ax.set_xlabel("n (training-set size)")
    ax.set_ylabel(TAU_LABEL)
    ax.set_title("generalization window: tau_gen (x, dashed) to tau_mem (o, solid)", fontsize=9)
    ax.legend(fontsize=7)
    extractors = {r.extractor for r in comparison.recipes}
    fid_ax.set_ylabel(f"{fid_label(extractors.pop()) if len(extractors) == 1 else 'FID (features differ)'} at tau_gen")
    fid_ax.set_xlabel("n (training-set size)")
    fid_ax.set_title("quality at the window's start", fontsize=9)
    fid_ax.legend(fontsize=7)
    return fig


def _bars(spreads: Sequence[Spread]) -> np.ndarray:
    """Error-bar lengths (below, above) from the mean to min and max."""
    return np.array([[s.mean - s.low for s in spreads], [s.high - s.mean for s in spreads]])


def _draw_recipe(ax: Any, fid_ax: Any, recipe: Recipe, color: str, shift: float) -> None:
    """One recipe's window band and FID at tau_gen; x shifted slightly so recipes do not hide each other."""
    rows = [r for r in recipe.rows if r.group.tau_gen and r.group.tau_mem]
    if rows:
        n = np.array([r.group.n for r in rows]) * shift
        gen, mem = [r.group.tau_gen for r in rows], [r.group.tau_mem for r in rows]
        gen_mean, mem_mean = np.array([s.mean for s in gen]), np.array([s.mean for s in mem])
        ax.fill_between(n, gen_mean, mem_mean, color=color, alpha=0.12, lw=0)
        ax.errorbar(n, gen_mean, yerr=_bars(gen), fmt="x--", color=color, label=f"{recipe.label}: tau_gen")
        ax.errorbar(n, mem_mean, yerr=_bars(mem), fmt="-", color=color, label=f"{recipe.label}: tau_mem")
        censored = np.array([r.group.censored > 0 for r in rows])
        ax.plot(n[~censored], mem_mean[~censored], "o", color=color)
        if censored.any():
            ax.plot(n[censored], mem_mean[censored], "^", mfc="none", ms=9, color=color,
                    label=f"{recipe.label}: tau_mem censored (>=)")
    fid_rows = [r for r in recipe.rows if r.fid_at_gen]
    if fid_rows:
        fid = [r.fid_at_gen for r in fid_rows]
        fid_ax.errorbar(np.array([r.group.n for r in fid_rows]) * shift, [s.mean for s in fid], yerr=_bars(fid),
                        fmt="o-", color=color, label=f"{recipe.label} ({recipe.extractor or 'unknown'})")


# ----------------------------------------------------------------------------- command


def _overwrites(out: Path, comparison: Comparison) -> bool:
    """True when `out` holds an earlier comparison of the same DIRs; refuse to overwrite anything else."""
    if out.exists() and not out.is_dir():
        raise FreqdiffError(f"--out {out}: exists and is not a directory")
    present = [name for name in FILES if (out / name).exists()]
    if not present:
        return False
    try:
        earlier = read_json(out / "comparison.json").get("dirs")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier != _dir_key(comparison):
        raise FreqdiffError(f"--out {out}: already holds {', '.join(present)} not from a comparison of these DIRs; "
                            "choose another --out or remove them")
    return True


def write_comparison(comparison: Comparison, out: Path) -> tuple[dict[str, Path], bool]:
    """Write report.md, comparison.png, .csv and .json under `out` (atomically); True when overwriting."""
    overwrite = _overwrites(out, comparison)
    paths = {name.rsplit(".", 1)[-1]: out / name for name in FILES}
    save_figure(comparison_figure(comparison), paths["png"])
    write_csv(paths["csv"], csv_rows(comparison), CSV_COLUMNS)
    write_json(paths["json"], to_json(comparison))
    write_text(paths["md"], render(comparison))
    return paths, overwrite


def compare_main(argv: list[str]) -> int:
    """`freqdiff compare DIR... [--reference NAME] [--format text|csv|json] [--out PATH] [window options]`."""
    dirs, flags = split_argv(argv)
    fmt = flags.pop("format", "text")
    check_choice(fmt, FORMATS, "--format")
    out = Path(flags.pop("out", "comparison"))
    comparison = compare(dirs, flags.pop("reference", None), **flags)
    paths, overwrite = write_comparison(comparison, out)
    notes = ([f"overwrote the earlier comparison of the same DIRs in {out}"] if overwrite else []) + \
        [f"wrote {', '.join(str(p) for p in paths.values())}"]
    if fmt == "text":
        print(render(comparison))
        print("\n".join(notes))
        return 0
    sys.stdout.write(paths[fmt].read_text())
    print("\n".join(notes), file=sys.stderr)
    return 0
