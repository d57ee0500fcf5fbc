"""One run's measured curves: metrics.csv (and config.json) read into arrays sorted by step.

The columns are those evaluate.py writes (METRICS_COLUMNS), each declared once with its type and range
(MetricsRow, the registry's `param`). A table without the columns the window cannot do without
(REQUIRED_COLUMNS) is refused in one line naming them; a table from before the quality measures lacks the
others, which then read as not computed (nan) and are listed in `Curves.absent`. An empty cell means the value
was not computed (nan), never zero. A damaged file (a truncated row, a number cut mid-way, a negative step, a
config.json out of its ranges) is refused in one line naming it, the line and what is wrong: nothing is computed
from it.
"""
from __future__ import annotations

import csv
import math
import typing
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from freqdiff.core.config import RunConfig
from freqdiff.core.io import read_csv, read_json
from freqdiff.core.registry import FreqdiffError, Range, field_range, param, parse_value


@dataclass(frozen=True)
class MetricsRow:
    """One metrics.csv row: each column with its type and valid values; None (an empty cell) is not computed."""

    step: int = param(0, ge=0)
    fid: float | None = None  # FD and KID: unbiased estimates, may dip below 0
    fid_err: float | None = param(None, ge=0)
    kid: float | None = None
    kid_err: float | None = param(None, ge=0)
    precision: float | None = param(None, ge=0, le=1)
    precision_err: float | None = param(None, ge=0)
    recall: float | None = param(None, ge=0, le=1)
    recall_err: float | None = param(None, ge=0)
    density: float | None = param(None, ge=0)
    density_err: float | None = param(None, ge=0)
    coverage: float | None = param(None, ge=0, le=1)
    coverage_err: float | None = param(None, ge=0)
    recognizable: float | None = param(None, ge=0, le=1)
    recognizable_err: float | None = param(None, ge=0)
    spectral: float | None = param(None, ge=0)
    spectral_err: float | None = param(None, ge=0)
    fmem: float | None = param(None, ge=0, le=1)
    fmem_low: float | None = param(None, ge=0, le=1)
    fmem_high: float | None = param(None, ge=0, le=1)
    fmem_robust: float | None = param(None, ge=0, le=1)
    fmem_robust_low: float | None = param(None, ge=0, le=1)
    fmem_robust_high: float | None = param(None, ge=0, le=1)
    loss_train: float | None = param(None, ge=0)
    loss_test: float | None = param(None, ge=0)
    extractor: str | None = None
    n_samples: int | None = param(None, ge=1)
    folds: int | None = param(None, ge=1)


METRICS_COLUMNS = tuple(f.name for f in fields(MetricsRow))
_TYPES = typing.get_type_hints(MetricsRow)
_RANGES = {f.name: field_range(f) or Range() for f in fields(MetricsRow)}
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
    own: Curves | None = None  # a refined run's own curve: its FD error stays tau_gen's tolerance

    def __getitem__(self, column: str) -> np.ndarray:
        """The values of one metrics column, by name."""
        return self.values[column]


def _not_computed(cell: Any) -> bool:
    """An empty cell, None or nan: a value that was not computed."""
    return cell is None or (isinstance(cell, str) and cell.strip().lower() in ("", "nan")) or (
        isinstance(cell, float) and math.isnan(cell))


def metrics_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A metrics row's METRICS_COLUMNS typed and range-checked (floats with nan where not computed; other columns
    dropped), or one line naming `where`, the column and what is wrong; the step must be given."""
    if _not_computed(row.get("step")):
        raise FreqdiffError(f"{where}: step: missing value {row.get('step')!r}")
    out: dict[str, Any] = {}
    for column in METRICS_COLUMNS:
        cell = row.get(column)
        if column != "extractor" and _not_computed(cell):
            out[column] = math.nan
            continue
        value = parse_value(cell, _TYPES[column], f"{where}: {column}")
        _RANGES[column].check(value, column, f"{where}: {column}")
        out[column] = "" if value is None else value
    return out


def check_columns(present: Sequence[str], where: str) -> None:
    """Fail naming the missing columns the window cannot do without: a metrics table from an incompatible version."""
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise FreqdiffError(
            f"{where}: missing columns {', '.join(missing)} (incompatible metrics version); "
            f"required: {', '.join(REQUIRED_COLUMNS)}"
        )


def _extractor(rows: Sequence[Mapping[str, Any]]) -> str:
    """The one extractor behind the finite FIDs (typed rows); FIDs of different extractors cannot share an axis."""
    names = sorted({str(r["extractor"]) for r in rows if math.isfinite(r["fid"]) and r["extractor"]})
    if len(names) > 1:
        raise FreqdiffError(f"metrics: FID from several extractors ({', '.join(names)}); values are not comparable")
    return names[0] if names else ""


def curves_from_rows(rows: Sequence[Mapping[str, Any]], where: str = "metrics") -> Curves:
    """Arrays from metrics rows (csv or dicts), each checked by metrics_row, sorted by step; a repeated step keeps
    its last row."""
    if not rows:
        raise FreqdiffError(f"{where}: no evaluated checkpoints (empty metrics table)")
    present = list(rows[0])
    check_columns(present, where)
    typed = [metrics_row(r, f"{where} row {i + 1}") for i, r in enumerate(rows)]
    by_step = {r["step"]: r for r in typed}
    ordered = [by_step[s] for s in sorted(by_step)]
    values = {c: np.array([float(r[c]) for r in ordered]) for c in VALUE_COLUMNS}
    absent = tuple(c for c in METRICS_COLUMNS if c not in present)
    return Curves(np.array(sorted(by_step)), values, _extractor(ordered), absent)


def read_metrics_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a metrics.csv, every one complete (as many cells as the header: a truncated or damaged row is
    refused) and checked by metrics_row, each error naming the file and its line; the one reader of metrics.csv."""
    try:
        rows = read_csv(path)
    except csv.Error as err:
        raise FreqdiffError(f"{path}: not a readable metrics table ({err.__class__.__name__}: {err})") from None
    for i, row in enumerate(rows):
        line = f"{path} line {i + 2}"
        if None in row or None in row.values():
            cells = len(row) - (None in row) - sum(v is None for v in row.values()) + len(row.get(None) or [])
            raise FreqdiffError(f"{line}: {cells} cells where the header has {len(row) - (None in row)}: the row is "
                                "truncated or damaged; re-evaluate the run (move metrics.csv away)")
        metrics_row(row, line)
    return rows


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
    if isinstance(config, dict) and isinstance(config.get(AXIS), dict):
        raise FreqdiffError(f"{run_dir}: a baseline run measured over {config[AXIS].get('parameter') or 'one point'}, "
                            "not over training steps: it has no window (`freqdiff report` shows it)")
    RunConfig.from_dict(config, str(run_dir / "config.json"))  # a damaged config.json is named, nothing computed
    own, refined = read_metrics_csv(run_dir / "metrics.csv"), load_refined(run_dir)
    curves = curves_from_rows(own + refined, str(run_dir / "metrics.csv"))
    return config, replace(curves, own=curves_from_rows(own, str(run_dir / "metrics.csv"))) if refined else curves


def load_refined(run_dir: Path) -> list[dict[str, str]]:
    """The rows of RUN/refine/metrics.csv ([] when the run was not refined).

    refine re-measures every checkpoint with its own sample count and adds denser ones, so once merged (a refined
    row replaces the run's row at its step) the curve is measured with one sample count throughout."""
    path = Path(run_dir) / REFINED / "metrics.csv"
    return read_metrics_csv(path) if path.is_file() else []


def find_runs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included) holding config.json and metrics.csv."""
    return sorted(p.parent for p in root.rglob("config.json") if (p.parent / "metrics.csv").is_file())
