"""Sinusoidal embedding of the noise level c_noise (Vaswani et al. 2017), shared by the score networks."""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn


def sinusoidal(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """(B,) steps -> (B, dim): sin then cos at dim/2 frequencies log-spaced from 1 to 1/max_period."""
    half = dim // 2
    if dim % 2 or half < 2:
        raise ValueError(f"sinusoidal embedding needs an even dim >= 4, got {dim}")
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / (half - 1))
    angles = rearrange(t.float(), "b -> b 1") * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Sinusoidal(nn.Module):
    """sinusoidal(c_noise, dim) as a module: the features of continuous noise levels (no table to look up)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, c_noise: Tensor) -> Tensor:
        return sinusoidal(c_noise, self.dim)
