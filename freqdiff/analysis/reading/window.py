"""Read the generalization window [tau_gen, tau_mem] off one run's measured curves.

tau_gen is where the FID reaches its plateau near the minimum (about constant in n in the paper);
tau_mem is where f_mem leaves zero with confidence (it grows like n). Both are evaluated
checkpoint steps: the true crossing lies between the previous evaluated checkpoint and the one
reported. A run that never memorizes reports tau_mem censored at its last evaluated step.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from freqdiff.analysis.reading.curves import Curves, as_curves
from freqdiff.registry import FreqdiffError, build_params

CRITERIA = ("ci", "threshold")


@dataclass(frozen=True)
class WindowRule:
    """Parameters of the detection rules; each is a `freqdiff window --name value` option."""

    rel_tol: float = 0.1  # tau_gen band: FID <= min + max(rel_tol * |min|, abs_tol)
    abs_tol: float = 0.0  # floor of the band, for distances whose minimum is near 0
    smooth: int = 3  # width (odd) of the running median applied to FID before reading tau_gen
    criterion: str = "ci"  # ci: 95% lower bound of f_mem > 0; threshold: f_mem >= threshold
    threshold: float = 0.01  # f_mem level of criterion=threshold
    confirm: int = 1  # following checkpoints that must agree before a crossing counts

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise FreqdiffError(f"window.criterion: unknown value {self.criterion!r}; choices: {', '.join(CRITERIA)}")
        if self.smooth < 1 or self.smooth % 2 == 0:
            raise FreqdiffError(f"window.smooth: need an odd width >= 1, got {self.smooth}")
        if self.confirm < 0 or self.rel_tol < 0 or self.abs_tol < 0:
            raise FreqdiffError("window: confirm, rel_tol and abs_tol must be >= 0")


@dataclass(frozen=True)
class Window:
    """The generalization window of one run, in optimizer steps, with how each end was read."""

    tau_gen: int | None  # None when no FID was computed
    tau_mem: int | None  # None when no f_mem was computed; the last step when censored
    width: int | None  # tau_mem - tau_gen
    ratio: float | None  # tau_mem / tau_gen
    n: int | None  # training-set size
    tau_mem_censored: bool  # f_mem never left zero: tau_mem >= the value given
    tau_gen_censored: bool  # FID was already on its plateau at the first checkpoint: tau_gen <= the value
    lower_bounds: bool  # width and ratio are lower bounds (a censored end)
    tau_gen_how: str
    tau_mem_how: str
    rule: dict[str, Any]
    flags: tuple[str, ...]  # anything a reader must know before trusting the numbers
    min_fid: float | None  # the FID plateau level: lowest smoothed FID held for confirm+1 checkpoints
    extractor: str
    final_fmem: tuple[float, float | None, float | None] | None  # (f_mem, low, high) at the last checkpoint
    last_step: int

    def summary(self) -> str:
        """The window in a few terminal lines: both ends (with their bounds), width, ratio and flags."""
        gen = f"<= {self.tau_gen}" if self.tau_gen_censored else f"{self.tau_gen}"
        mem = f">= {self.tau_mem}" if self.tau_mem_censored else f"{self.tau_mem}"
        bound = ">= " if self.lower_bounds else ""
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.3g}"
        head = f"n={self.n}: tau_gen {gen}, tau_mem {mem}, width {bound}{self.width}, ratio {bound}{ratio}"
        quality = f" (min FD {self.min_fid:.4g}, {self.extractor} features)" if self.min_fid is not None else ""
        return "\n".join([head + quality, *(f"  flag: {flag}" for flag in self.flags)])


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Centered running median over `width` points, the window truncated at both ends."""
    half = width // 2
    return np.array([np.median(values[max(0, i - half): i + half + 1]) for i in range(len(values))])


def first_lasting(mask: np.ndarray, confirm: int) -> int | None:
    """First index i with mask true at i and at the next `confirm` indices that exist."""
    for i in range(len(mask)):
        if mask[i: i + confirm + 1].all():
            return i
    return None


def sustained(values: np.ndarray, confirm: int) -> np.ndarray:
    """Per index i, the highest value over i and the next `confirm` indices that exist."""
    return np.array([values[i: i + confirm + 1].max() for i in range(len(values))])


def _tau_gen(curves: Curves, rule: WindowRule) -> tuple[int | None, bool, float | None, str, list[str]]:
    """tau_gen, whether it is censored, the plateau level, how it was read and flags."""
    ok = np.isfinite(curves.fid)
    if not ok.any():
        return None, False, None, "no FID computed", ["no_fid: no checkpoint has an FID; tau_gen undefined"]
    steps, fid = curves.step[ok], running_median(curves.fid[ok], rule.smooth)
    level = float(sustained(fid, rule.confirm).min())
    band = level + max(rule.rel_tol * abs(level), rule.abs_tol)
    i = first_lasting(fid <= band, rule.confirm)
    assert i is not None, "the checkpoints that hold the plateau level are in the band"
    how = (f"FID smoothed by a running median over {rule.smooth} checkpoints; plateau level {level:.4g} = lowest "
           f"value held for {rule.confirm + 1} consecutive checkpoints; tau_gen = first checkpoint with FID <= "
           f"{band:.4g} (level + max({rule.rel_tol:g} x level, {rule.abs_tol:g})) there and at the next "
           f"{rule.confirm} checkpoint(s)")
    flags = []
    censored = i == 0
    if censored:
        flags.append("tau_gen_at_first_checkpoint: FID already on its plateau at the first checkpoint; tau_gen <= this")
    if len(fid) > 1 and fid.argmin() == len(fid) - 1:
        flags.append("fid_still_falling: the lowest FID is at the last checkpoint; the plateau may lie later")
    return int(steps[i]), censored, level, how, flags


def _memorized(curves: Curves, rule: WindowRule) -> tuple[np.ndarray, np.ndarray]:
    """Steps where f_mem was evaluated and whether each counts as memorizing under the rule."""
    if rule.criterion == "ci":
        ok = np.isfinite(curves.fmem_low)
        return curves.step[ok], curves.fmem_low[ok] > 0
    ok = np.isfinite(curves.fmem)
    return curves.step[ok], curves.fmem[ok] >= rule.threshold


def _tau_mem(curves: Curves, rule: WindowRule) -> tuple[int | None, bool, str, list[str]]:
    """tau_mem, whether it is censored (never memorized), how it was read and flags."""
    steps, mask = _memorized(curves, rule)
    if len(steps) == 0:
        flag = "no_fmem: no checkpoint has the f_mem value the criterion reads; tau_mem undefined"
        return None, False, "no f_mem computed", [flag]
    test = ("95% lower bound of f_mem > 0" if rule.criterion == "ci" else f"f_mem >= {rule.threshold:g}")
    i = first_lasting(mask, rule.confirm)
    confirmed = i is not None and i + rule.confirm < len(mask)
    if confirmed:
        how = f"first checkpoint with {test}, confirmed at the next {rule.confirm} checkpoint(s)"
        flags = ["tau_mem_at_first_checkpoint: memorizing at the first checkpoint; tau_mem <= this"] if i == 0 else []
        return int(steps[i]), False, how, flags
    flags = [f"fmem_unconfirmed: {test} only in the last checkpoint(s), not confirmed"] if i is not None else []
    how = f"never {test} at {rule.confirm + 1} consecutive checkpoints: censored at the last evaluated step"
    return int(steps[-1]), True, how, flags


def _final_fmem(curves: Curves) -> tuple[float, float | None, float | None] | None:
    """(f_mem, low, high) at the last checkpoint that has f_mem."""
    ok = np.flatnonzero(np.isfinite(curves.fmem))
    if len(ok) == 0:
        return None
    j = ok[-1]
    low, high = (float(v) if math.isfinite(v) else None for v in (curves.fmem_low[j], curves.fmem_high[j]))
    return float(curves.fmem[j]), low, high


def read_window(data: Curves | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
                n: int | None = None, **options: Any) -> Window:
    """Read tau_gen and tau_mem off the curves with the WindowRule `options` (strings accepted).

    tau_gen: smooth the FID with a running median over `smooth` checkpoints (a single outlier,
    low or high, is removed); the plateau level is the lowest value the smoothed FID holds for
    `confirm`+1 consecutive checkpoints (so an isolated low value cannot set it either); the band
    is level + max(rel_tol*|level|, abs_tol); tau_gen is the first checkpoint inside the band
    whose next `confirm` checkpoints are also inside.
    tau_mem: a checkpoint memorizes when the 95% lower bound of f_mem is > 0 (criterion=ci) or
    f_mem >= threshold (criterion=threshold); tau_mem is the first memorizing checkpoint whose
    next `confirm` checkpoints also memorize, so a single blip does not count. Without one,
    tau_mem is censored at the last evaluated step and width/ratio become lower bounds.
    """
    rule = build_params(WindowRule, options, "window")
    curves = as_curves(data)
    tau_gen, gen_censored, level, gen_how, gen_flags = _tau_gen(curves, rule)
    tau_mem, mem_censored, mem_how, mem_flags = _tau_mem(curves, rule)
    both = tau_gen is not None and tau_mem is not None
    flags = gen_flags + mem_flags
    if both and not mem_censored and tau_mem <= tau_gen:
        flags.append("no_window: f_mem leaves zero before FID reaches its plateau")
    return Window(
        tau_gen=tau_gen, tau_mem=tau_mem,
        width=tau_mem - tau_gen if both else None,
        ratio=tau_mem / tau_gen if both and tau_gen > 0 else None,
        n=n, tau_mem_censored=mem_censored, tau_gen_censored=gen_censored,
        lower_bounds=both and (mem_censored or gen_censored),
        tau_gen_how=gen_how, tau_mem_how=mem_how, rule=dataclasses.asdict(rule), flags=tuple(flags),
        min_fid=level, extractor=curves.extractor, final_fmem=_final_fmem(curves),
        last_step=int(curves.step[-1]),
    )
