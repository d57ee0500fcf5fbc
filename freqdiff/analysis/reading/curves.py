"""One run's measured curves: metrics.csv (and config.json) read into arrays sorted by step.

The columns are those evaluate.py writes (METRICS_COLUMNS). A table without the columns the window
cannot do without (REQUIRED_COLUMNS) is refused in one line naming them; a table from before the
quality measures lacks the others, which then read as not computed (nan) and are listed in
`Curves.absent`. An empty cell means the value was not computed (nan), never zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from freqdiff.core.io import read_csv, read_json
from freqdiff.core.registry import FreqdiffError

METRICS_COLUMNS = (
    "step", "fid", "fid_err", "kid", "kid_err",
    "precision", "precision_err", "recall", "recall_err", "density", "density_err", "coverage", "coverage_err",
    "recognizable", "recognizable_err", "spectral", "spectral_err",
    "fmem", "fmem_low", "fmem_high", "fmem_robust", "fmem_robust_low", "fmem_robust_high",
    "loss_train", "loss_test", "extractor", "n_samples", "folds",
)
REFINED = "refine"  # RUN/refine/metrics.csv: the curve re-measured (and densified) by `freqdiff refine`
AXIS = "axis"  # the config.json key of a baseline run (a closed-form model measured over its own parameter)
REQUIRED_COLUMNS = ("step", "fid", "fmem", "fmem_low", "fmem_high", "loss_train", "loss_test", "extractor")
VALUE_COLUMNS = tuple(c for c in METRICS_COLUMNS if c not in ("step", "extractor"))


@dataclass(frozen=True)
class Curves:
    """One run's metrics table as arrays sorted by step; nan marks a value that was not computed."""

    step: np.ndarray
    values: dict[str, np.ndarray]  # every VALUE_COLUMNS column; all nan where the table lacks it
    extractor: str  # the feature extractor behind every finite FD ('' when no FD was computed)
    absent: tuple[str, ...] = ()  # METRICS_COLUMNS the table lacks (written before they existed)

    def __getitem__(self, column: str) -> np.ndarray:
        """The values of one metrics column, by name."""
        return self.values[column]


def _number(text: Any) -> float:
    """A float from a csv cell or JSON value; empty or None means not computed (nan)."""
    if text is None or (isinstance(text, str) and text.strip() == ""):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise FreqdiffError(f"metrics: not a number: {text!r}") from None


def _step(text: Any) -> int:
    """An optimizer step from a csv cell; a missing step is an error, not a gap."""
    value = _number(text)
    if not math.isfinite(value):
        raise FreqdiffError(f"metrics: missing step value {text!r}")
    return int(value)


def check_columns(present: Sequence[str], where: str) -> None:
    """Fail naming the missing columns the window cannot do without: a metrics table from an incompatible version."""
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise FreqdiffError(
            f"{where}: missing columns {', '.join(missing)} (incompatible metrics version); "
            f"required: {', '.join(REQUIRED_COLUMNS)}"
        )


def _extractor(rows: Sequence[Mapping[str, Any]]) -> str:
    """The one extractor behind the finite FIDs; FIDs of different extractors cannot share an axis."""
    names = sorted({str(r["extractor"]) for r in rows if math.isfinite(_number(r["fid"])) and r["extractor"]})
    if len(names) > 1:
        raise FreqdiffError(f"metrics: FID from several extractors ({', '.join(names)}); values are not comparable")
    return names[0] if names else ""


def curves_from_rows(rows: Sequence[Mapping[str, Any]], where: str = "metrics") -> Curves:
    """Arrays from metrics rows (csv or dicts), sorted by step; a repeated step keeps its last row."""
    if not rows:
        raise FreqdiffError(f"{where}: no evaluated checkpoints (empty metrics table)")
    present = list(rows[0])
    check_columns(present, where)
    by_step = {_step(r["step"]): r for r in rows}
    ordered = [by_step[s] for s in sorted(by_step)]
    values = {c: np.array([_number(r.get(c)) for r in ordered]) for c in VALUE_COLUMNS}
    absent = tuple(c for c in METRICS_COLUMNS if c not in present)
    return Curves(np.array(sorted(by_step)), values, _extractor(ordered), absent)


def as_curves(data: Curves | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> Curves:
    """Curves from Curves, a mapping of column -> values, or a sequence of row mappings."""
    if isinstance(data, Curves):
        return data
    if isinstance(data, Mapping):
        return curves_from_rows([dict(zip(data, values)) for values in zip(*data.values())])
    return curves_from_rows(list(data))


def load_run(run_dir: Path) -> tuple[dict[str, Any], Curves]:
    """config.json and metrics.csv of a run directory, or a one-line FreqdiffError."""
    for name in ("metrics.csv", "config.json"):
        if not (run_dir / name).is_file():
            raise FreqdiffError(f"{run_dir}: no {name} (not an evaluated run directory)")
    try:
        config = read_json(run_dir / "config.json")
    except ValueError as err:
        raise FreqdiffError(f"{run_dir / 'config.json'}: not valid JSON ({err})") from None
    if AXIS in config:
        raise FreqdiffError(f"{run_dir}: a baseline run measured over {config[AXIS]['parameter'] or 'one point'}, not "
                            "over training steps: it has no window (`freqdiff report` shows it)")
    return config, curves_from_rows(read_csv(run_dir / "metrics.csv") + load_refined(run_dir),
                                    str(run_dir / "metrics.csv"))


def load_refined(run_dir: Path) -> list[dict[str, str]]:
    """The rows of RUN/refine/metrics.csv ([] when the run was not refined).

    refine re-measures every checkpoint with its own sample count and adds denser ones, so once merged (a refined
    row replaces the run's row at its step) the curve is measured with one sample count throughout."""
    path = Path(run_dir) / REFINED / "metrics.csv"
    return read_csv(path) if path.is_file() else []


def find_runs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included) holding config.json and metrics.csv."""
    return sorted(p.parent for p in root.rglob("config.json") if (p.parent / "metrics.csv").is_file())
