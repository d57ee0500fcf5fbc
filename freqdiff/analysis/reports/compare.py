"""`freqdiff compare DIR...`: the comparison of freqdiff.analysis.reading.comparison as markdown, csv, json, figure.

One DIR per recipe; the first is the reference unless --reference names another. Writes report.md,
comparison.png, comparison.csv and comparison.json under --out, refusing to overwrite anything but an
earlier comparison of the same DIRs, and refusing an --out that freqdiff did not make (a user's folder, a link).
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from freqdiff.analysis.reading.comparison import INTERVALS, Comparison, Versus, compare, refinement_text
from freqdiff.analysis.reading.equivalence import COMPARABLE
from freqdiff.analysis.reading.factors import Factor
from freqdiff.analysis.reading.onsets import gate_text
from freqdiff.analysis.reading.pooling import Recipe, Row
from freqdiff.analysis.reading.scaling import Spread
from freqdiff.analysis.reading.verdicts import interval_text
from freqdiff.analysis.reports.comparison_figure import comparison_figure
from freqdiff.analysis.reports.report import fit_text, markdown_table
from freqdiff.analysis.reports.run import window_options_help
from freqdiff.core.config import split_argv
from freqdiff.core.figures import save_figure
from freqdiff.core.io import (check_own_file, claim_output_dir, one_line_errors, read_json, write_csv, write_json,
                              write_text)
from freqdiff.core.registry import FreqdiffError, check_choice
from freqdiff.metrics.statistics import PowerLaw

FORMATS = ("text", "csv", "json")
FILES = ("report.md", "comparison.png", "comparison.csv", "comparison.json")
CSV_COLUMNS = ["kind", "recipe", "reference", "n", "quantity", "value", "err", "std", "min", "max", "bound", "seeds",
               "ci_low", "ci_high", "flag", "method", "p", "note"]
QUANTITIES = ("tau_gen", "tau_mem", "width", "ratio", "final_fmem", "final_fmem_robust")


# ----------------------------------------------------------------------------- rendering


def _cell(s: object | None, suffix: str = "") -> str:
    """A spread or level as text, or an em dash."""
    return "—" if s is None else f"{s}{suffix}"


def measure_label(measure: str, extractor: str) -> str:
    """A quality column as a reader sees it: the FD always with the features that made it."""
    return f"FD ({extractor or 'unknown'} features)" if measure == "fid" else measure


def _quality_cell(row: Row) -> str:
    """Quality at tau_gen: each measure's mean over seeds ± its 2-sigma error."""
    return "; ".join(f"{measure_label(c, row.extractor)} {level}" for c, level in row.at_gen.items()) or "—"


def _generating(recipe: Recipe, row: Row) -> str:
    """'k of m' seeds that pass the quality gate, or why it cannot be judged."""
    if recipe.gate is None:
        return f"unknown: no quality gate for {recipe.extractor or 'unknown'}"
    return f"{len(row.group.seeds) - row.group.no_generation} of {len(row.group.seeds)}"


def _window_rows(comparison: Comparison) -> list[list[str]]:
    """The per-(recipe, n) table rows."""
    return [[f"{r.label} ({r.regularizer})", str(row.group.n), str(len(row.group.seeds)), _generating(r, row),
             _cell(row.group.tau_gen), _cell(row.group.tau_mem), _cell(row.width), _cell(row.ratio),
             _quality_cell(row), _cell(row.final_fmem), _cell(row.final_fmem_robust), str(row.group.censored)]
            for r in comparison.recipes for row in r.rows]


def _factor_text(f: Factor | None) -> str:
    """A factor as '>= 2.34', or why there is none."""
    if f is None:
        return "—"
    if f.estimate is None:
        return f"— ({f.note})"
    return f"{f.bound + ' ' if f.bound else ''}{f.estimate:.3g}"


def _factor_cells(f: Factor | None, compared: bool) -> list[str]:
    """A factor's value, its interval with its method, and its permutation p ('—' where not compared)."""
    if not compared or f is None:
        return ["—", "—"]
    p = f"; permutation p = {f.p:.2g}" if f.p is not None else ""
    return [_factor_text(f), f"{interval_text(f)} ({f.method}{p})" if f.interval else interval_text(f)]


def _versus_rows(v: Versus) -> list[list[str]]:
    """The factor table rows of one recipe against the reference, pooled row last."""
    rows = [[v.recipe, str(m.n), m.note, *_factor_cells(w, m.status in COMPARABLE),
             *_factor_cells(a, m.status in COMPARABLE), *_factor_cells(t, m.status in COMPARABLE)]
            for m, w, a, t in zip(v.matches, v.width, v.absolute_width, v.tau_mem)]
    if v.pooled_width or v.pooled_tau_mem:
        rows.append([v.recipe, "pooled", "", *_factor_cells(v.pooled_width, True), "—", "—",
                     *_factor_cells(v.pooled_tau_mem, True)])
    return rows


def _gates(comparison: Comparison) -> list[str]:
    """One line per feature space: its quality gate, or that it has none."""
    gates = {r.extractor: r.gate for r in comparison.recipes}
    return [f"- {extractor or 'unknown'} features: " + (gate_text(g) if g else "no calibrated quality gate; "
                                                           "generation cannot be judged")
            for extractor, g in gates.items()]


INTRO = ("Steps are optimizer steps; tau_gen and tau_mem are estimates (fitted FD plateau; copy fraction reaching "
         "its threshold). '>=' marks a right-censored value (the data allow it past the last checkpoint), '<=' a "
         "left-censored one. tau_mem is the earlier of the paper's f_mem and the copy measure robust to residual "
         "noise. A run generates when its quality gate passes (value - 2-sigma error >= threshold) at consecutive "
         "checkpoints; one that never does has no window.")
AGAINST = ("Factors are given only at an n where every seed of both recipes generates and the recipe's quality "
           "at tau_gen is equivalent to the reference's or better: a two-sided equivalence test (90% interval of "
           "the difference inside the calibrated margin) on the FD, recognizability, recall and coverage. "
           + INTERVALS + " When no n has an interval, a 'pooled' row gives the geometric mean of the per-n factors "
           "with a t-interval over n (needs 2 n; assumes the factor does not depend on n).")


def render(comparison: Comparison) -> str:
    """The comparison as markdown: gates, windows table, matches and factors, slopes, verdicts."""
    recipes = [[r.label, str(r.path), r.recipe, r.regularizer, str(len(r.runs)), str(len(r.skipped))]
               for r in comparison.recipes]
    lines = ["# freqdiff comparison", "", " ".join(filter(None, (f"Reference: {comparison.reference}.", INTRO,
                                                               refinement_text(comparison)))), "",
             *markdown_table(("recipe", "directory", "recipe id", "regularizer", "runs", "skipped"), recipes), "",
             "Quality gates:", "", *_gates(comparison), "",
             "## Windows", "", "Mean ± sample std [min, max] over seeds. Quality at tau_gen: each measure at the "
             "tau_gen checkpoint, mean over the seeds that reach it ± its 2-sigma error.", "",
             *markdown_table(("recipe", "n", "seeds", "generating seeds", "tau_gen", "tau_mem", "width", "ratio",
                              "quality at tau_gen", "final f_mem", "final f_mem robust", "censored seeds"),
                             _window_rows(comparison)), ""]
    if comparison.versus:
        lines += [f"## Against {comparison.reference}", "",
                  AGAINST, "",
                  *markdown_table(("recipe", "n", "generation and quality", "scale-free width factor",
                                   "95% interval", "absolute width factor", "95% interval", "tau_mem factor",
                                   "95% interval"),
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
            "method": f.method, "p": f.p, "note": f.note}


def csv_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Long-format rows: kind window | quality | slope | match | factor | verdict."""
    rows = []
    for r in comparison.recipes:
        for row in r.rows:
            spreads = (row.group.tau_gen, row.group.tau_mem, row.width, row.ratio, row.final_fmem,
                       row.final_fmem_robust)
            rows += [{"kind": "window", "recipe": r.label, "n": row.group.n, "quantity": q, **_csv_spread(s)}
                     for q, s in zip(QUANTITIES, spreads)]
            rows += [{"kind": "quality", "recipe": r.label, "n": row.group.n, "quantity": f"{c}_at_tau_gen",
                      "value": level.value, "err": level.err, "seeds": level.seeds,
                      "note": measure_label(c, row.extractor)} for c, level in row.at_gen.items()]
        fit = r.fit
        rows.append({"kind": "slope", "recipe": r.label, "quantity": "tau_mem_vs_n_slope", "seeds": r.fit_runs,
                     "value": fit.slope if fit else None, "ci_low": fit.interval[0] if fit and fit.interval else None,
                     "ci_high": fit.interval[1] if fit and fit.interval else None, "note": fit_text(fit, r.fit_runs)})
    for v in comparison.versus:
        for m in v.matches:
            rows.append({"kind": "match", "recipe": v.recipe, "reference": v.reference, "n": m.n,
                         "quantity": "generation_and_quality", "flag": m.status, "note": m.note})
            rows += [{"kind": "match", "recipe": v.recipe, "reference": v.reference, "n": m.n,
                      "quantity": f"{q.measure}_at_tau_gen_difference",
                      "value": q.mine.value - q.ref.value if q.mine and q.ref else None, "err": q.tolerance,
                      "flag": q.side, "note": str(q)} for q in m.measures]
        factors = [*v.width, *v.absolute_width, *v.tau_mem, *(f for f in (v.pooled_width, v.pooled_tau_mem) if f)]
        rows += [_csv_factor(v, f) for f in factors]
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
    """Write report.md, comparison.png, .csv and .json under `out` (atomically); True when overwriting. `out` is
    claimed first (claim_output_dir): a directory freqdiff did not make, or a link, is refused before any write."""
    claim_output_dir(out, "comparison.json")
    overwrite = _overwrites(out, comparison)
    check_own_file(out / "report.md", "# freqdiff comparison")
    paths = {name.rsplit(".", 1)[-1]: out / name for name in FILES}
    save_figure(comparison_figure(comparison), paths["png"])
    write_csv(paths["csv"], csv_rows(comparison), CSV_COLUMNS)
    write_json(paths["json"], to_json(comparison))
    write_text(paths["md"], render(comparison))
    return paths, overwrite


def compare_help() -> str:
    """`freqdiff compare --help`."""
    return ("usage: freqdiff compare DIR... [--reference NAME] [--format text|csv|json] [--out DIR] [window options]\n"
            "  --reference NAME  the DIR (by name) the others are compared to (default: the first)\n"
            "  --format FORMAT   what to print: text (the report), csv or json (default text)\n"
            "  --out DIR         where report.md, comparison.png/.csv/.json go (default comparison); a new or empty\n"
            "                    directory, or one of freqdiff's: a user's folder or a symlink is refused\n"
            + window_options_help())


@one_line_errors  # a read-only --out, a full disk: one line naming the path
def compare_main(argv: list[str]) -> int:
    """`freqdiff compare DIR... [--reference NAME] [--format text|csv|json] [--out PATH] [window options]`."""
    dirs, flags = split_argv(argv)
    fmt = flags.pop("format", "text")
    check_choice(fmt, FORMATS, "--format")
    out = claim_output_dir(flags.pop("out", "comparison"), "comparison.json", create=False)  # before computing
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
