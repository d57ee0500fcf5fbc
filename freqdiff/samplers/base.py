"""Samplers are functions of (denoiser, x, levels, noise, callback); this module draws seeded, batched samples.

A sampler walks `levels` (the process's grid, noisiest first) from x at the first level and returns the denoised
estimate at the last; every randomness comes from `noise`, and `callback` sees each step's
{"i", "level", "x", "denoised"} (trajectory diagnostics, e.g. the distance to the nearest training image).
The Denoiser gives the step formulas what they need of the network: x0_hat and eps_hat at a level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess

Noise = Callable[[tuple[int, ...]], Tensor]
Callback = Callable[[dict[str, Any]], None]
Range = tuple[float, float]


def seeded_noise(generator: torch.Generator) -> Noise:
    """Standard normal draws of a given shape from `generator`."""
    return lambda shape: torch.randn(shape, generator=generator, device=generator.device)


def batch_generator(seed: int, b: int, device: torch.device) -> torch.Generator:
    """The generator of batch b of a draw with `seed`: a sample does not depend on the batch size of later ones."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)


def clip(x0_hat: Tensor, x0_range: Range | None) -> Tensor:
    """Clamp the denoised estimate to the data range (low, high); None leaves it as is."""
    if x0_range is None:
        return x0_hat
    return x0_hat.clamp(float(x0_range[0]), float(x0_range[1]))


@dataclass
class Denoiser:
    """A model seen by a sampler: (x0_hat, eps_hat) at a level, x0_hat clamped to `x0_range` when given
    (Ho et al.'s sampler; eps_hat then follows the clamped estimate, so the step stays consistent)."""

    model: nn.Module
    process: DiffusionProcess
    x0_range: Range | None = None

    def __call__(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        output = self.model(x, level)
        x0_hat = self.process.x0_from_output(x, level, output)
        if self.x0_range is None:
            return x0_hat, self.process.eps_from_output(x, level, output)
        x0_hat = self.clip(x0_hat)
        return x0_hat, self.process.eps_from_x0(x, level, x0_hat)

    def clip(self, x0_hat: Tensor) -> Tensor:
        return clip(x0_hat, self.x0_range)

    def at(self, level: Tensor, x: Tensor) -> Tensor:
        """One level for every image of x."""
        return self.process.full(level, x.shape[0])


def report(callback: Callback | None, i: int, level: Tensor, x: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback({"i": i, "level": level, "x": x, "denoised": denoised})


class Sampler(Protocol):
    """A registered sampler: its level grid for a process, and the walk along it."""

    x0_range: Range | None

    def levels(self, process: DiffusionProcess) -> Tensor:
        """The levels it visits, noisiest first."""

    def __call__(self, denoiser: Denoiser, x: Tensor, levels: Tensor, noise: Noise,
                 callback: Callback | None = None) -> Tensor:
        """Images (in the model's centered pixel space) from x at levels[0]."""


Walk = Callable[[Denoiser, Tensor, Tensor, Noise, "Callback | None"], Tensor]


@dataclass(frozen=True)
class GridSampler:
    """A registered sampler: a walk (ddim, ancestral, heun, ...) over `steps` levels of the process's own grid."""

    walk: Walk
    steps: int
    x0_range: Range | None = None

    def levels(self, process: DiffusionProcess) -> Tensor:
        return process.sampling_levels(self.steps)

    def __call__(self, denoiser: Denoiser, x: Tensor, levels: Tensor, noise: Noise,
                 callback: Callback | None = None) -> Tensor:
        return self.walk(denoiser, x, levels, noise, callback)


def sample_batch(sampler: Sampler, denoiser: Denoiser, shape: tuple[int, ...], noise: Noise,
                 callback: Callback | None = None) -> Tensor:
    """One batch of `shape`: the prior at the sampler's first level, then its walk."""
    levels = sampler.levels(denoiser.process)
    x = denoiser.process.prior(noise(shape), denoiser.process.full(levels[0], shape[0]))
    return sampler(denoiser, x, levels, noise, callback).cpu()


@torch.no_grad()
def draw_samples(sampler: Sampler, model: nn.Module, process: DiffusionProcess, n: int,
                 image_shape: tuple[int, ...], seed: int, batch_size: int = 256,
                 callback: Callback | None = None) -> Tensor:
    """n samples (n, ...); batch b draws its noise from batch_generator(seed, b)."""
    was_training = model.training
    model.eval()
    denoiser = Denoiser(model, process, sampler.x0_range)
    out = [sample_batch(sampler, denoiser, (min(batch_size, n - start), *image_shape),
                        seeded_noise(batch_generator(seed, b, process.device)), callback)
           for b, start in enumerate(range(0, n, batch_size))]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, *image_shape)
