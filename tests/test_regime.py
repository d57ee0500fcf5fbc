"""The regime map on synthetic scans of n: n* where tau_mem passes tau_gen, bounds, the split onset, the files."""
from __future__ import annotations

import csv

import pytest

from freqdiff.analysis.reading.curves import as_curves
from freqdiff.analysis.reading.onsets import Onset
from freqdiff.analysis.reading.regime import (CLOSED, OPEN, UNDECIDED, RunPoint, fit_slope, locate_crossing, order,
                                              split_onset)
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.regime import main, write_regime
from freqdiff.io import write_csv, write_json
from freqdiff.registry import FreqdiffError
from test_window import GATE, metrics, use_test_gate

STEPS = [round(100 * 2 ** (i / 2)) for i in range(17)]  # 100 .. 25600, a factor sqrt(2) apart
GEN = 6  # tau_gen = STEPS[6] = 800 at every n: quality arrives at a time independent of n
CONFIG = {"dataset": {"name": "digits", "params": {}}, "process": {"name": "ddpm", "params": {}},
          "model": {"name": "mlp", "params": {"width": 256}}, "regularizer": {"name": "none", "params": {}},
          "sampler": {"name": "ddim", "params": {}}, "eval": {"k": 1 / 3, "n_samples": 512},
          "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 128}}


def rows(mem: int | None, split: int | None = None, recognizable: float = 0.95, robust: int | None = None):
    """Metrics rows: FD on its plateau from STEPS[GEN], copies (95% lower bound > 0) from STEPS[mem] on (None:
    never), the robust measure from STEPS[robust] (default: with f_mem), the test loss lowest at STEPS[split]."""
    count = len(STEPS)
    fid = [20 + 40 * max(GEN - i, 0) for i in range(count)]

    def onset(index):
        return [0.0 if index is None or i < index else 0.05 for i in range(count)]

    out = metrics(STEPS, fid, onset(mem), robust_low=onset(mem if robust is None else robust),
                  recognizable=recognizable)
    for i, row in enumerate(out):
        row["loss_train"] = str(0.6 - 0.03 * i)
        row["loss_test"] = str(0.6 - 0.03 * i if split is None else 0.5 + 0.01 * (i - split) ** 2)
    return out


def point(n: int, mem: int | None, seed: int = 0, **kwargs) -> RunPoint:
    """One run of a synthetic scan, read with the hand-set test gate."""
    data = rows(mem, **kwargs)
    return RunPoint(n, seed, read_window(data, n=n, gate=GATE), split_onset(as_curves(data)))


def mem_index(n: int, per_image: float = 12.5) -> int | None:
    """The first checkpoint at or after tau_mem = per_image * n (None past the last checkpoint)."""
    later = [i for i, s in enumerate(STEPS) if s >= per_image * n]
    return later[0] if later else None


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


def test_n_star_located_where_curves_built_to_cross():
    # tau_gen = 800 at every n, tau_mem = 12.5 n: equal at n = 64, so n* lies in (64, 128]
    scan = [point(n, mem_index(n)) for n in (16, 32, 64, 128, 256, 512, 1024)]
    crossing = locate_crossing(scan, "fmem_robust")
    assert crossing.states == {16: CLOSED, 32: CLOSED, 64: CLOSED, 128: OPEN, 256: OPEN, 512: OPEN, 1024: OPEN}
    assert (crossing.low, crossing.high) == (64, 128) and crossing.estimate == pytest.approx(64)
    assert str(crossing) == "in (64, 128] (interpolated 64)" and not crossing.notes
    slope = fit_slope("tau_mem", [(p.n, p.tau_mem("fmem")) for p in scan])
    assert slope.fit.slope == pytest.approx(1.0, abs=0.03) and slope.runs == 7 and slope.excluded == 0
    assert slope.fit.interval[0] < 1 < slope.fit.interval[1]


def test_interpolation_between_exact_ratios():
    # log(tau_mem / tau_gen) = log(400/800) at n = 32 and log(1600/800) at n = 128: zero a third of the way in log n
    crossing = locate_crossing([point(32, 4), point(128, 8)])
    assert crossing.estimate == pytest.approx(32 * 4 ** (1 / 2))


def test_censored_tau_mem_at_large_n_is_open_and_kept_out_of_the_slope():
    scan = [point(64, GEN - 2), point(128, GEN + 2), point(256, None)]  # n = 256 never copies by 25600
    crossing = locate_crossing(scan)
    assert crossing.states[256] == OPEN and (crossing.low, crossing.high) == (64, 128)
    slope = fit_slope("tau_mem", [(p.n, p.tau_mem("fmem_robust")) for p in scan])
    assert slope.runs == 2 and slope.excluded == 1 and slope.fit.interval is None


def test_every_n_closed_puts_n_star_above_the_scan():
    crossing = locate_crossing([point(n, GEN - 1) for n in (16, 32, 64)])
    assert crossing.high is None and crossing.low == 64 and str(crossing) == "> 64"


def test_every_n_open_puts_n_star_at_or_below_the_smallest():
    crossing = locate_crossing([point(n, GEN + 2) for n in (256, 512)])
    assert crossing.low is None and crossing.high == 256 and str(crossing) == "<= 256"


def test_no_generation_with_no_copies_at_the_largest_n_is_not_located():
    scan = [point(16, 2), point(32, None, recognizable=0.1)]  # n = 32: never generates, never copies
    crossing = locate_crossing(scan)
    assert crossing.states == {16: CLOSED, 32: UNDECIDED} and str(crossing) == "not located"
    assert any("undecided at n = 32" in note for note in crossing.notes)


def test_seeds_that_disagree_are_undecided_and_a_reopening_is_flagged():
    scan = [point(16, GEN + 3), point(32, GEN - 1), point(64, GEN - 1, seed=0), point(64, GEN + 3, seed=1),
            point(128, GEN + 3)]
    crossing = locate_crossing(scan)
    assert crossing.states == {16: OPEN, 32: CLOSED, 64: UNDECIDED, 128: OPEN}
    assert (crossing.low, crossing.high, crossing.estimate) == (64, 128, None)
    assert any(note.startswith("not monotone: open at n = 16") for note in crossing.notes)


def test_robust_copies_earlier_than_f_mem_move_n_star():
    # the robust measure sees copies two checkpoints before f_mem: at n = 128 it closes the window f_mem leaves open
    scan = [point(64, GEN, robust=GEN - 2), point(128, GEN + 1, robust=GEN - 1), point(256, GEN + 4, robust=GEN + 2)]
    assert (locate_crossing(scan, "fmem").low, locate_crossing(scan, "fmem").high) == (64, 128)
    assert (locate_crossing(scan, "fmem_robust").low, locate_crossing(scan, "fmem_robust").high) == (128, 256)
    assert locate_crossing(scan, "earlier").high == 256
    with pytest.raises(FreqdiffError, match="unknown copy measure 'f_mem'"):
        locate_crossing(scan, "f_mem")


def test_split_onset_is_the_test_loss_minimum_and_censored_while_falling():
    onset = split_onset(as_curves(rows(None, split=9)))
    assert (onset.step, onset.bound) == (STEPS[9], "") and "minimum of the fixed-t test loss" in onset.how
    falling = split_onset(as_curves(rows(None)))
    assert (falling.step, falling.bound) == (STEPS[-1], ">=")
    assert split_onset(as_curves(rows(None, split=0))).bound == "<="


def write_scan(root, grid, config=CONFIG):
    """Run directories (config.json, metrics.csv) of a scan: (n, seed, mem index, split index) each."""
    for n, seed, mem, split in grid:
        run = root / f"n{n:05d}-seed{seed}"
        write_json(run / "config.json", {**config, "data": {"n": n}, "train": {**config["train"], "seed": seed}})
        data = rows(mem, split=split)
        write_csv(run / "metrics.csv", data, list(data[0]))


def test_write_regime_writes_figure_table_and_report(tmp_path, monkeypatch):
    use_test_gate(monkeypatch)
    write_scan(tmp_path, [(n, s, mem_index(n), mem_index(n, 4)) for n in (32, 64, 128, 256, 512) for s in (0, 1)])
    text = write_regime(tmp_path).read_text()
    assert "**n* in (64, 128] (interpolated 64)**" in text and "model mlp(width=256)" in text
    assert "| 128 | 2 | 25600 | 800 ± 0 [800, 800] | 1600 ± 0 [1600, 1600] |" in text
    assert "- tau_mem (robust f_mem), n >= 128 (above n*): slope 1.00" in text
    with open(tmp_path / "regime.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 10 and {r["window_fmem_robust"] for r in table if r["n"] == "64"} == {CLOSED}
    assert {r["split"] for r in table if r["n"] == "512"} == {str(STEPS[mem_index(512, 4)])}
    assert (tmp_path / "regime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_regime_refuses_two_recipes_and_empty_dirs(tmp_path, monkeypatch):
    use_test_gate(monkeypatch)
    write_scan(tmp_path / "a", [(32, 0, 4, 3)])
    write_scan(tmp_path / "b", [(64, 0, 5, 3)], {**CONFIG, "train": {**CONFIG["train"], "lr": 3e-3}})
    with pytest.raises(FreqdiffError, match="runs of 2 recipes"):
        write_regime(tmp_path)
    with pytest.raises(FreqdiffError, match="no run directories"):
        write_regime(tmp_path / "empty")
    assert main([str(tmp_path / "empty")]) == 2 and main(["--help"]) == 0
