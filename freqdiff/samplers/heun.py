"""Heun's 2nd-order sampler (Karras et al. 2022, Algorithm 1, deterministic), for every process of the contract.

The probability-flow ODE is solved in y = A^-1 x_t, whose noise level is the noise-to-signal ratio
r = sigma/alpha (per frequency for the DCT processes): dy/dr = eps_hat. An Euler step to the next level is
corrected with the slope there (trapezoid rule); the last level's x0_hat is returned, EDM's final Euler step to
sigma = 0; 2 * steps - 1 network evaluations.
For EDM and VE (alpha = 1) this is EDM's sampler exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.process.context import BuildContext
from freqdiff.samplers import SAMPLERS
from freqdiff.samplers.base import Callback, Denoiser, GridSampler, Noise, report


@dataclass(frozen=True)
class HeunParams:
    steps: int = param(18, ge=2)  # levels (EDM's CIFAR-10 setting: 18, i.e. 35 network evaluations)


def heun(denoiser: Denoiser, x: Tensor, levels: Tensor, noise: Noise | None = None,
         callback: Callback | None = None) -> Tensor:
    """Trapezoid steps of dy/dr = eps_hat between consecutive levels; returns the last x0_hat."""
    process = denoiser.process
    x0_hat, eps_hat = denoiser(x, denoiser.at(levels[0], x))
    for i in range(len(levels)):
        now = denoiser.at(levels[i], x)
        report(callback, i, levels[i], x, x0_hat)
        if i + 1 == len(levels):
            return x0_hat
        after = denoiser.at(levels[i + 1], x)
        y, dr = process.unscale(process.alpha(now), x), process.noise_to_signal(after) - process.noise_to_signal(now)
        x_euler = process.scale(process.alpha(after), y + process.scale(dr, eps_hat))
        _, eps_euler = denoiser(x_euler, after)
        x = process.scale(process.alpha(after), y + process.scale(dr, (eps_hat + eps_euler) / 2))
        x0_hat, eps_hat = denoiser(x, after)
    return x


@SAMPLERS.register("heun", HeunParams)
def heun_sampler(params: HeunParams, context: BuildContext) -> GridSampler:
    """Heun's 2nd-order ODE sampler (EDM), `steps` levels of the process's grid (EDM: rho = 7)."""
    return GridSampler(heun, params.steps)
