"""Residual MLP score model for low-dimensional data (the paper's synthetic check: d=8, 3 blocks, W=128).

The input (B, C, H, W) is flattened to (B, D), lifted to width W, passed through residual blocks that each
add the sinusoidal embedding of t, and projected back to D; the result is reshaped to the input's shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from einops import pack, unpack
from torch import Tensor, nn

from freqdiff.core.registry import param
from freqdiff.models import MODELS
from freqdiff.models.embedding import sinusoidal
from freqdiff.process.context import BuildContext


@dataclass(frozen=True)
class MLPParams:
    width: int = param(128, ge=4, multiple_of=2)  # hidden width W (even, >= 4, for the sinusoidal embedding)
    blocks: int = param(3, ge=1)  # residual blocks (the paper: 3)


class ResidualBlock(nn.Module):
    """h <- LayerNorm(h + Linear(GELU(Linear(h + emb(t))))): one time-conditioned residual update."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.update = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return self.norm(h + self.update(h + emb))


class ResidualMLP(nn.Module):
    """eps_hat(x_t, t) on flattened inputs: Linear(D, W) -> residual blocks -> Linear(W, D)."""

    def __init__(self, dim: int, width: int, blocks: int) -> None:
        super().__init__()
        self.width = width
        self.lift = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(blocks))
        self.project = nn.Linear(width, dim)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        emb = sinusoidal(c_noise, self.width)
        flat, shape = pack([x], "b *")
        h = self.lift(flat)
        for block in self.blocks:
            h = block(h, emb)
        return unpack(self.project(h), shape, "b *")[0]


@MODELS.register("mlp", MLPParams)
def mlp(params: MLPParams, context: BuildContext) -> nn.Module:
    """Residual MLP on flattened inputs (3 blocks, W=128): the paper's model for the d=8 Gaussian mixture."""
    return ResidualMLP(math.prod(context.image_shape), params.width, params.blocks)
