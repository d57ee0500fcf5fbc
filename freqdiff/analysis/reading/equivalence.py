"""Quality at tau_gen, recipe against reference: a two-sided equivalence test (TOST) per measure against
margins calibrated per feature extractor.

Four measures are tested: the FD (lower is better), recognizable, recall and coverage (higher is better);
recall and coverage see a sample set that misses modes (digit classes), which the FD barely does. Each value
arrives as a Level (mean over seeds and its 2-sigma error). Per measure, with d = recipe - reference and
se = sqrt(err_recipe^2 + err_reference^2) / 2, the 90% interval d -+ z(0.95) se is the TOST at 5% per side
(normal quantile: the errors travel without degrees of freedom). Oriented so that a gain is good (d for the
higher-is-better measures, -d for the FD), with `margin` the measure's calibrated margin:

- matched: the interval lies inside (-margin, +margin): the two are shown equivalent within the margin;
- better: the interval lies above 0 and is not inside the margins: significantly better (5% one-sided)
  and not shown equivalent, i.e. plausibly better by more than the margin;
- worse: the mirror image: the interval lies below 0 and is not inside the margins;
- inconclusive: neither (the interval reaches past a margin and covers 0).

Over the four: matched when all four are matched; lower quality when any is worse; better quality when at
least one is better and the others matched or better; quality unchecked when a measure has no value or no
error (or the extractor no margins); else quality inconclusive.

The margins are derived by `freqdiff calibrate` (freqdiff.commands.calibrate.derive_margins) from the
calibration table and stored, keyed by extractor, beside the quality gate in freqdiff/metrics/gates.json
under MARGINS_KEY.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from scipy import stats

from freqdiff.core.io import read_json
from freqdiff.metrics.quality import GATES

MEASURES = ("fid", "recognizable", "recall", "coverage")
LOWER_IS_BETTER = ("fid",)
LEVEL = 0.90  # two-sided level of the interval: the TOST at 5% per side
Z = float(stats.norm.ppf(0.5 + LEVEL / 2))  # 1.645
MARGINS_KEY = "equivalence_margins"  # gates.json: {MARGINS_KEY: {extractor: {measure: margin, ..., "source": ...}}}

MATCHED, BETTER, LOWER_QUALITY = "matched", "better quality", "lower quality"
INCONCLUSIVE, UNCHECKED = "quality inconclusive", "quality unchecked"
COMPARABLE = (MATCHED, BETTER)  # the statuses at which a window factor means something
SIDES = ("matched", "better", "worse", "inconclusive", "unknown")  # per measure


@dataclass(frozen=True)
class Level:
    """A quality measure pooled over seeds: mean, its 2-sigma error (nan: unknown) and the seeds behind it."""

    value: float
    err: float
    seeds: int

    def __str__(self) -> str:
        return f"{self.value:.3g}" + ("" if math.isnan(self.err) else f" ± {self.err:.2g}")


@dataclass(frozen=True)
class Margins:
    """The equivalence margin of each measure in one feature space, and how they were derived."""

    extractor: str
    values: dict[str, float]  # measure -> margin (> 0), in the measure's units
    source: str  # one line: the rule and the calibration table behind it


def margins_for(extractor: str, path: Path | None = None) -> Margins | None:
    """The calibrated margins of an extractor (None when it has none, or lacks one of MEASURES)."""
    path = GATES if path is None else path
    entry = (read_json(path) if path.is_file() else {}).get(MARGINS_KEY, {}).get(extractor)
    if not entry or any(m not in entry for m in MEASURES):
        return None
    return Margins(extractor, {m: float(entry[m]) for m in MEASURES}, str(entry.get("source", "")))


def label_of(measure: str, extractor: str) -> str:
    """What a reader sees: the FD always with the features that made it."""
    return f"FD ({extractor or 'unknown'} features)" if measure == "fid" else f"{measure} ({extractor or 'unknown'})"


@dataclass(frozen=True)
class Measured:
    """One quality measure at tau_gen, recipe against reference, at one n: its equivalence test."""

    measure: str  # metrics column
    label: str  # what a reader sees, with the features behind it
    mine: Level | None
    ref: Level | None
    tolerance: float | None  # combined 2-sigma error of the difference; None when unknown
    side: str  # matched | better | worse | inconclusive | unknown
    margin: float | None = None  # the calibrated margin (None: none)
    difference: float | None = None  # mine - reference
    interval: tuple[float, float] | None = None  # LEVEL interval of mine - reference

    @property
    def half_width(self) -> float | None:
        """Half the width of the LEVEL interval of the difference."""
        return None if self.interval is None else (self.interval[1] - self.interval[0]) / 2

    def __str__(self) -> str:
        levels = f"{self.mine or '—'} vs {self.ref or '—'}"
        if self.interval is None or self.difference is None:
            why = "no margin" if self.margin is None and self.mine and self.ref else "no value or no sampling error"
            return f"{self.side} on {self.label} ({levels}; {why})"
        lower = "; lower is better" if self.measure in LOWER_IS_BETTER else ""
        return (f"{self.side} on {self.label} ({self.difference:+.3g} ± {self.half_width:.2g}, "
                f"margin {self.margin:.3g}{lower}; {levels})")


def tost(measure: str, label: str, mine: Level | None, ref: Level | None, margin: float | None) -> Measured:
    """The two-sided equivalence test of one measure (see the module docstring for the four sides)."""
    known = (mine is not None and ref is not None and math.isfinite(mine.value) and math.isfinite(ref.value)
             and math.isfinite(mine.err) and math.isfinite(ref.err))
    if not known or margin is None or not margin > 0:
        return Measured(measure, label, mine, ref, None, "unknown", margin)
    tolerance = math.sqrt(mine.err ** 2 + ref.err ** 2)  # 2 sigma of the difference
    difference = mine.value - ref.value
    half = Z * tolerance / 2
    sign = -1 if measure in LOWER_IS_BETTER else 1
    gain_low, gain_high = sorted((sign * (difference - half), sign * (difference + half)))
    if -margin < gain_low and gain_high < margin:
        side = "matched"
    elif gain_low > 0:
        side = "better"
    elif gain_high < 0:
        side = "worse"
    else:
        side = "inconclusive"
    return Measured(measure, label, mine, ref, tolerance, side, margin, difference,
                    (difference - half, difference + half))


def outcome(measures: tuple[Measured, ...]) -> str:
    """The status over all measures (see the module docstring)."""
    sides = [m.side for m in measures]
    if "worse" in sides:
        return LOWER_QUALITY
    if "unknown" in sides:
        return UNCHECKED
    if all(s == "matched" for s in sides):
        return MATCHED
    if all(s in ("matched", "better") for s in sides):
        return BETTER
    return INCONCLUSIVE


HEADS = {MATCHED: "matched quality", BETTER: "better quality", LOWER_QUALITY: "generation at lower quality",
         INCONCLUSIVE: "quality inconclusive", UNCHECKED: "quality unchecked"}
HOW = f"recipe - reference ± the half-width of its {LEVEL:.0%} interval, against the calibrated margin"


def note_of(status: str, measures: tuple[Measured, ...]) -> str:
    """One line: the status, then every measure by side, the decisive sides first."""
    order = {"worse": 0, "unknown": 1, "inconclusive": 2, "better": 3, "matched": 4}
    ranked = sorted(measures, key=lambda m: order[m.side])
    return f"{HEADS[status]} ({HOW}): " + "; ".join(map(str, ranked))


def judge(mine: Mapping[str, Level], ref: Mapping[str, Level], extractor: str,
          margins: Margins | None) -> tuple[str, tuple[Measured, ...], str]:
    """(status, per-measure tests, note) of the recipe's quality levels against the reference's."""
    if margins is None:
        return UNCHECKED, (), (f"quality unchecked: no equivalence margins calibrated for {extractor or 'unknown'} "
                               "features (`freqdiff calibrate` derives them)")
    measures = tuple(tost(m, label_of(m, extractor), mine.get(m), ref.get(m), margins.values.get(m)) for m in MEASURES)
    status = outcome(measures)
    return status, measures, note_of(status, measures)


def margins_entry(margins: Margins) -> dict[str, Any]:
    """The gates.json form of margins (under MARGINS_KEY, keyed by extractor)."""
    return {**{m: margins.values[m] for m in MEASURES}, "source": margins.source}
