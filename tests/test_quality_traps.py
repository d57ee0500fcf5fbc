"""The traps of issue 9, built from real components (the empirical optimal score, the project's DDIM, the
digits classifier), each read correctly by the measures and the calibrated gate."""
from __future__ import annotations

import pytest
import torch

from freqdiff.metrics import get_extractor
from freqdiff.metrics.known_sets import PenalizedMemorizer, gaussian_blur, make_setup
from freqdiff.metrics.quality import gate_for, measure_samples
from freqdiff.models.optimal_score import OptimalScore
from freqdiff.samplers import draw_samples


@pytest.fixture(scope="module")
def setup():
    """The default data setup (digits, last 256 held out, n = 16), 128 samples, 4 folds."""
    return make_setup(n=16, n_samples=128, folds=4, seed=0)


@pytest.fixture(scope="module")
def measure(setup, tmp_path_factory):
    digits, cache = get_extractor("digits_cnn"), tmp_path_factory.mktemp("cache")
    gate = gate_for("digits_cnn")

    def measured(samples: torch.Tensor) -> tuple[dict, bool]:
        row = measure_samples(samples, setup.split, setup.cfg.eval, digits, cache)
        return row, gate.passes(row[gate.measure], row[f"{gate.measure}_err"])

    return measured


def sample(setup, model: torch.nn.Module) -> torch.Tensor:
    pipe = setup.pipe
    return draw_samples(pipe.sampler, model, pipe.process, setup.n_samples, setup.split.image_shape, seed=1234)


def test_the_noisy_copy_trap_is_caught_as_memorization(setup, measure) -> None:
    """The memorizer at the Fourier penalty's optimum (w = 1): raw f_mem drops, every sample is still a copy."""
    exact, _ = measure(sample(setup, OptimalScore(setup.split.train, setup.pipe.process)))
    assert exact["fmem"] == 1.0
    trap = sample(setup, PenalizedMemorizer(setup.split.train, setup.pipe.process, cutoff=0.25, weight=1.0))
    row, generates = measure(trap)
    assert row["fmem_high"] < 0.95  # the paper's f_mem is fooled by the leftover noise (the issue saw 0.72)
    assert row["fmem_robust_low"] >= 0.95 and generates


def test_blurred_copies_read_as_memorized_images(setup, measure) -> None:
    picks = torch.randint(0, 16, (setup.n_samples,), generator=torch.Generator().manual_seed(2))
    row, generates = measure(gaussian_blur(setup.split.train[picks], 0.5))
    assert row["fmem"] < 0.2 and row["fmem_robust_low"] >= 0.95 and generates


@pytest.mark.parametrize("kind", ["uniform", "binary"])
def test_noise_is_no_generation_and_no_copy(setup, measure, kind: str) -> None:
    g = torch.Generator().manual_seed(3)
    shape = (setup.n_samples, *setup.split.image_shape)
    pixels = torch.rand(shape, generator=g) if kind == "uniform" else torch.randint(0, 2, shape, generator=g).float()
    row, generates = measure(setup.unit(pixels))
    assert not generates and row["fmem_robust_high"] < 0.05 and row["fmem_high"] < 0.05


def test_heldout_images_are_generated_and_not_copies(setup, measure) -> None:
    pool = setup.training_pool()
    unseen = torch.ones(len(pool), dtype=torch.bool)
    unseen[setup.split.train_indices] = False
    row, generates = measure(setup.unit(pool[unseen][:setup.n_samples]))
    assert generates and row["fmem_high"] < 0.05 and row["fmem_robust_high"] < 0.05
