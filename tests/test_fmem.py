"""f_mem: the d1/d2 < k copy test, its exact chunked search and its bootstrap interval."""
from __future__ import annotations

import importlib

import pytest
import torch

from freqdiff.core.registry import FreqdiffError
from freqdiff.core.spectral import lowpass, lowpass_mask
from freqdiff.data.nearest import METHODS, build_index
from freqdiff.metrics import fmem, fmem_robust, quantize_uint8, two_nearest
from freqdiff.metrics.fmem import ROBUST_CUTOFF
from freqdiff.metrics.statistics import proportion_interval

fmem_module = importlib.import_module("freqdiff.metrics.fmem")  # the package's `fmem` attribute is the function
MEAN = 0.4  # the centering offset: pixel in [0,1] = x + MEAN


@pytest.fixture
def train() -> torch.Tensor:
    """200 centered 8x8 grayscale images on the uint8 grid."""
    pixels = torch.randint(0, 256, (200, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    return pixels / 255 - MEAN


def fresh(n: int, seed: int) -> torch.Tensor:
    """Independent images from the training distribution."""
    return torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed)) / 255 - MEAN


def test_exact_copies_are_all_memorized(train: torch.Tensor) -> None:
    picks = torch.arange(0, 200, 3)
    result = fmem(train[picks], train)
    assert result.fraction == 1.0 and (result.low, result.high) == (1.0, 1.0)
    assert torch.equal(result.nearest, picks)
    assert result.ratio.max() < 1e-6


def test_near_copies_are_memorized(train: torch.Tensor) -> None:
    noisy = train[:100] + 0.01 * torch.randn(100, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    result = fmem(noisy, train)
    assert result.fraction == 1.0
    assert torch.equal(result.nearest, torch.arange(100))


def test_fresh_images_are_not_memorized(train: torch.Tensor) -> None:
    result = fmem(fresh(300, seed=2), train)
    assert result.fraction == 0.0 and result.high == 0.0
    assert result.ratio.min() > 0.5


def test_mixture_fraction_lies_in_its_interval(train: torch.Tensor) -> None:
    samples = torch.cat([train[:120], fresh(280, seed=3)])  # 30% copies
    result = fmem(samples, train)
    assert result.fraction == pytest.approx(120 / 400)
    assert result.low < 0.3 < result.high
    assert 0.03 < result.high - result.low < 0.12  # binomial width at n=400: 2*1.96*sqrt(.3*.7/400) ~ 0.09
    again, other_seed = fmem(samples, train), fmem(samples, train, seed=5)
    assert (again.low, again.high) == (result.low, result.high)
    assert (other_seed.low, other_seed.high) != (result.low, result.high)


def test_chunked_search_equals_brute_force() -> None:
    gen = torch.Generator().manual_seed(4)
    samples, train = torch.randn(53, 2, 3, 3, generator=gen), torch.randn(37, 2, 3, 3, generator=gen)
    d1, d2, nearest = two_nearest(samples, train, batch_size=8)  # 8 divides neither set: ragged last blocks
    dist = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())
    best, index = dist.topk(2, dim=1, largest=False)
    torch.testing.assert_close(d1, best[:, 0])
    torch.testing.assert_close(d2, best[:, 1])
    assert torch.equal(nearest, index[:, 0])


def test_duplicated_training_image_copy_counts_as_memorized(train: torch.Tensor) -> None:
    doubled = torch.cat([train, train[:1]])
    result = fmem(train[:1], doubled)
    assert result.ratio.item() == 0.0 and result.fraction == 1.0


def test_quantize_snaps_samples_to_the_uint8_grid(train: torch.Tensor) -> None:
    wobble = train[:50] + 0.4 / 255 * torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(6)) - 0.2 / 255
    torch.testing.assert_close(quantize_uint8(wobble, MEAN), train[:50])
    assert fmem(wobble, train, quantize=True, mean=MEAN).ratio.max() < 1e-6
    assert fmem(wobble, train).ratio.min() > 0


def test_quantize_without_mean_fails(train: torch.Tensor) -> None:
    with pytest.raises(FreqdiffError, match="mean"):
        fmem(train[:3], train, quantize=True)


@pytest.mark.parametrize("samples, train, match", [
    (torch.zeros(4, 1, 8, 8), torch.zeros(10, 1, 4, 4), r"\(1, 8, 8\).*\(1, 4, 4\)"),
    (torch.zeros(4, 1, 8, 8), torch.zeros(1, 1, 8, 8), "at least 2 training images.*got 1"),
    (torch.zeros(0, 1, 8, 8), torch.zeros(5, 1, 8, 8), "non-empty"),
])
def test_bad_inputs_fail_with_one_line(samples: torch.Tensor, train: torch.Tensor, match: str) -> None:
    with pytest.raises(FreqdiffError, match=match) as info:
        fmem(samples, train)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_is_refused_never_counted_as_not_a_copy(train: torch.Tensor, bad: float) -> None:
    samples = train[:10].clone()
    samples[3, 0, 2, 2] = bad
    with pytest.raises(FreqdiffError, match=r"fmem: samples hold NaN or inf \(1 of 10 images\)") as info:
        fmem(samples, train)
    assert "\n" not in str(info.value)
    poisoned = train.clone()
    poisoned[7] = bad
    with pytest.raises(FreqdiffError, match="training images hold NaN or inf"):
        fmem_robust(train[:10], poisoned)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_boot": 0}, "n_boot must be >= 1.*got 0"),
    ({"k": 0.0}, r"k must be in \(0, 1\], got 0.0"),
    ({"k": 1.5}, r"k must be in \(0, 1\], got 1.5"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
])
def test_bad_arguments_name_value_and_range(train: torch.Tensor, kwargs: dict, match: str) -> None:
    with pytest.raises(FreqdiffError, match=match) as info:
        fmem(train[:5], train, **kwargs)
    assert "\n" not in str(info.value)


def test_interval_is_the_shared_proportion_interval(train: torch.Tensor) -> None:
    samples = torch.cat([train[:40], fresh(60, seed=8)])
    result = fmem(samples, train, n_boot=500, seed=3)
    assert (result.low, result.high) == proportion_interval(result.memorized.numpy(), n_boot=500, seed=3)


def test_robust_measure_sees_copies_through_what_lies_above_its_cutoff(train: torch.Tensor) -> None:
    above = 1 - lowpass_mask(8, 8, ROBUST_CUTOFF)
    gen = torch.Generator().manual_seed(9)
    high_noise = lowpass(0.3 * torch.randn(100, 1, 8, 8, generator=gen), above)  # only frequencies above the cutoff
    noisy = train[:100] + high_noise
    assert fmem(noisy, train).fraction < 0.5  # the raw test is fooled by the residual
    robust = fmem_robust(noisy, train)
    assert robust.fraction == 1.0 and torch.equal(robust.nearest, torch.arange(100))
    stripped = train[:100] - lowpass(train[:100], above)  # copies with everything above the cutoff removed
    assert fmem_robust(stripped, train).fraction == 1.0


def test_robust_measure_does_not_call_fresh_images_copies(train: torch.Tensor) -> None:
    assert fmem_robust(fresh(300, seed=10), train).fraction < 0.02


@pytest.mark.parametrize("method", METHODS)
def test_fmem_equals_a_float64_brute_force_by_every_method(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever method searches (faiss-cpu: a dev dependency), f_mem and every ratio are the brute force's."""
    gen = torch.Generator().manual_seed(11)
    train = torch.randn(400, 1, 16, 16, generator=gen)
    samples = torch.cat([train[:60] + 0.2 * torch.randn(60, 1, 16, 16, generator=gen),  # ratios on both sides of k
                         torch.randn(60, 1, 16, 16, generator=gen)])
    monkeypatch.setattr(fmem_module, "cached_index", lambda images: build_index(images, method))
    result = fmem(samples, train, batch_size=50)
    dist = torch.stack([(x - train.flatten(1).double()).norm(dim=1) for x in samples.flatten(1).double()])
    best = dist.sort(dim=1).values
    torch.testing.assert_close(result.ratio, best[:, 0] / best[:, 1], rtol=1e-9, atol=0)
    assert 0 < result.fraction < 1 and result.fraction == ((best[:, 0] / best[:, 1]) < 1 / 3).double().mean().item()
