"""The empirical optimal score (exact memorizer) and the spectral diagnostics built on it."""
import math

import pytest
import torch

from conftest import build_context
from freqdiff.models.optimal_score import OptimalScore, in_basis, optimal_x0
from freqdiff.metrics.diagnostics import METRICS, band_errors, plot_band_errors
from freqdiff.process import PROCESSES
from freqdiff.samplers import draw_samples
from freqdiff.samplers.base import GridSampler
from freqdiff.samplers.ddim import ddim

PROCESS = PROCESSES.build("ddpm", context=build_context())


def memorized_x0(x_t, level, train, chunk_size=4096):
    return optimal_x0(x_t, level, PROCESS, in_basis(PROCESS, train), chunk_size)


def training_set(n=8, seed=0):
    """n well-separated 1x8x8 images."""
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 0.5


def nearest(x, train):
    """Distances to the nearest and second-nearest training image, and the nearest's index."""
    d = torch.cdist(x.flatten(1), train.flatten(1))
    (d1, d2), index = d.topk(2, largest=False).values.T, d.argmin(1)
    return d1, d2, index


def test_matches_brute_force_softmax_with_any_chunk():
    train = training_set(37).double()
    x_t = torch.randn(5, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    level = torch.tensor([1, 100, 300, 600, 999])
    alpha, sigma = (v(level).double().reshape(-1, 1) for v in (PROCESS.alpha, PROCESS.sigma))  # the process's own
    sq_dist = (x_t.flatten(1)[:, None] - alpha[:, :, None] * train.flatten(1)[None]).square().sum(-1)
    weights = torch.softmax(-sq_dist / (2 * sigma**2), dim=1)
    expected = (weights @ train.flatten(1)).reshape(x_t.shape)
    for chunk in (1, 5, 37, 1000):
        assert torch.allclose(memorized_x0(x_t, level, train, chunk), expected, atol=1e-10)


def test_small_noise_returns_nearest_training_image_and_large_noise_the_mean():
    train = training_set()
    queries = torch.randn(16, 1, 8, 8)
    _, _, index = nearest(queries, train)
    t = torch.full((16,), 1)
    x_t = PROCESS.scale(PROCESS.alpha(t), queries)
    assert torch.allclose(memorized_x0(x_t, t, train), train[index], atol=1e-5)
    t = torch.full((16,), PROCESS.T - 1)
    x_t = PROCESS.add_noise(train[:1].expand(16, -1, -1, -1), t, queries)
    assert torch.allclose(memorized_x0(x_t, t, train), train.mean(0).expand(16, -1, -1, -1), atol=0.05)


def test_log_space_is_stable_at_tiny_noise():
    train = training_set()
    far = 100 * torch.randn(4, 1, 8, 8)  # squared distances / (2 (1 - alphabar)) ~ 1e7: exp would underflow
    t = torch.zeros(4, dtype=torch.long)  # alphabar = 1 - 1e-4
    x0 = memorized_x0(far, t, train, chunk_size=3)
    assert torch.isfinite(x0).all()
    assert torch.allclose(x0, train[nearest(far, train)[2]])
    assert torch.isfinite(OptimalScore(train, PROCESS)(far, t)).all()


def test_module_is_a_closed_form_model_consistent_with_the_denoiser():
    train = training_set()
    model = OptimalScore(train, PROCESS)
    assert model.closed_form and not list(model.parameters())
    t = torch.tensor([0, 40, 500, 999])
    x_t = torch.randn(4, 1, 8, 8)
    x0_hat = PROCESS.x0_from_output(x_t, t, model(x_t, t))
    assert torch.allclose(x0_hat, memorized_x0(x_t, t, train), atol=1e-3)


def test_ddim_samples_land_on_training_images():
    train = training_set()
    samples = draw_samples(GridSampler(ddim, steps=50), OptimalScore(train, PROCESS), PROCESS, 24, (1, 8, 8), seed=0)
    d1, d2, index = nearest(samples, train)
    assert bool((d1 < 1e-3).all()) and bool((d1 / d2 < 1 / 3).all())
    assert len(set(index.tolist())) >= 4  # different noise reaches different training images


def test_band_errors_of_the_memorizer_itself_and_the_plot(tmp_path):
    train, heldout = training_set(16), training_set(6, seed=1)
    memorizer = OptimalScore(train, PROCESS)
    rows = band_errors(memorizer, PROCESS, train, heldout, ou_times=(0.01, 0.5), bands=4, batch_size=4)
    assert len(rows) == 2 * 4 and {row["band"] for row in rows} == {0, 1, 2, 3}
    assert rows[0]["level"] == 40 and rows[0]["f_high"] == pytest.approx(math.sqrt(0.5) / 4)
    for row in rows:
        assert row["model_vs_memorizer"] == pytest.approx(0, abs=1e-8)
        assert row["model_vs_eps"] == pytest.approx(row["memorizer_vs_eps"])
        assert row["memorizer_vs_eps"] > 0
    plot_rows = [dict(row, tau=tau, model_vs_memorizer=1.0 / tau) for tau in (10, 100, 1000) for row in rows]
    path = tmp_path / "bands" / "memorizer.png"
    plot_band_errors(plot_rows, path)
    assert path.stat().st_size > 1000 and set(METRICS) <= set(rows[0])


def test_band_errors_reproducible_and_restore_training_mode():
    train, heldout = training_set(16), training_set(4, seed=2)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    net = torch.nn.Module()
    net.conv = model
    net.forward = lambda x, t: model(x)
    net.train()
    first = band_errors(net, PROCESS, train, heldout, ou_times=(0.1,), bands=3, seed=5)
    assert net.training
    assert first == band_errors(net, PROCESS, train, heldout, ou_times=(0.1,), bands=3, seed=5)
    assert first != band_errors(net, PROCESS, train, heldout, ou_times=(0.1,), bands=3, seed=6)
    assert all(row["model_vs_memorizer"] > 0 and row["model_vs_eps"] > 0 for row in first)
