"""The projection-baselines study: where does a trained U-Net sit between pure copy and smoothed copy at each tau?

For each n, on one dataset, training subset and test set, with one sampler and one set of eval settings:
1. the `projection_baselines` recipe (the baseline U-Net recipe), trained, evaluated and windowed as `freqdiff sweep`
   does: OUT/trained/n<n>-seed<seed>/;
2. baseline runs (freqdiff.commands.baseline) on the same settings: empirical (the memorizer), smoothed_empirical over
   its sigma (the copy-to-smooth axis), els over its patch size, and nn_projection of the trained run's last
   checkpoint over its strength (strength 0 is that checkpoint exactly: the same row as its last one):
   OUT/baselines/n<n>/<model>/;
3. OUT/report.md: every run (windows of the trained runs, every baseline's measures over its parameter) and each
   trained checkpoint placed on the copy-to-smooth axis (reading.baselines: by f_mem and by spectral profile).
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

from freqdiff.analysis.reading.baselines import load_baseline
from freqdiff.analysis.reports.baselines import copy_to_smooth_section
from freqdiff.analysis.reports.report import write_report
from freqdiff.commands.baseline import Axis, run_baseline
from freqdiff.commands.recipes import RECIPES
from freqdiff.commands.sweep import sweep_main
from freqdiff.core.config import RunConfig, apply_flags, split_argv
from freqdiff.core.distributed import process_state
from freqdiff.core.io import write_text
from freqdiff.core.registry import FreqdiffError, build_params, option_lines, param

RECIPE = "projection_baselines"


@dataclass(frozen=True)
class StudyOptions:
    """The study's own options; every other flag is a run flag given to the trained and the baseline runs alike."""

    n: tuple[int, ...] = ()  # empty: the recipe's grid
    seed: int = param(0, ge=0)  # the trained run's seed
    out: str = "results/projection_baselines"
    # smoothed_empirical, the copy-to-smooth axis: f_mem falls from 1 to ~0 by 1.5 on the digits; 2 and 3 let the
    # spectral match place checkpoints that denoise farther from the memorizer than any copier
    sigmas: tuple[float, ...] = param((0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0), ge=0)
    patches: tuple[int, ...] = param((3, 5, 7, 15), ge=1)  # els patch sizes (15 covers an 8x8 image: empirical)
    strengths: tuple[float, ...] = param((0.0, 0.1, 0.3, 1.0), ge=0, le=1)  # nn_projection of the last checkpoint
    steps_per_n: int | None = param(None, ge=1)  # None: the recipe's


def _values(values: tuple) -> str:
    return ",".join(str(v) for v in values)


def baseline_axes(options: StudyOptions, trained: Path) -> dict[str, tuple[dict[str, str], Axis]]:
    """{model: (its fixed flags, its axis)} of the baseline runs beside one trained run."""
    return {"empirical": ({}, Axis(None, ("empirical",))),
            "smoothed_empirical": ({}, Axis("sigma", tuple(float(s) for s in options.sigmas))),
            "els": ({}, Axis("patch", tuple((p,) for p in options.patches))),
            "nn_projection": ({"model.run": str(trained)}, Axis("strength", tuple(options.strengths)))}


def run_study(options: StudyOptions, run_flags: dict[str, str]) -> Path:
    """Train, evaluate and window the recipe's runs, measure the baselines beside them, write OUT/report.md."""
    out = Path(options.out)
    recipe = RECIPES.build(RECIPE)
    ns = options.n or recipe.n_grid
    sweep = ["--recipe", RECIPE, "--n", _values(ns), "--seeds", str(options.seed), "--out", str(out / "trained"),
             "--report", "false", *(["--steps_per_n", str(options.steps_per_n)] if options.steps_per_n else []),
             *(token for key, value in run_flags.items() for token in (f"--{key}", value))]
    sweep_main(sweep)
    if not process_state().is_main_process:  # the baselines are measured once, after every rank trained
        return out / "report.md"
    sections = []
    for n in ns:
        trained = out / "trained" / f"n{n:05d}-seed{options.seed}"
        flags = {k: v for k, v in {**recipe.flags, **run_flags}.items() if k != "model" and not k.startswith("model.")}
        flags["n"] = str(n)
        for model, (fixed, axis) in baseline_axes(options, trained).items():
            cfg = apply_flags(RunConfig(), {**flags, "model": model, **fixed})
            run_baseline(cfg, axis, out / "baselines" / f"n{n:05d}" / model)
        sections.append((trained, load_baseline(out / "baselines" / f"n{n:05d}" / "smoothed_empirical")))
    report = write_report(out)
    placed = [line for trained, smoothed in sections for line in copy_to_smooth_section([trained], smoothed, out)]
    write_text(report, report.read_text() + "\n" + "\n".join(placed) + "\n")
    return report


def study_help() -> str:
    """recipes/projection_baselines.py --help."""
    return "\n".join([__doc__.strip(), "", "usage: python recipes/projection_baselines.py [study options] [run options]",
                      "study options:",
                      *option_lines(StudyOptions),
                      "run options: as `freqdiff train --help` (given to the trained and the baseline runs alike)"])


def study_main(argv: list[str]) -> int:
    """Parse the study's options and run flags, then run it; prints the report's path."""
    if argv[:1] in (["-h"], ["--help"]):
        print(study_help())
        return 0
    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"{RECIPE}: unexpected argument {shlex.quote(positional[0])}; options are --name value")
    names = {f.name for f in dataclasses.fields(StudyOptions)}
    options = build_params(StudyOptions, {k: v for k, v in flags.items() if k in names}, RECIPE)
    print(f"report: {run_study(options, {k: v for k, v in flags.items() if k not in names})}")
    return 0
