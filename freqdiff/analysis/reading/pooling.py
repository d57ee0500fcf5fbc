"""One recipe DIR read for `freqdiff compare`: its runs, checked to share data and settings, pooled over seeds.

Per n: tau_gen, tau_mem, width and ratio as mean ± std [min, max] over seeds (a bound when some seed's
value is one), the quality at tau_gen (the FD, recognizable, recall, coverage and the gate's measure, each
with the 2-sigma error of its mean), the final copy fractions, and how many seeds generate at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from freqdiff.analysis.reading.curves import REFINED, Curves, find_runs, load_run
from freqdiff.analysis.reading.equivalence import MEASURES as EQUIVALENCE_MEASURES
from freqdiff.analysis.reading.equivalence import Level
from freqdiff.analysis.reading.scaling import (DERIVED, RUN_KEYS, Spread, WindowGroup, component_label, exact_tau_mem,
                                               fit_tau_mem, group_windows, recipe_of, spread)
from freqdiff.analysis.reading.window import Window, read_window
from freqdiff.core.io import read_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.quality import Gate
from freqdiff.metrics.statistics import PowerLaw, mean_of_measurements

DATA_KEYS = ("dataset", "data.test_size", "data.center", "data.data_seed", "data.subset")
RUN_FLAT_KEYS = {f"{section}.{key}" for section, keys in RUN_KEYS.items() for key in keys}
DIFFERENT_DATA = "runs made on different data (dataset or test set) cannot be compared"
AT_GEN = EQUIVALENCE_MEASURES  # the quality columns read at tau_gen (and the gate's measure), in this order


@dataclass(frozen=True)
class Run:
    """One run's window and the quality measured at its tau_gen checkpoint."""

    path: Path
    seed: Any
    window: Window
    at_gen: dict[str, tuple[float, float]]  # column -> (value, 2-sigma error of it, nan when not computed)


@dataclass(frozen=True)
class Row:
    """One recipe at one n: each quantity pooled over seeds (None when no seed has it)."""

    group: WindowGroup  # seeds, tau_gen, tau_mem and the censored and non-generating counts
    width: Spread | None
    ratio: Spread | None
    at_gen: dict[str, Level]  # quality at tau_gen over the seeds that reach it: AT_GEN and the gate's measure
    final_fmem: Spread | None
    final_fmem_robust: Spread | None
    extractor: str


@dataclass(frozen=True)
class Recipe:
    """The runs of one DIR, their rows by n and the tau_mem ~ n fit."""

    label: str
    path: Path
    recipe: str  # scaling.recipe_of label
    regularizer: str
    extractor: str
    gate: Gate | None  # the quality gate of its extractor (one extractor per DIR)
    sampling: str  # the sampler and whether it clips x0_hat: a comparison needs the same on both sides
    runs: tuple[Run, ...]
    rows: tuple[Row, ...]
    fit: PowerLaw | None
    fit_runs: int  # runs behind the fit (tau_mem no bound)
    skipped: tuple[str, ...]

    def at(self, n: int) -> list[Window]:
        """The windows of this recipe's seeds at n."""
        return [r.window for r in self.runs if r.window.n == n]

    def row(self, n: int) -> Row:
        """This recipe's row at n."""
        return next(row for row in self.rows if row.group.n == n)


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {'section.key': value}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def data_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that fix the dataset and the test set."""
    return {k: v for k, v in _flat(config).items() if any(k == p or k.startswith(p + ".") for p in DATA_KEYS)}


def _recipe_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings shared by the runs of one recipe (all but n, seeds and run length)."""
    return {k: v for k, v in _flat(config).items() if k not in RUN_FLAT_KEYS and not k.startswith(f"{DERIVED}.")}


def require_same(named: Sequence[tuple[str, dict[str, Any]]], problem: str) -> None:
    """Fail naming the first two items whose settings differ, and the keys with both values."""
    first_name, first = named[0]
    for name, settings in named[1:]:
        keys = sorted(k for k in first.keys() | settings.keys()
                      if first.get(k, "(unset)") != settings.get(k, "(unset)"))
        if keys:
            values = ", ".join(f"{k} ({first.get(k, '(unset)')} vs {settings.get(k, '(unset)')})" for k in keys)
            raise FreqdiffError(f"{problem}: {first_name} and {name} differ in {values}")


def quality_at_gen(curves: Curves, window: Window) -> dict[str, tuple[float, float]]:
    """The AT_GEN measures and the gate's, each with the 2-sigma error of its value, at the tau_gen checkpoint:
    the first evaluated checkpoint at or after tau_gen (an estimate between checkpoints), the last when tau_gen
    lies past it (none if not reached).

    metrics.csv's error of a quality value is 2 sigma over its `folds` disjoint folds, the spread of one fold's
    value; the value is their mean, whose 2-sigma error is that divided by sqrt(folds) (the folds are disjoint
    in samples and reference). Without a folds count the spread is kept (an overestimate).
    """
    if not window.tau_gen.reached:
        return {}
    gate = window.generation.gate
    at = np.flatnonzero(curves.step >= window.tau_gen.step)
    i = int(at[0]) if at.size else len(curves.step) - 1
    columns = dict.fromkeys([*AT_GEN, *([gate.measure] if gate is not None else [])])
    folds = float(curves["folds"][i])
    scale = 1 / math.sqrt(folds) if math.isfinite(folds) and folds >= 2 else 1.0
    return {c: (float(curves[c][i]), float(curves[f"{c}_err"][i]) * scale) for c in columns
            if math.isfinite(curves[c][i])}


def refined_sizes(paths: Sequence[Path]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the n at which every run of every DIR is refined, the n at which only some are), each sorted. A reading uses
    refined curves only at the first, so the runs it pools (and both sides of a factor) are measured alike (the
    baseline's unrefined tau_mem read 4-11% early)."""
    status: dict[int, list[bool]] = {}
    for run_dir in (run for path in paths if path.is_dir() for run in find_runs(path)):
        try:
            n = read_json(run_dir / "config.json")["data"]["n"]
        except (ValueError, OSError, KeyError, TypeError):
            continue  # an unreadable run is named when the DIR is read
        status.setdefault(n, []).append((run_dir / REFINED / "metrics.csv").is_file())
    return (tuple(sorted(n for n, refined in status.items() if all(refined))),
            tuple(sorted(n for n, refined in status.items() if any(refined) and not all(refined))))


def _read_dir(path: Path, options: Mapping[str, Any], refined: Collection[int] = ()
              ) -> tuple[list[Run], list[dict[str, Any]], list[str]]:
    """The readable runs of a DIR with their configs, and one line per run that could not be read; a refined run is
    read off its refined curve at the n in `refined`, off its own curve elsewhere."""
    if not path.is_dir():
        raise FreqdiffError(f"{path}: no such directory")
    found = find_runs(path)
    if not found:
        raise FreqdiffError(f"{path}: holds no runs (no directory with config.json and metrics.csv)")
    runs, configs, skipped = [], [], []
    for run_dir in found:
        try:
            config, curves = load_run(run_dir)
            n = config.get("data", {}).get("n")
            curves = curves if curves.own is None or n in refined else curves.own
            window = read_window(curves, n=n, **options)
        except FreqdiffError as err:
            skipped.append(f"{run_dir}: {err}")
            continue
        if window.n is None:
            skipped.append(f"{run_dir}: config.json has no data.n")
            continue
        runs.append(Run(run_dir, config.get("train", {}).get("seed"), window, quality_at_gen(curves, window)))
        configs.append(config)
    if not runs:
        raise FreqdiffError(f"{path}: none of its {len(found)} runs could be read ({skipped[0]})")
    return runs, configs, skipped


def _check_dir(path: Path, runs: list[Run], configs: list[dict[str, Any]]) -> str:
    """Refuse a DIR mixing data, recipes or FD extractors, or repeating an (n, seed); return its extractor."""
    require_same([(str(r.path), data_settings(c)) for r, c in zip(runs, configs)], f"{path}: {DIFFERENT_DATA}")
    require_same([(str(r.path), _recipe_settings(c)) for r, c in zip(runs, configs)],
                 f"{path}: holds runs of several recipes (compare takes one recipe per DIR)")
    seen: dict[tuple[Any, Any], Path] = {}
    for run in runs:
        key = (run.window.n, run.seed)
        if key in seen:
            raise FreqdiffError(f"{path}: two runs with n={key[0]} seed={key[1]}: {seen[key]} and {run.path}")
        seen[key] = run.path
    extractors = sorted({r.window.extractor for r in runs} - {""})
    if len(extractors) > 1:
        raise FreqdiffError(f"{path}: FD from several extractors ({', '.join(extractors)}); values are not comparable")
    return extractors[0] if extractors else ""


def _spread_of(values: Sequence[float | None], bounds: Sequence[str] = ()) -> Spread | None:
    """Spread of the defined values with the bound their own bounds imply (None when there are none)."""
    defined = [v for v in values if v is not None]
    sides = set(bounds) - {""}
    return spread(defined, "mixed" if len(sides) > 1 else sides.pop() if sides else "") if defined else None


def _level(runs: Sequence[Run], column: str) -> Level | None:
    """A quality column at tau_gen pooled over the seeds that have it."""
    pairs = [r.at_gen[column] for r in runs if column in r.at_gen]
    if not pairs:
        return None
    value, err = mean_of_measurements(*zip(*pairs))
    return Level(value, err, len(pairs))


def _row(group: WindowGroup, runs: Sequence[Run], extractor: str) -> Row:
    """Width, ratio, quality at tau_gen and final copy fractions of one n, beside the group's taus."""
    windows = [r.window for r in runs]
    bounds = [w.bound for w in windows if w.width is not None]
    seen = {c for r in runs for c in r.at_gen}
    columns = [c for c in AT_GEN if c in seen] + sorted(seen - set(AT_GEN))
    levels = {c: level for c in columns if (level := _level(runs, c)) is not None}
    return Row(group, _spread_of([w.width for w in windows], bounds), _spread_of([w.ratio for w in windows], bounds),
               levels, _spread_of([w.final_fmem[0] if w.final_fmem else None for w in windows]),
               _spread_of([w.final_fmem_robust[0] if w.final_fmem_robust else None for w in windows]), extractor)


def sampling_of(config: Mapping[str, Any]) -> str:
    """'ddim, x0 clipped' or 'heun, x0 not clipped': the sampler and its x0 clipping (only ddim and ddpm clip)."""
    sampler = config.get("sampler", {})
    clipped = sampler.get("params", {}).get("clip_x0", False)
    return f"{sampler.get('name', 'unknown')}, x0 {'clipped' if clipped else 'not clipped'}"


def read_recipe(path: Path, label: str, options: Mapping[str, Any], refined: Collection[int] = ()
                ) -> tuple[Recipe, list[dict[str, Any]]]:
    """Read, check and pool one DIR (refined curves at the n in `refined`); also return its runs' configs for the
    data check across DIRs."""
    runs, configs, skipped = _read_dir(path, options, refined)
    extractor = _check_dir(path, runs, configs)
    name = recipe_of(configs[0])
    groups = group_windows((name, r.seed, r.window) for r in runs)
    rows = tuple(_row(g, [r for r in runs if r.window.n == g.n], extractor) for g in groups)
    windows = [r.window for r in runs]
    recipe = Recipe(label, path, name, component_label(configs[0], "regularizer"), extractor,
                    runs[0].window.generation.gate, sampling_of(configs[0]), tuple(runs), rows, fit_tau_mem(windows),
                    len(exact_tau_mem(windows)), tuple(skipped))
    return recipe, configs
