"""Image sets whose answer is known, for calibrating every measure: held-out digits, exact, noisy, blurred and
low-passed copies of the training images, and three kinds of noise (REFERENCES, with their kind)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.core.spectral import lowpass, lowpass_mask, radial_frequency
from freqdiff.data import Split
from freqdiff.models.optimal_score import OptimalScore
from freqdiff.pipeline.build import Pipeline, build_pipeline, load_pool
from freqdiff.process import DiffusionProcess
from freqdiff.regularizers.spectral_filter import SpectralFilterParams
from freqdiff.samplers import draw_samples

PENALTY_CUTOFF, PENALTY_WEIGHT = 0.25, 1.0  # the fourier_penalty recipe's cutoff and weight
BLUR_SIGMA = 0.5  # pixels (blurred_copies' docstring says it): the gain is 0.73 at 0.25, 0.29 at 0.5 cycles/pixel


class PenalizedMemorizer(nn.Module):
    """The exact memorizer (the training set's optimal eps) with its eps above `cutoff` shrunk by 1/(1 + weight).

    This minimizes E||eps_hat - eps||^2 + weight ||highpass(eps_hat)||^2 per Fourier coefficient: the optimum
    of the Fourier penalty on eps. Its samples are copies that keep residual high-frequency noise.
    """

    closed_form = True

    def __init__(self, train: Tensor, process: DiffusionProcess, cutoff: float = PENALTY_CUTOFF,
                 weight: float = PENALTY_WEIGHT) -> None:
        super().__init__()
        self.memorizer = OptimalScore(train, process)
        self.register_buffer("mask", lowpass_mask(train.shape[-2], train.shape[-1], cutoff))
        self.weight = weight

    def forward(self, x_t: Tensor, level: Tensor) -> Tensor:
        eps = self.memorizer(x_t, level)
        low = lowpass(eps, self.mask)
        return low + (eps - low) / (1 + self.weight)


@dataclass
class Setup:
    """The data, pipeline and sizes every reference set is built from."""

    cfg: RunConfig
    pipe: Pipeline
    n_samples: int
    generator: torch.Generator

    @property
    def split(self) -> Split:
        return self.pipe.split

    def unit(self, images01: Tensor) -> Tensor:
        """[0, 1] pixels -> the split's centered space."""
        return images01 - self.split.mean.reshape(1, -1, 1, 1)

    def training_pool(self) -> Tensor:
        """The images that are not held out (the pool the training images come from), in [0, 1]."""
        return load_pool(self.cfg)[:-self.cfg.data.test_size]


def heldout_digits(s: Setup) -> Tensor:
    """Pool images neither trained on nor in the reference set: what a perfect generalizing model draws."""
    pool = s.training_pool()
    unseen = torch.ones(len(pool), dtype=torch.bool)
    unseen[s.split.train_indices] = False
    candidates = torch.nonzero(unseen).flatten()
    return s.unit(pool[candidates[torch.randperm(len(candidates), generator=s.generator)[:s.n_samples]]])


def exact_copies(s: Setup) -> Tensor:
    """Training images drawn uniformly with replacement."""
    return s.split.train[torch.randint(0, len(s.split.train), (s.n_samples,), generator=s.generator)]


def noisy_copies(s: Setup) -> Tensor:
    """Samples of the exact memorizer at the Fourier penalty's optimum (w = 1, cutoff 0.25), by the default DDIM."""
    model = PenalizedMemorizer(s.split.train, s.pipe.process)
    seed = int(torch.randint(0, 2**31 - 1, (), generator=s.generator))
    return draw_samples(s.pipe.sampler, model, s.pipe.process, s.n_samples, s.split.image_shape, seed)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Images blurred by a Gaussian of `sigma` pixels: Fourier gain exp(-2 pi^2 sigma^2 |f|^2)."""
    radius = radial_frequency(x.shape[-2], x.shape[-1], x.device)
    return lowpass(x, torch.exp(-2 * math.pi**2 * sigma**2 * radius**2).to(x.dtype))


def blurred_copies(s: Setup) -> Tensor:
    """Exact copies blurred by a Gaussian of half a pixel: still legible digits, without their finest detail."""
    return gaussian_blur(exact_copies(s), BLUR_SIGMA)


def lowpassed_copies(s: Setup) -> Tensor:
    """Exact copies through the spectral_filter recipe's low-pass (its default hard mask at 0.25 cycles/pixel)."""
    p = SpectralFilterParams()
    copies = exact_copies(s)
    return lowpass(copies, lowpass_mask(*copies.shape[-2:], p.cutoff, p.kind, p.order))


def uniform_noise(s: Setup) -> Tensor:
    """Pixels uniform in [0, 1]."""
    return s.unit(torch.rand(s.n_samples, *s.split.image_shape, generator=s.generator))


def binary_noise(s: Setup) -> Tensor:
    """Pixels 0 or 1 with probability 1/2."""
    return s.unit(torch.randint(0, 2, (s.n_samples, *s.split.image_shape), generator=s.generator).float())


def gaussian_blobs(s: Setup) -> Tensor:
    """Draws of the Gaussian with the training pool's per-pixel mean and covariance, clipped to [0, 1]."""
    pool = s.training_pool().flatten(1).double()
    mean, cov = pool.mean(0), torch.cov(pool.T)
    root = torch.linalg.cholesky(cov + 1e-6 * cov.diagonal().mean() * torch.eye(len(mean), dtype=cov.dtype))
    draws = mean + torch.randn(s.n_samples, len(mean), generator=s.generator, dtype=cov.dtype) @ root.T
    return s.unit(draws.float().clamp(0, 1).reshape(s.n_samples, *s.split.image_shape))


REFERENCES: tuple[tuple[str, str, Callable[[Setup], Tensor]], ...] = (
    ("held-out digits", "image-like", heldout_digits),
    ("exact copies", "image-like", exact_copies),
    ("noisy copies", "image-like", noisy_copies),
    ("blurred copies", "image-like", blurred_copies),
    ("low-passed copies", "diagnostic", lowpassed_copies),
    ("uniform noise", "noise-like", uniform_noise),
    ("binary noise", "noise-like", binary_noise),
    ("gaussian blobs", "noise-like", gaussian_blobs),
)


def make_setup(n: int, n_samples: int, folds: int, seed: int) -> Setup:
    """The default run configuration with n training images, its pipeline, and a seeded generator."""
    cfg = apply_flags(RunConfig(), {"n": str(n), "n_samples": str(n_samples), "folds": str(folds)})
    return Setup(cfg, build_pipeline(cfg), n_samples, torch.Generator().manual_seed(seed))
