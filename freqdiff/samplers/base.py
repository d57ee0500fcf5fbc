"""The sampler interface and seeded, batched drawing."""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess


class Sampler(Protocol):
    def __call__(self, model: nn.Module, process: DiffusionProcess, shape: tuple[int, ...],
                 generator: torch.Generator) -> Tensor:
        """Draw shape[0] images of shape[1:] (in the model's centered pixel space)."""


@torch.no_grad()
def draw_samples(sampler: Sampler, model: nn.Module, process: DiffusionProcess, n: int,
                 image_shape: tuple[int, ...], seed: int, batch_size: int = 256) -> Tensor:
    """n samples; batch b uses seed (seed, b), so a sample does not depend on batch_size of later ones."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for b, start in enumerate(range(0, n, batch_size)):
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)
        out.append(sampler(model, process, (min(batch_size, n - start), *image_shape), generator).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, *image_shape)
