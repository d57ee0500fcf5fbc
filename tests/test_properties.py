"""Property-based tests (hypothesis): the spectral utilities and f_mem keep their symmetries, bounds and invariances
for any image size, cutoff, data and seed, not only for the hand-picked cases of test_spectral and test_fmem."""
from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from freqdiff.core.spectral import (MAX_RADIUS, dct, dct_2d, energy_above, high_frequency_fraction, idct_2d, lowpass,
                                    lowpass_mask, radial_band_energy, radial_frequency, spectrum)
from freqdiff.metrics import fmem

FAST = settings(max_examples=30, deadline=None, database=None)  # no .hypothesis/ folder in the checkout
sides = st.integers(min_value=1, max_value=12)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
cutoffs = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)
kinds = st.sampled_from(["hard", "butterworth"])


def images(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """Seeded float64 images (float64: the identities below then hold to ~1e-12)."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@FAST
@given(seeds, sides, sides, st.integers(1, 3))
def test_parseval_and_bands_partition_the_energy(seed: int, h: int, w: int, channels: int) -> None:
    x = images(seed, 2, channels, h, w)
    energy = x.square().sum((-2, -1))
    assert torch.allclose(spectrum(x).abs().square().sum((-2, -1)), energy, rtol=1e-10)
    assert torch.allclose(radial_band_energy(x, bands=5).sum(-1), energy, rtol=1e-10)


@FAST
@given(sides, sides, cutoffs, kinds, st.integers(1, 8))
def test_masks_are_gains_in_0_1_that_depend_on_the_radius_only(h: int, w: int, cutoff: float, kind: str,
                                                               order: int) -> None:
    mask = lowpass_mask(h, w, cutoff, kind, order).double()
    assert bool(((mask >= 0) & (mask <= 1)).all())
    mirrored = mask[(-torch.arange(h)) % h][:, (-torch.arange(w)) % w]  # f -> -f
    assert torch.equal(mask, mirrored)
    if h == w:
        assert torch.equal(mask, mask.T)
    radius = radial_frequency(h, w)
    same_radius = radius[:, :, None, None] == radius[None, None]
    assert bool(((mask[:, :, None, None] == mask[None, None]) | ~same_radius).all())


@FAST
@given(seeds, sides, cutoffs, kinds)
def test_lowpass_commutes_with_rotations_and_flips_and_stays_real(seed: int, side: int, cutoff: float,
                                                                  kind: str) -> None:
    x = images(seed, 2, 1, side, side)
    mask = lowpass_mask(side, side, cutoff, kind)
    smooth = lowpass(x, mask)
    assert smooth.dtype == x.dtype and not smooth.is_complex()
    for move in (lambda y: torch.rot90(y, 1, (-2, -1)), lambda y: torch.flip(y, (-1,))):
        assert torch.allclose(lowpass(move(x), mask), move(smooth), atol=1e-5)


@FAST
@given(seeds, sides, sides)
def test_dct_is_orthonormal_and_inverts(seed: int, h: int, w: int) -> None:
    basis = dct(torch.eye(w, dtype=torch.float64))  # row i: the DCT of the i-th unit vector
    assert torch.allclose(basis @ basis.T, torch.eye(w, dtype=torch.float64), atol=1e-10)
    x = images(seed, 3, h, w)
    X = dct_2d(x)
    assert torch.allclose(X.square().sum(), x.square().sum(), rtol=1e-10)
    assert torch.allclose(idct_2d(X), x, atol=1e-10)


@FAST
@given(seeds, sides, sides, cutoffs, cutoffs)
def test_energy_above_falls_as_the_cutoff_rises(seed: int, h: int, w: int, c1: float, c2: float) -> None:
    x = images(seed, 4, 1, h, w)
    low, high = sorted((c1, c2))
    assert bool((energy_above(x, low) >= energy_above(x, high) - 1e-9).all())
    assert bool((energy_above(x, low) <= x.square().flatten(1).sum(1) * (1 + 1e-10)).all())
    assert bool((energy_above(x, MAX_RADIUS) == 0).all())
    fraction = high_frequency_fraction(x, low)
    assert bool(((fraction >= 0) & (fraction <= 1 + 1e-10)).all())


def fmem_case(seed: int, n_train: int, n_samples: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A training set and samples that mix exact copies, noisy copies and fresh images."""
    g = torch.Generator().manual_seed(seed)
    train = torch.randn(n_train, 1, side, side, generator=g, dtype=torch.float64)
    picks = torch.randint(0, n_train, (n_samples,), generator=g)
    noise = torch.rand(n_samples, 1, 1, 1, generator=g, dtype=torch.float64) * 2  # 0: a copy .. 2: unrelated
    samples = train[picks] + noise * torch.randn(n_samples, 1, side, side, generator=g, dtype=torch.float64)
    return samples, train


def near_threshold(ratio: torch.Tensor, k: float, tolerance: float = 1e-9) -> bool:
    """A ratio within rounding of k may flip under an exact symmetry: such draws assert nothing about it."""
    return bool(((ratio - k).abs() < tolerance).any())


@FAST
@given(seeds, st.integers(2, 20), st.integers(1, 20), st.integers(2, 6))
def test_fmem_bounds_and_invariance_to_the_order_of_the_training_set(seed: int, n_train: int, n_samples: int,
                                                                     side: int) -> None:
    samples, train = fmem_case(seed, n_train, n_samples, side)
    result = fmem(samples, train, n_boot=50)
    assert bool(((result.ratio >= 0) & (result.ratio <= 1)).all())
    assert 0 <= result.low <= result.fraction <= result.high <= 1
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 1))
    permuted = fmem(samples, train[order], n_boot=50)
    assert torch.allclose(permuted.ratio, result.ratio, rtol=0, atol=1e-12)
    assert permuted.fraction == result.fraction or near_threshold(result.ratio, result.k)


@FAST
@given(seeds, st.integers(2, 20), st.integers(2, 6))
def test_exact_copies_are_memorized(seed: int, n_train: int, side: int) -> None:
    _, train = fmem_case(seed, n_train, 1, side)
    result = fmem(train, train, n_boot=50)
    assert result.fraction == 1.0 and torch.equal(result.nearest, torch.arange(n_train))


@FAST
@given(seeds, st.integers(2, 20), st.integers(1, 20), st.integers(2, 6),
       st.floats(-10, 10, allow_nan=False), st.floats(0.1, 10, allow_nan=False))
def test_fmem_ignores_a_common_translation_and_scale(seed: int, n_train: int, n_samples: int, side: int,
                                                     shift: float, scale: float) -> None:
    """Exact in exact arithmetic; the search works in float32 (metrics.nearest), hence the 1e-4 tolerance for
    offsets up to 10x the images' spread."""
    samples, train = fmem_case(seed, n_train, n_samples, side)
    vector = shift * torch.randn(1, 1, side, side, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    result = fmem(samples, train, n_boot=50)
    moved = fmem(scale * samples + vector, scale * train + vector, n_boot=50)
    assert torch.allclose(moved.ratio, result.ratio, rtol=1e-4, atol=1e-4)
    assert moved.fraction == result.fraction or near_threshold(result.ratio, result.k, 1e-4)
    assert not math.isnan(moved.fraction)
