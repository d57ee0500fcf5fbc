"""The sampler interface and seeded, batched drawing."""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess

Noise = Callable[[tuple[int, ...]], Tensor]


def seeded_noise(generator: torch.Generator, replicas: int = 1) -> Noise:
    """Standard normal draws of a given shape; with replicas = K the batch holds K members of a stack
    (member k owns rows k*B..(k+1)*B-1) and every member sees the noise a lone model would."""

    def draw(shape: tuple[int, ...]) -> Tensor:
        one = torch.randn((shape[0] // replicas, *shape[1:]), generator=generator, device=generator.device)
        return repeat(one, "b ... -> (k b) ...", k=replicas)

    return draw


class Sampler(Protocol):
    def __call__(self, model: nn.Module, process: DiffusionProcess, shape: tuple[int, ...], noise: Noise) -> Tensor:
        """Draw shape[0] images of shape[1:] (in the model's centered pixel space), all randomness from `noise`."""


@torch.no_grad()
def draw_samples(sampler: Sampler, model: nn.Module, process: DiffusionProcess, n: int,
                 image_shape: tuple[int, ...], seed: int, batch_size: int = 256, replicas: int = 1) -> Tensor:
    """n samples; batch b uses seed (seed, b), so a sample does not depend on batch_size of later ones.

    replicas = K draws from a FlatStack of K members at once: (K, n, ...), member k's samples being those
    it would draw alone with the same seed.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for b, start in enumerate(range(0, n, batch_size)):
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)
        shape = (replicas * min(batch_size, n - start), *image_shape)
        x = sampler(model, process, shape, seeded_noise(generator, replicas)).cpu()
        out.append(rearrange(x, "(k b) ... -> k b ...", k=replicas))
    model.train(was_training)
    samples = torch.cat(out, dim=1) if out else torch.empty(replicas, 0, *image_shape)
    return samples if replicas > 1 else samples[0]
