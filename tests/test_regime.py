"""The regime map on synthetic scans of n: n* where tau_mem passes tau_gen, bounds, the split onset, the files."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from test_window import ERR, GATE, A, L, copy_fraction, inside, metrics, use_test_gate

from freqdiff.analysis.reading.curves import as_curves
from freqdiff.analysis.reading.onsets import Onset
from freqdiff.analysis.reading.regime import (CLOSED, OPEN, UNDECIDED, RunPoint, fit_slope, locate_crossing, order,
                                              split_onset)
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.regime import main, write_regime
from freqdiff.core.io import write_csv, write_json
from freqdiff.core.registry import FreqdiffError

STEPS = [round(100 * 2 ** (i / 2)) for i in range(17)]  # 100 .. 25600, a factor sqrt(2) apart
TAU_GEN = 1600.0  # at every n the FD comes within its error of its plateau here: independent of n
N_STAR = 64 * 2 ** 0.5  # tau_mem = TAU_GEN * n / N_STAR passes tau_gen at n* = 90.5, between 64 and 128
SAMPLES = 10_000  # copies counted over many samples: tau_mem to a few percent
CONFIG = {"dataset": {"name": "digits", "params": {}}, "process": {"name": "ddpm", "params": {}},
          "model": {"name": "mlp", "params": {"width": 256}}, "regularizer": {"name": "none", "params": {}},
          "sampler": {"name": "ddim", "params": {}}, "eval": {"k": 1 / 3, "n_samples": SAMPLES},
          "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 128}}


def fd_approach(seed=0, noise=0.05, beta=1.5):
    """The FD's approach to its plateau L, within ERR of it at TAU_GEN (test_window's shape with a power-law tail of
    exponent `beta`: its tau_gen interval is narrow enough to tell tau_mem half or twice tau_gen apart)."""
    s_c = TAU_GEN / (A / ERR - 1) ** (1 / beta)
    steps = np.asarray(STEPS, float)
    return L + A / (1 + (steps / s_c) ** beta) + np.random.default_rng(seed).normal(0, noise, len(steps))


def rows(mem: float | None, split: int | None = None, recognizable: float = 0.95, robust: float | None = None,
         seed: int = 0):
    """Metrics rows: the FD on its plateau from TAU_GEN, copies drawn from a logistic onset reaching q at step `mem`
    (None: never), the robust measure's at `robust` (default: with f_mem), the test loss lowest at STEPS[split]."""
    count = len(STEPS)

    def copies(tau):
        return [0.0] * count if tau is None else copy_fraction(tau, STEPS, 4.0, seed, SAMPLES)

    out = metrics(STEPS, fd_approach(seed), copies(mem), robust=copies(mem if robust is None else robust),
                  recognizable=recognizable, samples=SAMPLES)
    for i, row in enumerate(out):
        row["loss_train"] = str(0.6 - 0.03 * i)
        row["loss_test"] = str(0.6 - 0.03 * i if split is None else 0.5 + 0.01 * (i - split) ** 2)
    return out


def point(n: int, mem: float | None, seed: int = 0, **kwargs) -> RunPoint:
    """One run of a synthetic scan, read with the hand-set test gate; its noise drawn from (n, seed)."""
    data = rows(mem, seed=1000 * n + seed, **kwargs)
    return RunPoint(n, seed, read_window(data, n=n, gate=GATE), split_onset(as_curves(data)))


def tau_mem(n: int) -> float:
    """The scan's tau_mem: linear in n, equal to tau_gen at n = N_STAR."""
    return TAU_GEN * n / N_STAR


OPENS, CLOSES = 4 * TAU_GEN, TAU_GEN / 4  # a tau_mem well after and one well before tau_gen, at any n


def test_order_reads_bounds_conservatively():
    def at(step, bound=""):
        return Onset(step, bound, "")

    assert order(at(800), at(1600)) == OPEN
    assert order(at(800), at(800)) == CLOSED  # copies at the checkpoint where quality arrives: no window
    assert order(at(800), at(25600, ">=")) == OPEN  # never copied by the last checkpoint, well after tau_gen
    assert order(at(25600, ">="), at(3200)) == CLOSED  # copies before quality ever arrives
    assert order(at(25600, ">="), at(25600, ">=")) == UNDECIDED  # neither seen: cannot be ordered
    assert order(at(100, "<="), at(200)) == OPEN
    assert order(at(800), at(100, "<=")) == CLOSED
    assert order(at(None), at(800)) == UNDECIDED

    def estimated(step, low, high):
        return Onset(step, "" if low and high else ">=" if low else "<=", "", step, low, high)

    # estimates are read by their 95% intervals: apart, the window is open or closed; overlapping, undecided
    gen = estimated(1000, 900, 1100)
    assert order(gen, estimated(1300, 1150, 1450)) == OPEN
    assert order(gen, estimated(1300, 1050, 1450)) == UNDECIDED  # estimates apart, intervals not
    assert order(gen, estimated(800, 700, 880)) == CLOSED
    assert order(gen, estimated(20000, 18000, None)) == OPEN  # censored above the last checkpoint
    assert order(gen, estimated(150, None, 950)) == UNDECIDED  # left-censored, its upper end inside tau_gen's


def test_n_star_located_where_curves_built_to_cross():
    # tau_gen = 1600 at every n, tau_mem = 1600 n / 90.5: equal at n* = 90.5, so n* lies in (64, 128]
    scan = [point(n, tau_mem(n)) for n in (16, 32, 64, 128, 256, 512, 1024)]
    assert all(abs(p.window.tau_gen.estimate / TAU_GEN - 1) < 0.15 and inside(p.window.tau_gen, TAU_GEN, 0.05)
               for p in scan)
    crossing = locate_crossing(scan, "fmem_robust")
    assert crossing.states == {16: CLOSED, 32: CLOSED, 64: CLOSED, 128: OPEN, 256: OPEN, 512: OPEN, 1024: OPEN}
    assert (crossing.low, crossing.high) == (64, 128) and crossing.estimate == pytest.approx(N_STAR, rel=0.1)
    assert str(crossing) == f"in (64, 128] (interpolated {crossing.estimate:.0f})" and not crossing.notes
    slope = fit_slope("tau_mem", [(p.n, p.tau_mem("fmem")) for p in scan])
    assert slope.fit.slope == pytest.approx(1.0, abs=0.03) and slope.runs == 7 and slope.excluded == 0
    assert slope.censored is None and "bounded runs counted" not in str(slope)  # nothing bounded: no second fit
    assert slope.fit.interval[0] < 1 < slope.fit.interval[1]


def test_interpolation_between_exact_ratios():
    # log(tau_mem / tau_gen) = log(1/2) at n = 32 and log(2) at n = 128: zero halfway in log n, at n = 64
    crossing = locate_crossing([point(32, TAU_GEN / 2), point(128, 2 * TAU_GEN)])
    assert crossing.states == {32: CLOSED, 128: OPEN} and crossing.estimate == pytest.approx(64, rel=0.1)


def test_censored_tau_mem_at_large_n_is_open_and_kept_out_of_the_slope():
    scan = [point(64, tau_mem(64)), point(128, tau_mem(128)), point(256, None)]  # n = 256 never copies by 25600
    assert scan[2].window.tau_mem_robust.bound == ">=" and scan[2].window.tau_mem_robust.low > STEPS[-1] / 2
    crossing = locate_crossing(scan)
    assert crossing.states[256] == OPEN and (crossing.low, crossing.high) == (64, 128)
    slope = fit_slope("tau_mem", [(p.n, p.tau_mem("fmem_robust")) for p in scan])
    assert slope.runs == 2 and slope.excluded == 1 and slope.fit.interval is None
    assert slope.censored is not None and "; with the bounded runs counted: " in str(slope)  # counted, not dropped


def test_every_n_closed_puts_n_star_above_the_scan():
    crossing = locate_crossing([point(n, CLOSES) for n in (16, 32, 64)])
    assert set(crossing.states.values()) == {CLOSED}
    assert crossing.high is None and crossing.low == 64 and str(crossing) == "> 64"


def test_every_n_open_puts_n_star_at_or_below_the_smallest():
    crossing = locate_crossing([point(n, OPENS) for n in (256, 512)])
    assert crossing.low is None and crossing.high == 256 and str(crossing) == "<= 256"


def test_no_generation_with_no_copies_at_the_largest_n_is_not_located():
    scan = [point(16, CLOSES), point(32, None, recognizable=0.1)]  # n = 32: never generates, never copies
    assert scan[1].window.generation.generates is False and scan[1].window.tau_gen.reached  # the FD still settles
    crossing = locate_crossing(scan)
    assert crossing.states == {16: CLOSED, 32: UNDECIDED} and str(crossing) == "not located"
    assert any("undecided at n = 32" in note for note in crossing.notes)
    copies = locate_crossing([point(16, OPENS, recognizable=0.1)])  # copies without ever generating: no window
    assert copies.states == {16: CLOSED}


def test_seeds_that_disagree_are_undecided_and_a_reopening_is_flagged():
    scan = [point(16, OPENS), point(32, CLOSES), point(64, CLOSES, seed=0), point(64, OPENS, seed=1),
            point(128, OPENS)]
    crossing = locate_crossing(scan)
    assert crossing.states == {16: OPEN, 32: CLOSED, 64: UNDECIDED, 128: OPEN}
    assert (crossing.low, crossing.high, crossing.estimate) == (64, 128, None)
    assert any(note.startswith("not monotone: open at n = 16") for note in crossing.notes)


def test_robust_copies_earlier_than_f_mem_move_n_star():
    # the robust measure sees copies four times earlier than f_mem: at n = 128 it closes the window f_mem leaves open
    scan = [point(n, tau_mem(n), robust=tau_mem(n) / 4) for n in (64, 128, 256, 512)]
    assert (locate_crossing(scan, "fmem").low, locate_crossing(scan, "fmem").high) == (64, 128)
    robust = locate_crossing(scan, "fmem_robust")
    assert robust.states == {64: CLOSED, 128: CLOSED, 256: CLOSED, 512: OPEN}
    assert (robust.low, robust.high) == (256, 512)
    assert robust.estimate == pytest.approx(4 * N_STAR, rel=0.1)  # tau_mem / 4 passes tau_gen at 4 n*
    assert locate_crossing(scan, "earlier").high == 512
    with pytest.raises(FreqdiffError, match="unknown copy measure 'f_mem'"):
        locate_crossing(scan, "f_mem")


def test_split_onset_is_the_test_loss_minimum_and_censored_while_falling():
    onset = split_onset(as_curves(rows(None, split=9)))
    assert (onset.step, onset.bound) == (STEPS[9], "") and "minimum of the fixed-t test loss" in onset.how
    falling = split_onset(as_curves(rows(None)))
    assert (falling.step, falling.bound) == (STEPS[-1], ">=")
    assert split_onset(as_curves(rows(None, split=0))).bound == "<="


def split_index(n: int) -> int:
    """The checkpoint where the scan's fixed-t test loss is lowest: the first at or after step 4 n."""
    return next(i for i, s in enumerate(STEPS) if s >= 4 * n)


def write_scan(root, grid, config=CONFIG):
    """Run directories (config.json, metrics.csv) of a scan: (n, seed, tau_mem, split index) each."""
    for n, seed, mem, split in grid:
        run = root / f"n{n:05d}-seed{seed}"
        write_json(run / "config.json", {**config, "data": {"n": n}, "train": {**config["train"], "seed": seed}})
        data = rows(mem, split=split, seed=1000 * n + seed)
        write_csv(run / "metrics.csv", data, list(data[0]))


def _mean(cell: str) -> float:
    """The mean of a 'mean ± std [min, max]' cell."""
    return float(cell.split(" ± ")[0])


def test_write_regime_writes_figure_table_and_report(tmp_path, monkeypatch):
    use_test_gate(monkeypatch)
    write_scan(tmp_path, [(n, s, tau_mem(n), split_index(n)) for n in (32, 64, 128, 256, 512) for s in (0, 1)])
    text = write_regime(tmp_path).read_text()
    headline = re.search(r"\*\*n\* in \(64, 128\] \(interpolated (\d+)\)\*\*", text)
    assert headline and float(headline.group(1)) == pytest.approx(N_STAR, rel=0.1) and "model mlp(width=256)" in text
    # per n: tau_gen, tau_mem (robust, f_mem, earlier), split as mean ± std [min, max] over the 2 seeds
    row = next(line for line in text.splitlines() if line.startswith("| 128 | 2 | 25600 | "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert _mean(cells[3]) == pytest.approx(TAU_GEN, rel=0.15) and "[" in cells[3]
    assert _mean(cells[4]) == pytest.approx(tau_mem(128), rel=0.05) and cells[4] == cells[5] == cells[6]
    assert cells[7] == f"{STEPS[split_index(128)]} ± 0 [{STEPS[split_index(128)]}, {STEPS[split_index(128)]}]"
    assert cells[8:] == [OPEN, OPEN, OPEN]
    slope = re.search(r"- tau_mem \(robust f_mem\), n >= 128 \(above n\*\): slope (\S+), 95% interval", text)
    assert float(slope.group(1).rstrip(",")) == pytest.approx(1.0, abs=0.05)
    with open(tmp_path / "regime.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 10 and {r["window_fmem_robust"] for r in table if r["n"] == "64"} == {CLOSED}
    assert {r["window_fmem_robust"] for r in table if r["n"] == "128"} == {OPEN}
    assert {r["split"] for r in table if r["n"] == "512"} == {str(STEPS[split_index(512)])}
    assert (tmp_path / "regime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_regime_refuses_two_recipes_and_empty_dirs(tmp_path, monkeypatch):
    use_test_gate(monkeypatch)
    write_scan(tmp_path / "a", [(32, 0, tau_mem(32), 3)])
    write_scan(tmp_path / "b", [(64, 0, tau_mem(64), 3)], {**CONFIG, "train": {**CONFIG["train"], "lr": 3e-3}})
    with pytest.raises(FreqdiffError, match="runs of 2 recipes"):
        write_regime(tmp_path)
    with pytest.raises(FreqdiffError, match="no run directories"):
        write_regime(tmp_path / "empty")
    assert main([str(tmp_path / "empty")]) == 2 and main(["--help"]) == 0


def test_a_map_pools_run_directories_from_several_scans_and_counts_each_n_and_seed_once(tmp_path, monkeypatch):
    use_test_gate(monkeypatch)
    write_scan(tmp_path / "small", [(n, 0, tau_mem(n), split_index(n)) for n in (32, 64, 128)])
    write_scan(tmp_path / "large", [(n, 0, tau_mem(n), split_index(n)) for n in (128, 256)])
    with pytest.raises(FreqdiffError, match="are both n = 128, seed 0: a regime map counts each"):
        write_regime([tmp_path / "small", tmp_path / "large"], tmp_path / "map")
    with pytest.raises(FreqdiffError, match="2 directories pooled need --out"):
        write_regime([tmp_path / "small", tmp_path / "large"])
    runs = [tmp_path / "small" / "n00032-seed0", tmp_path / "small" / "n00064-seed0", tmp_path / "large"]
    assert main([*map(str, runs), "--out", str(tmp_path / "map")]) == 0
    with open(tmp_path / "map" / "regime.csv", newline="") as fh:
        assert sorted(int(r["n"]) for r in csv.DictReader(fh)) == [32, 64, 128, 256]
