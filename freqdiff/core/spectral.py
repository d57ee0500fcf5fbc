"""Spectral tools on torch.fft for images (..., H, W): radial frequencies, low-pass masks, band powers, DCT.

Frequencies are in cycles per pixel: each axis runs over [-0.5, 0.5) (0.5 is the Nyquist frequency of that
axis), so the radius |f| = sqrt(f_y^2 + f_x^2) runs from 0 to sqrt(2)/2 ~ 0.707 (the checkerboard).
Every Fourier transform here is the unitary one (norm='ortho'), so energies agree with pixel space (Parseval):
sum |fft2(x)|^2 = sum x^2, and a per-pixel mean square equals the mean power per frequency.
Everything is differentiable and batched over the leading dimensions.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from einops import einsum
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, check_choice

MAX_RADIUS = math.sqrt(0.5)  # |f| of the checkerboard, the highest radial frequency of a pixel grid
MASK_KINDS = ("hard", "butterworth")


def radial_frequency(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """|f| in cycles/pixel of every fft2 coefficient of an h x w image, shape (h, w), float64 for exact masks."""
    f_y = torch.fft.fftfreq(h, device=device, dtype=torch.float64)
    f_x = torch.fft.fftfreq(w, device=device, dtype=torch.float64)
    return torch.sqrt(f_y[:, None] ** 2 + f_x[None, :] ** 2)


def check_cutoff(cutoff: float, where: str) -> None:
    """Fail if a radial cutoff is not positive (nothing lies below it)."""
    if cutoff <= 0:
        raise FreqdiffError(f"{where}: cutoff must be > 0, got {cutoff}")


def lowpass_mask(h: int, w: int, cutoff: float, kind: str = "hard", order: int = 2,
                 device: torch.device | None = None) -> Tensor:
    """Radial low-pass gain per fft2 coefficient, shape (h, w).

    hard: 1[|f| <= cutoff]; butterworth: 1 / sqrt(1 + (|f| / cutoff)^(2 order)), 1/sqrt(2) at the cutoff.

    The hard mask is all ones for cutoff >= MAX_RADIUS; at cutoff 0.5 it still removes the corners
    (0.5 < |f| <= 0.707, about 21% of the coefficients, the checkerboard among them).
    """
    check_choice(kind, MASK_KINDS, "lowpass_mask.kind")
    check_cutoff(cutoff, "lowpass_mask")
    radius = radial_frequency(h, w, device)
    if kind == "hard":
        return (radius <= cutoff).float()
    return (1 / torch.sqrt(1 + (radius / cutoff) ** (2 * order))).float()


def spectrum(x: Tensor) -> Tensor:
    """Unitary 2-D Fourier transform over the last two axes."""
    return torch.fft.fft2(x, norm="ortho")


def lowpass(x: Tensor, mask: Tensor) -> Tensor:
    """x with each Fourier coefficient multiplied by the (symmetric, real) gain `mask`; stays real."""
    return torch.fft.ifft2(spectrum(x) * mask, norm="ortho").real


def power(x: Tensor) -> Tensor:
    """|fft2(x)|^2 per coefficient: the energy of x in each frequency."""
    return spectrum(x).abs().square()


def energy_above(x: Tensor, cutoff: float) -> Tensor:
    """Energy of each image (B, C, H, W) at radial frequencies above `cutoff`, summed over channels: shape (B,)."""
    above = 1 - lowpass_mask(x.shape[-2], x.shape[-1], cutoff, "hard", device=x.device)
    return (power(x) * above).flatten(1).sum(1)


def high_frequency_fraction(x: Tensor, cutoff: float) -> Tensor:
    """Fraction of each image's energy above `cutoff`, shape (B,); 0 for an all-zero image."""
    total = x.square().flatten(1).sum(1)
    return energy_above(x, cutoff) / total.clamp_min(torch.finfo(x.dtype).tiny)


def band_edges(bands: int | Sequence[float]) -> Tensor:
    """Radial band edges: `bands` equal-width bands over [0, MAX_RADIUS], or the given increasing edges."""
    if isinstance(bands, int):
        return torch.linspace(0, MAX_RADIUS, bands + 1, dtype=torch.float64)
    edges = torch.tensor(list(bands), dtype=torch.float64)
    if len(edges) < 2 or bool((edges[1:] <= edges[:-1]).any()):
        raise FreqdiffError(f"band edges must be at least two increasing numbers, got {list(bands)}")
    return edges


def band_membership(h: int, w: int, edges: Tensor, device: torch.device | None = None) -> Tensor:
    """One-hot (K, h, w): coefficient in band k iff edges[k] <= |f| < edges[k+1] (the last band includes its top)."""
    radius = radial_frequency(h, w, device)
    lo, hi = edges[:-1].to(radius.device)[:, None, None], edges[1:].to(radius.device)[:, None, None]
    below_top = torch.cat([radius < hi[:-1], radius[None] <= hi[-1:]])
    return ((radius >= lo) & below_top).float()


def radial_band_energy(x: Tensor, bands: int | Sequence[float] = 8) -> Tensor:
    """Energy of x (..., H, W) per radial band, (..., K); bands covering [0, MAX_RADIUS] sum to sum x^2."""
    members = band_membership(x.shape[-2], x.shape[-1], band_edges(bands), x.device)
    return einsum(power(x), members.to(x.dtype), "... h w, k h w -> ... k")


def radial_band_power(x: Tensor, bands: int | Sequence[float] = 8) -> Tensor:
    """Mean power per coefficient in each radial band, (..., K): per-pixel mean-square units, NaN for an empty band."""
    members = band_membership(x.shape[-2], x.shape[-1], band_edges(bands), x.device)
    return radial_band_energy(x, bands) / members.sum((-2, -1)).to(x.dtype)


def _dct_scale(n: int, like: Tensor) -> Tensor:
    """Orthonormal DCT-II factors sqrt(1/n) for k = 0 and sqrt(2/n) otherwise."""
    scale = torch.full((n,), math.sqrt(2 / n), dtype=like.dtype, device=like.device)
    scale[0] = math.sqrt(1 / n)
    return scale


def _twiddle(n: int, like: Tensor) -> Tensor:
    """exp(-i pi k / (2n)), which turns the FFT of the reordered signal into cosine sums."""
    k = torch.arange(n, dtype=like.dtype, device=like.device)
    return torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))


def _even_odd_order(n: int, device: torch.device) -> Tensor:
    """Makhoul's reordering: even samples ascending, then odd samples descending."""
    return torch.cat([torch.arange(0, n, 2, device=device), torch.arange(1, n, 2, device=device).flip(0)])


def dct(x: Tensor) -> Tensor:
    """Orthonormal DCT-II along the last axis (scipy.fft.dct(norm='ortho')), with one FFT (Makhoul 1980)."""
    n = x.shape[-1]
    v = x[..., _even_odd_order(n, x.device)]
    return (torch.fft.fft(v) * _twiddle(n, x)).real * _dct_scale(n, x)


def idct(X: Tensor) -> Tensor:
    """Inverse of `dct` (the orthonormal DCT-III) along the last axis, with one inverse FFT."""
    n = X.shape[-1]
    cosine_sums = X / _dct_scale(n, X)
    mirrored = torch.cat([torch.zeros_like(cosine_sums[..., :1]), cosine_sums[..., 1:].flip(-1)], dim=-1)
    v = torch.fft.ifft(torch.complex(cosine_sums, -mirrored) * _twiddle(n, X).conj()).real
    return v[..., torch.argsort(_even_odd_order(n, X.device))]


def dct_2d(x: Tensor) -> Tensor:
    """Orthonormal 2-D DCT-II of images (..., H, W): the basis of blurring / heat-dissipation processes."""
    return dct(dct(x).transpose(-1, -2)).transpose(-1, -2)


def idct_2d(X: Tensor) -> Tensor:
    """Inverse of `dct_2d`."""
    return idct(idct(X).transpose(-1, -2)).transpose(-1, -2)
