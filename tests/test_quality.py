"""measure_samples: the contract's columns, errors over disjoint folds, refusals; the measures; the Gate API."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.core.registry import FreqdiffError
from freqdiff.core.spectral import MAX_RADIUS
from freqdiff.metrics import get_extractor
from freqdiff.metrics.evaluate import COLUMNS
from freqdiff.metrics.fid import frechet_distance
from freqdiff.metrics.measures import log_radial_power, prdc, radial_edges, recognizable, spectral_distance
from freqdiff.metrics.quality import Gate, fold_indices, gate_for, measure_samples
from freqdiff.metrics.statistics import mean_and_err
from freqdiff.pipeline.build import load_split


@pytest.fixture(scope="module")
def setup():
    cfg = apply_flags(RunConfig(), {"n": "16", "n_samples": "128"})
    return cfg, load_split(cfg), get_extractor("digits_cnn")


def copies(split, n: int = 128, seed: int = 0) -> torch.Tensor:
    return split.train[torch.randint(0, len(split.train), (n,), generator=torch.Generator().manual_seed(seed))]


def test_measure_samples_gives_every_metrics_column_in_the_contracts_order(setup, tmp_path) -> None:
    cfg, split, digits = setup
    row = measure_samples(copies(split), split, cfg.eval, digits, tmp_path)
    assert list(row) == [c for c in COLUMNS if c not in ("step", "loss_train", "loss_test")]
    assert (row["extractor"], row["n_samples"], row["folds"]) == ("digits_cnn", 128, 4)
    assert row["fmem"] == row["fmem_robust"] == 1.0 and row["recognizable"] > 0.9


def test_each_value_is_the_mean_and_2_sigma_over_disjoint_interleaved_folds(setup, tmp_path) -> None:
    cfg, split, digits = setup
    samples = copies(split, seed=1)
    row = measure_samples(samples, split, cfg.eval, digits, tmp_path)
    sample_folds, reference_folds = fold_indices(128, 4), fold_indices(256, 4)
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(reference_folds) for b in reference_folds[i + 1:])
    assert list(reference_folds[1][:3]) == [1, 5, 9]  # interleaved: a reference ordered by writer spreads evenly
    feats, ref = digits(split.to_unit(samples)), digits(split.to_unit(split.test))
    per_fold = [frechet_distance(feats[s], ref[r]) for s, r in zip(sample_folds, reference_folds)]
    assert (row["fid"], row["fid_err"]) == pytest.approx(mean_and_err(per_fold), rel=1e-9)
    spectral = [spectral_distance(split.to_unit(samples)[s], split.to_unit(split.test)[r])
                for s, r in zip(sample_folds, reference_folds)]
    assert (row["spectral"], row["spectral_err"]) == pytest.approx(mean_and_err(spectral), rel=1e-9)


def test_extractors_without_a_classifier_leave_recognizability_empty(setup, tmp_path) -> None:
    cfg, split, _ = setup
    row = measure_samples(copies(split), split, cfg.eval, get_extractor("pixels"), tmp_path)
    assert row["recognizable"] is None and row["recognizable_err"] is None and row["extractor"] == "pixels"


@pytest.mark.parametrize("where", ["samples", "test"])
def test_nan_anywhere_is_refused_in_one_line(setup, tmp_path, where: str) -> None:
    cfg, split, digits = setup
    samples = copies(split)
    if where == "samples":
        samples[5, 0, 3, 3] = float("nan")
    else:
        split = type(split)(split.train, split.test.clone(), split.mean, split.train_indices)
        split.test[7, 0, 0, 0] = float("inf")
    with pytest.raises(FreqdiffError, match=f"measure: {where if where == 'samples' else 'test images'} hold NaN or inf "
                                            r"\(1 of \d+ images\)") as info:
        measure_samples(samples, split, cfg.eval, digits, tmp_path)
    assert "\n" not in str(info.value)


def test_too_few_images_per_fold_are_refused_with_the_minimum(setup, tmp_path) -> None:
    cfg, split, digits = setup
    with pytest.raises(FreqdiffError, match=r"n_samples has 20 images, 5 per fold with 4 folds.*at least 7 per fold \(28"):
        measure_samples(copies(split, n=20), split, cfg.eval, digits, tmp_path)
    train_reference = apply_flags(RunConfig(), {"n": "16", "fid_reference": "train"}).eval
    with pytest.raises(FreqdiffError, match=r"--n: the train set has 16 images, 4 per fold"):
        measure_samples(copies(split), split, train_reference, digits, tmp_path)


def test_prdc_matches_its_definition_on_two_clusters() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(64, 2))
    assert prdc(real, real + 0.01)["precision"] == 1.0
    far = prdc(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    collapsed = prdc(real, np.repeat(real[:1], 64, axis=0) + rng.normal(size=(64, 2)) * 1e-3)
    assert collapsed["precision"] == 1.0 and collapsed["coverage"] < 0.2  # faithful but not diverse


def test_recognizable_counts_confident_samples() -> None:
    probabilities = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.79, 0.21]])
    assert recognizable(probabilities, 0.8) == 0.5


def test_spectral_distance_is_zero_for_equal_spectra_and_measures_decades() -> None:
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert spectral_distance(x, x) == 0
    assert spectral_distance(10 * x, x) == pytest.approx(2.0)  # power x100 in every bin: 2 decades
    edges = radial_edges(8, 8)
    assert edges[0] == 0 and edges[-1] == MAX_RADIUS and len(log_radial_power(x)) == len(edges) - 1 == 7
    assert math.isfinite(spectral_distance(torch.zeros(4, 1, 8, 8), x))  # an empty band is floored, not -inf


def test_gate_for_reads_the_calibrated_gate_and_none_elsewhere() -> None:
    gate = gate_for("digits_cnn")
    assert isinstance(gate, Gate) and gate.measure == "recognizable" and gate.extractor == "digits_cnn"
    assert 0 < gate.threshold < 1 and "calibration.csv" in gate.source
    assert gate_for("pixels") is None and gate_for("inception") is None


def test_the_gate_counts_the_error_against_the_checkpoint() -> None:
    gate = Gate("recognizable", 0.5, "digits_cnn", "test")
    assert gate.passes(0.7, 0.1) and not gate.passes(0.55, 0.1) and not gate.passes(float("nan"), 0.0)
