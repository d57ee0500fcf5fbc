"""Recipes compared at each n: per-seed windows pooled, factors with intervals over seeds, verdicts.

Per recipe and n: tau_gen, tau_mem, the window's width and ratio, the FID at tau_gen (the quality at
the window's start) and the final f_mem, each as mean ± std [min, max] over seeds. Against a reference
recipe, at each common n: the factor by which the window widens (ratio of geometric means over seeds)
with a percentile-bootstrap interval over seeds, and whether the FID at tau_gen is as good. A censored
tau_mem (no memorization seen) turns a factor into a bound; no number is made up for it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from freqdiff.analysis.reading.curves import Curves, find_runs, load_run
from freqdiff.analysis.reading.scaling import (RUN_KEYS, Spread, WindowGroup, component_label, fit_tau_mem,
                                            group_windows, recipe_of, spread)
from freqdiff.analysis.reading.window import Window, WindowRule, read_window
from freqdiff.analysis.statistics import PowerLaw, bootstrap_over_seeds, t_interval
from freqdiff.registry import FreqdiffError, build_params

DATA_KEYS = ("dataset", "data.test_size", "data.center", "data.data_seed", "data.subset")
RUN_FLAT_KEYS = {f"{section}.{key}" for section, keys in RUN_KEYS.items() for key in keys}
DIFFERENT_DATA = "runs made on different data (dataset or test set) cannot be compared"
DRAWS = 2000
SEED = 0
COVERAGE = ("A percentile bootstrap over few seeds covers less than its nominal 95% (simulated, normal log-noise: "
            "about 68% with 2 seeds per recipe, 82% with 3, 88% with 5).")


@dataclass(frozen=True)
class Run:
    """One run's window and the FID measured at its tau_gen checkpoint."""

    path: Path
    seed: Any
    window: Window
    fid_at_gen: float | None


@dataclass(frozen=True)
class Row:
    """One recipe at one n: each quantity's spread over seeds (None when no seed has it)."""

    group: WindowGroup  # seeds, tau_gen, tau_mem and the censored count
    width: Spread | None
    ratio: Spread | None
    fid_at_gen: Spread | None
    final_fmem: Spread | None
    extractor: str


@dataclass(frozen=True)
class Recipe:
    """The runs of one DIR, their rows by n and the tau_mem ~ n fit."""

    label: str
    path: Path
    recipe: str  # scaling.recipe_of label
    regularizer: str
    extractor: str
    runs: tuple[Run, ...]
    rows: tuple[Row, ...]
    fit: PowerLaw | None
    fit_runs: int  # uncensored runs behind the fit
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class Factor:
    """recipe / reference for `quantity` at n (None: pooled over n), with its 95% interval and how it was got.

    bound '>=': the recipe's values are censored lower bounds, so the factor is a lower bound and only
    the interval's low end means something; '<=': the reference's are, an upper bound.
    """

    quantity: str  # width | tau_mem
    n: int | None
    estimate: float | None
    interval: tuple[float | None, float | None] | None  # None: undefined (see note)
    bound: str
    method: str
    note: str


@dataclass(frozen=True)
class Quality:
    """The FID at tau_gen, recipe minus reference, at one n; worse is None when it could not be checked."""

    n: int
    difference: float | None
    tolerance: float | None
    worse: bool | None
    note: str


@dataclass(frozen=True)
class Versus:
    """One recipe against the reference: factors per common n, pooled fallbacks, quality, verdict."""

    recipe: str
    reference: str
    common_n: tuple[int, ...]
    width: tuple[Factor, ...]
    tau_mem: tuple[Factor, ...]
    pooled_width: Factor | None  # only when no n has a bootstrap interval
    pooled_tau_mem: Factor | None
    quality: tuple[Quality, ...]
    verdict: str


@dataclass(frozen=True)
class Comparison:
    """Every recipe's windows and each recipe against the reference."""

    recipes: tuple[Recipe, ...]
    reference: str
    versus: tuple[Versus, ...]
    rule: dict[str, Any]


# ----------------------------------------------------------------------------- loading and checks


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {'section.key': value}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _data_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that fix the dataset and the test set."""
    return {k: v for k, v in _flat(config).items() if any(k == p or k.startswith(p + ".") for p in DATA_KEYS)}


def _recipe_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings shared by the runs of one recipe (all but n, seeds and run length)."""
    return {k: v for k, v in _flat(config).items() if k not in RUN_FLAT_KEYS}


def _require_same(named: Sequence[tuple[str, dict[str, Any]]], problem: str) -> None:
    """Fail naming the first two items whose settings differ, and the keys with both values."""
    first_name, first = named[0]
    for name, settings in named[1:]:
        keys = sorted(k for k in first.keys() | settings.keys()
                      if first.get(k, "(unset)") != settings.get(k, "(unset)"))
        if keys:
            values = ", ".join(f"{k} ({first.get(k, '(unset)')} vs {settings.get(k, '(unset)')})" for k in keys)
            raise FreqdiffError(f"{problem}: {first_name} and {name} differ in {values}")


def _fid_at(curves: Curves, step: int | None) -> float | None:
    """The measured FID at a checkpoint step (None when not computed)."""
    if step is None:
        return None
    value = float(curves.fid[curves.step == step][0])
    return value if math.isfinite(value) else None


def _read_dir(path: Path, options: Mapping[str, Any]) -> tuple[list[Run], list[dict[str, Any]], list[str]]:
    """The readable runs of a DIR with their configs, and one line per run that could not be read."""
    if not path.is_dir():
        raise FreqdiffError(f"{path}: no such directory")
    found = find_runs(path)
    if not found:
        raise FreqdiffError(f"{path}: holds no runs (no directory with config.json and metrics.csv)")
    runs, configs, skipped = [], [], []
    for run_dir in found:
        try:
            config, curves = load_run(run_dir)
            window = read_window(curves, n=config.get("data", {}).get("n"), **options)
        except FreqdiffError as err:
            skipped.append(f"{run_dir}: {err}")
            continue
        if window.n is None:
            skipped.append(f"{run_dir}: config.json has no data.n")
            continue
        runs.append(Run(run_dir, config.get("train", {}).get("seed"), window, _fid_at(curves, window.tau_gen)))
        configs.append(config)
    if not runs:
        raise FreqdiffError(f"{path}: none of its {len(found)} runs could be read ({skipped[0]})")
    return runs, configs, skipped


def _check_dir(path: Path, runs: list[Run], configs: list[dict[str, Any]]) -> str:
    """Refuse a DIR mixing data, recipes or FID extractors, or repeating an (n, seed); return its extractor."""
    _require_same([(str(r.path), _data_settings(c)) for r, c in zip(runs, configs)], f"{path}: {DIFFERENT_DATA}")
    _require_same([(str(r.path), _recipe_settings(c)) for r, c in zip(runs, configs)],
                  f"{path}: holds runs of several recipes (compare takes one recipe per DIR)")
    seen: dict[tuple[Any, Any], Path] = {}
    for run in runs:
        key = (run.window.n, run.seed)
        if key in seen:
            raise FreqdiffError(f"{path}: two runs with n={key[0]} seed={key[1]}: {seen[key]} and {run.path}")
        seen[key] = run.path
    extractors = sorted({r.window.extractor for r in runs} - {""})
    if len(extractors) > 1:
        raise FreqdiffError(f"{path}: FID from several extractors ({', '.join(extractors)}); values are not comparable")
    return extractors[0] if extractors else ""


def _labels(paths: Sequence[Path]) -> list[str]:
    """Each DIR's name, or its path as given when two DIRs share a name."""
    names = [p.resolve().name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


# ----------------------------------------------------------------------------- per recipe


def _spread_of(values: Sequence[float | None], bound: str) -> Spread | None:
    """Spread of the defined values (None when there are none)."""
    defined = [v for v in values if v is not None]
    return spread(defined, bound) if defined else None


def _row(group: WindowGroup, runs: Sequence[Run], extractor: str) -> Row:
    """The width, ratio, FID at tau_gen and final f_mem spreads of one n, beside the group's taus."""
    windows = [r.window for r in runs]
    bound = ">=" if any(w.lower_bounds for w in windows if w.width is not None) else ""
    return Row(group, _spread_of([w.width for w in windows], bound), _spread_of([w.ratio for w in windows], bound),
               _spread_of([r.fid_at_gen for r in runs], ""),
               _spread_of([w.final_fmem[0] if w.final_fmem else None for w in windows], ""), extractor)


def _recipe(path: Path, label: str, options: Mapping[str, Any]) -> tuple[Recipe, list[dict[str, Any]]]:
    """Read, check and summarise one DIR; also return its runs' configs for the data check."""
    runs, configs, skipped = _read_dir(path, options)
    extractor = _check_dir(path, runs, configs)
    name = recipe_of(configs[0])
    groups = group_windows((name, r.seed, r.window) for r in runs)
    rows = tuple(_row(g, [r for r in runs if r.window.n == g.n], extractor) for g in groups)
    windows = [r.window for r in runs]
    fit_runs = sum(1 for w in windows if w.tau_mem and not w.tau_mem_censored)
    recipe = Recipe(label, path, name, component_label(configs[0], "regularizer"), extractor, tuple(runs), rows,
                    fit_tau_mem(windows), fit_runs, tuple(skipped))
    return recipe, configs


# ----------------------------------------------------------------------------- statistics


def _at(recipe: Recipe, n: int) -> list[Window]:
    """The windows of a recipe's seeds at n."""
    return [r.window for r in recipe.runs if r.window.n == n]


def _row_at(recipe: Recipe, n: int) -> Row:
    """A recipe's row at n."""
    return next(row for row in recipe.rows if row.group.n == n)


def _per_seed(windows: Sequence[Window], quantity: str) -> tuple[np.ndarray | None, bool]:
    """log of the per-seed values (None if some seed has none or a non-positive one) and whether censored."""
    values = [getattr(w, quantity) for w in windows]
    censored = any(w.lower_bounds if quantity == "width" else w.tau_mem_censored for w in windows)
    if any(v is None or v <= 0 for v in values):
        return None, censored
    return np.log(np.asarray(values, float)), censored


def _sided(low: float, high: float, bound: str) -> tuple[float | None, float | None]:
    """Drop the end of an interval that a bound makes meaningless."""
    return (None if bound == "<=" else low, None if bound == ">=" else high)


def _bootstrap(a: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Percentile 95% interval of exp(mean a - mean r), resampling each recipe's seeds with replacement."""
    low, high = bootstrap_over_seeds([a, r], lambda picks: picks[0].mean(1) - picks[1].mean(1), DRAWS, SEED)
    return math.exp(low), math.exp(high)


def _factor(quantity: str, n: int, mine: Sequence[Window], ref: Sequence[Window]) -> Factor:
    """Geometric mean over seeds of the recipe over that of the reference, with a bootstrap interval."""
    a, a_censored = _per_seed(mine, quantity)
    r, r_censored = _per_seed(ref, quantity)
    method = "ratio of geometric means over seeds"
    if a is None or r is None:
        return Factor(quantity, n, None, None, "", method, f"undefined: a seed has no {quantity} > 0")
    if a_censored and r_censored:
        return Factor(quantity, n, None, None, "", method, "undefined: tau_mem censored in both recipes")
    bound = ">=" if a_censored else "<=" if r_censored else ""
    estimate = float(np.exp(a.mean() - r.mean()))
    if min(len(a), len(r)) < 2:
        return Factor(quantity, n, estimate, None, bound, method,
                      f"interval undefined: one seed ({len(a)} vs {len(r)} seeds)")
    method += f"; percentile bootstrap over seeds ({len(a)} vs {len(r)} seeds, {DRAWS} draws, seed {SEED})"
    return Factor(quantity, n, estimate, _sided(*_bootstrap(a, r), bound), bound, method, "")


def _pooled(quantity: str, factors: Sequence[Factor]) -> Factor | None:
    """Mean log-factor over n with a t interval; only when no n has a bootstrap interval (one seed per n)."""
    if any(f.interval for f in factors):
        return None
    method = "t-interval of the mean log-factor over n (assumes the factor does not depend on n)"
    usable = [f for f in factors if f.estimate is not None]
    if len(usable) < 2:
        return Factor(quantity, None, None, None, "", method, f"undefined: {len(usable)} n with a factor, need 2")
    bounds = {f.bound for f in usable} - {""}
    if len(bounds) > 1:
        return Factor(quantity, None, None, None, "", method, "undefined: censored in opposite directions across n")
    logs = np.log([f.estimate for f in usable])
    bound = bounds.pop() if bounds else ""
    low, high = np.exp(t_interval(logs.mean(), logs.std(ddof=1) / math.sqrt(len(logs)), len(logs) - 1))
    return Factor(quantity, None, float(np.exp(logs.mean())), _sided(float(low), float(high), bound), bound,
                  method, f"over n = {', '.join(str(f.n) for f in usable)}")


def _quality(mine: Row, ref: Row, rule: Mapping[str, Any]) -> Quality:
    """FID at tau_gen, recipe minus reference; worse when beyond max(seed std of either, the plateau band)."""
    n = ref.group.n
    if mine.fid_at_gen is None or ref.fid_at_gen is None:
        return Quality(n, None, None, None, "no FID at tau_gen")
    if mine.extractor != ref.extractor:
        return Quality(n, None, None, None, f"FID not comparable: {mine.extractor} vs {ref.extractor} features")
    difference = mine.fid_at_gen.mean - ref.fid_at_gen.mean
    band = max(rule["rel_tol"] * abs(ref.fid_at_gen.mean), rule["abs_tol"])
    tolerance = max(mine.fid_at_gen.std, ref.fid_at_gen.std, band)
    return Quality(n, difference, tolerance, difference > tolerance, "")


def _basis(width: Sequence[Factor], pooled: Factor | None) -> Factor | None:
    """The factor a verdict quotes: largest n with an interval, else the pooled one, else the largest n."""
    with_interval = [f for f in width if f.interval]
    if with_interval:
        return with_interval[-1]
    if pooled is not None and pooled.estimate is not None:
        return pooled
    defined = [f for f in width if f.estimate is not None]
    return defined[-1] if defined else None


def interval_text(f: Factor) -> str:
    """'[a, b]', '[a, ∞)' or '(0, b]'; 'undefined' with the reason when there is none."""
    if f.interval is None:
        return f"undefined ({f.note})" if f.estimate is not None else "—"
    low, high = f.interval
    return f"{'(0' if low is None else f'[{low:.3g}'}, {'∞)' if high is None else f'{high:.3g}]'}"


def _claim(f: Factor, label: str, reference: str) -> str:
    """One sentence: does the recipe widen the window, by what factor, how sure."""
    where = f"at n = {f.n}" if f.n is not None else f"as the geometric mean {f.note}"
    size = f"width {f.bound + ' ' if f.bound else ''}{f.estimate:.3g} times the reference's {where}"
    if (f.bound == ">=" and f.estimate <= 1) or (f.bound == "<=" and f.estimate >= 1):
        return f"{label} against {reference} is inconclusive: {size}, a bound on the wrong side of 1 (censored runs)."
    censored = {">=": "; a lower bound: the recipe has censored runs",
                "<=": "; an upper bound: the reference has censored runs"}
    direction = "widens" if f.estimate > 1 else "narrows" if f.estimate < 1 else "does not change"
    if f.interval is None:
        caveat = f"{f.note}: no confidence can be given{censored.get(f.bound, '')}"
        return f"{label} {direction} the window against {reference}: {size} ({caveat})."
    low, high = f.interval
    clear = (low is not None and low > 1) or (high is not None and high < 1)
    kind = "bootstrap interval over seeds" if f.n is not None else "t-interval over n"
    interval = f"95% {kind} {interval_text(f)}, {'excludes' if clear else 'includes'} 1{censored.get(f.bound, '')}"
    if not clear:
        return f"{label} does not clearly change the window against {reference}: {size} ({interval})."
    return f"{label} {direction} the window against {reference}: {size} ({interval})."


def _quality_sentence(quality: Sequence[Quality]) -> str:
    """One sentence: is the recipe's FID at tau_gen as good as the reference's."""
    worse = [q for q in quality if q.worse]
    unchecked = [q for q in quality if q.worse is None]
    if worse:
        at = ", ".join(f"n = {q.n} (+{q.difference:.3g}, tolerance {q.tolerance:.3g})" for q in worse)
        return f"Not at equal quality: its FID at tau_gen is worse than the reference's at {at}."
    if unchecked:
        return f"Quality unchecked at n = {', '.join(str(q.n) for q in unchecked)}: {unchecked[0].note}."
    return "At equal quality: its FID at tau_gen is within tolerance of the reference's at every common n."


def _versus(mine: Recipe, ref: Recipe, rule: Mapping[str, Any]) -> Versus:
    """Factors per common n (width and tau_mem), pooled fallbacks, the quality check and the verdict."""
    common = sorted({row.group.n for row in mine.rows} & {row.group.n for row in ref.rows})
    width = tuple(_factor("width", n, _at(mine, n), _at(ref, n)) for n in common)
    tau_mem = tuple(_factor("tau_mem", n, _at(mine, n), _at(ref, n)) for n in common)
    quality = tuple(_quality(_row_at(mine, n), _row_at(ref, n), rule) for n in common)
    pooled_width = _pooled("width", width)
    basis = _basis(width, pooled_width)
    if not common:
        verdict = f"{mine.label} and {ref.label} share no n: nothing to compare."
    elif basis is None:
        verdict = f"{mine.label} against {ref.label}: no width factor at any common n ({width[-1].note})."
    else:
        verdict = f"{_claim(basis, mine.label, ref.label)} {_quality_sentence(quality)}".strip()
    return Versus(mine.label, ref.label, tuple(common), width, tau_mem, pooled_width, _pooled("tau_mem", tau_mem),
                  quality, verdict)


def _check_disjoint(recipes: Sequence[Recipe]) -> None:
    """Refuse a run that lies in two DIRs (one DIR inside another)."""
    owner: dict[Path, str] = {}
    for recipe in recipes:
        for run in recipe.runs:
            key = run.path.resolve()
            if key in owner:
                raise FreqdiffError(f"compare: run {run.path} is in two DIRs ({owner[key]} and {recipe.path})")
            owner[key] = str(recipe.path)


def compare(dirs: Sequence[str | Path], reference: str | None = None, **options: Any) -> Comparison:
    """Read every DIR (one recipe each), check they share data and test set, compare each to the reference.

    `options` are WindowRule parameters (as for `freqdiff window`); `reference` is a DIR label (default:
    the first DIR). Nothing is written.
    """
    if not dirs:
        raise FreqdiffError("compare: expected one or more DIRs, one per recipe")
    rule = dataclasses.asdict(build_params(WindowRule, dict(options), "compare"))
    paths = [Path(d) for d in dirs]
    resolved = [p.resolve() for p in paths]
    repeated = [str(p) for p, q in zip(paths, resolved) if resolved.count(q) > 1]
    if repeated:
        raise FreqdiffError(f"compare: the same DIR given twice: {', '.join(repeated)}")
    loaded = [_recipe(p, label, options) for p, label in zip(paths, _labels(paths))]
    _require_same([(str(run.path), _data_settings(config)) for recipe, configs in loaded
                   for run, config in zip(recipe.runs, configs)],
                  f"compare: {DIFFERENT_DATA}")
    recipes = tuple(recipe for recipe, _ in loaded)
    _check_disjoint(recipes)
    labels = [r.label for r in recipes]
    if reference is not None and reference not in labels:
        raise FreqdiffError(f"compare: unknown --reference {reference!r}; choices: {', '.join(labels)}")
    ref = recipes[labels.index(reference)] if reference is not None else recipes[0]
    versus = tuple(_versus(r, ref, rule) for r in recipes if r is not ref)
    return Comparison(recipes, ref.label, versus, rule)
