"""The screened nearest-neighbour search is exact: it agrees with brute force on image-like data and on white noise."""
from __future__ import annotations

import torch

from freqdiff.data.nearest import build_index, cached_index, two_nearest


def natural_images(count: int, side: int, seed: int) -> torch.Tensor:
    """Gaussian random fields with a 1/f^2 power spectrum, the second-order statistics of natural images."""
    g = torch.Generator().manual_seed(seed)
    f = torch.fft.fftfreq(side)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1 / side)
    spectrum = torch.fft.fft2(torch.randn(count, 1, side, side, generator=g)) / radius
    return torch.fft.ifft2(spectrum).real


def brute_force(samples: torch.Tensor, train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, a = samples.flatten(1).double(), train.flatten(1).double()
    d = torch.stack([(row - a).norm(dim=1) for row in x])  # direct differences: cdist's expansion loses digits
    best = d.topk(2, dim=1, largest=False)
    return best.values[:, 0], best.values[:, 1], best.indices[:, 0]


def check(samples: torch.Tensor, train: torch.Tensor) -> None:
    d1, d2, i1 = two_nearest(samples, build_index(train), batch_size=100)
    e1, e2, j1 = brute_force(samples, train)
    assert torch.equal(i1, j1)
    assert torch.allclose(d1, e1, rtol=1e-9, atol=1e-9) and torch.allclose(d2, e2, rtol=1e-9, atol=1e-9)


def test_screened_search_is_exact_on_image_like_data_with_near_copies() -> None:
    train = natural_images(600, 16, seed=0)
    fresh = natural_images(150, 16, seed=1)
    copies = train[torch.arange(0, 300, 2)] + 0.01 * torch.randn(150, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    assert build_index(train).screened
    check(torch.cat([fresh, copies, train[:20]]), train)


def test_screened_search_is_exact_on_white_noise_and_ties() -> None:
    g = torch.Generator().manual_seed(3)
    train = torch.randn(500, 1, 16, 16, generator=g)
    duplicated = torch.cat([train, train[:10]])  # exact ties: d2 = d1 for copies of a duplicated image
    check(torch.cat([torch.randn(120, 1, 16, 16, generator=g), train[:10]]), duplicated)


def test_small_images_use_the_plain_search_and_the_index_is_cached() -> None:
    g = torch.Generator().manual_seed(4)
    train = torch.randn(300, 1, 8, 8, generator=g)
    assert not build_index(train).screened
    check(torch.randn(50, 1, 8, 8, generator=g), train)
    assert cached_index(train) is cached_index(train.clone())
