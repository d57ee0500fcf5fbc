"""An exact two-sided permutation test of recipe against reference over every relabeling of the pooled seeds,
with the Gehan score (valid for interval-censored values).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from freqdiff.analysis.inference.base import Bracket, Inference, brackets, seeds_text
from freqdiff.core.registry import FreqdiffError

MAX_RELABELINGS = 2_000_000  # an exact permutation test enumerates every relabeling; beyond this it refuses


@dataclass(frozen=True)
class PermutationTest(Inference):
    """estimate: the observed Gehan score (recipe above reference counts +1 per pair); interval is None."""

    p: float  # two-sided: fraction of relabelings with |score| >= the observed |score|
    relabelings: int
    smallest_p: float  # the smallest p these seeds can give at all


def gehan_scores(values: np.ndarray) -> np.ndarray:
    """Per seed: the number of other seeds its bracket lies wholly above minus those it lies wholly below.

    One bracket lies above another when its low end exceeds the other's high end; brackets that overlap or
    touch (ties, censored ends) count 0, so the score is valid for interval-censored values.
    """
    above = values[:, 0][:, None] > values[:, 1][None, :]
    return above.sum(1).astype(np.int64) - above.sum(0).astype(np.int64)


def permutation_test(recipe: Sequence[Bracket], reference: Sequence[Bracket]) -> PermutationTest:
    """Exact two-sided permutation test of 'the recipe's taus lie above (or below) the reference's'.

    Statistic: the Gehan score, the sum over (recipe, reference) pairs of +1 where the recipe's bracket lies
    wholly above the reference's, -1 wholly below, 0 where they overlap. Under no effect every relabeling of
    the pooled seeds into groups of the same sizes is equally likely; p is the fraction of all
    C(k, k_recipe) relabelings (itertools.combinations) whose |score| reaches the observed one. The
    smallest attainable p is 2 / C(k, k_recipe) with no ties (0.1 for 3 vs 3 seeds, 0.333 for 2 vs 2),
    so few seeds cannot give a small p however large the effect.
    """
    a, r = brackets(recipe, "recipe"), brackets(reference, "reference")
    seeds = (len(a), len(r))
    total = math.comb(sum(seeds), seeds[0])
    if total > MAX_RELABELINGS:
        raise FreqdiffError(f"permutation_test: {total} relabelings of {seeds_text(seeds)} is too many to enumerate "
                            f"(at most {MAX_RELABELINGS})")
    rows = gehan_scores(np.vstack([a, r]))  # with an antisymmetric pair score, a group's score is its rows' sum
    observed = int(rows[: seeds[0]].sum())
    picks = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(sum(seeds)), seeds[0])),
                        dtype=np.int64, count=total * seeds[0]).reshape(total, seeds[0])
    scores = np.abs(rows[picks].sum(1))
    p = float((scores >= abs(observed)).mean())
    smallest = float((scores >= scores.max()).mean())
    method = (f"exact two-sided permutation test, Gehan score, over all {total} relabelings, "
              f"{seeds_text(seeds)}")
    best = min(1.0, 2 / total)
    note = (f"smallest attainable p with these values: {smallest:.3g}" +
            ("" if smallest == best else f" (with no ties: {best:.3g})") +
            f"; {seeds_text(seeds)} cannot give p < {best:.3g}")
    return PermutationTest(float(observed), None, method, note, p, total, smallest)
