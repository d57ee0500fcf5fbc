"""Ancestral DDPM sampling (Ho et al. 2020): x_{t-1} ~ q(x_{t-1} | x_t, x0_hat) for every step."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess
from freqdiff.registry import NoParams
from freqdiff.samplers import SAMPLERS
from freqdiff.samplers.base import Noise


def ancestral(model: nn.Module, process: DiffusionProcess, shape: tuple[int, ...], noise: Noise) -> Tensor:
    eps = noise(shape)

    def at(step: int) -> Tensor:
        return torch.full((shape[0],), step, device=eps.device, dtype=torch.long)

    x = process.noise(eps, at(process.T - 1))
    for step in range(process.T - 1, 0, -1):
        x0_hat = process.x0_from_eps(x, at(step), model(x, at(step)))
        mean, std = process.posterior(x, x0_hat, at(step))
        x = mean + std * noise(shape)
    return process.x0_from_eps(x, at(0), model(x, at(0)))


@SAMPLERS.register("ddpm", NoParams)
def ddpm_sampler(params: NoParams, **_: object):
    """Ancestral DDPM sampling, one model call per step (T calls)."""
    return ancestral
