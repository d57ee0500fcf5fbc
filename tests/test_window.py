"""Window detection on synthetic curves: the gate, both copy measures, bounds, bad run directories."""
from __future__ import annotations

import json

import numpy as np
import pytest

import freqdiff.analysis.reading.window as window_module
from freqdiff.analysis.reading.curves import METRICS_COLUMNS
from freqdiff.analysis.reading.scaling import group_windows
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.run import window_main
from freqdiff.io import write_csv, write_json
from freqdiff.metrics.quality import Gate
from freqdiff.registry import FreqdiffError


GATE = Gate("recognizable", 0.8, "digits_cnn", "hand-set for the tests")  # not the calibrated one: fixed numbers
STEPS = [100, 200, 400, 800, 1600, 3200, 6400, 12800]
# running median: 225 150 60 21 20.5 20.5 21 21.5; full windows hold 20.5 at 1600-3200 -> band 22.55: tau_gen 800
CLEAN_FID = [300, 150, 60, 21, 20, 20.5, 21, 22]
CLEAN_LOW = [0, 0, 0, 0, 0, 0.01, 0.07, 0.25]


def _per_step(value, count):
    """A value per checkpoint from a scalar or a sequence."""
    return list(value) if np.ndim(value) else [value] * count


def metrics(steps=STEPS, fid=CLEAN_FID, low=CLEAN_LOW, robust_low=None, fid_err=0.5, recognizable=0.95,
            recognizable_err=0.02, extractor="digits_cnn"):
    """Metrics rows as evaluate.py writes them (strings; '' = not computed); f_mem = low + 0.02, high = low + 0.04."""
    count = len(steps)
    robust_low = low if robust_low is None else robust_low
    columns = {"fid": fid, "fid_err": _per_step(fid_err, count), "recognizable": _per_step(recognizable, count),
               "recognizable_err": _per_step(recognizable_err, count)}
    rows = []
    for i, step in enumerate(steps):
        row = {c: "" for c in METRICS_COLUMNS}
        row.update({c: "" if v[i] is None else str(v[i]) for c, v in columns.items()})
        for measure, lo in (("fmem", low[i]), ("fmem_robust", robust_low[i])):
            row.update({measure: str(lo + 0.02 * (lo > 0)), f"{measure}_low": str(lo), f"{measure}_high": str(lo + 0.04)})
        row.update(step=str(step), loss_train="0.05", loss_test="0.06", extractor=extractor, n_samples="64", folds="4")
        rows.append(row)
    return rows


def use_test_gate(monkeypatch):
    """Make the calibrated gate lookup answer GATE for digits_cnn features and None for any other."""
    monkeypatch.setattr(window_module, "find_gate", lambda extractor: GATE if extractor == GATE.extractor else None)


@pytest.fixture
def gate_lookup(monkeypatch):
    """The hand-set gate for digits_cnn features, none for others."""
    use_test_gate(monkeypatch)


def test_clean_window():
    w = read_window(metrics(), n=64, gate=GATE)
    assert (str(w.tau_gen), str(w.tau_mem), str(w.tau_mem_robust)) == ("800", "3200", "3200")
    assert (w.width, w.ratio, w.bound, w.n) == (2400, 4.0, "", 64)
    assert w.generation.generates and w.flags == ()
    assert w.min_fid == pytest.approx(20.5) and w.fid_err == pytest.approx(0.5) and w.extractor == "digits_cnn"
    assert w.final_fmem == pytest.approx((0.27, 0.25, 0.29)) and w.final_fmem_robust == pytest.approx((0.27, 0.25, 0.29))
    assert w.verdict.startswith("memorized: samples copy training images from step 3200 on")
    assert "recognizable - recognizable_err >= 0.8" in w.tau_gen.how


def test_never_memorizes_is_censored_and_generalized():
    w = read_window(metrics(low=[0] * 8), n=64, gate=GATE)
    assert (w.tau_mem.step, w.tau_mem.bound) == (12800, ">=") and "censored" in w.tau_mem.how
    assert (w.width, w.ratio, w.bound) == (12000, 16.0, ">=")
    assert w.verdict.startswith("generalized: generates from tau_gen 800; no copies up to the last checkpoint 12800")
    assert "tau_mem >= 12800" in w.summary() and "width >= 12000, ratio >= 16" in w.summary()


@pytest.mark.parametrize("fid", [[300, 200, 150, 120, 100, 100, 100, 20, 100],
                                 [300, 200, 150, 120, 100, 100, 100, 100, 20]])
def test_single_low_fid_outlier_does_not_set_tau_gen(fid):
    # the old rule let the two-point median window at the last checkpoint, or a single low value, set the level
    steps = [100 * 2 ** i for i in range(9)]
    w = read_window(metrics(steps, fid, [0] * 9, fid_err=1.0, recognizable=0.95), gate=GATE)
    assert w.min_fid == 100 and w.tau_gen.step == 1600 and w.tau_gen.bound == ""


def test_single_low_fid_outlier_inside_the_run():
    steps = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]
    fid = [300, 150, 5, 120, 60, 21, 20, 20.5, 21]
    assert read_window(metrics(steps, fid, [0] * 9), gate=GATE).tau_gen.step == 3200
    assert read_window(metrics(steps, fid, [0] * 9), gate=GATE, smooth=1).tau_gen.step == 3200
    assert read_window(metrics(steps, fid, [0] * 9), gate=GATE, smooth=1, confirm=0).tau_gen.step == 400  # no guard


def test_fid_band_must_last():
    fid = [300, 150, 21, 80, 21, 20, 20.5, 22]  # 400 enters the band but 800 leaves it
    assert read_window(metrics(fid=fid), gate=GATE, smooth=1).tau_gen.step == 1600


def test_fd_sampling_error_is_the_floor_of_the_plateau_band():
    steps = [100 * 2 ** i for i in range(10)]
    fid = [400, 200, 120, 100, 95, 90, 86, 83, 80, 78]
    precise = read_window(metrics(steps, fid, [0] * 10, fid_err=0.5), gate=GATE)
    noisy = read_window(metrics(steps, fid, [0] * 10, fid_err=30), gate=GATE)
    assert precise.min_fid == noisy.min_fid == 83  # held by the full windows at 12800 and 25600
    assert precise.tau_gen.step == 3200  # band 91.3: 10% of the plateau
    assert noisy.fid_err == 30 and noisy.tau_gen.step == 800  # band 113: differences below the error do not count
    assert "2-sigma sampling error 30" in noisy.tau_gen.how


def test_tau_gen_waits_for_the_quality_gate():
    w = read_window(metrics(recognizable=[0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.95, 0.95]), gate=GATE)
    assert w.tau_gen.step == 1600 and w.generation.generates and w.width == 1600


def test_noise_never_passes_the_gate_no_generation():
    w = read_window(metrics(low=[0] * 8, recognizable=0.3), n=16, gate=GATE)
    assert w.generation.generates is False and w.verdict.startswith("no generation")
    assert (w.tau_gen.step, w.tau_gen.bound) == (12800, ">=")
    assert (w.width, w.ratio, w.width_note) == (None, None, "no generation")
    assert "no width (no generation)" in w.summary() and "tau_gen >= 12800" in w.summary()


def test_the_gate_error_counts_against_passing():
    assert read_window(metrics(recognizable=0.85, recognizable_err=0.1), gate=GATE).generation.generates is False
    assert read_window(metrics(recognizable=0.85, recognizable_err=0.02), gate=GATE).generation.generates is True


def test_without_a_gate_generation_cannot_be_judged(gate_lookup):
    w = read_window(metrics(low=[0] * 8, extractor="lenet"))
    assert w.generation.gate is None and w.generation.generates is None
    assert w.verdict == "no quality gate for lenet: cannot judge generation"
    assert w.tau_gen.step == 800 and any(f.startswith("no_quality_gate") for f in w.flags)
    assert read_window(metrics(low=[0] * 8)).generation.gate == GATE  # looked up for digits_cnn


def test_old_metrics_without_the_gate_measure_cannot_judge_generation():
    rows = [{k: v for k, v in r.items() if not k.startswith(("recognizable", "fmem_robust", "fid_err"))}
            for r in metrics(low=[0] * 8)]
    w = read_window(rows, gate=GATE)
    assert w.generation.generates is None and "not in metrics.csv" in w.verdict
    assert w.tau_mem_robust.step is None and w.tau_mem_earlier == w.tau_mem and w.fid_err is None
    old = next(f for f in w.flags if f.startswith("old_metrics"))
    assert "fid_err" in old and "recognizable" in old and "fmem_robust_low" in old


def test_robust_copy_measure_sets_the_earlier_end():
    robust = [0, 0, 0, 0, 0.3, 0.5, 0.7, 0.8]  # noisy copies: the paper's f_mem misses them
    w = read_window(metrics(low=[0] * 8, robust_low=robust), gate=GATE)
    assert str(w.tau_mem) == ">= 12800" and str(w.tau_mem_robust) == "1600" and str(w.tau_mem_earlier) == "1600"
    assert (w.width, w.bound) == (800, "")
    assert w.verdict == ("memorized: samples copy training images from step 1600 on "
                         "(seen by f_mem robust to residual noise)")


def test_tau_mem_at_first_checkpoint_is_an_upper_bound():
    w = read_window(metrics(low=[0.1] * 8), gate=GATE)
    assert str(w.tau_mem) == "<= 100" and w.bound == "<=" and w.width == -700
    assert "width <= -700" in w.summary()
    flat = read_window(metrics(fid=[20] * 8, low=[0.1] * 8), gate=GATE)
    assert str(flat.tau_gen) == "<= 100" and flat.width is None and "both upper bounds" in flat.width_note


def test_single_fmem_blip_does_not_set_tau_mem():
    low = [0, 0.02, 0, 0, 0, 0.01, 0.07, 0.25]
    assert read_window(metrics(low=low), gate=GATE).tau_mem.step == 3200
    w = read_window(metrics(low=[0, 0, 0, 0, 0, 0, 0, 0.3]), gate=GATE)
    assert w.tau_mem.bound == ">=" and any(f.startswith("fmem_unconfirmed") for f in w.flags)


def test_threshold_criterion():
    low = [0, 0, 0, 0.001, 0.002, 0.01, 0.07, 0.25]  # f_mem = low + 0.02 from step 800 on
    assert read_window(metrics(low=low), gate=GATE).tau_mem.step == 800
    assert read_window(metrics(low=low), gate=GATE, criterion="threshold", threshold="0.05").tau_mem.step == 6400


def test_fid_never_improves_and_missing_fid_are_flagged():
    w = read_window(metrics(fid=[20, 21, 25, 30, 40, 50, 60, 70]), gate=GATE)
    assert str(w.tau_gen) == "<= 100" and w.bound == ">=" and w.width == 3100
    w = read_window(metrics(fid=[None] * 8), gate=GATE)
    assert w.tau_gen.step is None and w.width is None and w.tau_mem.step == 3200
    assert any(f.startswith("no_fid") for f in w.flags)


def test_too_few_checkpoints_for_a_plateau():
    w = read_window(metrics(STEPS[:3], CLEAN_FID[:3], [0] * 3), gate=GATE)
    assert w.tau_gen.step is None and any(f.startswith("too_few_checkpoints") for f in w.flags)


def test_mixed_extractors_and_bad_options_are_errors():
    rows = metrics()
    rows[0]["extractor"] = "inception"
    with pytest.raises(FreqdiffError, match="extractors"):
        read_window(rows, gate=GATE)
    with pytest.raises(FreqdiffError, match="criterion"):
        read_window(metrics(), gate=GATE, criterion="bogus")
    with pytest.raises(FreqdiffError, match="'sharpness' is not a metrics column"):
        read_window(metrics(), gate=Gate("sharpness", 0.5, "digits_cnn", "x"))


def test_columns_accepted():
    rows = metrics()
    columns = {c: [r[c] for r in rows] for c in rows[0]}
    assert read_window(columns, gate=GATE).tau_mem.step == 3200


def write_run(run_dir, rows, n=64):
    """A run directory holding config.json and metrics.csv."""
    write_json(run_dir / "config.json", {"data": {"n": n}, "train": {"seed": 0}, "regularizer": {"name": "none"}})
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))


def test_window_main_writes_json_with_the_gate(tmp_path, gate_lookup):
    write_run(tmp_path, metrics())
    w = window_main(tmp_path)
    saved = json.loads((tmp_path / "window.json").read_text())
    assert saved["tau_mem"] == {"step": 3200, "bound": "", "how": w.tau_mem.how} and saved["figures"]
    assert saved["tau_mem_robust"]["step"] == 3200 and saved["verdict"] == w.verdict
    assert saved["generation"]["gate"] == {"measure": "recognizable", "threshold": 0.8, "extractor": "digits_cnn",
                                           "source": "hand-set for the tests"}


def test_missing_columns_error_names_them_and_overwrites_nothing(tmp_path, gate_lookup):
    rows = [{k: v for k, v in r.items() if k not in ("fmem_low", "loss_test")} for r in metrics()]
    write_run(tmp_path, rows)
    (tmp_path / "window.json").write_text("old")
    with pytest.raises(FreqdiffError, match="fmem_low, loss_test"):
        window_main(tmp_path)
    assert (tmp_path / "window.json").read_text() == "old"
    assert not (tmp_path / "figures").exists()


def test_empty_run_dir_errors(tmp_path):
    with pytest.raises(FreqdiffError, match="no metrics.csv"):
        window_main(tmp_path)
    write_run(tmp_path, metrics())
    (tmp_path / "metrics.csv").write_text("step,fid\n")
    with pytest.raises(FreqdiffError, match="empty"):
        window_main(tmp_path)


def test_group_windows_reports_censored_as_bound():
    done = read_window(metrics(), n=64, gate=GATE)
    never = read_window(metrics(low=[0] * 8), n=64, gate=GATE)
    silent = read_window(metrics(low=[0] * 8, recognizable=0.1), n=64, gate=GATE)
    (group,) = group_windows([("r", 0, done), ("r", 1, never), ("r", 2, silent)])
    assert group.censored == 2 and group.no_generation == 1
    assert str(group.tau_mem).startswith(">= 9600 ± 5543 [3200, 12800]")
    (group,) = group_windows([("r", 0, done), ("r", 1, done)])
    assert str(group.tau_mem) == "3200 ± 0 [3200, 3200]"


def test_window_open_needs_every_seed_and_flatness_needs_exact_tau_gen():
    from freqdiff.analysis.reading.scaling import is_open, tau_gen_flatness

    done = read_window(metrics(), n=64, gate=GATE)
    never = read_window(metrics(low=[0] * 8), n=64, gate=GATE)
    silent = read_window(metrics(low=[0] * 8, recognizable=0.1), n=64, gate=GATE)
    assert is_open(never) and not is_open(silent)  # a censored tau_mem opens the window; no generation never does
    assert is_open(done) == (done.width is not None and done.width > 0)
    (group,) = group_windows([("r", 0, never), ("r", 1, silent)])
    assert group.open == 1 and not group.window_open
    later = read_window(metrics(), n=128, gate=GATE)
    groups = group_windows([("r", 0, done), ("r", 0, later)])
    assert tau_gen_flatness(groups) == pytest.approx(later.tau_gen.step / done.tau_gen.step)
    assert tau_gen_flatness(group_windows([("r", 0, done), ("r", 0, silent)])) is None


def test_fid_still_falling_is_flagged():
    # full windows hold 35 at their lowest (3200-6400); the two-point window at the end may not set the level
    w = read_window(metrics(fid=[300, 200, 120, 80, 50, 35, 25, 21]), gate=GATE)
    assert w.min_fid == 35 and w.tau_gen.step == 3200 and any(f.startswith("fid_still_falling") for f in w.flags)


def test_the_window_reads_the_columns_evaluate_writes():
    from freqdiff.evaluate import COLUMNS

    assert list(METRICS_COLUMNS) == list(COLUMNS)
