"""`freqdiff eval RUN`: a trained run's checkpoints (metrics.evaluate), or a baseline run's parameter values
(commands.baseline); the run's config.json says which."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from freqdiff.analysis.reading.baselines import is_baseline_run
from freqdiff.commands.baseline import evaluate_baseline_run
from freqdiff.metrics.evaluate import evaluate_run


def evaluate(run_dir: Path, overrides: dict[str, str] | None = None, progress: bool = True,
             cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Measure what a run's metrics.csv does not hold yet: checkpoints, or values of a closed-form model's axis."""
    if is_baseline_run(run_dir):
        return evaluate_baseline_run(run_dir, overrides, progress, cache_dir)
    return evaluate_run(run_dir, overrides=overrides, progress=progress, cache_dir=cache_dir)
