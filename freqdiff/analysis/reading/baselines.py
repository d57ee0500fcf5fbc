"""Baseline runs read like trained ones, and trained checkpoints placed on the copy-to-smooth axis.

A baseline run (freqdiff.commands.baseline) has config.json with an "axis" and metrics.csv with the axis parameter's
column in place of step; its rows are read by the trained runs' reader (curves_from_rows), indexed by position
along the axis. The copy-to-smooth axis is the smoothing sigma of `smoothed_empirical`: sigma = 0 is the exact
memorizer (f_mem = 1), a large sigma a smooth barycentric model (f_mem -> 0). A trained checkpoint is placed on it
by its equivalent sigma, read two ways:
- by f_mem: the sigma at which the smoothed memorizer copies as often as the checkpoint (the window's own copy
  measure, the same estimator on the same number of samples, test set and threshold: directly "copies like the
  memorizer smoothed by sigma"); where the checkpoint's f_mem is outside the measured range it is a bound;
- by spectral profile: the measured sigma whose per-band distance to the memorizer (diagnostics.band_errors,
  model_vs_memorizer, every radial band) at the least noisy level of the diagnostics (the paper's t = 0.01, where
  copying is decided) is closest in log scale. It does not saturate where f_mem is 0 or 1, so it reads early
  checkpoints too; it compares denoisers on held-out noisy images, not samples. Larger levels are left out: there
  a perturbation of fixed sigma hardly moves the posterior, so every smoothed model is near the memorizer and a
  network's distance to it says nothing about smoothing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freqdiff.analysis.reading.curves import AXIS, Curves, curves_from_rows
from freqdiff.core.io import read_csv, read_json
from freqdiff.core.registry import FreqdiffError

ONE_POINT = "model"  # the axis column of a run without a parameter: its value is the model's name
PROFILE_METRIC = "model_vs_memorizer"
LOG_FLOOR = 1e-10  # band errors below this (the memorizer against itself: exactly 0) count as this in log scale


def is_baseline_run(run_dir: Path) -> bool:
    """A run directory whose config.json names an axis (a closed-form model over its own parameter); a damaged
    config.json is no baseline run's, and the reader of a trained run names the damage."""
    path = Path(run_dir) / "config.json"
    try:
        record = read_json(path) if path.is_file() else None
    except ValueError:  # invalid JSON or text
        return False
    return isinstance(record, dict) and AXIS in record


@dataclass(frozen=True)
class BaselineRun:
    """A baseline run's measures along its axis: `curves` indexed by position (curves.step = 0, 1, ...)."""

    run_dir: Path
    config: dict[str, Any]
    parameter: str | None
    values: tuple[str, ...]  # the axis cells as written
    curves: Curves

    @property
    def model(self) -> str:
        return self.config["model"]["name"]

    @property
    def x(self) -> np.ndarray:
        """The values as numbers (nan where a value is not one number, e.g. a patch schedule)."""
        return np.array([_float(v) for v in self.values])

    @property
    def label(self) -> str:
        return f"{self.model}" if self.parameter is None else f"{self.model} over {self.parameter}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def file_label(column: str, cell: str) -> str:
    """The file stem of one value's samples and nearest images: sigma_0.3, patch_3-5, model_empirical."""
    return f"{column}_{re.sub(r'[^A-Za-z0-9.+-]', '_', cell)}"


def axis_column(config: dict[str, Any]) -> str:
    return config[AXIS]["parameter"] or ONE_POINT


def load_baseline(run_dir: Path) -> BaselineRun:
    """A baseline run's config.json and metrics.csv, or a one-line FreqdiffError."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    column = axis_column(config)
    rows = read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else []
    if not rows or column not in rows[0]:
        raise FreqdiffError(f"{run_dir}: no measured values of {column} (run `freqdiff eval {run_dir}`)")
    curves = curves_from_rows([{**row, "step": i} for i, row in enumerate(rows)], str(run_dir / "metrics.csv"))
    return BaselineRun(run_dir, config, config[AXIS]["parameter"], tuple(r[column] for r in rows), curves)


def spectral_profiles(run_dir: Path, key: str) -> dict[str, dict[tuple[float, int], float]]:
    """{key value: {(OU time, band): model_vs_memorizer}} from a run's spectral.csv (key: tau or the axis column)."""
    path = Path(run_dir) / "spectral.csv"
    profiles: dict[str, dict[tuple[float, int], float]] = {}
    for row in read_csv(path) if path.is_file() else []:
        where = (round(float(row["ou_time"]), 9), int(row["band"]))
        profiles.setdefault(row[key], {})[where] = float(row[PROFILE_METRIC])
    return profiles


@dataclass(frozen=True)
class Equivalent:
    """An equivalent smoothing sigma: a value, and whether it is a bound ('<=', '>=') or read inside the range ('')."""

    sigma: float | None
    bound: str = ""

    def __str__(self) -> str:
        return "—" if self.sigma is None else f"{self.bound} {self.sigma:.3g}".strip()


def sigma_by_fmem(fmem: float, sigma: np.ndarray, curve: np.ndarray) -> Equivalent:
    """The sigma at which the smoothed memorizer's f_mem equals `fmem`, linear between measured sigmas on the
    curve made non-increasing (its running minimum); a bound when `fmem` is outside the curve's range."""
    ok = np.isfinite(sigma) & np.isfinite(curve)
    if not math.isfinite(fmem) or not ok.any():
        return Equivalent(None)
    order = np.argsort(sigma[ok])
    s, f = sigma[ok][order], np.minimum.accumulate(curve[ok][order])
    if fmem >= f[0]:
        return Equivalent(float(s[f >= f[0]].max()), "<=")
    if fmem <= f[-1]:
        return Equivalent(float(s[f <= f[-1]].min()), ">=")
    j = int(np.argmax(f < fmem))  # the first sigma that copies less than the checkpoint
    share = (f[j - 1] - fmem) / (f[j - 1] - f[j])
    return Equivalent(float(s[j - 1] + share * (s[j] - s[j - 1])))


def profile_distance(a: dict[tuple[float, int], float], b: dict[tuple[float, int], float]) -> float:
    """Mean squared log10 difference of two band-error profiles over the bands both have at the least noisy OU time
    they share (inf if none)."""
    shared = set(a) & set(b)
    if not shared:
        return math.inf
    least = min(t for t, _ in shared)
    common = sorted(k for k in shared if k[0] == least)
    diff = [math.log10(max(a[k], LOG_FLOOR)) - math.log10(max(b[k], LOG_FLOOR)) for k in common]
    return float(np.mean(np.square(diff)))


def sigma_by_profile(profile: dict[tuple[float, int], float],
                     candidates: dict[float, dict[tuple[float, int], float]]) -> Equivalent:
    """The measured sigma whose spectral profile is nearest (a bound at either end of the measured sigmas)."""
    distances = {s: profile_distance(profile, p) for s, p in candidates.items()}
    finite = {s: d for s, d in distances.items() if math.isfinite(d)}
    if not finite:
        return Equivalent(None)
    best = min(finite, key=finite.get)
    bound = "<=" if best == min(finite) else ">=" if best == max(finite) else ""
    return Equivalent(best, bound)
