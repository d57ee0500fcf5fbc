"""f_mem: the fraction of generated samples that copy a training image (paper section 3).

A sample x is memorized when ||x - a1|| / ||x - a2|| < k, with a1 and a2 its nearest and
second-nearest training images in raw L2 of the training data's own (centered) pixel space and
k = 1/3 (Gu et al. 2023, Bonnaire et al. 2025). The nearest-neighbour search is exact, in blocks of
`batch_size` samples (freqdiff.data.nearest: a bfloat16 screen with a rigorous rounding bound where the CPU
multiplies bfloat16 natively, else faiss's IndexFlatL2 when installed, else a float32 screen; candidates are
re-measured in float64); the training set's index is built once and reused at every checkpoint.

`fmem_robust` is the same test after one identical low-pass of samples and training images, so that a
copy carrying residual high-frequency noise, or missing its high frequencies, still counts as a copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from freqdiff.core.registry import FreqdiffError
from freqdiff.core.spectral import lowpass, lowpass_mask
from freqdiff.data.nearest import cached_index, two_nearest
from freqdiff.metrics.statistics import proportion_interval

# The robust test's radial cutoff in cycles/pixel. On 8x8 images it keeps the 3x3 block of lowest
# frequencies (|f| <= sqrt(2)/8), which holds 64% of the centered digits' energy but only 14% of white
# noise's: a sample's identity (which training image) lives there, residual sampler noise mostly does not.
ROBUST_CUTOFF = 0.18


@dataclass(frozen=True)
class FmemResult:
    """f_mem with its 95% bootstrap interval, and per sample d1/d2 and the index of a1."""

    fraction: float
    low: float
    high: float
    ratio: Tensor = field(repr=False)  # (N,) float64: ||x - a1|| / ||x - a2||
    nearest: Tensor = field(repr=False)  # (N,) int64: index of a1 in the training set
    k: float

    @property
    def memorized(self) -> Tensor:
        """(N,) bool: which samples are copies."""
        return self.ratio < self.k


def quantize_uint8(x: Tensor, mean: float | Tensor) -> Tensor:
    """Round centered images to the uint8 grid as DiffMemorize does: clamp(round((x+mean)*255))/255 - mean."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    return torch.clamp(torch.round((x + mean) * 255), 0, 255) / 255 - mean


def _as_float(x: Tensor) -> Tensor:
    """A floating tensor (numpy arrays and integer images accepted)."""
    x = torch.as_tensor(x)
    return x if x.is_floating_point() else x.float()


def check_finite(x: Tensor, what: str, where: str) -> None:
    """Fail with one line if `x` holds NaN or inf (a NaN sample must never count as 'not a copy')."""
    if x.numel() == 0 or (x.is_floating_point() and bool(torch.isfinite(torch.stack(torch.aminmax(x))).all())):
        return  # one pass, no mask: aminmax propagates NaN and keeps inf
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        images = int(bad.flatten(1).any(1).sum()) if x.ndim > 1 else int(bad.sum())
        raise FreqdiffError(f"{where}: {what} hold NaN or inf ({images} of {len(x)} images); refusing to measure them")


def _check_inputs(samples: Tensor, train: Tensor, k: float, n_boot: int, batch_size: int) -> None:
    """Fail with one line naming the bad value."""
    if samples.ndim < 2 or samples.shape[0] == 0:
        raise FreqdiffError(f"fmem: samples must be a non-empty batch (N, ...), got shape {tuple(samples.shape)}")
    if tuple(samples.shape[1:]) != tuple(train.shape[1:]):
        raise FreqdiffError(
            f"fmem: sample shape {tuple(samples.shape[1:])} differs from training image shape {tuple(train.shape[1:])}"
        )
    if train.shape[0] < 2:
        raise FreqdiffError(f"fmem: needs at least 2 training images (nearest and second nearest), got {train.shape[0]}")
    if not 0 < k <= 1:
        raise FreqdiffError(f"fmem: k must be in (0, 1], got {k}")
    if n_boot < 1:
        raise FreqdiffError(f"fmem: n_boot must be >= 1 (bootstrap resamples), got {n_boot}")
    if batch_size < 1:
        raise FreqdiffError(f"fmem: batch_size must be >= 1, got {batch_size}")
    check_finite(samples, "samples", "fmem")
    check_finite(train, "training images", "fmem")


def _quantized(samples: Tensor, quantize: bool, mean: float | Tensor | None) -> Tensor:
    """Samples rounded to the uint8 grid when `quantize`, which needs the centering offset `mean`."""
    if not quantize:
        return samples
    if mean is None:
        raise FreqdiffError("fmem: quantize=True needs mean, the offset with pixel in [0,1] = x + mean")
    return quantize_uint8(samples, mean)


def fmem(samples: Tensor, train: Tensor, k: float = 1 / 3, quantize: bool = False,
         mean: float | Tensor | None = None, n_boot: int = 1000, seed: int = 0,
         batch_size: int = 2048) -> FmemResult:
    """f_mem of `samples` against `train`, both (N, ...) in the training data's centered pixel space.

    quantize=True first rounds samples to the uint8 grid (DiffMemorize); `mean` is then required:
    the offset (scalar, or broadcastable to one image) with pixel in [0,1] = x + mean.
    When d2 = 0 (a copy of a duplicated training image) the ratio is 0: the sample is a copy.
    """
    samples, train = _as_float(samples), _as_float(train)
    _check_inputs(samples, train, k, n_boot, batch_size)
    samples = _quantized(samples, quantize, mean)
    d1, d2, nearest = two_nearest(samples, cached_index(train), batch_size)
    ratio = d1 / d2.clamp_min(torch.finfo(d2.dtype).tiny)
    memorized = ratio < k
    low, high = proportion_interval(memorized.numpy(force=True), n_boot, seed)
    return FmemResult(memorized.double().mean().item(), low, high, ratio, nearest, k)


def fmem_robust(samples: Tensor, train: Tensor, k: float = 1 / 3, cutoff: float = ROBUST_CUTOFF,
                quantize: bool = False, mean: float | Tensor | None = None, n_boot: int = 1000,
                seed: int = 0) -> FmemResult:
    """f_mem after the same hard radial low-pass at `cutoff` of samples (quantized first, if asked) and training images.

    Why a low-pass rather than the sampler's final denoised estimate: DDIM (eta = 0) already returns its last
    x0_hat, so that estimate is the raw sample and carries the same residual; the residual comes from the
    model's own eps (a memorizer whose high-frequency eps is shrunk by 1/(1+w), the optimum of a Fourier
    penalty at weight w, leaves noise that every estimate of that model keeps). A low-pass removes it from
    any sampler's output, and applied to both sides it is exactly blind to whatever a model adds or removes
    above the cutoff (noise, missing detail), so blurred and noisy copies stay copies.
    """
    samples, train = _as_float(samples), _as_float(train)
    _check_inputs(samples, train, k, n_boot, 1)
    samples = _quantized(samples, quantize, mean)
    mask = lowpass_mask(samples.shape[-2], samples.shape[-1], cutoff, "hard", device=samples.device)
    return fmem(lowpass(samples, mask), lowpass(train, mask), k=k, n_boot=n_boot, seed=seed)
