"""`freqdiff pareto DIR...`: a regularizer at several strengths against its strength-0 reference, at matched quality.

Each DIR is one strength (a `vary` recipe writes one per value, the first the reference). The comparison is
freqdiff.analysis.reading.comparison's: a window factor only where both generate and match in quality at
tau_gen (better quality counts as matched). The figure puts every strength at every n on two axes: its quality
at tau_gen (FD in the run's features, with its 2-sigma error) and its tau_mem factor (interval-censored AFT
model) and scale-free width factor (tau_mem/tau_gen, t-interval) over the reference, each interval named by
its method and seeds (the absolute width factor is in the table); filled markers are at matched quality. The
verdict is one sentence: wider, not wider, no width factor at matched quality (a seed without a width:
then the tau_mem factors speak), or no setting at matched quality.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure

from freqdiff.analysis.reading.comparison import INTERVALS, Comparison, Versus, compare, refinement_text
from freqdiff.analysis.reading.equivalence import COMPARABLE
from freqdiff.analysis.reading.factors import Factor
from freqdiff.analysis.reading.pooling import data_settings
from freqdiff.analysis.reading.verdicts import confidence_text
from freqdiff.analysis.reports.bands import bands_section
from freqdiff.analysis.reports.plots import fid_label
from freqdiff.analysis.reports.report import markdown_table
from freqdiff.core.config import split_argv
from freqdiff.core.figures import save_figure
from freqdiff.core.io import check_own_file, claim_output_dir, one_line_errors, write_csv, write_text
from freqdiff.core.registry import FreqdiffError

# width: the scale-free width (the factor on tau_mem/tau_gen); absolute_width: on tau_mem - tau_gen
HEADING = "# Strengths against the reference"  # pareto.md's first line: a pareto.md without it is never replaced
MARKERS = ("sweep.json", "pareto.csv")  # an --out holding one is freqdiff's (a sweep's, an earlier pareto's)
COLUMNS = ["variant", "n", "status", "fid", "fid_err", "reference_fid", "reference_fid_err", "tau_mem_factor",
           "tau_mem_low", "tau_mem_high", "tau_mem_p", "tau_mem_method", "width_factor", "width_low", "width_high",
           "width_p", "width_method", "absolute_width_factor", "absolute_width_low", "absolute_width_high",
           "absolute_width_method", "note"]


def _fid(versus: Versus, n: int) -> tuple[Any, Any]:
    """The recipe's and the reference's FD levels at tau_gen at n (None when not measured)."""
    match = next(m for m in versus.matches if m.n == n)
    measured = next((m for m in match.measures if m.measure == "fid"), None)
    return (measured.mine, measured.ref) if measured else (None, None)


def _bounds(f: Factor) -> tuple[float | None, float | None]:
    return f.interval if f.interval is not None else (None, None)


def rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One row per (strength, n): its match status, FD at tau_gen beside the reference's, and the factors
    (tau_mem, the scale-free width, the absolute width), each with its interval and method."""
    out = []
    for v in comparison.versus:
        for match, tau_mem, width, absolute in zip(v.matches, v.tau_mem, v.width, v.absolute_width):
            mine, ref = _fid(v, match.n)
            row = {"variant": v.recipe, "n": match.n, "status": match.status,
                   "fid": getattr(mine, "value", None), "fid_err": getattr(mine, "err", None),
                   "reference_fid": getattr(ref, "value", None), "reference_fid_err": getattr(ref, "err", None),
                   "note": match.note}
            for name, f in (("tau_mem", tau_mem), ("width", width), ("absolute_width", absolute)):
                row.update({f"{name}_factor": f.estimate, f"{name}_low": _bounds(f)[0], f"{name}_high": _bounds(f)[1],
                            f"{name}_method": f.method})
            row.update({"tau_mem_p": tau_mem.p, "width_p": width.p})
            out.append(row)
    return out


def _above_one(f: Factor) -> bool:
    """The factor's interval lies wholly above 1."""
    return f.interval is not None and (f.interval[0] or 0) > 1


def verdict(comparison: Comparison) -> str:
    """Wider at matched quality (some strength's width interval lies above 1), not wider, or no such setting."""
    matched = [(v, w) for v in comparison.versus for m, w in zip(v.matches, v.width)
               if m.status in COMPARABLE and w.estimate is not None]
    wider = [(v, w) for v, w in matched if _above_one(w)]
    reference = comparison.reference
    if wider:
        v, w = max(wider, key=lambda vw: vw[1].interval[0])
        return (f"Wider at matched quality: {v.recipe} widens the window over {reference}: tau_mem/tau_gen "
                f"(scale-free width) {w.bound + ' ' if w.bound else ''}{w.estimate:.3g} times the reference's "
                f"({confidence_text(w)}) at n = {w.n}.")
    if matched:
        best = max(matched, key=lambda vw: vw[1].estimate)
        return (f"Not wider at matched quality: no strength that matches {reference}'s quality widens the window "
                f"(tau_mem/tau_gen, the scale-free width) beyond its interval (largest: {best[0].recipe} at "
                f"n = {best[1].n}, {best[1].estimate:.3g}, {confidence_text(best[1])}).")
    compared = [(v, f) for v in comparison.versus for m, f in zip(v.matches, v.tau_mem) if m.status in COMPARABLE]
    if compared:
        return f"No width factor at matched quality: {_tau_mem_sentence(compared, reference)}"
    reasons = "; ".join(f"{v.recipe}: {v.verdict.split(': ', 1)[-1]}" for v in comparison.versus)
    return f"No setting at matched quality against {reference}: {reasons}"


def _tau_mem_sentence(compared: Sequence[tuple[Versus, Factor]], reference: str) -> str:
    """Where strengths match quality but have no width factor (a seed's tau_gen undetermined, ...): what their
    tau_mem factors say."""
    why = next((w.note for v, _ in compared for w in v.width if w.estimate is None and w.note), "")
    closed = (f"the strengths {', '.join(dict.fromkeys(v.recipe for v, _ in compared))} match {reference}'s quality, "
              f"but no width can be compared ({why.removeprefix('undefined: ') or 'no width factor'})")
    defined = [(v, f) for v, f in compared if f.estimate is not None]
    delayed = [(v, f) for v, f in defined if _above_one(f)]
    if delayed:
        v, f = max(delayed, key=lambda vf: vf[1].interval[0])
        return (f"{closed}; memorization is delayed: {v.recipe}'s tau_mem is {f.bound + ' ' if f.bound else ''}"
                f"{f.estimate:.3g} times {reference}'s ({confidence_text(f)}) at n = {f.n}.")
    if defined:
        v, f = max(defined, key=lambda vf: vf[1].estimate)
        return (f"{closed}; no strength delays tau_mem beyond its interval (largest: {v.recipe} at n = {f.n}, "
                f"{f.estimate:.3g}, {confidence_text(f)}).")
    return f"{closed}; no tau_mem factor either."


LABELS = {"tau_mem": "tau_mem", "width": "tau_mem/tau_gen (scale-free width)"}


def _draw(ax: Any, table: Sequence[dict[str, Any]], n: int, quantity: str) -> None:
    """One panel: the factor of `quantity` against the FD at tau_gen, one point per strength at this n."""
    for i, row in enumerate(r for r in table if r["n"] == n):
        if row["fid"] is None or row[f"{quantity}_factor"] is None:
            continue
        low, high = row[f"{quantity}_low"], row[f"{quantity}_high"]
        y = row[f"{quantity}_factor"]
        yerr = [[y - low if low is not None else 0], [high - y if high is not None else 0]]
        xerr = None if row["fid_err"] is None or math.isnan(row["fid_err"]) else row["fid_err"]
        matched = row["status"] in COMPARABLE
        ax.errorbar(row["fid"], y, xerr=xerr, yerr=yerr, fmt="o", color=f"C{i % 10}",
                    mfc=None if matched else "none", label=f"{row['variant']}{'' if matched else ' (' + row['status'] + ')'}")
    reference = next((r for r in table if r["n"] == n and r["reference_fid"] is not None), None)
    if reference is not None:
        ax.axvline(reference["reference_fid"], color="grey", lw=1, ls="--", label="reference FD at tau_gen")
    ax.axhline(1, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_title(f"n = {n}: {LABELS[quantity]} factor", fontsize=9)
    ax.set_ylabel(f"{LABELS[quantity]} / reference's (95% interval)", fontsize=8)


def pareto_figure(table: Sequence[dict[str, Any]], extractor: str) -> Figure:
    """tau_mem factor (top) and width factor (bottom) against the FD at tau_gen, one column per n."""
    ns = sorted({row["n"] for row in table})
    fig = Figure(figsize=(4.2 * max(len(ns), 1), 7), layout="constrained")
    axes = fig.subplots(2, max(len(ns), 1), squeeze=False)
    for column, n in enumerate(ns):
        for line, quantity in enumerate(("tau_mem", "width")):
            _draw(axes[line][column], table, n, quantity)
            axes[line][column].set_xlabel(f"{fid_label(extractor)} at tau_gen (lower is better)")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=6)
    fig.suptitle("filled: matched (or better) quality, a factor counts; open: not comparable", fontsize=9)
    return fig


def sweep_strengths(variants: Sequence[Path], out: Path, configs: Sequence[Mapping[str, Any]]) -> str:
    """A sweep's line on its variants (`configs`: its runs'): pareto.md's verdict, or, when they train on different
    data (a --vary over the dataset), why there is none: strengths are compared on one dataset only."""
    data = [data_settings(config) for config in configs]
    keys = sorted({k for d in data for k in d.keys() | data[0].keys() if d.get(k) != data[0].get(k)})
    if keys:
        return (f"strengths: no pareto.md: the variants train on different data (they differ in {', '.join(keys)}), "
                "which pareto does not compare; each variant's window stands on its own")
    return f"strengths (-> {out / 'pareto.md'}): {write_pareto(variants, out)}"


def identical_strengths(dirs: Sequence[Path]) -> list[str]:
    """Pairs of DIRs whose every shared run has a byte-identical metrics.csv: the varied setting changed nothing (a
    floor that never binds, say), so their verdicts are one and the same and neither is evidence for the setting."""
    runs = {Path(d): {p.parent.name: p.read_bytes() for p in sorted(Path(d).glob("*/metrics.csv"))} for d in dirs}
    same = []
    for a, b in itertools.combinations(runs, 2):
        shared = runs[a].keys() & runs[b].keys()
        if shared and all(runs[a][k] == runs[b][k] for k in shared):
            same.append(f"{a.name} and {b.name} have byte-identical metrics.csv in all {len(shared)} shared runs: "
                        "the varied setting changed nothing")
    return same


def write_pareto(dirs: Sequence[Path], out: Path, reference: str | None = None, claim: bool = False) -> str:
    """Compare every DIR to the reference, write pareto.md, pareto.png and pareto.csv under `out`; return the verdict.

    With `claim` (the command line), `out` must be freqdiff's (claim_output_dir: new, empty, a sweep's or an earlier
    pareto's, or holding only the DIRs); a sweep claims its own. A pareto.md freqdiff did not write is never replaced."""
    inside = {Path(d).name for d in dirs if Path(d).resolve().parent == Path(out).resolve()}
    if claim:  # checked before computing, claimed before writing
        claim_output_dir(out, MARKERS, expected=inside, create=False)
    comparison = compare(dirs, reference)
    if claim:
        claim_output_dir(out, MARKERS, expected=inside)
    check_own_file(out / "pareto.md", HEADING)
    table = rows(comparison)
    extractor = next((r.extractor for r in comparison.recipes if r.extractor), "")
    save_figure(pareto_figure(table, extractor), out / "pareto.png")
    write_csv(out / "pareto.csv", table, COLUMNS)
    sentence = " Caution: ".join([verdict(comparison), *identical_strengths(dirs)])
    shown = [[str(r["variant"]), str(r["n"]), str(r["status"]),
              "—" if r["fid"] is None else f"{r['fid']:.3g} ± {r['fid_err']:.2g}",
              _factor_cell(r, "tau_mem"), _factor_cell(r, "width"), _factor_cell(r, "absolute_width")] for r in table]
    text = "\n".join([HEADING, "", " ".join(filter(None, (
                          f"Reference: {comparison.reference}. FD in {extractor or 'unknown'} features at tau_gen, "
                          "mean ± 2 sigma over seeds.", refinement_text(comparison)))), "",
                      *markdown_table(("strength", "n", "quality match", "FD at tau_gen",
                                       "tau_mem factor [95% interval], permutation p",
                                       "scale-free width factor (tau_mem/tau_gen) [95% interval], permutation p",
                                       "absolute width factor (tau_mem - tau_gen) [95% interval]"), shown), "",
                      f"Intervals: {INTERVALS}", "",
                      "## Verdict", "", sentence, "", "![pareto](pareto.png)", "",
                      *(f"- {v.verdict}" for v in comparison.versus), "", *bands_section(comparison, out)])
    write_text(out / "pareto.md", text)
    return sentence


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _factor_cell(row: dict[str, Any], quantity: str) -> str:
    """'factor [low, high], p = 0.1' of one row of the table, '—' where there is none."""
    value = row[f"{quantity}_factor"]
    if value is None:
        return "—"
    p = row.get(f"{quantity}_p")
    return (f"{value:.3g} [{_fmt(row[f'{quantity}_low'])}, {_fmt(row[f'{quantity}_high'])}]"
            + ("" if p is None else f", p = {p:.3g}"))


def pareto_help() -> str:
    return ("usage: freqdiff pareto DIR... [--reference NAME] [--out DIR]\n"
            "  one DIR per strength of a regularizer; the reference (default: the first) is its strength 0\n"
            "  --reference NAME  the DIR (by name) the others are compared to\n"
            "  --out DIR         where pareto.md, pareto.png and pareto.csv go (default: the DIRs' parent); a new or\n"
            "                    empty directory, or one of freqdiff's: a user's folder or a symlink is refused")


@one_line_errors  # a read-only --out, a full disk: one line naming the path
def pareto_main(argv: list[str]) -> int:
    dirs, flags = split_argv(argv)
    unknown = sorted(set(flags) - {"reference", "out"})
    if unknown:
        raise FreqdiffError(f"pareto: unknown option --{unknown[0]}; options: --reference, --out")
    if not dirs:
        raise FreqdiffError("pareto: expected one DIR per strength")
    out = Path(flags.get("out", Path(dirs[0]).resolve().parent))
    print(write_pareto([Path(d) for d in dirs], out, flags.get("reference"), claim=True))
    return 0
