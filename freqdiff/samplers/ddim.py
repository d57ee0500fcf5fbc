"""Deterministic DDIM (Song et al. 2021, eta = 0): the paper's sampler, for every process of the contract.

With (x0_hat, eps_hat) at level t, the next level s gets x_s = A_s x0_hat + S_s eps_hat: DDIM's update for DDPM,
and the Euler step of the probability-flow ODE in the noise-to-signal ratio for any linear Gaussian process
(per frequency for the DCT processes). The last level's x0_hat is returned.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.process.context import BuildContext
from freqdiff.samplers import SAMPLERS
from freqdiff.samplers.base import Callback, Denoiser, GridSampler, Noise, report


@dataclass(frozen=True)
class DDIMParams:
    steps: int = param(100, ge=2)  # the paper's code uses 100 (the paper says 200); at least T-1 and 0
    clip_x0: bool = True  # clamp x0_hat to the data's pixel range, as Ho et al.'s sampler; false: the paper's code


def ddim(denoiser: Denoiser, x: Tensor, levels: Tensor, noise: Noise | None = None,
         callback: Callback | None = None) -> Tensor:
    """x_s = A_s x0_hat + S_s eps_hat along `levels`; returns the last x0_hat."""
    process = denoiser.process
    for i, level in enumerate(levels):
        x0_hat, eps_hat = denoiser(x, denoiser.at(level, x))
        report(callback, i, level, x, x0_hat)
        if i + 1 == len(levels):
            return x0_hat
        x = process.add_noise(x0_hat, denoiser.at(levels[i + 1], x), eps_hat)
    return x


@SAMPLERS.register("ddim", DDIMParams)
def ddim_sampler(params: DDIMParams, context: BuildContext) -> GridSampler:
    """Deterministic DDIM (eta=0) with `steps` evaluations, x0_hat clamped to the data range if clip_x0."""
    return GridSampler(ddim, params.steps, context.x0_range if params.clip_x0 else None)
