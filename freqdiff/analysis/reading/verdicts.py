"""The sentence that says what a recipe does to the window against the reference: the claim at matched (or better)
quality with its factor, interval and method, or why there is none; and the words for a factor's interval.
"""
from __future__ import annotations

from typing import Sequence

from freqdiff.analysis.reading.equivalence import BETTER, COMPARABLE, MATCHED
from freqdiff.analysis.reading.factors import Factor
from freqdiff.analysis.reading.matching import Match
from freqdiff.analysis.reading.pooling import Recipe


def basis_of(width: Sequence[Factor], pooled: Factor | None) -> Factor | None:
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
