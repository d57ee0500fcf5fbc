"""Ancestral sampling (Ho et al. 2020): x_s ~ q(x_s | x_t, x0_hat) from each level to the next.

With clip_x0, x0_hat is clamped to the data's pixel range before the posterior step and as the returned sample,
as Ho et al.'s sampler and diffusers' DDPMScheduler (clip_sample) do; the option and its meaning are ddim's.
Its default here is false, unlike ddim's: the blurring recipe samples with ddpm and its committed results
(results/blurring, whose config.json has no clip_x0) were drawn unclipped, so a default of true would change what
re-evaluating them or rerunning the recipe measures. Set --sampler.clip_x0 true to compare with a clipped ddim.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.process.context import BuildContext
from freqdiff.samplers import SAMPLERS
from freqdiff.samplers.base import Callback, Denoiser, GridSampler, Noise, report


@dataclass(frozen=True)
class AncestralParams:
    steps: int = param(1000, ge=2)  # levels visited; DDPM with T = 1000 steps: every step, as Ho et al.
    clip_x0: bool = False  # clamp x0_hat to the data's pixel range, as ddim's clip_x0; false: as results/blurring


def ancestral(denoiser: Denoiser, x: Tensor, levels: Tensor, noise: Noise,
              callback: Callback | None = None) -> Tensor:
    """A draw from the process's posterior between consecutive levels; returns the last x0_hat.

    x0_hat is the denoiser's, so clamped to its x0_range when it has one (the posterior then uses the clamped one).
    """
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
    """Ancestral sampling through the process's posterior, one model call per level, x0_hat clamped if clip_x0."""
    return GridSampler(ancestral, params.steps, context.x0_range if params.clip_x0 else None)
