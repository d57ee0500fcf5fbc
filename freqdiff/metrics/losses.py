"""Train and test denoising losses at one fixed diffusion time, with fixed noise across checkpoints."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from freqdiff.core.schedule import step_seed
from freqdiff.process import DiffusionProcess
from freqdiff.process.loss import denoise


@torch.no_grad()
def fixed_t_loss(model: nn.Module, process: DiffusionProcess, images: Tensor, ou_time: float = 0.01,
                 draws: int = 5, seed: int = 0, batch_size: int = 1024) -> float:
    """The training objective at the level of OU time `ou_time` (DDPM: the eps-MSE at step 40 for t = 0.01),
    averaged over all images and `draws` noise draws.

    The noise of draw k on image i depends only on (seed, k, i), so every checkpoint sees the same noise.
    """
    device = process.device
    level = process.level_at_ou_time(ou_time)
    was_training = model.training
    model.eval()
    total = 0.0
    for k in range(draws):
        for start in range(0, len(images), batch_size):
            x0 = images[start:start + batch_size].to(device)
            generator = torch.Generator(device=device).manual_seed(step_seed(seed, k, start, stream=3))
            eps = torch.randn(x0.shape, generator=generator, device=device)
            total += float(denoise(process, model, x0, process.full(level, len(x0)), eps).mse().sum())
    model.train(was_training)
    return total / (draws * len(images))
