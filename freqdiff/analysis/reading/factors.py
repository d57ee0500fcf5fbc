"""The window factors of a recipe over the reference at one n: the scale-free width log(tau_mem/tau_gen) and
the absolute width, each with a Student-t interval over seeds, and tau_mem from an interval-censored AFT model
with an exact permutation p beside it (freqdiff.analysis.inference); a censored tau makes a factor a bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from freqdiff.analysis.inference.aft import aft_factor
from freqdiff.analysis.inference.base import Bracket, seeds_text
from freqdiff.analysis.inference.log_ratio import ZERO_SPREAD, log_ratio_interval, scale_free_width, width_difference
from freqdiff.analysis.inference.permutation import permutation_test
from freqdiff.analysis.reading.matching import Match
from freqdiff.analysis.reading.onsets import tau_of
from freqdiff.analysis.reading.pooling import Recipe
from freqdiff.analysis.reading.window import Window
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.statistics import LEVEL, t_interval

BOUND_WORDS = {">=": "a lower bound", "<=": "an upper bound", "mixed": "bounded both ways across seeds"}


@dataclass(frozen=True)
class Factor:
    """recipe / reference for `quantity` at n (None: pooled over n), with its interval and how it was got.

    quantity 'width': the scale-free width, the factor on tau_mem / tau_gen (exp of the recipe's mean
    log(tau_mem / tau_gen) minus the reference's), the primary width; 'absolute_width': the factor on
    tau_mem - tau_gen; 'tau_mem': from an interval-censored AFT model. `method` names the interval's level,
    method and seeds on each side. bound '>=': a lower bound, only the interval's low end means something;
    '<=': an upper bound.
    """

    quantity: str  # width | absolute_width | tau_mem
    n: int | None
    estimate: float | None
    interval: tuple[float | None, float | None] | None  # None: undefined (see note)
    bound: str
    method: str
    note: str  # why the factor or its interval is undefined, or why it is a bound
    p: float | None = None  # exact two-sided permutation test (Gehan score) beside it; None: none made
    test: str = ""  # that test: relabelings, seeds, smallest attainable p
    log_difference: float | None = None  # width: mean log(tau_mem/tau_gen), recipe - reference, in log units


def _seeded(recipe: Recipe, n: int) -> list[tuple[Any, Window]]:
    """(seed, window) of the recipe's runs at n, ordered by seed."""
    return sorted(((run.seed, run.window) for run in recipe.runs if run.window.n == n), key=lambda sw: str(sw[0]))


def _joint(bounds: Sequence[str]) -> str:
    """The bound of a set of values from each one's: '', '>=', '<=' or 'mixed'."""
    sides = set(bounds) - {""}
    return "mixed" if len(sides) > 1 else sides.pop() if sides else ""


def _window_ends(w: Window) -> tuple[tuple[float, float] | None, str, str]:
    """(tau_gen, tau_mem) of one seed, the side its width lies on ('>=' lower bound, '<=' upper) and why,
    or None and why it has no width."""
    gen, mem = tau_of(w.tau_gen), tau_of(w.tau_mem_earlier)
    if gen is None or mem is None:
        return None, "", "an end of the window was not computed"
    if w.generation.generates is False:
        return None, "", "no generation"
    if gen.side == ">=":
        undetermined = w.tau_gen.low is None and w.tau_gen.high is None
        return None, "", ("tau_gen undetermined (its 95% interval spans the run: `freqdiff refine`)" if undetermined
                          else "tau_gen not reached")
    reasons: dict[str, list[str]] = {">=": [], "<=": []}
    if gen.side == "<=":
        reasons[">="].append("tau_gen at the first checkpoint")
    if mem.side:
        reasons[mem.side].append("tau_mem censored" if mem.side == ">=" else "tau_mem at the first checkpoint")
    if reasons[">="] and reasons["<="]:
        return None, "", "tau_gen and tau_mem are both upper bounds (first checkpoint)"
    bound = ">=" if reasons[">="] else "<=" if reasons["<="] else ""
    return (gen.point, mem.point), bound, ", ".join(reasons.get(bound, []))


def ratio_bound(mine: str, ref: str) -> str | None:
    """The bound of mine / ref from the bounds of each; None when they leave it unbounded."""
    if "mixed" in (mine, ref):
        return None
    sides = {mine, {">=": "<=", "<=": ">="}.get(ref, "")} - {""}
    return None if len(sides) > 1 else sides.pop() if sides else ""


def _sided(low: float | None, high: float | None, bound: str) -> tuple[float | None, float | None]:
    """Drop the end of an interval that a bound makes meaningless."""
    return (None if bound == "<=" else low, None if bound == ">=" else high)


def _test(mine: Sequence[Bracket], ref: Sequence[Bracket]) -> tuple[float | None, str]:
    """The exact permutation test's p and its description ('' p None when the seeds are too many to enumerate)."""
    try:
        t = permutation_test(mine, ref)
    except FreqdiffError as err:
        return None, str(err)
    return t.p, (f"two-sided, Gehan score, all {t.relabelings} relabelings of {seeds_text((len(mine), len(ref)))}; "
                 f"smallest attainable p {t.smallest_p:.3g}")


def _bracket(value: float, side: str) -> Bracket:
    """A value that is exact, a lower bound ('>=') or an upper bound ('<=') as an interval-censored bracket."""
    return (None if side == "<=" else value, None if side == ">=" else value)


def _bound_sides(quantity: str, parts: Sequence[tuple[str, str, str]]) -> str:
    """"<recipe>'s <quantity> is a lower bound (why)" for each side whose values are bounds."""
    return "; ".join(f"{label}'s {quantity} is {BOUND_WORDS[b]} ({why})" for label, b, why in parts if b)


def width_factors(n: int, mine: Recipe, ref: Recipe) -> tuple[Factor, Factor]:
    """The scale-free width factor (primary) and the absolute width factor, recipe over reference at n.

    Scale-free: w = log(tau_mem / tau_gen) per seed; the factor exp(mean w - mean w_ref) on tau_mem / tau_gen
    with a t-interval (paired by seed when both recipes ran the same seeds, else Welch), unchanged when a
    recipe only learns faster or slower. Absolute: (tau_mem - tau_gen) / the reference's, exp(mean log ratio)
    with the same kind of t-interval. Beside the scale-free one, the exact permutation p of the per-seed
    tau_mem / tau_gen. Bounded taus make them bounds. A seed with a closed window (tau_mem <= tau_gen) has a
    scale-free width (negative) but no absolute one.
    """
    a, r = _seeded(mine, n), _seeded(ref, n)
    paired = [s for s, _ in a] == [s for s, _ in r]
    ends = {label: [_window_ends(w) for _, w in seeded] for label, seeded in ((mine.label, a), (ref.label, r))}
    missing = sorted({f"{label}: {why}" for label, rows in ends.items() for value, _, why in rows if value is None})
    quantities = ("width", "absolute_width")
    if missing:
        note = f"undefined: a seed has no width > 0 ({'; '.join(missing)})"
        return tuple(Factor(q, n, None, None, "", "none", note) for q in quantities)  # type: ignore[return-value]
    joint = {label: _joint([b for _, b, _ in rows]) for label, rows in ends.items()}
    whys = {label: "; ".join(sorted({why for _, b, why in rows if b})) for label, rows in ends.items()}
    sides = _bound_sides("width", [(label, joint[label], whys[label]) for label in ends])
    bound = ratio_bound(joint[mine.label], joint[ref.label])
    if bound is None:
        note = f"undefined: the bounds leave no direction: {sides}"
        return tuple(Factor(q, n, None, None, "", "none", note) for q in quantities)  # type: ignore[return-value]
    gen_mem = [np.array([v for v, _, _ in ends[label]]) for label in (mine.label, ref.label)]
    free = width_difference(*(scale_free_width(g[:, 0], g[:, 1]) for g in gen_mem), paired=paired)
    p, test = _test(*([_bracket(m / g, b) for (g, m), b, _ in ends[label]] for label in (mine.label, ref.label)))
    scale_free = Factor("width", n, free.estimate, free.interval and _sided(*free.interval, bound), bound,
                        free.method, "; ".join(t for t in (free.note, sides) if t), p, test, free.log_estimate)
    if any((g[:, 1] <= g[:, 0]).any() for g in gen_mem):
        return scale_free, Factor("absolute_width", n, None, None, "", "none",
                                  "undefined: a seed's window is closed (tau_mem <= tau_gen)")
    absolute = log_ratio_interval(*(g[:, 1] - g[:, 0] for g in gen_mem), paired=paired)
    return scale_free, Factor("absolute_width", n, absolute.estimate,
                              absolute.interval and _sided(*absolute.interval, bound), bound, absolute.method,
                              "; ".join(t for t in (absolute.note, sides) if t))


def tau_mem_factor(n: int, mine: Recipe, ref: Recipe) -> Factor:
    """tau_mem recipe / reference at n from an interval-censored AFT model, with the exact permutation p.

    Where every seed of a side is censored the AFT model has no finite maximum; the ratio of the geometric
    means of the censored values is then given as a bound, without an interval.
    """
    taus = {label: [tau_of(w.tau_mem_earlier) for w in recipe.at(n)] for label, recipe in ((mine.label, mine),
                                                                                         (ref.label, ref))}
    if any(t is None for ts in taus.values() for t in ts):
        return Factor("tau_mem", n, None, None, "", "none", "undefined: a seed has no tau_mem")
    a, r = ([(t.low, t.high) for t in taus[label]] for label in (mine.label, ref.label))
    aft = aft_factor(a, r)
    p, test = _test(a, r)
    if aft.estimate is not None:
        return Factor("tau_mem", n, aft.estimate, aft.interval, "", aft.method, aft.note, p, test)
    joint = {label: _joint([t.side for t in ts]) for label, ts in taus.items()}
    whys = {label: "; ".join(sorted({"tau_mem censored (no copies by the last checkpoint)" if t.side == ">="
                                     else "tau_mem at the first checkpoint" for t in ts if t.side}))
            for label, ts in taus.items()}
    sides = _bound_sides("tau_mem", [(label, joint[label], whys[label]) for label in taus])
    bound = ratio_bound(joint[mine.label], joint[ref.label])
    method = "ratio of geometric means over seeds, a bound (no interval)"
    if bound is None or not bound:
        return Factor("tau_mem", n, None, None, "", aft.method, "; ".join(t for t in (aft.note, sides) if t), p, test)
    logs = [np.log([t.point for t in taus[label]]) for label in (mine.label, ref.label)]
    estimate = float(np.exp(logs[0].mean() - logs[1].mean()))
    return Factor("tau_mem", n, estimate, None, bound, method, f"{aft.note}; {sides}", p, test)


def factor(quantity: str, n: int, mine: Recipe, ref: Recipe) -> Factor:
    """The recipe's factor over the reference at n: 'width' (scale-free), 'absolute_width' or 'tau_mem'."""
    if quantity == "tau_mem":
        return tau_mem_factor(n, mine, ref)
    width, absolute = width_factors(n, mine, ref)
    return {"width": width, "absolute_width": absolute}[quantity]


def not_compared(quantity: str, m: Match) -> Factor:
    """No factor where the two do not both generate at matched (or better) quality."""
    return Factor(quantity, m.n, None, None, "", "none: not at matched quality", m.note)


def pooled_factor(quantity: str, factors: Sequence[Factor], seeds: str) -> Factor | None:
    """Mean log-factor over n with a t interval; only when no n has an interval of its own (one seed per n).

    `seeds`: the seeds behind each n's factor, for the method ('1 vs 1 seed at each n').
    """
    if any(f.interval for f in factors):
        return None
    usable = [f for f in factors if f.estimate is not None]
    method = (f"{100 * LEVEL:.4g}% t-interval of the mean log-factor over {len(usable)} n (assumes the factor does "
              f"not depend on n), {seeds} at each n")
    if len(usable) < 2:
        return Factor(quantity, None, None, None, "", method, f"undefined: {len(usable)} n with a factor, need 2")
    bounds = {f.bound for f in usable} - {""}
    if len(bounds) > 1:
        return Factor(quantity, None, None, None, "", method, "undefined: bounds in opposite directions across n")
    logs = np.log([f.estimate for f in usable])
    bound = bounds.pop() if bounds else ""
    spread = logs.std(ddof=1) / math.sqrt(len(logs))
    if spread < ZERO_SPREAD:
        return Factor(quantity, None, float(np.exp(logs.mean())), None, bound, method,
                      f"over n = {', '.join(str(f.n) for f in usable)}; interval undefined: the factor is the same "
                      "at every n (zero spread)")
    low, high = np.exp(t_interval(logs.mean(), spread, len(logs) - 1))
    return Factor(quantity, None, float(np.exp(logs.mean())), _sided(float(low), float(high), bound), bound,
                  method, f"over n = {', '.join(str(f.n) for f in usable)}")
