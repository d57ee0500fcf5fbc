"""Where a study's wall time goes: a sweep under cProfile, its time split by stage.

Stages (cumulative time of the functions that do them; the rest is the sweep's own bookkeeping):
training (of which sample grids), sampling checkpoints for evaluation, feature extraction, the quality measures
on features (FD, KID, PRDC, spectral distance), the nearest-neighbour search of f_mem, the fixed-t losses, the
spectral diagnostics, reading the windows, and the reports.
Usage: python bench/profile_study.py [--recipe fourier_penalty] [--seeds 0] [any sweep flag ...]
"""
from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from freqdiff.commands.sweep import sweep_main

# stage -> (file suffix, function name) pairs whose cumulative times add up to it
STAGES = {
    "training": [("train/trainer.py", "run")],
    "  of which sample grids": [("train/trainer.py", "_save_grids")],
    "sampling for evaluation": [("metrics/evaluate.py", "sample_checkpoints")],
    "feature extraction": [("metrics/extractors.py", "__call__"), ("metrics/extractors.py", "probabilities"),
                           ("metrics/quality.py", "reference_features")],
    "quality measures on features": [("metrics/quality.py", "fold_quality")],
    "f_mem nearest-neighbour search": [("data/nearest.py", "two_nearest"), ("data/nearest.py", "build_index")],
    "fixed-t losses": [("metrics/losses.py", "fixed_t_loss")],
    "spectral diagnostics": [("metrics/evaluate.py", "_save_spectral")],
    "reading windows": [("analysis/reports/run.py", "window_main")],
    "reports": [("analysis/reports/report.py", "write_report"), ("analysis/reports/pareto.py", "write_pareto")],
}


def stage_times(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each stage's functions (a function that calls itself counts once)."""
    totals = dict.fromkeys(STAGES, 0.0)
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for stage, functions in STAGES.items():
            if any(path.endswith(suffix) and name == function for suffix, function in functions):
                totals[stage] += cumulative
    return totals


def main(argv: list[str]) -> None:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return
    flags = argv or ["--recipe", "fourier_penalty", "--seeds", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.runcall(sweep_main, [*flags, "--workers", "1", "--out", str(Path(tmp) / "study")])
        wall = time.perf_counter() - began
    totals = stage_times(pstats.Stats(profiler))
    print(f"sweep {' '.join(flags)}: {wall:.1f} s wall in one process (cProfile adds overhead to every call)")
    print(f"{'stage':<34}{'seconds':>9}{'share':>8}")
    for stage, seconds in totals.items():
        print(f"{stage:<34}{seconds:>9.1f}{seconds / wall:>8.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
