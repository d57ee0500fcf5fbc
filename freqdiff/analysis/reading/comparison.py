"""Recipes against a reference at each common n: generation first, then quality, then the window factor.

A window factor (recipe / reference, ratio of geometric means over seeds, with a percentile bootstrap
interval over seeds) is given at an n only when every seed of both recipes generates images (by the
calibrated quality gate) and the two match in quality at tau_gen: the gate's measure and the FD each
differ by no more than their combined 2-sigma errors. Otherwise the verdict names the reason: no
quality gate, no generation, or generation at lower quality; it never calls such a window wider.
A bounded tau (censored, or at the first checkpoint) turns a factor into a bound; none is invented.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from freqdiff.analysis.reading.onsets import WindowRule, gate_text
from freqdiff.analysis.reading.pooling import DIFFERENT_DATA, Level, Recipe, data_settings, read_recipe, require_same
from freqdiff.analysis.reading.window import Window
from freqdiff.analysis.statistics import bootstrap_over_seeds, combined_err, t_interval
from freqdiff.registry import FreqdiffError, build_params

DRAWS = 2000
SEED = 0
COVERAGE = ("A percentile bootstrap over few seeds covers less than its nominal 95% (simulated, normal log-noise: "
            "about 68% with 2 seeds per recipe, 82% with 3, 88% with 5).")
MATCHED, LOWER_QUALITY, UNCHECKED = "matched", "lower quality", "quality unchecked"
NO_GATE, NO_GENERATION, REFERENCE_NO_GENERATION = "no quality gate", "no generation", "reference does not generate"
BOUND_WORDS = {">=": "a lower bound", "<=": "an upper bound", "mixed": "bounded both ways across seeds"}


@dataclass(frozen=True)
class Factor:
    """recipe / reference for `quantity` at n (None: pooled over n), with its 95% interval and how it was got.

    bound '>=': a lower bound, only the interval's low end means something; '<=': an upper bound.
    """

    quantity: str  # width | tau_mem
    n: int | None
    estimate: float | None
    interval: tuple[float | None, float | None] | None  # None: undefined (see note)
    bound: str
    method: str
    note: str  # why the factor or its interval is undefined, or why it is a bound


@dataclass(frozen=True)
class Measured:
    """One quality measure at tau_gen, recipe against reference, at one n."""

    measure: str  # metrics column: 'fid' or the gate's measure
    label: str  # what a reader sees, with the features behind it
    mine: Level | None
    ref: Level | None
    tolerance: float | None  # combined 2-sigma error of the two; None when unknown
    side: str  # matched | worse | better | unknown

    def __str__(self) -> str:
        tolerance = "unknown error" if self.tolerance is None else f"combined 2-sigma error {self.tolerance:.2g}"
        return f"{self.label} {self.mine or '—'} vs {self.ref or '—'} ({tolerance})"


@dataclass(frozen=True)
class Match:
    """Can the recipe and the reference be compared at n, and if not, why (one phrase for the verdict)."""

    n: int
    status: str  # matched | no quality gate | no generation | reference does not generate | lower quality | ...
    measures: tuple[Measured, ...]
    note: str


@dataclass(frozen=True)
class Versus:
    """One recipe against the reference: per common n the match and the factors, pooled fallbacks, verdict."""

    recipe: str
    reference: str
    common_n: tuple[int, ...]
    matches: tuple[Match, ...]
    width: tuple[Factor, ...]
    tau_mem: tuple[Factor, ...]
    pooled_width: Factor | None  # only when no n has a bootstrap interval
    pooled_tau_mem: Factor | None
    verdict: str


@dataclass(frozen=True)
class Comparison:
    """Every recipe's windows and each recipe against the reference."""

    recipes: tuple[Recipe, ...]
    reference: str
    versus: tuple[Versus, ...]
    rule: dict[str, Any]


# ----------------------------------------------------------------------------- generation and quality


def _generation_problem(mine: Sequence[Window], ref: Sequence[Window]) -> tuple[str, str] | None:
    """(status, note) when generation cannot be judged or fails on either side; None when all seeds generate."""
    undecided = [w for w in (*mine, *ref) if w.generation.generates is None]
    if undecided:
        return NO_GATE, undecided[0].generation.how
    for windows, status in ((mine, NO_GENERATION), (ref, REFERENCE_NO_GENERATION)):
        failing = sum(w.generation.generates is False for w in windows)
        if failing:
            gate = gate_text(windows[0].generation.gate)
            return status, f"{status} in {failing} of {len(windows)} seeds (gate: {gate})"
    return None


def _measured(measure: str, label: str, mine: Level | None, ref: Level | None, higher_is_better: bool) -> Measured:
    """Recipe against reference on one measure: matched when within the combined 2-sigma errors."""
    if mine is None or ref is None or math.isnan(mine.err) or math.isnan(ref.err):
        return Measured(measure, label, mine, ref, None, "unknown")
    tolerance = combined_err(mine.err, ref.err)
    gain = (mine.value - ref.value) * (1 if higher_is_better else -1)
    side = "matched" if abs(gain) <= tolerance else "better" if gain > 0 else "worse"
    return Measured(measure, label, mine, ref, tolerance, side)


def match(n: int, mine: Recipe, ref: Recipe) -> Match:
    """Whether the two can be compared at n: both generate at every seed and match in quality at tau_gen."""
    if mine.extractor != ref.extractor:
        note = f"quality unchecked: FD in {mine.extractor or 'unknown'} vs {ref.extractor or 'unknown'} features"
        return Match(n, UNCHECKED, (), note)
    problem = _generation_problem(mine.at(n), ref.at(n))
    if problem is not None:
        return Match(n, problem[0], (), problem[1])
    gate = mine.gate
    a, r = mine.row(n).at_gen, ref.row(n).at_gen
    measures = (_measured(gate.measure, f"{gate.measure} ({gate.extractor})", a.get(gate.measure),
                          r.get(gate.measure), True),
                _measured("fid", f"FD ({mine.extractor} features)", a.get("fid"), r.get("fid"), False))
    worse = [m for m in measures if m.side == "worse"]
    if worse:
        return Match(n, LOWER_QUALITY, measures, "generation at lower quality: " + "; ".join(map(str, worse)))
    unknown = [m for m in measures if m.side == "unknown"]
    if unknown:
        return Match(n, UNCHECKED, measures, "quality unchecked (no sampling error): " + "; ".join(map(str, unknown)))
    return Match(n, MATCHED, measures, "matched quality: " + "; ".join(map(str, measures)))


# ----------------------------------------------------------------------------- factors


def _per_seed(windows: Sequence[Window], quantity: str) -> tuple[np.ndarray | None, str, str]:
    """log of the per-seed values (None if some seed has none or one <= 0), their joint bound and why."""
    if quantity == "width":
        values, bounds = [w.width for w in windows], [w.bound for w in windows]
        whys = {w.width_note for w in windows if w.bound}
    else:
        values, bounds = [w.tau_mem_earlier.step for w in windows], [w.tau_mem_earlier.bound for w in windows]
        whys = {"tau_mem censored (no copies by the last checkpoint)" if w.tau_mem_earlier.bound == ">="
                else "tau_mem at the first checkpoint" for w in windows if w.tau_mem_earlier.bound}
    sides = set(bounds) - {""}
    bound = "mixed" if len(sides) > 1 else sides.pop() if sides else ""
    if any(v is None or v <= 0 for v in values):
        return None, bound, "; ".join(sorted(whys))
    return np.log(np.asarray(values, float)), bound, "; ".join(sorted(whys))


def ratio_bound(mine: str, ref: str) -> str | None:
    """The bound of mine / ref from the bounds of each; None when they leave it unbounded."""
    if "mixed" in (mine, ref):
        return None
    sides = {mine, {">=": "<=", "<=": ">="}.get(ref, "")} - {""}
    return None if len(sides) > 1 else sides.pop() if sides else ""


def _sided(low: float, high: float, bound: str) -> tuple[float | None, float | None]:
    """Drop the end of an interval that a bound makes meaningless."""
    return (None if bound == "<=" else low, None if bound == ">=" else high)


def _bootstrap(a: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Percentile 95% interval of exp(mean a - mean r), resampling each recipe's seeds with replacement."""
    low, high = bootstrap_over_seeds([a, r], lambda picks: picks[0].mean(1) - picks[1].mean(1), DRAWS, SEED)
    return math.exp(low), math.exp(high)


def factor(quantity: str, n: int, mine: Recipe, ref: Recipe) -> Factor:
    """Geometric mean over seeds of the recipe over that of the reference, with a bootstrap interval."""
    a, a_bound, a_why = _per_seed(mine.at(n), quantity)
    r, r_bound, r_why = _per_seed(ref.at(n), quantity)
    method = "ratio of geometric means over seeds"
    if a is None or r is None:
        return Factor(quantity, n, None, None, "", method, f"undefined: a seed has no {quantity} > 0")
    bound = ratio_bound(a_bound, r_bound)
    sides = "; ".join(f"{label}'s {quantity} is {BOUND_WORDS[b]} ({why})" for label, b, why in
                      ((mine.label, a_bound, a_why), (ref.label, r_bound, r_why)) if b)
    if bound is None:
        return Factor(quantity, n, None, None, "", method, f"undefined: the bounds leave no direction: {sides}")
    estimate = float(np.exp(a.mean() - r.mean()))
    if min(len(a), len(r)) < 2:
        return Factor(quantity, n, estimate, None, bound, method,
                      f"interval undefined: one seed ({len(a)} vs {len(r)} seeds)" + (f"; {sides}" if sides else ""))
    method += f"; percentile bootstrap over seeds ({len(a)} vs {len(r)} seeds, {DRAWS} draws, seed {SEED})"
    return Factor(quantity, n, estimate, _sided(*_bootstrap(a, r), bound), bound, method, sides)


def _not_compared(quantity: str, m: Match) -> Factor:
    """No factor where the two do not both generate at matched quality."""
    return Factor(quantity, m.n, None, None, "", "none: not at matched quality", m.note)


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
        return Factor(quantity, None, None, None, "", method, "undefined: bounds in opposite directions across n")
    logs = np.log([f.estimate for f in usable])
    bound = bounds.pop() if bounds else ""
    low, high = np.exp(t_interval(logs.mean(), logs.std(ddof=1) / math.sqrt(len(logs)), len(logs) - 1))
    return Factor(quantity, None, float(np.exp(logs.mean())), _sided(float(low), float(high), bound), bound,
                  method, f"over n = {', '.join(str(f.n) for f in usable)}")


# ----------------------------------------------------------------------------- verdict


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


# What a factor above / below / at 1 says, per quantity.
DIRECTIONS = {"width": ("widens the window", "narrows the window", "does not change the window"),
              "tau_mem": ("delays memorization", "brings memorization earlier", "does not change tau_mem")}


def _claim(f: Factor, label: str, reference: str) -> str:
    """One sentence: does the recipe widen the window (or delay tau_mem), by what factor, how sure."""
    where = f"at n = {f.n}" if f.n is not None else f"as the geometric mean {f.note}"
    size = f"{f.quantity} {f.bound + ' ' if f.bound else ''}{f.estimate:.3g} times the reference's {where}"
    bounded = f"; {f.note}" if f.bound and f.n is not None else ""
    if (f.bound == ">=" and f.estimate <= 1) or (f.bound == "<=" and f.estimate >= 1):
        return f"{label} against {reference} is inconclusive: {size}, a bound on the wrong side of 1{bounded}."
    up, down, same = DIRECTIONS[f.quantity]
    direction = up if f.estimate > 1 else down if f.estimate < 1 else same
    if f.interval is None:
        return f"{label} {direction} against {reference}: {size} (no confidence can be given{bounded})."
    low, high = f.interval
    clear = (low is not None and low > 1) or (high is not None and high < 1)
    kind = "bootstrap interval over seeds" if f.n is not None else "t-interval over n"
    interval = f"95% {kind} {interval_text(f)}, {'excludes' if clear else 'includes'} 1{bounded}"
    if not clear:
        return f"{label} does not clearly change {f.quantity} against {reference}: {size} ({interval})."
    return f"{label} {direction} against {reference}: {size} ({interval})."


def _by_note(matches: Sequence[Match]) -> str:
    """'n = 4, 8: <note>; n = 16: <note>' with the n that share a reason grouped."""
    notes: dict[str, list[int]] = {}
    for m in matches:
        notes.setdefault(m.note, []).append(m.n)
    return "; ".join(f"n = {', '.join(map(str, ns))}: {note}" for note, ns in notes.items())


def verdict(mine: Recipe, ref: Recipe, matches: Sequence[Match], width: Sequence[Factor],
            basis: Factor | None, tau_mem_basis: Factor | None) -> str:
    """The recipe against the reference: the window claim at matched quality, or the reason there is none.

    Where no width factor exists at matched quality (a seed's window is closed), the tau_mem factor is quoted.
    """
    if not matches:
        return f"{mine.label} and {ref.label} share no n: nothing to compare."
    matched = [m for m in matches if m.status == MATCHED]
    excluded = [m for m in matches if m.status != MATCHED]
    if not matched:
        return f"{mine.label} against {ref.label}: no window factor. {_by_note(excluded)}."
    measures = " and ".join(dict.fromkeys(m.label for match in matched for m in match.measures))
    quality = (f"At matched quality on {measures} (within their combined 2-sigma errors) at "
               f"n = {', '.join(str(m.n) for m in matched)}.")
    rest = f" Not compared at {_by_note(excluded)}." if excluded else ""
    if basis is None:
        why = "; ".join(f"n = {f.n}: {f.note}" for f in width if f.note)
        mem = f" {_claim(tau_mem_basis, mine.label, ref.label)}" if tau_mem_basis is not None else ""
        return f"{mine.label} against {ref.label}: no width factor ({why}).{mem} {quality}{rest}"
    return f"{_claim(basis, mine.label, ref.label)} {quality}{rest}"


def versus(mine: Recipe, ref: Recipe) -> Versus:
    """Per common n: the match, then width and tau_mem factors where matched; pooled fallbacks; the verdict."""
    common = sorted({row.group.n for row in mine.rows} & {row.group.n for row in ref.rows})
    matches = tuple(match(n, mine, ref) for n in common)
    width, tau_mem = (tuple(factor(q, m.n, mine, ref) if m.status == MATCHED else _not_compared(q, m)
                            for m in matches) for q in ("width", "tau_mem"))
    compared = any(m.status == MATCHED for m in matches)
    pooled_width, pooled_tau_mem = (_pooled(q, f) if compared else None for q, f in (("width", width),
                                                                                     ("tau_mem", tau_mem)))
    sentence = verdict(mine, ref, matches, width, _basis(width, pooled_width), _basis(tau_mem, pooled_tau_mem))
    return Versus(mine.label, ref.label, tuple(common), matches, width, tau_mem, pooled_width, pooled_tau_mem,
                  sentence + seeds_note(mine, ref, common))


def seeds_note(mine: Recipe, ref: Recipe, common: Sequence[int]) -> str:
    """A warning where the two recipes were measured over different seeds at some n ('' when the same)."""
    differ = [(n, sorted(mine.row(n).group.seeds, key=str), sorted(ref.row(n).group.seeds, key=str)) for n in common]
    differ = [(n, a, r) for n, a, r in differ if a != r]
    if not differ:
        return ""
    text = "; ".join(f"n = {n}: seeds {', '.join(map(str, a))} against {', '.join(map(str, r))}" for n, a, r in differ)
    return f" Caution: different seeds ({text}); compare over the same seeds to separate the recipe from the seeds."


# ----------------------------------------------------------------------------- reading the DIRs


def _labels(paths: Sequence[Path]) -> list[str]:
    """Each DIR's name, or its path as given when two DIRs share a name."""
    names = [p.resolve().name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _check_disjoint(recipes: Sequence[Recipe]) -> None:
    """Refuse a run that lies in two DIRs (one DIR inside another)."""
    owner: dict[Path, str] = {}
    for recipe in recipes:
        for run in recipe.runs:
            key = run.path.resolve()
            if key in owner:
                raise FreqdiffError(f"compare: run {run.path} is in two DIRs ({owner[key]} and {recipe.path})")
            owner[key] = str(recipe.path)


def variant_dirs(path: Path) -> list[Path]:
    """A strength study's DIR (`--vary`: one subdirectory of runs per value, no run of its own) as its
    subdirectories, each one recipe; any other DIR as itself."""
    if not path.is_dir() or any(path.glob("*/config.json")):
        return [path]
    variants = sorted(d for d in path.iterdir() if d.is_dir() and any(d.glob("*/config.json")))
    return variants or [path]


def compare(dirs: Sequence[str | Path], reference: str | None = None, **options: Any) -> Comparison:
    """Read every DIR (one recipe each; a strength study's DIR as one per strength), check they share data and
    test set, compare each to the reference.

    `options` are WindowRule parameters (as for `freqdiff window`); `reference` is a DIR label (default:
    the first DIR). Nothing is written.
    """
    if not dirs:
        raise FreqdiffError("compare: expected one or more DIRs, one per recipe")
    rule = dataclasses.asdict(build_params(WindowRule, dict(options), "compare"))
    paths = [variant for d in dirs for variant in variant_dirs(Path(d))]
    resolved = [p.resolve() for p in paths]
    repeated = [str(p) for p, q in zip(paths, resolved) if resolved.count(q) > 1]
    if repeated:
        raise FreqdiffError(f"compare: the same DIR given twice: {', '.join(repeated)}")
    loaded = [read_recipe(p, label, options) for p, label in zip(paths, _labels(paths))]
    require_same([(str(run.path), data_settings(config)) for recipe, configs in loaded
                  for run, config in zip(recipe.runs, configs)], f"compare: {DIFFERENT_DATA}")
    recipes = tuple(recipe for recipe, _ in loaded)
    _check_disjoint(recipes)
    labels = [r.label for r in recipes]
    if reference is not None and reference not in labels:
        raise FreqdiffError(f"compare: unknown --reference {reference!r}; choices: {', '.join(labels)}")
    ref = recipes[labels.index(reference)] if reference is not None else recipes[0]
    return Comparison(recipes, ref.label, tuple(versus(r, ref) for r in recipes if r is not ref), rule)
