"""Can a recipe and the reference be compared at n: every seed of both generates (by the calibrated quality
gate), then their quality at tau_gen by the equivalence test of freqdiff.analysis.reading.equivalence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from freqdiff.analysis.reading.equivalence import UNCHECKED, Measured, judge, margins_for
from freqdiff.analysis.reading.onsets import gate_text
from freqdiff.analysis.reading.pooling import Recipe
from freqdiff.analysis.reading.window import Window

NO_GATE, NO_GENERATION, REFERENCE_NO_GENERATION = "no quality gate", "no generation", "reference does not generate"


@dataclass(frozen=True)
class Match:
    """Can the recipe and the reference be compared at n, and if not, why (one phrase for the verdict)."""

    n: int
    status: str  # matched | better quality | lower quality | quality inconclusive | quality unchecked | no quality
    # gate | no generation | reference does not generate; a window factor means something at COMPARABLE ones
    measures: tuple[Measured, ...]
    note: str


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


def match(n: int, mine: Recipe, ref: Recipe) -> Match:
    """Whether the two can be compared at n: both generate at every seed, then the quality at tau_gen by the
    equivalence test of freqdiff.analysis.reading.equivalence (FD, recognizable, recall, coverage against the
    margins calibrated for their extractor): MATCHED, BETTER, LOWER_QUALITY, INCONCLUSIVE or UNCHECKED."""
    if mine.extractor != ref.extractor:
        note = f"quality unchecked: FD in {mine.extractor or 'unknown'} vs {ref.extractor or 'unknown'} features"
        return Match(n, UNCHECKED, (), note)
    problem = _generation_problem(mine.at(n), ref.at(n))
    if problem is not None:
        return Match(n, problem[0], (), problem[1])
    status, measures, note = judge(mine.row(n).at_gen, ref.row(n).at_gen, mine.extractor, margins_for(mine.extractor))
    return Match(n, status, measures, note)
