"""One run's outputs: its window read off metrics.csv, its figures, and RUN_DIR/window.json."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqdiff.analysis.reports.plots import plot_run
from freqdiff.analysis.reading.curves import Curves, load_run
from freqdiff.analysis.reading.window import Window, read_window
from freqdiff.io import write_json


@dataclass(frozen=True)
class RunAnalysis:
    """Everything `window_main` and the report need about one run directory."""

    run_dir: Path
    config: dict[str, Any]
    curves: Curves
    window: Window
    figures: list[Path]


def analyse_run(run_dir: Path, **options: Any) -> RunAnalysis:
    """Read a run's window, draw its figures, then write RUN_DIR/window.json (last, atomically)."""
    run_dir = Path(run_dir)
    config, curves = load_run(run_dir)
    window = read_window(curves, n=config.get("data", {}).get("n"), **options)
    figures = plot_run(run_dir, curves, window, k=config.get("eval", {}).get("k"))
    write_json(run_dir / "window.json", {**dataclasses.asdict(window),
                                         "figures": [str(p.relative_to(run_dir)) for p in figures]})
    return RunAnalysis(run_dir, config, curves, window, figures)


def window_main(run_dir: Path, **options: Any) -> Window:
    """`freqdiff window RUN_DIR`: read the window, write RUN_DIR/window.json and the run's figures."""
    return analyse_run(run_dir, **options).window
