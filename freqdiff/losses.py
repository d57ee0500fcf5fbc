"""Train and test denoising losses at one fixed diffusion time, with fixed noise across checkpoints."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from freqdiff.process import DiffusionProcess, denoise
from freqdiff.schedule import step_seed


@torch.no_grad()
def fixed_t_loss(model: nn.Module, process: DiffusionProcess, images: Tensor, ou_time: float = 0.01,
                 draws: int = 5, seed: int = 0, batch_size: int = 1024) -> float:
    """Mean epsilon MSE at the step nearest OU time `ou_time` over all images and `draws` noise draws.

    The noise of draw k on image i depends only on (seed, k, i), so every checkpoint sees the same noise.
    """
    device = next(model.parameters()).device
    step = process.step_at_time(ou_time)
    was_training = model.training
    model.eval()
    total = 0.0
    for k in range(draws):
        for start in range(0, len(images), batch_size):
            x0 = images[start:start + batch_size].to(device)
            generator = torch.Generator(device=device).manual_seed(step_seed(seed, k, start, stream=3))
            eps = torch.randn(x0.shape, generator=generator, device=device)
            t = torch.full((len(x0),), step, device=device, dtype=torch.long)
            total += float(denoise(process, model, x0, t, eps).mse().sum())
    model.train(was_training)
    return total / (draws * len(images))
