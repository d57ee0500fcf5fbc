"""The nearest-neighbour search is exact by every method (the bfloat16, float32 and float64 screens, faiss): each
agrees with a float64 brute force on image-like data with near copies, on white noise and on exact ties; the screens
also on crowded tiles. faiss-cpu is a dev dependency: the faiss cases fail, not skip, without it."""
from __future__ import annotations

import pytest
import torch

from freqdiff.data import nearest
from freqdiff.data.nearest import METHODS, UNIT, build_index, cached_index, choose_method, two_nearest

SCREENS = ["bfloat16", "float32", "float64"]


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
    values, indices = d.sort(dim=1, stable=True)  # among equidistant images the lowest index first
    return values[:, 0], values[:, 1], indices[:, 0]


def check(samples: torch.Tensor, train: torch.Tensor, method: str, tile: int = 128) -> None:
    """Several sample blocks and tiles, the last of each ragged."""
    index = build_index(train, method)
    assert index.method == method
    d1, d2, i1 = two_nearest(samples, index, batch_size=100, tile=tile)
    e1, e2, j1 = brute_force(samples, train)
    assert torch.equal(i1, j1)
    assert torch.allclose(d1, e1, rtol=1e-9, atol=1e-9) and torch.allclose(d2, e2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_search_is_exact_on_image_like_data_with_near_copies(method: str) -> None:
    train = natural_images(600, 16, seed=0)
    fresh = natural_images(150, 16, seed=1)
    noise = 0.01 * torch.randn(150, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    copies = train[torch.arange(0, 300, 2)] + noise
    check(torch.cat([fresh, copies, train[:20]]), train, method)


@pytest.mark.parametrize("method", METHODS)
def test_search_is_exact_on_white_noise_and_ties(method: str) -> None:
    g = torch.Generator().manual_seed(3)
    train = torch.randn(500, 1, 16, 16, generator=g)
    duplicated = torch.cat([train, train[:10]])  # exact ties: d2 = d1 for copies of a duplicated image
    check(torch.cat([torch.randn(120, 1, 16, 16, generator=g), train[:10]]), duplicated, method)


@pytest.mark.parametrize("method", SCREENS)
def test_a_crowded_tile_is_rescanned_and_stays_exact(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thirty copies of one training image put more than TOP candidates in a tile: those rows are rescanned."""
    base = natural_images(1, 16, seed=6)
    train = torch.cat([natural_images(300, 16, seed=7), base.expand(30, -1, -1, -1)])
    rescanned, rescan = [], nearest._rescan

    def spy(x: torch.Tensor, index: nearest.NearestIndex, rows: torch.Tensor, *args: object) -> object:
        rescanned.append(rows)
        return rescan(x, index, rows, *args)

    monkeypatch.setattr(nearest, "_rescan", spy)
    near = base + 1e-2 * torch.randn(20, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    check(torch.cat([near, natural_images(40, 16, seed=8)]), train, method, tile=64)
    assert len(torch.cat(rescanned).unique()) >= 20


@pytest.mark.parametrize("dim", [256, 1024, 8192])
def test_the_bfloat16_products_error_stays_inside_its_bound(dim: int) -> None:
    """Every pair's exact q = x.a - ||a||^2 / 2 lies within the bounds the screen derives from its bfloat16 result."""
    g = torch.Generator().manual_seed(dim)
    x, a = torch.randn(64, dim, generator=g) * 3, torch.cat([torch.randn(200, dim, generator=g), torch.zeros(1, dim)])
    x[0] = a[5]  # a copy: |x.a| at its largest
    index = build_index(a, "bfloat16")
    tiles = nearest._tiles(index, len(a))
    x_screen = torch.cat([x, torch.ones(64, 2)], dim=1).bfloat16()
    p = (x_screen @ index.screen.T).double()
    x_part = x_screen[:, :-2].float()
    x_norm, x_err = (v.double() * (1 + 2.0**-20) for v in (x_part.norm(dim=1), (x - x_part).norm(dim=1)))
    width = nearest._widths(x_norm, x_err, tiles.a_max, tiles.a_err, tiles.offset, index.screen)
    exact = x.double() @ index.train[:, :-2].double().T - index.train[:, :-2].double().pow(2).sum(1) / 2
    u = UNIT[torch.bfloat16]
    assert (nearest._lower(p, u) - width <= exact).all()
    assert (exact <= torch.where(p >= 0, p / (1 - u), p / (1 + u)) + width).all()
    assert (p >= nearest._raise_inverse(exact - width, u)).all()  # the threshold a true neighbour must pass


def test_the_method_is_chosen_by_image_size_cpu_and_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(4)
    small, large = torch.randn(300, 1, 8, 8, generator=g), torch.randn(300, 1, 16, 16, generator=g)
    assert build_index(small).method == "faiss"  # faiss-cpu is a dev dependency
    assert build_index(large).method == ("bfloat16" if nearest.native_bfloat16() else "faiss")
    monkeypatch.setattr(nearest, "faiss_installed", lambda: False)
    assert build_index(small).method == "float32"  # installs without faiss-cpu: the float32 screen
    monkeypatch.setattr(nearest, "native_bfloat16", lambda: False)
    assert choose_method(256, torch.device("cpu")) == "float32"
    monkeypatch.setattr(nearest, "native_bfloat16", lambda: True)
    assert choose_method(256, torch.device("cpu")) == "bfloat16"
    assert choose_method(2**15, torch.device("cpu")) == choose_method(64, torch.device("cpu")) == "float32"
    with pytest.raises(ValueError, match="CPU only"):
        build_index(small.to("meta"), "faiss")


def test_the_index_is_cached_by_content_and_needs_two_images() -> None:
    train = torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    assert cached_index(train) is cached_index(train.clone())
    assert cached_index(train) is not cached_index(train + 1)
    with pytest.raises(ValueError, match="at least 2"):
        build_index(train[:1])
