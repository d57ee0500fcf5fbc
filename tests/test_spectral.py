"""Spectral utilities: frequency grid, masks, band powers, DCT."""
import math

import numpy as np
import pytest
import scipy.fft
import torch

from freqdiff.core.registry import FreqdiffError
from freqdiff.core.spectral import (MAX_RADIUS, band_edges, dct, dct_2d, energy_above, high_frequency_fraction, idct,
                                    idct_2d, lowpass, lowpass_mask, radial_band_energy, radial_band_power,
                                    radial_frequency)


def checkerboard(h: int, w: int) -> torch.Tensor:
    """(-1)^(i+j): all its energy at the corner frequency (0.5, 0.5)."""
    return ((-1.0) ** (torch.arange(h)[:, None] + torch.arange(w)[None, :]))[None, None]


def cosine(h: int, w: int, cycles: int) -> torch.Tensor:
    """A horizontal cosine at frequency cycles/w cycles per pixel."""
    return torch.cos(2 * math.pi * cycles * torch.arange(w) / w).expand(h, w)[None, None].clone()


def test_radial_frequency_spans_dc_to_corner():
    radius = radial_frequency(8, 6)
    assert radius.shape == (8, 6)
    assert radius[0, 0] == 0
    assert radius.max() == pytest.approx(MAX_RADIUS)
    assert radius[0, 3] == pytest.approx(0.5)  # horizontal Nyquist
    assert radial_frequency(5, 5).max() < MAX_RADIUS  # odd sizes never reach Nyquist


def test_hard_mask_at_corner_is_identity_and_at_nyquist_drops_checkerboard():
    x = torch.randn(2, 3, 16, 12)
    assert bool(lowpass_mask(16, 12, MAX_RADIUS).eq(1).all())
    assert torch.allclose(lowpass(x, lowpass_mask(16, 12, MAX_RADIUS)), x, atol=1e-6)
    assert lowpass(checkerboard(8, 8), lowpass_mask(8, 8, 0.5)).abs().max() < 1e-6


def test_lowpass_keeps_low_cosine_and_removes_high_one():
    low, high = cosine(16, 16, 2), cosine(16, 16, 6)  # 0.125 and 0.375 cycles/pixel
    mask = lowpass_mask(16, 16, 0.25)
    assert torch.allclose(lowpass(low + high, mask), low, atol=1e-5)


def test_butterworth_gain():
    gain = lowpass_mask(64, 64, 0.25, "butterworth", order=3)
    radius = radial_frequency(64, 64)
    assert gain[0, 0] == 1
    assert gain[radius == 0.25][0] == pytest.approx(1 / math.sqrt(2), rel=1e-6)
    order = torch.argsort(radius.flatten())
    assert bool((gain.flatten()[order].diff() <= 1e-7).all())  # monotone decreasing in |f|


def test_energy_above_cutoff():
    assert energy_above(torch.ones(1, 1, 8, 8), 0.01).item() == pytest.approx(0, abs=1e-8)
    assert high_frequency_fraction(cosine(16, 16, 2), 0.25).item() == pytest.approx(0, abs=1e-8)
    assert high_frequency_fraction(checkerboard(8, 8), 0.5).item() == pytest.approx(1)
    assert energy_above(checkerboard(8, 8), 0.5).item() == pytest.approx(64)


def test_band_energy_sums_to_total_energy_and_white_noise_is_flat():
    x = torch.randn(4, 2, 32, 24, dtype=torch.float64)
    energy = radial_band_energy(x, 10)
    assert energy.shape == (4, 2, 10)
    assert torch.allclose(energy.sum(-1), x.square().sum((-2, -1)))
    white = radial_band_power(torch.randn(64, 1, 32, 32), 6).mean((0, 1))
    assert torch.allclose(white, torch.ones(6), atol=0.1)


def test_band_edges_given_or_counted():
    assert band_edges(4)[-1].item() == pytest.approx(MAX_RADIUS)
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    below_nyquist = radial_band_energy(x, [0, 0.25, 0.5]).sum(-1)
    assert bool((below_nyquist < x.square().sum((-2, -1))).all())  # the corners are left out
    with pytest.raises(FreqdiffError, match="increasing"):
        band_edges([0.3, 0.1])


def test_unknown_mask_kind_names_the_choices():
    with pytest.raises(FreqdiffError, match="'gauss'.*hard, butterworth"):
        lowpass_mask(8, 8, 0.25, "gauss")


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_dct_matches_scipy_and_round_trips(n):
    x = torch.randn(3, n, dtype=torch.float64)
    np.testing.assert_allclose(dct(x).numpy(), scipy.fft.dct(x.numpy(), norm="ortho"), atol=1e-12)
    assert torch.allclose(idct(dct(x)), x, atol=1e-12)


def test_dct_2d_is_orthonormal_batched_and_differentiable():
    x = torch.randn(2, 3, 9, 16, dtype=torch.float64)
    X = dct_2d(x)
    np.testing.assert_allclose(X.numpy(), scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho"), atol=1e-12)
    assert torch.allclose(X.square().sum(), x.square().sum())  # energy preserved
    assert torch.allclose(idct_2d(X), x, atol=1e-12)
    small = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: idct_2d(dct_2d(v) * torch.linspace(0, 1, 5, dtype=v.dtype)), small)
