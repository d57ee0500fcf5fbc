"""Ancestral sampling (Ho et al. 2020): x_s ~ q(x_s | x_t, x0_hat) from each level to the next."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from freqdiff.context import BuildContext
from freqdiff.registry import param
from freqdiff.samplers import SAMPLERS
from freqdiff.samplers.base import Callback, Denoiser, GridSampler, Noise, report


@dataclass(frozen=True)
class AncestralParams:
    steps: int = param(1000, ge=2)  # levels visited; DDPM with T = 1000 steps: every step, as Ho et al.


def ancestral(denoiser: Denoiser, x: Tensor, levels: Tensor, noise: Noise,
              callback: Callback | None = None) -> Tensor:
    """A draw from the process's posterior between consecutive levels; returns the last x0_hat."""
    process = denoiser.process
    for i, level in enumerate(levels):
        at = denoiser.at(level, x)
        x0_hat, _ = denoiser(x, at)
        report(callback, i, level, x, x0_hat)
        if i + 1 == len(levels):
            return x0_hat
        mean, std = process.posterior(x, x0_hat, at, denoiser.at(levels[i + 1], x))
        x = mean + process.scale(std, noise(tuple(x.shape)))
    return x


@SAMPLERS.register("ddpm", AncestralParams)
def ddpm_sampler(params: AncestralParams, context: BuildContext) -> GridSampler:
    """Ancestral sampling through the process's posterior, one model call per level (DDPM: every step)."""
    return GridSampler(ancestral, params.steps)
