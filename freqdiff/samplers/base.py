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
from einops import rearrange, repeat
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess

Noise = Callable[[tuple[int, ...]], Tensor]
Callback = Callable[[dict[str, Any]], None]
Range = tuple[float, float] | tuple[Tensor, Tensor]


def seeded_noise(generator: torch.Generator, replicas: int = 1) -> Noise:
    """Standard normal draws of a given shape; with replicas = K the batch holds K members of a stack
    (member k owns rows k*B..(k+1)*B-1) and every member sees the noise a lone model would."""

    def draw(shape: tuple[int, ...]) -> Tensor:
        one = torch.randn((shape[0] // replicas, *shape[1:]), generator=generator, device=generator.device)
        return repeat(one, "b ... -> (k b) ...", k=replicas)

    return draw


def clip(x0_hat: Tensor, x0_range: Range | None) -> Tensor:
    """Clamp the denoised estimate to the data range (low, high); None leaves it as is.

    The bounds may be tensors (K,), one range per member of a stacked batch of K*B images.
    """
    if x0_range is None:
        return x0_hat
    low, high = (torch.as_tensor(v, dtype=x0_hat.dtype, device=x0_hat.device).reshape(-1) for v in x0_range)
    per_row = x0_hat.shape[0] // low.numel()
    low, high = (rearrange(v.repeat_interleave(per_row), "b -> b 1 1 1") for v in (low, high))
    return torch.maximum(torch.minimum(x0_hat, high), low)


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
        x0_hat = clip(x0_hat, self.x0_range)
        return x0_hat, self.process.eps_from_x0(x, level, x0_hat)

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


@torch.no_grad()
def draw_samples(sampler: Sampler, model: nn.Module, process: DiffusionProcess, n: int,
                 image_shape: tuple[int, ...], seed: int, batch_size: int = 256, replicas: int = 1,
                 callback: Callback | None = None) -> Tensor:
    """n samples; batch b uses seed (seed, b), so a sample does not depend on batch_size of later ones.

    replicas = K draws from a FlatStack of K members at once: (K, n, ...), member k's samples being those
    it would draw alone with the same seed.
    """
    device = process.device
    was_training = model.training
    model.eval()
    denoiser = Denoiser(model, process, sampler.x0_range)
    levels = sampler.levels(process)
    out = []
    for b, start in enumerate(range(0, n, batch_size)):
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)
        noise = seeded_noise(generator, replicas)
        shape = (replicas * min(batch_size, n - start), *image_shape)
        x = process.prior(noise(shape), process.full(levels[0], shape[0]))
        x = sampler(denoiser, x, levels, noise, callback).cpu()
        out.append(rearrange(x, "(k b) ... -> k b ...", k=replicas))
    model.train(was_training)
    samples = torch.cat(out, dim=1) if out else torch.empty(replicas, 0, *image_shape)
    return samples if replicas > 1 else samples[0]
