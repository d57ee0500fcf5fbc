"""One run's outputs: its window read off metrics.csv, its figures, and RUN_DIR/window.json."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from freqdiff.analysis.reading.curves import REFINED, Curves, load_run
from freqdiff.analysis.reading.onsets import WindowRule
from freqdiff.analysis.reading.window import Window, read_window
from freqdiff.analysis.reports.plots import plot_run
from freqdiff.core.checkpoint import check_run_layout
from freqdiff.core.config import split_argv
from freqdiff.core.io import RunLock, one_line_errors, read_json, write_json
from freqdiff.core.registry import FreqdiffError, option_lines


@dataclass(frozen=True)
class RunAnalysis:
    """Everything `window_main` and the report need about one run directory."""

    run_dir: Path
    config: dict[str, Any]
    curves: Curves
    window: Window
    figures: list[Path]


def analyse_run(run_dir: Path, redraw: bool = True, **options: Any) -> RunAnalysis:
    """Read a run's window, draw its figures, then write RUN_DIR/window.json (last, atomically).

    window.json holds every field of the Window: both ends with their bounds and how they were read, the
    quality gate (measure, threshold, extractor, source) under generation.gate, the verdict and the flags.
    With redraw False, figures that window.json lists and that are newer than every metrics file are kept
    (a sweep reports right after reading each window; drawing is most of a report's time). A run whose figures/,
    window.json or lock is a link, or a folder of the wrong kind, is refused before anything is written.
    """
    run_dir = Path(run_dir)
    check_run_layout(run_dir)
    config, curves = load_run(run_dir)
    window = read_window(curves, n=config.get("data", {}).get("n"), **options)
    drawn = [] if redraw else current_figures(run_dir)
    if drawn:
        return RunAnalysis(run_dir, config, curves, window, drawn)
    with RunLock(run_dir):  # it writes into the run: one writer at a time, as train and eval
        figures = plot_run(run_dir, curves, window, k=config.get("eval", {}).get("k"))
        write_json(run_dir / "window.json", {**dataclasses.asdict(window),
                                             "figures": [str(p.relative_to(run_dir)) for p in figures]})
    return RunAnalysis(run_dir, config, curves, window, figures)


def current_figures(run_dir: Path) -> list[Path]:
    """The figures window.json lists, if all exist and are newer than every metrics.csv of the run; else []."""
    record = run_dir / "window.json"
    if not record.exists():
        return []
    figures = [run_dir / name for name in read_json(record).get("figures", [])]
    sources = [p for p in (run_dir / "metrics.csv", run_dir / REFINED / "metrics.csv") if p.exists()]
    newest = max(p.stat().st_mtime for p in sources) if sources else 0.0
    fresh = figures and all(p.exists() and p.stat().st_mtime >= newest for p in figures)
    return figures if fresh else []


@one_line_errors  # a read-only run: one line naming the path
def window_main(run_dir: Path, **options: Any) -> Window:
    """`freqdiff window RUN_DIR`: read the window, write RUN_DIR/window.json and the run's figures."""
    return analyse_run(run_dir, **options).window


def window_options_help() -> str:
    """The detection rules' options, each with its type, default and valid range (window and compare)."""
    return "\n".join(["window options:", *option_lines(WindowRule),
                      "tau_gen: where the fitted FD comes within tol x its 2-sigma error of its plateau (95% bootstrap);",
                      "tau_mem: where the expected copy fraction reaches threshold (95% profile likelihood), for the",
                      "paper's f_mem and the copy measure robust to residual noise; the calibrated quality gate",
                      "(confirm = following checkpoints that must also pass) decides whether the run generates."])


def directory_report_main(name: str, usage: str, write: Callable[..., Path], argv: Sequence[str] | None,
                          pooled: bool = False) -> int:
    """The command line of a report over run directories (`python -m freqdiff.analysis.reports.NAME`): --help,
    then write(DIR or [DIR, ...] when pooled, out, **window options), printing the path it wrote; errors are one
    line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"{usage}\n{window_options_help()}")
        return 0
    try:
        positional, flags = split_argv(argv)
        if not positional or (not pooled and len(positional) != 1):
            raise FreqdiffError(f"{name}: expected {'one or more directories' if pooled else 'one directory'}, "
                                f"got {len(positional)}")
        out = flags.pop("out", None)
        roots = [Path(p) for p in positional]
        print(write(roots if pooled else roots[0], Path(out) if out else None, **flags))
    except FreqdiffError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    return 0


def window_help() -> str:
    """`freqdiff window --help`."""
    return "usage: freqdiff window RUN_DIR [window options]   -> RUN_DIR/window.json, RUN_DIR/figures/\n" + \
        window_options_help()
