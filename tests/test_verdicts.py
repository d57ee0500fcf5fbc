"""Each trap built from real components (the calibration's image sets, measure_samples, the calibrated gate),
measured at every checkpoint of a synthetic run, read by the window, and given the verdict written beside it.
"""
from __future__ import annotations

import pytest

from freqdiff.analysis.reading.comparison import compare
from freqdiff.analysis.reading.window import read_window
from freqdiff.core.io import write_csv, write_json
from freqdiff.metrics.extractors import get_extractor
from freqdiff.metrics.known_sets import (binary_noise, blurred_copies, exact_copies, gaussian_blobs, heldout_digits,
                                         make_setup, noisy_copies, uniform_noise)
from freqdiff.metrics.quality import gate_for, measure_samples

STEPS = (100, 200, 400, 800, 1600)  # the fewest a plateau needs (smooth 3 + confirm 1) and one more


@pytest.fixture(scope="module")
def setup():
    """The default digits setup (n = 16), 128 images per checkpoint over 4 folds, and its feature extractor."""
    s = make_setup(n=16, n_samples=128, folds=4, seed=0)
    return s, get_extractor(s.cfg.eval.extractor, image_shape=s.split.image_shape)


def measured_rows(setup, builds):
    """metrics.csv rows of a run whose checkpoint i holds fresh images from builds[i], measured for real."""
    s, extractor = setup
    rows = []
    for i, (step, build) in enumerate(zip(STEPS, builds)):
        s.generator.manual_seed(i)
        rows.append({"step": step, **measure_samples(build(s), s.split, s.cfg.eval, extractor),
                     "loss_train": "", "loss_test": ""})
    return rows


def trap_window(setup, build):
    """The window of a run whose every checkpoint draws from one trap."""
    return read_window(measured_rows(setup, [build] * len(STEPS)), n=16)


def test_the_digits_features_have_a_calibrated_gate(setup):
    _, extractor = setup
    gate = gate_for(extractor.name)
    assert gate is not None and gate.extractor == extractor.name and "calibration" in gate.source


@pytest.mark.parametrize("noise", [uniform_noise, binary_noise, gaussian_blobs])
def test_noise_samples_no_generation(setup, noise):
    w = trap_window(setup, noise)
    assert w.verdict.startswith("no generation"), w.verdict
    assert w.state == "no generation" and w.width is None and w.ratio is None


def test_noisy_copies_memorized(setup):
    w = trap_window(setup, noisy_copies)
    assert w.verdict.startswith("memorized"), w.verdict
    assert w.tau_mem_robust.reached and w.tau_mem_earlier.step == STEPS[0]


def test_blurred_copies_memorized(setup):
    w = trap_window(setup, blurred_copies)
    assert w.verdict.startswith("memorized"), w.verdict
    assert w.tau_mem_robust.reached


def test_held_out_images_generalized(setup):
    w = trap_window(setup, heldout_digits)
    assert w.verdict.startswith("generalized"), w.verdict
    assert w.generation.generates and w.tau_mem_earlier.bound == ">="


def write_run(run_dir, rows, regularizer, n=16):
    """A run directory: config.json as a sweep writes it, and the measured metrics.csv."""
    write_json(run_dir / "config.json", {"dataset": {"name": "digits", "params": {}},
                                         "regularizer": {"name": regularizer, "params": {}},
                                         "data": {"n": n, "test_size": 256}, "train": {"seed": 0}})
    write_csv(run_dir / "metrics.csv", rows, list(rows[0]))


def test_compare_calls_a_noise_recipe_no_generation_not_wider(setup, tmp_path):
    """The committed headline's failure: a recipe whose samples are noise never memorizes, so its tau_mem
    is censored late; compare must say 'no generation' and give no window factor."""
    baseline = [heldout_digits] * 3 + [exact_copies] * 2  # generalizes, then copies from step 800
    write_run(tmp_path / "baseline" / "n16", measured_rows(setup, baseline), "none")
    write_run(tmp_path / "noise" / "n16", measured_rows(setup, [uniform_noise] * len(STEPS)), "fourier_penalty")
    (v,) = compare([tmp_path / "baseline", tmp_path / "noise"]).versus
    assert v.width[0].estimate is None and v.tau_mem[0].estimate is None
    assert v.verdict.startswith("noise against baseline: no window factor. n = 16: no generation in 1 of 1 seeds")
    assert "widen" not in v.verdict
