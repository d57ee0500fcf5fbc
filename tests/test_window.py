"""Window detection on synthetic curves, bad run directories, and windows pooled over seeds."""
from __future__ import annotations

import json

import pytest

from freqdiff.analysis.reports.run import window_main
from freqdiff.analysis.reading.scaling import group_windows
from freqdiff.analysis.reading.window import read_window
from freqdiff.registry import FreqdiffError

STEPS = [100, 200, 400, 800, 1600, 3200, 6400, 12800]
# running median: 225 150 60 21 20.5 20.5 21 21.5 -> min 20.5, band 22.55: first lasting at 800
CLEAN_FID = [300, 150, 60, 21, 20, 20.5, 21, 22]
CLEAN_LOW = [0, 0, 0, 0, 0, 0.01, 0.07, 0.25]


def metrics(steps=STEPS, fid=CLEAN_FID, low=CLEAN_LOW, extractor="lenet"):
    """Metrics rows as the evaluation writes them (strings), f_mem = low + 0.02, high = low + 0.04."""
    return [{"step": str(s), "fid": "" if f is None else str(f), "kid": "", "fmem": str(lo + 0.02 * (lo > 0)),
             "fmem_low": str(lo), "fmem_high": str(lo + 0.04), "loss_train": "0.05", "loss_test": "0.06",
             "extractor": extractor, "n_samples": "64"} for s, f, lo in zip(steps, fid, low)]


def test_clean_window():
    w = read_window(metrics(), n=64)
    assert (w.tau_gen, w.tau_mem) == (800, 3200)
    assert (w.width, w.ratio, w.n) == (2400, 4.0, 64)
    assert not w.tau_mem_censored and not w.lower_bounds and w.flags == ()
    assert w.min_fid == pytest.approx(20.5) and w.extractor == "lenet"
    assert w.final_fmem == pytest.approx((0.27, 0.25, 0.29))


def test_never_memorizes_is_censored():
    w = read_window(metrics(low=[0] * 8), n=64)
    assert w.tau_mem == 12800 and w.tau_mem_censored and w.lower_bounds
    assert "censored" in w.tau_mem_how
    assert "tau_mem >= 12800" in w.summary() and "width >= " in w.summary()
    assert read_window(metrics(), n=64).summary().startswith("n=64: tau_gen 800, tau_mem 3200, width 2400, ratio 4 ")


def test_single_low_fid_outlier_does_not_set_tau_gen():
    steps = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]
    fid = [300, 150, 5, 120, 60, 21, 20, 20.5, 21]
    assert read_window(metrics(steps, fid, [0] * 9)).tau_gen == 3200
    assert read_window(metrics(steps, fid, [0] * 9), smooth=1).tau_gen == 3200
    assert read_window(metrics(steps, fid, [0] * 9), smooth=1, confirm=0).tau_gen == 400  # no guard left


def test_fid_band_must_last():
    fid = [300, 150, 21, 80, 21, 20, 20.5, 22]  # 400 enters the band but 800 leaves it
    assert read_window(metrics(fid=fid), smooth=1).tau_gen == 1600


def test_single_fmem_blip_does_not_set_tau_mem():
    low = [0, 0.02, 0, 0, 0, 0.01, 0.07, 0.25]
    assert read_window(metrics(low=low)).tau_mem == 3200
    w = read_window(metrics(low=[0, 0, 0, 0, 0, 0, 0, 0.3]))
    assert w.tau_mem_censored and any(f.startswith("fmem_unconfirmed") for f in w.flags)


def test_threshold_criterion():
    low = [0, 0, 0, 0.001, 0.002, 0.01, 0.07, 0.25]  # f_mem = low + 0.02 from step 800 on
    assert read_window(metrics(low=low)).tau_mem == 800
    assert read_window(metrics(low=low), criterion="threshold", threshold="0.05").tau_mem == 6400


def test_fid_never_improves_and_missing_fid_are_flagged():
    w = read_window(metrics(fid=[20, 21, 25, 30, 40, 50, 60, 70]))
    assert w.tau_gen == 100 and w.tau_gen_censored and w.lower_bounds
    w = read_window(metrics(fid=[None] * 8))
    assert w.tau_gen is None and w.width is None and w.tau_mem == 3200
    assert any(f.startswith("no_fid") for f in w.flags)


def test_mixed_extractors_and_bad_options_are_errors():
    rows = metrics()
    rows[0]["extractor"] = "inception"
    with pytest.raises(FreqdiffError, match="extractors"):
        read_window(rows)
    with pytest.raises(FreqdiffError, match="criterion"):
        read_window(metrics(), criterion="bogus")


def test_columns_accepted():
    rows = metrics()
    columns = {c: [r[c] for r in rows] for c in rows[0]}
    assert read_window(columns).tau_mem == 3200


def _write_run(run_dir, rows, n=64):
    from freqdiff.io import write_csv, write_json

    write_json(run_dir / "config.json", {"data": {"n": n}, "train": {"seed": 0}, "regularizer": {"name": "none"}})
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))


def test_window_main_writes_json(tmp_path):
    _write_run(tmp_path, metrics())
    w = window_main(tmp_path)
    saved = json.loads((tmp_path / "window.json").read_text())
    assert saved["tau_mem"] == w.tau_mem == 3200 and saved["figures"]


def test_missing_columns_error_names_them_and_overwrites_nothing(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("fmem_low", "loss_test")} for r in metrics()]
    _write_run(tmp_path, rows)
    (tmp_path / "window.json").write_text("old")
    with pytest.raises(FreqdiffError, match="fmem_low, loss_test"):
        window_main(tmp_path)
    assert (tmp_path / "window.json").read_text() == "old"
    assert not (tmp_path / "figures").exists()


def test_empty_run_dir_errors(tmp_path):
    with pytest.raises(FreqdiffError, match="no metrics.csv"):
        window_main(tmp_path)
    _write_run(tmp_path, metrics())
    (tmp_path / "metrics.csv").write_text("step,fid\n")
    with pytest.raises(FreqdiffError, match="empty"):
        window_main(tmp_path)


def test_group_windows_reports_censored_as_bound():
    done = read_window(metrics(), n=64)
    never = read_window(metrics(low=[0] * 8), n=64)
    (group,) = group_windows([("r", 0, done), ("r", 1, never)])
    assert group.censored == 1 and str(group.tau_mem).startswith(">= 8000 ± 6788 [3200, 12800]")
    (group,) = group_windows([("r", 0, done), ("r", 1, done)])
    assert str(group.tau_mem) == "3200 ± 0 [3200, 3200]"


def test_fid_still_falling_is_flagged():
    w = read_window(metrics(fid=[300, 200, 120, 80, 50, 35, 25, 21]))
    assert w.tau_gen == 6400 and any(f.startswith("fid_still_falling") for f in w.flags)
