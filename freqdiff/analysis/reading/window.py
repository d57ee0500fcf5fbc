"""Read the generalization window [tau_gen, tau_mem] off one run's measured curves, and judge the run.

tau_gen is where the fitted FD comes within its sampling error of its plateau (the paper's definition;
freqdiff.analysis.reading.fd_plateau); tau_mem is where the expected copy fraction reaches q (it grows
like n; freqdiff.analysis.reading.copy_onset), for the paper's f_mem and for the copy measure robust to
residual noise. Each is an estimate with a 95% interval; the window uses the earlier tau_mem, so noisy
copies cannot pass for a wider window. The calibrated quality gate is a precondition: a run that never
passes it reports "no generation", no width, no ratio. The window is open only where tau_mem's interval
lies above tau_gen's, and every run is re-read over a range of gate levels and plateau tolerances.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from freqdiff.analysis.reading.copy_onset import read_tau_mem
from freqdiff.analysis.reading.curves import Curves, as_curves
from freqdiff.analysis.reading.fd_plateau import PlateauFit, fit_tau_gen, plateau_tolerance
from freqdiff.analysis.reading.onsets import (COPY_MEASURES, Onset, WindowRule, earlier, first_confirmed, gate_passes,
                                              gate_text)
from freqdiff.analysis.reading.sensitivity import (CLOSED, NO_GENERATION, TOLERANCES, Reading, open_range, read_over,
                                                   window_state)
from freqdiff.core.registry import FreqdiffError, build_params
from freqdiff.metrics.quality import Gate, gate_for

LOOKUP = "lookup"  # read_window's default gate: the calibrated gate of the run's feature extractor


@dataclass(frozen=True)
class Generation:
    """Whether the run generates images by its quality gate: True, False, or None (cannot judge, and why)."""

    gate: Gate | None
    generates: bool | None
    how: str


@dataclass(frozen=True)
class Window:
    """The generalization window of one run, in optimizer steps, with how each end was read and a verdict."""

    n: int | None  # training-set size
    last_step: int
    extractor: str  # the features behind every FD value below
    tau_gen: Onset  # the FD on its plateau while the quality gate passes
    tau_mem: Onset  # the paper's f_mem leaves zero
    tau_mem_robust: Onset  # the copy measure robust to residual high-frequency noise leaves zero
    tau_mem_earlier: Onset  # the earlier of the two: width, ratio and verdict use it
    width: int | None  # tau_mem_earlier - tau_gen; None when undefined (see width_note)
    ratio: float | None  # tau_mem_earlier / tau_gen
    bound: str  # of width and ratio: '>=' lower bounds, '<=' upper bounds, '' exact up to checkpoint spacing
    width_note: str  # why width is undefined, or which end makes it a bound ('' when exact)
    generation: Generation
    fd_plateau: float | None  # L, the fitted plateau level of the FD
    fid_err: float | None  # the FD's 2-sigma sampling error at the plateau (tau_gen: FD - L = tol x fid_err)
    log_ratio: tuple[float | None, float | None, float | None]  # log(tau_mem / tau_gen): estimate, low, high
    state: str  # open (tau_mem's interval above tau_gen's) | closed | undecided | no generation
    sensitivity: tuple[Reading, ...]  # the window over gate levels x plateau tolerances
    open_range: str  # where over that grid the window is open
    final_fmem: tuple[float, float | None, float | None] | None  # (f_mem, low, high) at the last checkpoint
    final_fmem_robust: tuple[float, float | None, float | None] | None
    verdict: str  # 'memorized: ...', 'generalized: ...', 'no generation: ...', or why it cannot be judged
    flags: tuple[str, ...]  # anything a reader must know before trusting the numbers
    rule: dict[str, Any]

    def summary(self) -> str:
        """The window in a few terminal lines: both ends with their intervals, width, state, verdict, flags."""
        bound = f"{self.bound} " if self.bound else ""
        span = (f"width {bound}{self.width}, ratio {bound}{self.ratio:.3g}" if self.ratio is not None
                else f"width {bound}{self.width}" if self.width is not None else f"no width ({self.width_note})")
        err = "" if self.fid_err is None else f" ± {self.fid_err:.3g}"
        plateau = (f"FD plateau {self.fd_plateau:.4g}{err} ({self.extractor} features)"
                   if self.fd_plateau is not None else "")
        lines = [f"n={self.n}: tau_gen {interval_text(self.tau_gen)}, tau_mem {interval_text(self.tau_mem)}, "
                 f"tau_mem_robust {interval_text(self.tau_mem_robust)}; {span}",
                 f"  window {self.state} (95% intervals); over gate levels x plateau tolerances: {self.open_range}",
                 f"  verdict: {self.verdict}", f"  generation: {self.generation.how}", *([f"  {plateau}"] if plateau else [])]
        return "\n".join(lines + [f"  flag: {flag}" for flag in self.flags])


def interval_text(onset: Onset) -> str:
    """'1234 [1100, 1400]', '>= 5000', '<= 250 [.., 250]' or 'undefined'."""
    if onset.step is None or (onset.low is None and onset.high is None):
        return str(onset)
    ends = (f"{'..' if onset.low is None else f'{onset.low:.0f}'}, {'..' if onset.high is None else f'{onset.high:.0f}'}")
    return f"{onset} [{ends}]"


def find_gate(extractor: str) -> Gate | None:
    """The calibrated quality gate of a feature space (freqdiff.metrics.quality.gate_for); None when none."""
    return gate_for(extractor) if extractor else None


def judge_generation(curves: Curves, rule: WindowRule, gate: Gate | None) -> tuple[Generation, list[str]]:
    """Does any checkpoint, confirmed by the next `confirm`, pass the gate; or why this cannot be judged."""
    name = curves.extractor or "unknown"
    if gate is None:
        how = f"no quality gate for {name}: cannot judge generation"
        return Generation(None, None, how), [f"no_quality_gate: no calibrated quality gate for {name} "
                                             "features; tau_gen is read off the FD alone"]
    if gate.measure not in curves.values:
        raise FreqdiffError(f"quality gate measure {gate.measure!r} is not a metrics column; "
                            f"choices: {', '.join(curves.values)}")
    if not np.isfinite(curves[gate.measure]).any():
        why = "is not in metrics.csv (older metrics)" if gate.measure in curves.absent else "was never computed"
        how = f"the quality gate's measure {gate.measure} {why}: cannot judge generation"
        return Generation(gate, None, how), [f"no_quality_gate: {how}"]
    passes, flags = gate_passes(curves, gate)
    i = first_confirmed(passes, rule.confirm)
    if i is None:
        how = f"no generation: {gate_text(gate)} at no {rule.confirm + 1} consecutive checkpoints"
        return Generation(gate, False, how), flags
    how = f"generates from step {curves.step[i]}: {gate_text(gate)} there and at the next {rule.confirm} checkpoint(s)"
    return Generation(gate, True, how), flags


def span(gen: Onset, mem: Onset, generation: Generation) -> tuple[int | None, float | None, str, str]:
    """width = tau_mem - tau_gen and ratio = tau_mem / tau_gen, the side their true values lie on, and why.

    The note says why the width is undefined, or which end makes it a bound ('' when exact).
    """
    if gen.step is None or mem.step is None:
        return None, None, "", "undefined: an end of the window was not computed"
    if generation.generates is False:
        return None, None, "", "no generation"
    if gen.bound == ">=":
        return None, None, "", "tau_gen not reached"
    reasons = {">=": [], "<=": []}
    if gen.bound == "<=":
        reasons[">="].append("tau_gen at the first checkpoint")
    if mem.bound:
        reasons[mem.bound].append("tau_mem censored" if mem.bound == ">=" else "tau_mem at the first checkpoint")
    if reasons[">="] and reasons["<="]:
        return None, None, "", "undefined: tau_gen and tau_mem are both upper bounds (first checkpoint)"
    bound = ">=" if reasons[">="] else "<=" if reasons["<="] else ""
    ratio = mem.step / gen.step if gen.step > 0 else None
    return mem.step - gen.step, ratio, bound, ", ".join(reasons.get(bound, []))


def _copied_by(window_mem: Onset, onsets: Mapping[str, Onset]) -> str:
    """Which copy measures set the earlier tau_mem."""
    return " and ".join(COPY_MEASURES[m] for m, o in onsets.items() if o.step == window_mem.step and o.reached)


def verdict(gen: Onset, mem: Onset, onsets: Mapping[str, Onset], generation: Generation, last: int) -> str:
    """One sentence: memorized, generalized, no generation, or why generation cannot be judged."""
    if mem.reached:
        return f"memorized: samples copy training images from step {mem} on (seen by {_copied_by(mem, onsets)})"
    if not generation.generates:
        return generation.how
    if not gen.reached:
        return "tau_gen not reached: the gate passes but the FD never settles on its plateau while it does"
    return f"generalized: generates from tau_gen {gen}; copying not established by the last checkpoint {last}"


def _final(curves: Curves, measure: str) -> tuple[float, float | None, float | None] | None:
    """(value, low, high) of a copy measure at the last checkpoint that has it."""
    ok = np.flatnonzero(np.isfinite(curves[measure]))
    if len(ok) == 0:
        return None
    j = ok[-1]
    low, high = (float(v) if math.isfinite(v) else None
                 for v in (curves[f"{measure}_low"][j], curves[f"{measure}_high"][j]))
    return float(curves[measure][j]), low, high


def _fd_rows(curves: Curves) -> np.ndarray:
    """The checkpoints whose FD was measured with the last FD's sample count (the FD's bias depends on it)."""
    fd = curves["fid"]
    last = curves["n_samples"][np.flatnonzero(np.isfinite(fd))[-1]]
    return np.isfinite(fd) & ((curves["n_samples"] == last) | np.isnan(last))


def _own_tolerance(own: Curves) -> tuple[float, str] | None:
    """A refined curve's tau_gen tolerance: the plateau error of its run's own, unrefined curve."""
    if not np.isfinite(own["fid"]).any():
        return None
    rows = _fd_rows(own)
    err = plateau_tolerance(own.step[rows], own["fid"][rows], own["fid_err"][rows])
    return None if err is None else (err, "the run's own tolerance, from its unrefined curve")


def read_tau_gen(curves: Curves, tol: float) -> tuple[Onset, PlateauFit | None, list[str]]:
    """tau_gen off the FD rows measured with the last row's sample count (the FD's bias depends on it); a refined
    curve keeps its run's own tolerance (the error of the run's own evaluation), so refinement measures the same
    tau_gen more densely: with its own, smaller error at 4x the samples it read 1.24x [1.13, 1.36] later (6 runs)."""
    fd = curves["fid"]
    if not np.isfinite(fd).any():
        return Onset(None, "", "no FD computed"), None, ["no_fid: no checkpoint has an FD; tau_gen undefined"]
    rows = _fd_rows(curves)
    own_err = _own_tolerance(curves.own) if curves.own is not None else None
    onset, fit = fit_tau_gen(curves.step[rows], fd[rows], curves["fid_err"][rows], tol=tol, err=own_err)
    if fit is None:
        return onset, None, [f"too_few_checkpoints: {onset.how}"]
    flags = []
    if onset.high is None:
        flags.append("fid_still_falling: the data allow the FD to be outside its plateau band at the last checkpoint")
    if onset.low is None and onset.high is not None:
        flags.append(f"tau_gen_at_first_checkpoint: on its plateau by the first checkpoint; tau_gen <= {onset.step}")
    return onset, fit, flags


def log_ratio(gen: Onset, mem: Onset) -> tuple[float | None, float | None, float | None]:
    """log(tau_mem / tau_gen), the scale-free width: estimate and ends, the interval ends combined end to end."""
    def ratio(top: float | None, bottom: float | None) -> float | None:
        return math.log(top / bottom) if top and bottom else None
    return ratio(mem.estimate, gen.estimate), ratio(mem.low, gen.high), ratio(mem.high, gen.low)


def read_window(data: Curves | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
                n: int | None = None, gate: Gate | None | str = LOOKUP, **options: Any) -> Window:
    """Read tau_gen, both tau_mem, the state and the verdict off the curves with the WindowRule `options`.

    tau_gen: freqdiff.analysis.reading.fd_plateau (FD - L = tol x its error, a bootstrap interval);
    generation: the quality gate (value - err >= threshold) at `confirm`+1 consecutive checkpoints;
    `gate`: a Gate, None for none, or looked up for the run's extractor. tau_mem: the step where the
    expected copy fraction reaches `threshold` (freqdiff.analysis.reading.copy_onset), censored only
    where the data allow it to be below at the last checkpoint.
    """
    rule = build_params(WindowRule, options, "window")
    curves = as_curves(data)
    generation, flags = judge_generation(curves, rule, find_gate(curves.extractor) if gate == LOOKUP else gate)
    tau_gen, fit, gen_flags = read_tau_gen(curves, rule.tol)
    onsets, mem_flags = {}, []
    for measure in COPY_MEASURES:
        onsets[measure], measure_flags = read_tau_mem(curves, rule.threshold, measure)
        mem_flags += measure_flags
    mem = earlier(onsets["fmem"], onsets["fmem_robust"])
    width, ratio, bound, note = span(tau_gen, mem, generation)
    flags += gen_flags + mem_flags
    if curves.absent:
        flags.append(f"old_metrics: metrics.csv has no {', '.join(curves.absent)}; read as not computed")
    state = NO_GENERATION if generation.generates is False else window_state(tau_gen, mem)
    if state == CLOSED:
        flags.append("no_window: copies appear before the FD reaches its plateau")
    gens = {tol: tau_gen if tol == rule.tol else read_tau_gen(curves, tol)[0] for tol in TOLERANCES}
    readings = tuple(read_over(curves, mem, generation.gate, rule.confirm, gens))
    return Window(
        n=n, last_step=int(curves.step[-1]), extractor=curves.extractor, tau_gen=tau_gen,
        tau_mem=onsets["fmem"], tau_mem_robust=onsets["fmem_robust"], tau_mem_earlier=mem,
        width=width, ratio=ratio, bound=bound, width_note=note, generation=generation,
        fd_plateau=fit.level if fit else None, fid_err=fit.err if fit else None,
        log_ratio=log_ratio(tau_gen, mem), state=state, sensitivity=readings, open_range=open_range(readings),
        final_fmem=_final(curves, "fmem"), final_fmem_robust=_final(curves, "fmem_robust"),
        verdict=verdict(tau_gen, mem, onsets, generation, int(curves.step[-1])), flags=tuple(flags),
        rule=dataclasses.asdict(rule),
    )
