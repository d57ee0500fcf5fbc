"""Samples of K stacked networks (checkpoints or ensemble members) drawn in one batched walk.

The walk sees one network on K*B images (FlatStack: member k owns rows k*B..(k+1)*B-1); every member gets the
noise a lone network would get with the same seed, and clamps to its own data range, so member k's samples are
those `draw_samples` gives it alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from einops import rearrange, repeat
from torch import Tensor

from freqdiff.models.stack import FlatStack, StackedModel
from freqdiff.process.base import DiffusionProcess
from freqdiff.samplers.base import Denoiser, Noise, Range, Sampler, batch_generator, sample_batch


def member_noise(generator: torch.Generator, members: int) -> Noise:
    """Draws of shape (K*B, ...): B rows from `generator`, repeated for each of the K members."""

    def draw(shape: tuple[int, ...]) -> Tensor:
        one = torch.randn((shape[0] // members, *shape[1:]), generator=generator, device=generator.device)
        return repeat(one, "b ... -> (k b) ...", k=members)

    return draw


@dataclass
class MemberDenoiser(Denoiser):
    """A Denoiser on K*B rows whose clamp uses each member's own range (lows and highs, one per member)."""

    member_ranges: Sequence[Range] | None = None

    def clip(self, x0_hat: Tensor) -> Tensor:
        if self.x0_range is None or self.member_ranges is None:
            return super().clip(x0_hat)
        low, high = (torch.tensor(v, dtype=x0_hat.dtype, device=x0_hat.device) for v in zip(*self.member_ranges))
        low, high = (repeat(v, "k -> (k b) 1 1 1", b=x0_hat.shape[0] // len(v)) for v in (low, high))
        return torch.maximum(torch.minimum(x0_hat, high), low)


@torch.no_grad()
def draw_member_samples(sampler: Sampler, stack: StackedModel, process: DiffusionProcess, n: int,
                        image_shape: tuple[int, ...], seed: int, member_ranges: Sequence[Range] | None = None,
                        batch_size: int = 256) -> Tensor:
    """(K, n, ...): member k's n samples, as draw_samples(sampler, member k, ...) would draw them."""
    was_training = stack.training
    stack.eval()
    k = stack.members
    denoiser = MemberDenoiser(FlatStack(stack), process, sampler.x0_range, member_ranges)
    out = [sample_batch(sampler, denoiser, (k * min(batch_size, n - start), *image_shape),
                        member_noise(batch_generator(seed, b, process.device), k))
           for b, start in enumerate(range(0, n, batch_size))]
    stack.train(was_training)
    if not out:
        return torch.empty(k, 0, *image_shape)
    return torch.cat([rearrange(x, "(k b) ... -> k b ...", k=k) for x in out], dim=1)
