"""Recipes against a reference at each common n: generation first, then quality, then the window factors.

Factors (freqdiff.analysis.inference) are given at an n only when every seed of both recipes generates
images (by the calibrated quality gate) and their quality at tau_gen is equivalent or better on FD,
recognizability, recall and coverage (a two-sided equivalence test against calibrated margins,
freqdiff.analysis.reading.equivalence): the scale-free width log(tau_mem/tau_gen) first, then the
absolute width, each with a Student-t interval over seeds; tau_mem from an interval-censored AFT model,
with an exact permutation p beside it. Otherwise the verdict names the reason (no quality gate, no
generation, lower quality, quality inconclusive); it never calls such a window wider. A censored tau
turns a factor into a bound; none is invented.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from freqdiff.analysis.reading.equivalence import BETTER, COMPARABLE, MATCHED, UNCHECKED, Measured, judge, margins_for
from freqdiff.analysis.inference import (Bracket, ZERO_SPREAD, aft_factor, log_ratio_interval,
                                         permutation_test, scale_free_width, seeds_text, width_difference)
from freqdiff.analysis.reading.onsets import Onset, WindowRule, gate_text
from freqdiff.analysis.reading.pooling import DIFFERENT_DATA, Recipe, data_settings, read_recipe, require_same
from freqdiff.analysis.reading.window import Window
from freqdiff.analysis.statistics import LEVEL, t_interval
from freqdiff.registry import FreqdiffError, build_params

INTERVALS = ("Width: the scale-free width log(tau_mem/tau_gen) per seed, the recipe's mean minus the reference's, "
             "as a factor on tau_mem/tau_gen with a Student-t interval (paired by seed when both recipes ran the "
             "same seeds, else Welch); second, the absolute width tau_mem - tau_gen, exp(mean log ratio) with the "
             "same kind of t-interval. tau_mem: exp(coef) of an interval-censored log-normal accelerated-failure-"
             "time model (lifelines; Weibull where it does not converge), Wald interval with a small-sample t "
             "correction, beside the exact two-sided permutation test (Gehan score) over all relabelings of the "
             "seeds. Each interval names its method and the seeds on each side; none is defined with one seed.")
NO_GATE, NO_GENERATION, REFERENCE_NO_GENERATION = "no quality gate", "no generation", "reference does not generate"
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


@dataclass(frozen=True)
class Match:
    """Can the recipe and the reference be compared at n, and if not, why (one phrase for the verdict)."""

    n: int
    status: str  # matched | better quality | lower quality | quality inconclusive | quality unchecked | no quality
    # gate | no generation | reference does not generate; a window factor means something at COMPARABLE ones
    measures: tuple[Measured, ...]
    note: str


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


# ----------------------------------------------------------------------------- factors


class Tau(NamedTuple):
    """One seed's tau: its interval-censored (low, high), a point value and the side the true value lies on."""

    low: float | None  # None: before the first checkpoint (left-censored)
    high: float | None  # None: not reached by the last checkpoint (right-censored)
    point: float  # the estimate where both ends are known, else the known end
    side: str  # '': both ends known; '>=': right-censored (point = low); '<=': left-censored (point = high)


def tau_of(onset: Onset) -> Tau | None:
    """One seed's tau for the models across seeds; None: not computed.

    An estimated tau is an exact observation at its estimate: its 95% interval is measurement uncertainty, not
    censoring, and the seed-to-seed scatter the models fit already contains it. A right-censored one is the
    open interval (low, inf), a left-censored one (0, high]. Without an estimate, the checkpoint bracket: a
    reached step is the point, a censored one ('>=') the low end of an open interval, one at the first
    checkpoint ('<=') the high end of (0, step].
    """
    if onset.step is None:
        return None
    if onset.low is not None or onset.high is not None:
        low, high = onset.low, onset.high
        if high is None:
            return Tau(low, None, float(low), ">=")
        if low is None:
            return Tau(None, high, float(high), "<=")
        point = float(onset.estimate if onset.estimate is not None else onset.step)
        return Tau(point, point, point, "")
    point = float(onset.estimate if onset.estimate is not None and not onset.bound else onset.step)
    return Tau(None if onset.bound == "<=" else point, None if onset.bound == ">=" else point, point, onset.bound)


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


def _not_compared(quantity: str, m: Match) -> Factor:
    """No factor where the two do not both generate at matched (or better) quality."""
    return Factor(quantity, m.n, None, None, "", "none: not at matched quality", m.note)


def _pooled(quantity: str, factors: Sequence[Factor], seeds: str) -> Factor | None:
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


def permutation_text(f: Factor) -> str:
    """'exact permutation p = 0.1 (two-sided, Gehan score, ...)', or '' when no test was made."""
    return "" if f.p is None else f"exact permutation p = {f.p:.3g} ({f.test})"


# The quality statuses at which a factor is given, as a verdict says them.
QUALITY_WORDS = {MATCHED: "matched quality", BETTER: "better quality"}
# What a factor above / below / at 1 says, per quantity.
DIRECTIONS = {"width": ("widens the window", "narrows the window", "does not change the window"),
              "absolute_width": ("widens the window", "narrows the window", "does not change the window"),
              "tau_mem": ("delays memorization", "brings memorization earlier", "does not change tau_mem")}
# What a reader sees for each quantity.
WORDS = {"width": "tau_mem/tau_gen (scale-free width)", "absolute_width": "tau_mem - tau_gen (absolute width)",
         "tau_mem": "tau_mem"}
# What 'does not clearly change ...' names, per quantity.
CHANGED = {"width": "the window", "absolute_width": "the window", "tau_mem": "tau_mem"}


def _amount(f: Factor) -> str:
    """'>= 2.3 times the reference's at n = 64'."""
    where = f"at n = {f.n}" if f.n is not None else f"as the geometric mean {f.note.split('; ')[0]}"
    return f"{f.bound + ' ' if f.bound else ''}{f.estimate:.3g} times the reference's {where}"


def _size(f: Factor) -> str:
    """'tau_mem >= 2.3 times the reference's at n = 64', with the difference in log units for the width."""
    logs = (f" (log(tau_mem/tau_gen) {f.log_difference:+.3g} against the reference's)"
            if f.log_difference is not None and f.n is not None else "")
    return f"{WORDS[f.quantity]} {_amount(f)}{logs}"


def _confidence(f: Factor) -> tuple[bool, str]:
    """Does the interval exclude 1, and the words: method, seeds, interval, the permutation p beside it."""
    bounded = f"; {f.note}" if f.bound and f.n is not None and f.note else ""
    test = f"; {permutation_text(f)}" if f.p is not None else ""
    if f.interval is None:
        why = "; ".join(part for part in f.note.split("; ") if part and not part.startswith("over n = "))
        return False, f"{why or 'no interval'}{test}"
    low, high = f.interval
    clear = (low is not None and low > 1) or (high is not None and high < 1)
    return clear, f"{f.method} {interval_text(f)}, {'excludes' if clear else 'includes'} 1{bounded}{test}"


def confidence_text(f: Factor) -> str:
    """The words after a factor: its interval with method and seeds (or why none), the permutation p beside it."""
    return _confidence(f)[1]


def _claim(f: Factor, label: str, reference: str) -> str:
    """One sentence: does the recipe widen the window (or delay tau_mem), by what factor, how sure, by what method."""
    size = _size(f)
    if (f.bound == ">=" and f.estimate <= 1) or (f.bound == "<=" and f.estimate >= 1):
        bounded = f"; {f.note}" if f.note and f.n is not None else ""
        return f"{label} against {reference} is inconclusive: {size}, a bound on the wrong side of 1{bounded}."
    up, down, same = DIRECTIONS[f.quantity]
    direction = up if f.estimate > 1 else down if f.estimate < 1 else same
    clear, confidence = _confidence(f)
    if f.interval is None:
        return f"{label} {direction} against {reference}: {size} (no confidence can be given: {confidence})."
    if not clear:
        return f"{label} does not clearly change {CHANGED[f.quantity]} against {reference}: {size} ({confidence})."
    return f"{label} {direction} against {reference}: {size} ({confidence})."


def _absolute(f: Factor | None) -> str:
    """The second width sentence: the absolute width factor, labelled so."""
    if f is None:
        return ""
    if f.estimate is None:
        return f" Absolute width (tau_mem - tau_gen): {f.note}."
    return f" Absolute width (tau_mem - tau_gen): {_amount(f)} ({_confidence(f)[1]})."


def _by_note(matches: Sequence[Match]) -> str:
    """'n = 4, 8: <note>; n = 16: <note>' with the n that share a reason grouped."""
    notes: dict[str, list[int]] = {}
    for m in matches:
        notes.setdefault(m.note, []).append(m.n)
    return "; ".join(f"n = {', '.join(map(str, ns))}: {note}" for note, ns in notes.items())


def verdict(mine: Recipe, ref: Recipe, matches: Sequence[Match], width: Sequence[Factor],
            basis: Factor | None, tau_mem_basis: Factor | None, absolute: Sequence[Factor] = ()) -> str:
    """The recipe against the reference: the window claim at matched (or better) quality, or why there is none.

    The claim is on the scale-free width (tau_mem/tau_gen); the absolute width at the same n follows,
    labelled so. Where no width factor exists at matched quality (a seed's window is closed), the tau_mem
    factor is quoted.
    """
    if not matches:
        return f"{mine.label} and {ref.label} share no n: nothing to compare."
    matched = [m for m in matches if m.status in COMPARABLE]
    excluded = [m for m in matches if m.status not in COMPARABLE]
    if not matched:
        return f"{mine.label} against {ref.label}: no window factor. {_by_note(excluded)}."
    measures = ", ".join(dict.fromkeys(m.label for match in matched for m in match.measures))
    by_status = {status: [str(m.n) for m in matched if m.status == status] for status in COMPARABLE}
    levels = "; ".join(f"{QUALITY_WORDS[status]} at n = {', '.join(ns)}" for status, ns in by_status.items() if ns)
    quality = f"At {levels} (equivalence test at tau_gen on {measures})."
    rest = f" Not compared at {_by_note(excluded)}." if excluded else ""
    if basis is None:
        why = "; ".join(f"n = {f.n}: {f.note}" for f in width if f.note)
        mem = f" {_claim(tau_mem_basis, mine.label, ref.label)}" if tau_mem_basis is not None else ""
        return f"{mine.label} against {ref.label}: no width factor ({why}).{mem} {quality}{rest}"
    second = _absolute(next((f for f in absolute if f.n == basis.n), None)) if basis.n is not None else ""
    return f"{_claim(basis, mine.label, ref.label)}{second} {quality}{rest}"


def versus(mine: Recipe, ref: Recipe) -> Versus:
    """Per common n: the match, then the width (scale-free, absolute) and tau_mem factors where the quality is
    matched or better (COMPARABLE); pooled fallbacks; the verdict."""
    common = sorted({row.group.n for row in mine.rows} & {row.group.n for row in ref.rows})
    matches = tuple(match(n, mine, ref) for n in common)
    widths = [width_factors(m.n, mine, ref) if m.status in COMPARABLE else
              (_not_compared("width", m), _not_compared("absolute_width", m)) for m in matches]
    width, absolute = tuple(w for w, _ in widths), tuple(a for _, a in widths)
    tau_mem = tuple(tau_mem_factor(m.n, mine, ref) if m.status in COMPARABLE else _not_compared("tau_mem", m)
                    for m in matches)
    compared = [m.n for m in matches if m.status in COMPARABLE]
    counts = sorted({(len(mine.at(n)), len(ref.at(n))) for n in compared})
    seeds = " or ".join(seeds_text(c) for c in counts)
    pooled_width, pooled_tau_mem = (_pooled(q, f, seeds) if compared else None for q, f in (("width", width),
                                                                                            ("tau_mem", tau_mem)))
    sentence = verdict(mine, ref, matches, width, _basis(width, pooled_width), _basis(tau_mem, pooled_tau_mem),
                       absolute)
    return Versus(mine.label, ref.label, tuple(common), matches, width, absolute, tau_mem, pooled_width,
                  pooled_tau_mem, sentence + seeds_note(mine, ref, common) + sampling_note(mine, ref))


def sampling_note(mine: Recipe, ref: Recipe) -> str:
    """A warning where the two recipes were sampled with different samplers or x0 clipping ('' when the same):
    clipping x0_hat changes how many samples land on training images, so a factor would mix it in."""
    if mine.sampling == ref.sampling:
        return ""
    return (f" Caution: sampled differently ({mine.label}: {mine.sampling}; {ref.label}: {ref.sampling}); "
            "x0 clipping changes the copy count, so the factors mix the sampler with the recipe.")


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
