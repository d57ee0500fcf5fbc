"""`freqdiff calibrate`: every measure on image sets whose answer is known, and the quality gate derived from them.

Reference sets, each n_samples images of the default data setup (digits 8x8, the last 256 held out, the
default n training images):
- image-like: held-out digits (neither trained on nor in the reference), exact copies of the training images,
  noisy copies (the exact memorizer with its high-frequency eps shrunk by 1/(1+w), the optimum of the Fourier
  penalty at weight w, sampled by the project's DDIM), blurred copies (a Gaussian blur of half a pixel);
- noise-like: uniform noise, binary noise, Gaussian blobs with the training pool's mean and covariance;
- diagnostic (shown, not used for the gate): copies through the spectral_filter recipe's hard low-pass at
  0.25 cycles/pixel, which leaves blobs a digit classifier no longer recognizes;
- runs: the samples of given run directories (their last checkpoint, or RUN:STEP).
The gate is derived by code from the image-like and noise-like rows (derive_gate) and written to a gates file: --gates
PATH, else OUT/gates.json (the package's gates with this extractor's entry updated). freqdiff/metrics/gates.json, where
gate_for reads it, changes only when named: --gates freqdiff/metrics/gates.json. Beside the gate, under the same
extractor, go the margins of compare's quality equivalence test (derive_margins; reading.equivalence reads them).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from freqdiff.analysis.reading.equivalence import LOWER_IS_BETTER, MARGINS_KEY, MEASURES, Margins, margins_entry
from freqdiff.core.checkpoint import list_checkpoints, load_run_config, load_weights
from freqdiff.core.config import EvalConfig
from freqdiff.core.figures import save_figure
from freqdiff.core.io import (check_own_file, check_writable, claim_output_dir, one_line_errors, read_json, write_csv,
                              write_json, write_text)
from freqdiff.core.registry import FreqdiffError
from freqdiff.data import Split
from freqdiff.metrics.extractors import Extractor, get_extractor
from freqdiff.metrics.known_sets import REFERENCES, Setup, make_setup
from freqdiff.metrics.quality import GATES, HIGHER_IS_BETTER, MEASURED, QUALITY, Gate, measure_samples
from freqdiff.pipeline.build import build_pipeline, set_cpu_threads
from freqdiff.samplers import draw_samples

DEFAULT_OUT = Path("results/calibration")
FIDELITY = ("recognizable", "precision", "density")  # per-sample measures: a model copying few images still passes
COLUMNS = ["reference", "kind", *MEASURED, "extractor", "n_samples", "folds", "generates"]
PERFECT = "held-out digits"  # the image-like set a perfectly generalizing model draws
MARGIN_FRACTION = 1 / 3  # of the smallest degradation the table resolves: see derive_margins


def run_spec(spec: str) -> tuple[Path, int | None]:
    """RUN or RUN:STEP as (run directory, step or None); a STEP that is not a whole number is one line."""
    if ":" not in spec or Path(spec).is_dir():
        return Path(spec), None
    path, _, step_text = spec.rpartition(":")
    if not step_text.isdigit():
        raise FreqdiffError(f"calibrate --runs {spec}: the STEP after ':' must be a whole number (RUN or RUN:STEP)")
    return Path(path), int(step_text)


def run_samples(spec: str, setup: Setup) -> tuple[str, Split, Tensor]:
    """(label, split, samples) of a run directory's checkpoint: RUN (its last) or RUN:STEP."""
    run_dir, step = run_spec(spec)
    cfg = load_run_config(run_dir)
    steps = list_checkpoints(run_dir)
    if not steps:
        raise FreqdiffError(f"calibrate --runs: {run_dir} has no checkpoints")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise FreqdiffError(f"calibrate --runs: {run_dir} has no checkpoint {step}; steps: {steps}")
    if (cfg.dataset.name, cfg.data.test_size) != (setup.cfg.dataset.name, setup.cfg.data.test_size):
        raise FreqdiffError(f"calibrate --runs: {run_dir} uses {cfg.dataset.name} with test_size {cfg.data.test_size}; "
                            f"the calibration uses {setup.cfg.dataset.name} with {setup.cfg.data.test_size}")
    pipe = build_pipeline(cfg)
    load_weights(pipe.model, run_dir, step, cfg.eval.use_ema)
    samples = draw_samples(pipe.sampler, pipe.model, pipe.process, setup.n_samples, pipe.split.image_shape,
                           cfg.eval.sample_seed)
    label = f"{'/'.join(run_dir.parts[-2:])}@{step} ({cfg.process.name}, {cfg.regularizer.name}, n={cfg.data.n})"
    return label, pipe.split, samples


def calibration_rows(setup: Setup, extractor: Extractor, runs: Sequence[str] = (),
                     cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per reference set and run: every measure with its error."""
    rows = []
    for name, kind, build in REFERENCES:
        rows.append({"reference": name, "kind": kind,
                     **measure_samples(build(setup), setup.split, setup.cfg.eval, extractor, cache_dir)})
    for spec in runs:
        label, split, samples = run_samples(spec, setup)
        rows.append({"reference": label, "kind": "run", **measure_samples(samples, split, setup.cfg.eval, extractor, cache_dir)})
    return rows


def separation(rows: Sequence[dict[str, Any]], measure: str) -> dict[str, Any]:
    """The lowest image-like (value - err) and the highest noise-like (value + err) of a higher-is-better measure."""
    def bound(kind: str, sign: int) -> tuple[float, str]:
        values = [(r[measure] + sign * r[f"{measure}_err"], r["reference"]) for r in rows
                  if r["kind"] == kind and r[measure] is not None]
        return (min if sign < 0 else max)(values) if values else (float("nan"), "")

    (image, image_ref), (noise, noise_ref) = bound("image-like", -1), bound("noise-like", +1)
    margin = (image - noise) / image if image > 0 else float("-inf")
    return {"measure": measure, "image_low": image, "image_ref": image_ref, "noise_high": noise,
            "noise_ref": noise_ref, "relative_margin": margin}


def derive_gate(rows: Sequence[dict[str, Any]], extractor: str, table: str) -> tuple[Gate, list[dict[str, Any]]]:
    """The fidelity measure that best separates image-like from noise-like sets, and the midpoint threshold.

    For each measure in FIDELITY: image_low = min over image-like sets of (value - err), noise_high = max over
    noise-like sets of (value + err); the measure with the largest relative margin (image_low - noise_high) /
    image_low wins, and the threshold is their midpoint. Then value - err >= threshold holds for every
    image-like set and fails for every noise-like one, with room on both sides.
    """
    candidates = [separation(rows, m) for m in FIDELITY]
    usable = [c for c in candidates if np.isfinite(c["relative_margin"]) and c["image_low"] > c["noise_high"]]
    if not usable:
        raise FreqdiffError(f"calibrate: no measure of {', '.join(FIDELITY)} separates image-like from noise-like sets "
                            f"in '{extractor}' features; no gate")
    best = max(usable, key=lambda c: c["relative_margin"])
    threshold = (best["image_low"] + best["noise_high"]) / 2
    source = (f"{table}: midpoint of the lowest image-like value-err ({best['image_low']:.4f}, {best['image_ref']}) "
              f"and the highest noise-like value+err ({best['noise_high']:.4f}, {best['noise_ref']}) of "
              f"'{best['measure']}', the fidelity measure ({', '.join(FIDELITY)}) with the widest relative margin")
    return Gate(best["measure"], round(threshold, 6), extractor, source), candidates


def read_gates(path: Path) -> dict[str, Any]:
    """The gates file at `path` (a new one starts from the package's), refused in one line when it is a folder, a
    link, a device, in a missing folder, or a file that is not a freqdiff gates file: never overwritten then."""
    try:
        check_writable(path)
    except FreqdiffError as err:
        raise FreqdiffError(f"--gates {err}") from None
    if not path.parent.is_dir():
        raise FreqdiffError(f"--gates {path}: no such folder {path.parent}")
    if not path.exists():
        return read_json(GATES) if GATES.is_file() else {}
    try:
        gates = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise FreqdiffError(f"--gates {path}: not a freqdiff gates file ({type(err).__name__}); nothing was "
                            "written") from None
    if not isinstance(gates, dict) or not all(isinstance(v, dict) for v in gates.values()):
        raise FreqdiffError(f"--gates {path}: not a freqdiff gates file (expected extractor -> gate entries); "
                            "nothing was written")
    return gates


def install_gate(gate: Gate, path: Path) -> None:
    """Write the gate into the gates file, keyed by its extractor, keeping the others."""
    gates = read_gates(path)
    gates[gate.extractor] = {"measure": gate.measure, "threshold": gate.threshold, "source": gate.source}
    write_json(path, dict(sorted(gates.items())))


def _number(value: Any) -> float:
    """A table cell as a float (a csv string or a number; empty or None: nan)."""
    return math.nan if value is None or value == "" else float(value)


def degradation(rows: Sequence[dict[str, Any]], measure: str) -> dict[str, Any]:
    """The image-like set closest to held-out digits among those worse on `measure` beyond both 2-sigma errors.

    Worse beyond the errors: (held - set) * direction > held_err + set_err, with direction -1 for a
    lower-is-better measure (the FD). The gap is |held - set|; None when no set is resolved as worse.
    """
    held = next((r for r in rows if r["reference"] == PERFECT and r["kind"] == "image-like"), None)
    if held is None:
        return {"measure": measure, "held": math.nan, "held_err": math.nan, "ref": "", "value": math.nan,
                "err": math.nan, "gap": None}
    sign = -1 if measure in LOWER_IS_BETTER else 1
    value, err = _number(held[measure]), _number(held[f"{measure}_err"])
    worse = [(sign * (value - v), r["reference"], v, e) for r in rows if r["kind"] == "image-like" and r is not held
             for v, e in [(_number(r[measure]), _number(r[f"{measure}_err"]))]
             if math.isfinite(v) and math.isfinite(e) and sign * (value - v) > err + e]
    gap, ref, v, e = min(worse) if worse and math.isfinite(value) and math.isfinite(err) else (None, "", math.nan,
                                                                                                  math.nan)
    return {"measure": measure, "held": value, "held_err": err, "ref": ref, "value": v, "err": e, "gap": gap}


def derive_margins(rows: Sequence[dict[str, Any]], extractor: str, table: str) -> tuple[Margins | None,
                                                                                       list[dict[str, Any]]]:
    """The equivalence margin of each of the FD, recognizable, recall and coverage, from the calibration rows.

    Per measure: the smallest degradation the table resolves, the gap between held-out digits (what a perfect
    generalizer draws) and the closest image-like set worse than them beyond both 2-sigma errors (exact, noisy
    or blurred copies; a set not resolved as worse, e.g. exact copies on recognizable, counts for nothing);
    the margin is MARGIN_FRACTION (a third) of that gap: two recipes matched within it differ by at most a
    third of the smallest degradation the measure resolves. A third, not a half (the gate's midpoint rule):
    held-out digits missing 2 of the 10 classes lose 0.13-0.22 recall and 0.09-0.20 coverage (each of the 45
    class pairs, 256 images, mean of 8 draws), at least 0.42 of the recall or the coverage gap for every pair
    (classes 3 and 6); a half would call 9 of the 45 pairs matched once the sampling errors are small, a third
    none. None when some measure has no resolved degradation: then compare leaves quality unchecked.
    """
    found = [degradation(rows, m) for m in MEASURES]
    for d in found:
        d["margin"] = None if d["gap"] is None else round(MARGIN_FRACTION * d["gap"], 6)
    if any(d["margin"] is None for d in found):
        return None, found
    parts = ", ".join(f"{d['measure']} {d['margin']:.4g} ({d['ref']}, gap {d['gap']:.4g})" for d in found)
    source = (f"{table}: {MARGIN_FRACTION:.3g} x the gap between held-out digits and the closest image-like set "
              f"worse than them beyond both 2-sigma errors, per measure: {parts}")
    return Margins(extractor, {d["measure"]: d["margin"] for d in found}, source), found


def install_margins(extractor: str, margins: Margins | None, path: Path) -> None:
    """Write an extractor's margins beside the gates (under MARGINS_KEY), or remove stale ones when None."""
    gates = read_gates(path)
    entries = dict(gates.get(MARGINS_KEY, {}))
    if margins is None:
        entries.pop(extractor, None)
    else:
        entries[extractor] = margins_entry(margins)
    if entries:
        gates[MARGINS_KEY] = dict(sorted(entries.items()))
    else:
        gates.pop(MARGINS_KEY, None)
    write_json(path, dict(sorted(gates.items())))


def cell(row: dict[str, Any], name: str) -> str:
    """'value +- err' for a quality measure, 'value [low, high]' for a copy measure."""
    if name in QUALITY:
        value, err = row[name], row[f"{name}_err"]
        return "n/a" if value is None else f"{value:.3g} ± {err:.2g}"
    return f"{row[name]:.2f} [{row[f'{name}_low']:.2f}, {row[f'{name}_high']:.2f}]"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    names = [*QUALITY, "fmem", "fmem_robust"]
    lines = ["| set | kind | " + " | ".join(names) + " | generates |", "|---" * (len(names) + 3) + "|"]
    lines += [f"| {r['reference']} | {r['kind']} | " + " | ".join(cell(r, n) for n in names) + f" | {r['generates']} |"
              for r in rows]
    return "\n".join(lines)


def checks(rows: Sequence[dict[str, Any]], gate: Gate) -> list[str]:
    """The orderings the table must show, each stated with its numbers and whether it holds."""
    by = {r["reference"]: r for r in rows}
    noise = max((r for r in rows if r["kind"] == "noise-like"), key=lambda r: r[gate.measure])
    copies = by["exact copies"]
    out = [f"- noise far below copies on the gate measure '{gate.measure}': highest noise-like {noise['reference']} "
           f"{cell(noise, gate.measure)} vs exact copies {cell(copies, gate.measure)}: "
           f"{'holds' if noise[gate.measure] + noise[gate.measure + '_err'] < copies[gate.measure] / 2 else 'FAILS'}"]
    for m in ("recall", "coverage"):
        held = by["held-out digits"]
        below = copies[m] + copies[f"{m}_err"] < held[m] - held[f"{m}_err"]
        out.append(f"- exact copies below held-out digits on {m}: {cell(copies, m)} vs {cell(held, m)}: "
                   f"{'holds (beyond the errors)' if below else ('holds (within the errors)' if copies[m] < held[m] else 'FAILS')}")
    return out


def plot(rows: Sequence[dict[str, Any]], gate: Gate, path: Path) -> None:
    """One panel per quality measure: each set's value +- err, the gate's threshold on its measure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 7))
    axes = fig.subplots(2, 4).ravel()
    colors = {"image-like": "C2", "noise-like": "C3", "diagnostic": "C7", "run": "C0"}
    for ax, name in zip(axes, QUALITY):
        shown = [(i, r) for i, r in enumerate(rows) if r[name] is not None]
        for i, r in shown:
            ax.errorbar(r[name], i, xerr=r[f"{name}_err"], fmt="o", color=colors[r["kind"]])
        if name == gate.measure:
            ax.axvline(gate.threshold, color="k", ls="--", lw=1, label=f"gate {gate.threshold:.3f}")
            ax.legend(fontsize=7)
        ax.set_yticks(range(len(rows)), [r["reference"] for r in rows], fontsize=7)
        ax.set_title(f"{name} ({'higher' if name in HIGHER_IS_BETTER else 'lower'} is better)", fontsize=9)
        ax.invert_yaxis()
    fig.suptitle(f"calibration in '{rows[0]['extractor']}' features: mean ± 2 sigma over "
                 f"{rows[0]['folds']} disjoint folds (green: image-like, red: noise-like, grey: diagnostic, blue: runs)")
    fig.tight_layout()
    save_figure(fig, path)


def report(rows: Sequence[dict[str, Any]], gate: Gate, candidates: Sequence[dict[str, Any]], setup: Setup,
           margins: Margins | None = None, found: Sequence[dict[str, Any]] = ()) -> str:
    """calibration.md: the setup, the table, the gate and how it was derived, the checks, the margins."""
    e, d = setup.cfg.eval, setup.cfg.data
    lines = [
        "# Calibration of the quality and copy measures", "",
        f"Made by `freqdiff calibrate` (freqdiff/commands/calibrate.py). Data: {setup.cfg.dataset.name}, "
        f"the last {d.test_size} images held out (the reference of every quality measure), n = {d.n} training "
        f"images (data_seed {d.data_seed}); {e.n_samples} images per set; quality measures in '{rows[0]['extractor']}' "
        f"features, mean ± 2 sigma over {e.folds} disjoint (sample fold, reference fold) pairs; f_mem and "
        f"f_mem_robust with their 95% bootstrap intervals.", "",
        markdown_table(rows), "",
        *[f"- **{name}** ({kind}): {build.__doc__}" for name, kind, build in REFERENCES],
        *([f"- **runs**: {e.n_samples} samples of each run's checkpoint by its own sampler, measured against its own "
           "training set (f_mem) and the same held-out reference."] if any(r["kind"] == "run" for r in rows) else []), "",
        "## The quality gate", "",
        f"A checkpoint generates images when `{gate.measure} - {gate.measure}_err >= {gate.threshold:.4f}` "
        f"('{gate.extractor}'). Derivation: {gate.source}.", "",
        "| measure | lowest image-like value-err | highest noise-like value+err | relative margin |", "|---|---|---|---|",
        *[f"| {c['measure']} | {c['image_low']:.3f} ({c['image_ref']}) | {c['noise_high']:.3f} ({c['noise_ref']}) | "
          f"{c['relative_margin']:.3f} |" for c in candidates], "",
        "## Checks", "", *checks(rows, gate), "",
        *margins_section(margins, found),
    ]
    return "\n".join(lines)


def margins_section(margins: Margins | None, found: Sequence[dict[str, Any]]) -> list[str]:
    """calibration.md: the margins of compare's quality equivalence test and how each was derived."""
    def cell(v: float, e: float) -> str:
        return "—" if not math.isfinite(v) else f"{v:.3g} ± {e:.2g}"

    head = (f"Margins of `freqdiff compare`'s quality equivalence test (90% interval of recipe - reference inside "
            f"±margin). Derivation: {margins.source}." if margins is not None else
            "No equivalence margins: some measure has no image-like set resolved as worse than held-out digits; "
            "`freqdiff compare` leaves quality unchecked in these features.")
    return ["## Equivalence margins", "", head, "",
            "| measure | held-out digits | closest set worse beyond the errors | gap | margin |",
            "|---|---|---|---|---|",
            *[f"| {d['measure']} | {cell(d['held'], d['held_err'])} | "
              f"{d['ref'] + ' ' + cell(d['value'], d['err']) if d['ref'] else 'none'} | "
              f"{'—' if d['gap'] is None else format(d['gap'], '.3g')} | "
              f"{'—' if d['margin'] is None else format(d['margin'], '.3g')} |" for d in found], ""]


def calibrate(out: Path = DEFAULT_OUT, runs: Sequence[str] = (), n: int = 16, n_samples: int = 256, folds: int = 4,
              seed: int = 0, extractor: str = "auto", gates: Path | None = None,
              cache_dir: str | Path | None = None) -> Gate:
    """Measure every reference set (and run), derive the gate and the equivalence margins, write the table,
    report, figure and gates file (`gates`, default OUT/gates.json). --runs, OUT (claim_output_dir) and the gates
    file are checked before anything is measured or written."""
    for spec in runs:
        run_spec(spec)
    if gates is not None:  # a gates file of the wrong kind: refused before OUT is made
        read_gates(Path(gates))
    claim_output_dir(out, ("gate.json", "calibration.csv"))
    gates = Path(gates) if gates is not None else out / "gates.json"
    read_gates(gates)
    set_cpu_threads(1)
    setup = make_setup(n, n_samples, folds, seed)
    feature_space = get_extractor(extractor, image_shape=setup.split.image_shape)
    rows = calibration_rows(setup, feature_space, runs, cache_dir)
    gate, candidates = derive_gate(rows, feature_space.name, f"{out / 'calibration.csv'}")
    margins, found = derive_margins(rows, feature_space.name, f"{out / 'calibration.csv'}")
    for row in rows:
        row["generates"] = "yes" if gate.passes(row[gate.measure], row[f"{gate.measure}_err"]) else "no"
    write_csv(out / "calibration.csv", rows, COLUMNS)
    write_json(out / "gate.json", asdict(gate))
    text = report(rows, gate, candidates, setup, margins, found)
    write_text(check_own_file(out / "calibration.md", text.split("\n", 1)[0]), text)
    plot(rows, gate, out / "calibration.png")
    install_gate(gate, gates)
    install_margins(feature_space.name, margins, gates)
    return gate


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one-line FreqdiffErrors, as every freqdiff command's."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise FreqdiffError(f"calibrate: {message}")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="freqdiff calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder, new or freqdiff's own: a user's "
                   "folder or a symlink is refused (default %(default)s)")
    p.add_argument("--runs", nargs="*", default=[], metavar="RUN[:STEP]",
                   help="run directories whose samples join the table (last checkpoint, or STEP)")
    p.add_argument("--n", type=int, default=16, help="training images of the copies (default %(default)s)")
    p.add_argument("--n_samples", type=int, default=256, help="images per set (default %(default)s)")
    p.add_argument("--folds", type=int, default=EvalConfig.folds, help="disjoint folds for the errors (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference sets (default %(default)s)")
    p.add_argument("--extractor", default="auto", help="feature space (default %(default)s: the data's classifier)")
    p.add_argument("--gates", type=Path, default=None, help="gates file to write the gate and margins into (default: "
                   "OUT/gates.json; the package's freqdiff/metrics/gates.json, which freqdiff reads, changes only "
                   "when named here)")
    return p


def options_help() -> str:
    return parser().format_help()


@one_line_errors  # a read-only --out, a full disk: one line naming the path
def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    gate = calibrate(args.out, args.runs, args.n, args.n_samples, args.folds, args.seed, args.extractor, args.gates)
    gates = args.gates or args.out / "gates.json"
    print(f"gate ({gate.extractor}): {gate.measure} - err >= {gate.threshold:.4f}; wrote {args.out}/calibration.md "
          f"and the gates file {gates}" + ("" if args.gates else f" (copy it to {GATES} to make freqdiff use it)"))
    return 0
