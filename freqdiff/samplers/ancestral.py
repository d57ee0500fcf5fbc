"""Ancestral DDPM sampling (Ho et al. 2020): x_{t-1} ~ q(x_{t-1} | x_t, x0_hat) for every step."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess
from freqdiff.registry import NoParams
from freqdiff.samplers import SAMPLERS


def ancestral(model: nn.Module, process: DiffusionProcess, shape: tuple[int, ...],
              generator: torch.Generator) -> Tensor:
    device = generator.device
    t_top = torch.full((shape[0],), process.T - 1, device=device, dtype=torch.long)
    x = process.noise(torch.randn(shape, generator=generator, device=device), t_top)
    for step in range(process.T - 1, 0, -1):
        t = torch.full((shape[0],), step, device=device, dtype=torch.long)
        x0_hat = process.x0_from_eps(x, t, model(x, t))
        mean, std = process.posterior(x, x0_hat, t)
        x = mean + std * torch.randn(shape, generator=generator, device=device)
    t0 = torch.zeros(shape[0], device=device, dtype=torch.long)
    return process.x0_from_eps(x, t0, model(x, t0))


@SAMPLERS.register("ddpm", NoParams)
def ddpm_sampler(params: NoParams, **_: object):
    """Ancestral DDPM sampling, one model call per step (T calls)."""
    return ancestral
