"""Recipes against a reference at each common n: generation first, then quality, then the window factors.

Factors (freqdiff.analysis.inference) are given at an n only when every seed of both recipes generates
images (by the calibrated quality gate) and their quality at tau_gen is equivalent or better on FD,
recognizability, recall and coverage (a two-sided equivalence test against calibrated margins,
freqdiff.analysis.reading.equivalence): the scale-free width log(tau_mem/tau_gen) first, then the
absolute width, each with a Student-t interval over seeds; tau_mem from an interval-censored AFT model,
with an exact permutation p beside it. Otherwise the verdict names the reason (no quality gate, no
generation, lower quality, quality inconclusive); it never calls such a window wider. A censored tau
turns a factor into a bound; none is invented.

This module reads the DIRs and puts each recipe against the reference; matching.py says whether two recipes can
be compared at an n, factors.py computes the factors, verdicts.py words the verdict.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from freqdiff.analysis.inference.base import seeds_text
from freqdiff.analysis.reading.equivalence import COMPARABLE
from freqdiff.analysis.reading.factors import Factor, not_compared, pooled_factor, tau_mem_factor, width_factors
from freqdiff.analysis.reading.matching import Match, match
from freqdiff.analysis.reading.onsets import WindowRule
from freqdiff.analysis.reading.pooling import (DIFFERENT_DATA, Recipe, data_settings, read_recipe, refined_sizes,
                                               require_same)
from freqdiff.analysis.reading.verdicts import basis_of, verdict
from freqdiff.core.registry import FreqdiffError, build_params

INTERVALS = ("Width: the scale-free width log(tau_mem/tau_gen) per seed, the recipe's mean minus the reference's, "
             "as a factor on tau_mem/tau_gen with a Student-t interval (paired by seed when both recipes ran the "
             "same seeds, else Welch); second, the absolute width tau_mem - tau_gen, exp(mean log ratio) with the "
             "same kind of t-interval. tau_mem: exp(coef) of an interval-censored log-normal accelerated-failure-"
             "time model (lifelines; Weibull where it does not converge), Wald interval with a small-sample t "
             "correction, beside the exact two-sided permutation test (Gehan score) over all relabelings of the "
             "seeds. Each interval names its method and the seeds on each side; none is defined with one seed.")


@dataclass(frozen=True)
class Versus:
    """One recipe against the reference: per common n the match and the factors, pooled fallbacks, verdict."""

    recipe: str
    reference: str
    common_n: tuple[int, ...]
    matches: tuple[Match, ...]
    width: tuple[Factor, ...]  # the scale-free width (tau_mem/tau_gen): primary
    absolute_width: tuple[Factor, ...]  # tau_mem - tau_gen: second, labelled absolute
    tau_mem: tuple[Factor, ...]
    pooled_width: Factor | None  # only when no n has an interval of its own
    pooled_tau_mem: Factor | None
    verdict: str
    refined: tuple[int, ...] = ()  # the common n read off refined curves on both sides


@dataclass(frozen=True)
class Comparison:
    """Every recipe's windows and each recipe against the reference."""

    recipes: tuple[Recipe, ...]
    reference: str
    versus: tuple[Versus, ...]
    rule: dict[str, Any]
    refined: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()  # (label, *refined_sizes) per DIR


def versus(mine: Recipe, ref: Recipe, refined: Collection[int] = ()) -> Versus:
    """Per common n: the match, then the width (scale-free, absolute) and tau_mem factors where the quality is
    matched or better (COMPARABLE); pooled fallbacks; the verdict. `refined`: the n at which both were read off
    refined curves."""
    common = sorted({row.group.n for row in mine.rows} & {row.group.n for row in ref.rows})
    matches = tuple(match(n, mine, ref) for n in common)
    widths = [width_factors(m.n, mine, ref) if m.status in COMPARABLE else
              (not_compared("width", m), not_compared("absolute_width", m)) for m in matches]
    width, absolute = tuple(w for w, _ in widths), tuple(a for _, a in widths)
    tau_mem = tuple(tau_mem_factor(m.n, mine, ref) if m.status in COMPARABLE else not_compared("tau_mem", m)
                    for m in matches)
    compared = [m.n for m in matches if m.status in COMPARABLE]
    counts = sorted({(len(mine.at(n)), len(ref.at(n))) for n in compared})
    seeds = " or ".join(seeds_text(c) for c in counts)
    pooled_width, pooled_tau_mem = (pooled_factor(q, f, seeds) if compared else None
                                    for q, f in (("width", width), ("tau_mem", tau_mem)))
    sentence = verdict(mine, ref, matches, width, basis_of(width, pooled_width), basis_of(tau_mem, pooled_tau_mem),
                       absolute)
    alike = tuple(n for n in common if n in refined)
    notes = seeds_note(mine, ref, common) + sampling_note(mine, ref) + refined_note(alike)
    return Versus(mine.label, ref.label, tuple(common), matches, width, absolute, tau_mem, pooled_width,
                  pooled_tau_mem, sentence + notes, alike)


def sampling_note(mine: Recipe, ref: Recipe) -> str:
    """A warning where the two recipes were sampled with different samplers or x0 clipping ('' when the same):
    clipping x0_hat changes how many samples land on training images, so a factor would mix it in."""
    if mine.sampling == ref.sampling:
        return ""
    return (f" Caution: sampled differently ({mine.label}: {mine.sampling}; {ref.label}: {ref.sampling}); "
            "x0 clipping changes the copy count, so the factors mix the sampler with the recipe.")


def refined_note(alike: Sequence[int]) -> str:
    """The common n read off refined curves on both sides ('' when none)."""
    return f" Read off refined curves on both sides at n = {_sizes(alike)}." if alike else ""


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
    refined = {p: refined_sizes([p]) for p in paths}
    loaded = [read_recipe(p, label, options, refined[p][0]) for p, label in zip(paths, _labels(paths))]
    require_same([(str(run.path), data_settings(config)) for recipe, configs in loaded
                  for run, config in zip(recipe.runs, configs)], f"compare: {DIFFERENT_DATA}")
    recipes = tuple(recipe for recipe, _ in loaded)
    _check_disjoint(recipes)
    labels = [r.label for r in recipes]
    if reference is not None and reference not in labels:
        raise FreqdiffError(f"compare: unknown --reference {reference!r}; choices: {', '.join(labels)}")
    ref = recipes[labels.index(reference)] if reference is not None else recipes[0]
    alike = _AlikeReader({r.label: refined[r.path][0] for r in recipes}, options)
    return Comparison(recipes, ref.label, tuple(versus(*alike(r, ref)) for r in recipes if r is not ref), rule,
                      tuple((r.label, *refined[r.path]) for r in recipes))


class _AlikeReader:
    """Two recipes read alike for a factor: off refined curves only at the n where every run of both DIRs is
    refined, off each run's own curve elsewhere (the unrefined tau_mem errs early, by different amounts for
    different recipes). Each recipe's own reading, refined wherever its DIR is, serves its windows."""

    def __init__(self, own: dict[str, tuple[int, ...]], options: Mapping[str, Any]) -> None:
        self.own, self.options = own, options
        self.cache: dict[tuple[str, tuple[int, ...]], Recipe] = {}

    def read(self, recipe: Recipe, sizes: tuple[int, ...]) -> Recipe:
        """The recipe read off refined curves at `sizes` only (its own reading when that is the same)."""
        if sizes == self.own[recipe.label]:
            return recipe
        key = (recipe.label, sizes)
        if key not in self.cache:
            self.cache[key] = read_recipe(recipe.path, recipe.label, self.options, sizes)[0]
        return self.cache[key]

    def __call__(self, mine: Recipe, ref: Recipe) -> tuple[Recipe, Recipe, tuple[int, ...]]:
        both = tuple(n for n in self.own[mine.label] if n in self.own[ref.label])
        return self.read(mine, both), self.read(ref, both), both


def refinement_text(comparison: Comparison) -> str:
    """Which DIRs were read off refined curves at which n, and how factors read both sides alike ('' if no run
    was refined)."""
    every = [f"{label} at n = {_sizes(ns)}" for label, ns, _ in comparison.refined if ns]
    some = [f"{label} at n = {_sizes(ns)}" for label, _, ns in comparison.refined if ns]
    if not every and not some:
        return ""
    parts = [f"Windows are read off refined curves (`freqdiff refine`) where every run of a DIR at that n is refined "
             f"({'; '.join(every) if every else 'nowhere'}), off each run's own curve elsewhere"]
    parts += [f"only some runs are refined, so all are read off their own curves: {'; '.join(some)}"] if some else []
    return ("; ".join(parts) + ". A factor reads both sides alike: off refined curves only at an n where both DIRs "
            "are refined, else off their own curves (the unrefined tau_mem errs early, by different amounts for "
            "different recipes); each verdict names which.")


def _sizes(ns: Sequence[int]) -> str:
    """'128, 256'."""
    return ", ".join(map(str, ns))
