"""Sinusoidal embedding of the integer diffusion step (Vaswani et al. 2017), shared by the score networks."""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor


def sinusoidal(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """(B,) steps -> (B, dim): sin then cos at dim/2 frequencies log-spaced from 1 to 1/max_period."""
    half = dim // 2
    if dim % 2 or half < 2:
        raise ValueError(f"sinusoidal embedding needs an even dim >= 4, got {dim}")
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / (half - 1))
    angles = rearrange(t.float(), "b -> b 1") * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
