"""Sampler options: the ancestral (ddpm) sampler's x0 clipping, ddim's option with the same name and meaning."""
from __future__ import annotations

import re

import pytest
import torch

from conftest import build_context
from freqdiff.cli import main
from freqdiff.commands.recipes import RECIPES
from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.pipeline.build import build_pipeline
from freqdiff.process import PROCESSES
from freqdiff.samplers import SAMPLERS, draw_samples

SHAPE = (1, 8, 8)
# Every built-in process: the ancestral step is the contract's posterior, per frequency for the DCT processes.
CLIP_PROCESSES = ("ddpm", "equal_snr", "blurring", "edm", "ve")


def process_of(name: str):
    context = build_context(SHAPE)
    process = PROCESSES.build(name, context=context)
    return process, build_context(SHAPE, process=process)


class OutOfRange(torch.nn.Module):
    """A network whose denoised estimate is a fixed image reaching 3x beyond the data range on both sides."""

    def __init__(self, process, low: float, high: float) -> None:
        super().__init__()
        self.process = process
        ramp = torch.linspace(-1, 1, SHAPE[-1] * SHAPE[-2]).reshape(1, *SHAPE)
        self.x0 = (low + high) / 2 + 3 * (high - low) / 2 * ramp

    def forward(self, x_t: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.process.output_from_x0(x_t, level, self.x0.expand_as(x_t))


@pytest.mark.parametrize("name", CLIP_PROCESSES)
def test_ddpm_sampler_clamps_every_x0_hat_it_uses_only_when_asked(name: str, monkeypatch) -> None:
    process, context = process_of(name)
    low, high = context.x0_range
    model = OutOfRange(process, low, high)
    used: list[torch.Tensor] = []
    posterior = process.posterior

    def recording_posterior(x_t, x0, level, next_level):
        used.append(x0.clone())
        return posterior(x_t, x0, level, next_level)

    monkeypatch.setattr(process, "posterior", recording_posterior)
    clipped = SAMPLERS.build("ddpm", {"steps": "10", "clip_x0": "true"}, context=context)
    denoised: list[torch.Tensor] = []
    x = draw_samples(clipped, model, process, 4, SHAPE, seed=0, callback=lambda s: denoised.append(s["denoised"]))
    assert len(used) == 9 and len(denoised) == 10  # every posterior step and every reported x0_hat
    for x0_hat in [*used, *denoised, x]:
        assert x0_hat.min() >= low - 1e-6 and x0_hat.max() <= high + 1e-6
    assert torch.allclose(x, model.x0.clamp(low, high).expand_as(x), atol=1e-5)

    free = SAMPLERS.build("ddpm", {"steps": "10", "clip_x0": "false"}, context=context)
    y = draw_samples(free, model, process, 4, SHAPE, seed=0)
    assert y.min() < low and y.max() > high
    assert torch.allclose(y, model.x0.expand_as(y), atol=1e-4)


def test_clip_x0_defaults_ddim_clamps_ddpm_does_not() -> None:
    """ddpm leaves x0_hat free by default: the blurring recipe's committed results were drawn that way."""
    _, context = process_of("ddpm")
    assert SAMPLERS.build("ddim", {}, context=context).x0_range == context.x0_range
    assert SAMPLERS.build("ddpm", {}, context=context).x0_range is None
    assert SAMPLERS.build("ddpm", {"clip_x0": "true"}, context=context).x0_range == context.x0_range
    assert SAMPLERS.build("heun", {}, context=context).x0_range is None


def test_ddpm_clip_option_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sampler_section = out[out.index("\nsampler:"):]
    ddpm = re.search(r"\n  ddpm  - .*?(?=\n  \w)", sampler_section, re.S).group(0)
    assert "--sampler.clip_x0: bool = False" in ddpm
    ddim = re.search(r"\n  ddim  - .*?(?=\n  \w)", sampler_section, re.S).group(0)
    assert "--sampler.clip_x0: bool = True" in ddim


def test_the_blurring_recipe_still_samples_unclipped() -> None:
    """Its committed results (results/blurring) were drawn with ddpm before the option existed, unclipped."""
    cfg = apply_flags(RunConfig(), {**RECIPES.build("blurring").flags, "n": "4"})
    pipe = build_pipeline(cfg)
    assert cfg.sampler.name == "ddpm" and pipe.sampler.x0_range is None
