"""Blurring diffusion (Hoogeboom & Salimans 2023): heat dissipation and noise, diagonal in the 2-D DCT basis.

In DCT coefficients u = V^T x, with t in [0, 1] (continuous):
    u_t = alpha_t u_0 + sigma_t eps,   alpha_t = a_t d_t (one value per frequency),
    d_t = (1 - d_min) exp(-lambda tau_t) + d_min,  tau_t = sigma_B(t)^2 / 2,  sigma_B(t) = sigma_B,max sin^2(pi t / 2),
    lambda_ij = (pi i / H)^2 + (pi j / W)^2,
and a_t, sigma_t from the cosine log-SNR clipped to [logsnr_min, logsnr_max]: a_t^2 = sigmoid(logsnr_t),
sigma_t^2 = sigmoid(-logsnr_t). The noise is white (sigma_t is one number per example). exp(-lambda tau) is the
DCT gain of a Gaussian blur of std sigma_B pixels, so sigma_B,max is in pixels: the paper's 20 at 32x32 is 20/32
of the side; the default keeps that fraction (5 pixels at 8x8, the same attenuation of the lowest frequency,
lambda_1 tau_max = pi^2 (20/32)^2 / 2). The network predicts eps; the ancestral step is the contract's
per-frequency posterior, the paper's denoising distribution. With sigma_B,max = 0, d_t = 1: the cosine-log-SNR VP
process.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.process import PROCESSES
from freqdiff.process.base import DiffusionProcess, per_example
from freqdiff.process.context import BuildContext

BLUR_PER_SIDE = 20 / 32  # the paper's sigma_B,max = 20 pixels on 32x32 images
STEP_SCALE = 1000  # c_noise = 1000 t: the scale of DDPM's steps (EDM's VP preconditioning: (M - 1) t)


@dataclass(frozen=True)
class BlurringParams:
    sigma_blur_max: float | None = param(None, ge=0)  # blur std at t = 1 in pixels; None: 20/32 of the image side
    d_min: float = param(0.001, gt=0, lt=1)  # the least a frequency is dissipated to
    logsnr_min: float = param(-10.0)  # cosine log-SNR at t = 1
    logsnr_max: float = param(10.0)  # cosine log-SNR at t = 0


def dct_eigenvalues(h: int, w: int) -> Tensor:
    """lambda_ij = (pi i / h)^2 + (pi j / w)^2, (1, 1, h, w): the heat equation's rates of the DCT basis."""
    f_y = (math.pi * torch.arange(h, dtype=torch.float64) / h) ** 2
    f_x = (math.pi * torch.arange(w, dtype=torch.float64) / w) ** 2
    return (f_y[:, None] + f_x[None, :])[None, None]


class Blurring(DiffusionProcess):
    """alpha_t = a_t d_t per DCT frequency, white noise sigma_t, eps prediction, t ~ U[0, 1) in training."""

    basis = "dct"
    default_sampler = "ddpm"  # the paper samples ancestrally, with its denoising distribution

    def __init__(self, image_shape: tuple[int, ...], sigma_blur_max: float, d_min: float, logsnr_min: float,
                 logsnr_max: float) -> None:
        super().__init__()
        self.register_buffer("lambda_", dct_eigenvalues(*image_shape[-2:]).float())
        self.sigma_blur_max, self.d_min = sigma_blur_max, d_min
        self.angle_0 = math.atan(math.exp(-0.5 * logsnr_max))  # tan(angle) = exp(-logsnr / 2), linear in t
        self.angle_span = math.atan(math.exp(-0.5 * logsnr_min)) - self.angle_0

    def logsnr(self, t: Tensor) -> Tensor:
        """The cosine schedule's log-SNR, clipped: -2 log tan(angle_0 + angle_span t)."""
        return -2 * torch.log(torch.tan(self.angle_0 + self.angle_span * t))

    def dissipation(self, t: Tensor) -> Tensor:
        """d_t per frequency, (B, 1, H, W)."""
        tau = (self.sigma_blur_max * torch.sin(math.pi * per_example(t) / 2) ** 2) ** 2 / 2
        return (1 - self.d_min) * torch.exp(-self.lambda_ * tau) + self.d_min

    def alpha(self, level: Tensor) -> Tensor:
        return per_example(torch.sigmoid(self.logsnr(level)).sqrt()) * self.dissipation(level)

    def sigma(self, level: Tensor) -> Tensor:
        return per_example(torch.sigmoid(-self.logsnr(level)).sqrt())

    def snr(self, level: Tensor) -> Tensor:
        """a_t^2 / sigma_t^2, the SNR of the frequency no blur touches (the mean, lambda = 0)."""
        return self.logsnr(level.double()).exp()

    def level_at_snr(self, snr: float) -> Tensor:
        t = (math.atan(snr ** -0.5) - self.angle_0) / self.angle_span
        return torch.tensor(min(max(t, 0.0), 1.0), device=self.device)

    def sample_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return torch.rand(batch, generator=generator, device=device)

    def sampling_levels(self, steps: int) -> Tensor:
        return torch.linspace(1, 0, steps, device=self.device)

    def c_noise(self, level: Tensor) -> Tensor:
        return STEP_SCALE * level

    def derived(self) -> dict[str, Any]:
        return {"sigma_blur_max": self.sigma_blur_max}


@PROCESSES.register("blurring", BlurringParams)
def blurring(params: BlurringParams, context: BuildContext) -> Blurring:
    """Blurring diffusion in the DCT basis (Hoogeboom & Salimans 2023): dissipation + cosine log-SNR, eps prediction."""
    if not params.logsnr_min < params.logsnr_max:
        raise FreqdiffError(f"process 'blurring': logsnr_min {params.logsnr_min} must be below logsnr_max "
                            f"{params.logsnr_max}")
    shape = context.image_shape
    sigma_blur_max = params.sigma_blur_max if params.sigma_blur_max is not None else BLUR_PER_SIDE * max(shape[-2:])
    return Blurring(shape, sigma_blur_max, params.d_min, params.logsnr_min, params.logsnr_max)
