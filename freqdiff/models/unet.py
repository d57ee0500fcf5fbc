"""The paper's U-Net (Bonnaire et al. 2025, sec. 2; a DDPM U-Net after Ho et al. 2020).

Base width W, levels at channels W * multipliers = (W, 2W, 4W). The encoder has 2 ResNet blocks per
level and a strided 3x3 conv between levels; the bottleneck is a ResNet block with attention and one
without; the decoder has 3 ResNet blocks per level, each taking one encoder activation as a skip, and
nearest-neighbour upsampling + 3x3 conv between levels. 4-head self-attention follows every ResNet
block of the two coarsest levels. The noise level (the process's c_noise: DDPM's step t) enters through a
sinusoidal embedding and an MLP W -> 4W -> 4W, added per channel inside every ResNet block. About 4.0e3 W^2
parameters on one channel (0.263M at W=8, counting the frozen 1000 x W sinusoidal table of DDPM's steps as the
paper's code does).

Images whose sides are not multiples of 2^(levels-1) are zero-padded (centred) to the next multiple
and the output is cropped back, so any resolution (28x28, 25x25, ...) works.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from math import gcd

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.models import MODELS
from freqdiff.models.dropout import KeyedDropout
from freqdiff.models.embedding import Sinusoidal, sinusoidal
from freqdiff.process.context import BuildContext

GROUPS = 8  # GroupNorm(8) everywhere: every channel count must be a multiple of 8
TIME_MULT = 4  # time-embedding width 4W (Ho et al.)


@dataclass(frozen=True)
class UNetParams:
    width: int = param(8, multiple_of=GROUPS)  # W, base channels (GroupNorm(8) needs a multiple of 8)
    multipliers: tuple[int, ...] = param((1, 2, 4), ge=1)  # channels per level = W * multiplier, finest first
    blocks: int = param(2, ge=1)  # ResNet blocks per encoder level; the decoder has blocks + 1 (the paper: 2)
    attention_levels: int = param(2, ge=0)  # self-attention at this many coarsest levels (plus the bottleneck)
    heads: int = param(4, ge=1)  # attention heads
    dropout: float = param(0.1, ge=0, lt=1)  # dropout before the second conv of every ResNet block


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution that keeps the resolution (or halves it with stride 2)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


def norm_act_conv(c_in: int, c_out: int, dropout: float | None = None) -> nn.Sequential:
    """GroupNorm(8) -> SiLU -> [Dropout] -> Conv3x3: one half of a ResNet block (and the output head)."""
    drop = [KeyedDropout(dropout)] if dropout is not None else []
    return nn.Sequential(nn.GroupNorm(GROUPS, c_in), nn.SiLU(), *drop, conv3x3(c_in, c_out))


class TimeEmbedding(nn.Module):
    """c_noise -> sinusoidal features of width W -> MLP to 4W, the conditioning of every block.

    For a process with T discrete steps the features sit in a frozen (T, W) lookup table indexed by the step, as
    in the paper's code, so they count among the parameters (1000 W of the paper's 0.263M at W=8) but are never
    trained; for continuous levels they are computed from c_noise itself. The process decides: no second number.
    """

    def __init__(self, width: int, levels: int | None) -> None:
        super().__init__()
        features = (nn.Embedding.from_pretrained(sinusoidal(torch.arange(levels), width), freeze=True)
                    if levels is not None else Sinusoidal(width))
        self.mlp = nn.Sequential(
            features,
            nn.Linear(width, TIME_MULT * width),
            nn.GELU(),
            nn.Linear(TIME_MULT * width, TIME_MULT * width),
        )

    def forward(self, c_noise: Tensor) -> Tensor:
        return self.mlp(c_noise)


class SelfAttention(nn.Module):
    """Residual multi-head self-attention over the H*W pixels of a GroupNorm'ed feature map.

    The parameters of nn.MultiheadAttention: a 3C x C input and a C x C output projection, with biases. Two forms of
    one function, equal to float rounding: torch's fused scaled_dot_product_attention, and einsum + softmax. `fused`
    (one network, also a folded stack's, models/folded.py): always the fused kernel, as fast or faster at every size
    measured. Not `fused` (set by a StackedModel that runs by vmap, models/stack.py, so the form follows the stack's
    arithmetic for a run's life): einsum on maps of up to EINSUM_TOKENS pixels, where vmap batches it into single
    kernels a few % faster than the fused one (which has no CPU batching rule: torch loops over the members); the
    fused kernel on larger maps, where einsum's N x N logits cost about twice as much (bench/README.md, "U-Net
    against diffusers").
    """

    EINSUM_TOKENS = 64  # 8x8: the default study U-Net's attention maps (4x4, 2x2) stay einsum in a vmapped stack

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.fused = True
        self.norm = nn.GroupNorm(GROUPS, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")
        q, k, v = rearrange(self.qkv(tokens), "b n (three heads d) -> three b heads n d", three=3, heads=self.heads)
        if self.fused:
            attended = F.scaled_dot_product_attention(q, k, v)
        elif tokens.shape[1] <= self.EINSUM_TOKENS:  # scale q (N x d), not the N x N logits
            weights = torch.einsum("bhnd,bhmd->bhnm", q * q.shape[-1] ** -0.5, k).softmax(dim=-1)
            attended = torch.einsum("bhnm,bhmd->bhnd", weights, v)
        else:
            with warnings.catch_warnings():  # torch's note that vmap loops over members here: measured the faster
                warnings.filterwarnings("ignore", message=".*batching rule for aten::_scaled_dot_product")
                attended = F.scaled_dot_product_attention(q, k, v)
        attended = rearrange(attended, "b heads n d -> b n (heads d)")
        return x + rearrange(self.out(attended), "b (h w) c -> b c h w", h=x.shape[2])


class ResBlock(nn.Module):
    """x + F(x, t): two norm-act-conv halves with the time embedding added in between, then attention."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, dropout: float, heads: int | None) -> None:
        super().__init__()
        self.conv1 = norm_act_conv(c_in, c_out)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, c_out))
        self.conv2 = norm_act_conv(c_out, c_out, dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.attention = SelfAttention(c_out, heads) if heads else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(x) + rearrange(self.time(emb), "b c -> b c 1 1")
        return self.attention(self.conv2(h) + self.skip(x))


class Downsample(nn.Module):
    """Halve the resolution with a strided 3x3 conv (time-independent)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels, stride=2)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, then a 3x3 conv (time-independent)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """F(x, c_noise): encoder, attention bottleneck, decoder fed a skip from every encoder layer."""

    def __init__(self, channels: int, p: UNetParams, levels: int | None = 1000) -> None:
        super().__init__()
        widths = [p.width * m for m in p.multipliers]
        attended = [level >= len(widths) - p.attention_levels for level in range(len(widths))]
        time_dim = TIME_MULT * p.width
        self.multiple = 2 ** (len(widths) - 1)

        def block(c_in: int, c_out: int, attention: bool) -> ResBlock:
            return ResBlock(c_in, c_out, time_dim, p.dropout, p.heads if attention else None)

        self.time = TimeEmbedding(p.width, levels)
        self.stem = conv3x3(channels, p.width)

        self.encoder = nn.ModuleList()
        skips, c = [p.width], p.width
        for level, (c_out, attention) in enumerate(zip(widths, attended)):
            for _ in range(p.blocks):
                self.encoder.append(block(c, c_out, attention))
                skips.append(c := c_out)
            if level < len(widths) - 1:
                self.encoder.append(Downsample(c))
                skips.append(c)

        self.bottleneck = nn.ModuleList([block(c, c, True), block(c, c, False)])

        self.decoder = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(p.blocks + 1):
                self.decoder.append(block(c + skips.pop(), widths[level], attended[level]))
                c = widths[level]
            if level > 0:
                self.decoder.append(Upsample(c))

        self.head = norm_act_conv(c, channels)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        emb = self.time(c_noise)
        h = self.stem(self.pad(x))
        skips = [h]
        for layer in self.encoder:
            h = layer(h, emb)
            skips.append(h)
        for layer in self.bottleneck:
            h = layer(h, emb)
        for layer in self.decoder:
            if isinstance(layer, ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = layer(h, emb)
        return self.crop(self.head(h), x.shape[-2:])

    def pad(self, x: Tensor) -> Tensor:
        """Zero-pad H and W (centred) up to multiples of 2^(levels-1), so every downsampling is exact."""
        (top, bottom), (left, right) = (_split(-n % self.multiple) for n in x.shape[-2:])
        return F.pad(x, (left, right, top, bottom))

    def crop(self, x: Tensor, size: torch.Size) -> Tensor:
        """Undo `pad`: the centred H x W window of the padded output."""
        (top, _), (left, _) = (_split(n - s) for n, s in zip(x.shape[-2:], size))
        return x[..., top : top + size[0], left : left + size[1]]


def _split(total: int) -> tuple[int, int]:
    """Padding `total` split as evenly as possible before and after."""
    return total // 2, total - total // 2


def _bad(field: str, message: str) -> FreqdiffError:
    """The one-line error for parameter `field` of the U-Net."""
    return FreqdiffError(f"model 'unet'.{field}: {message}")


def _check(p: UNetParams) -> None:
    """Reject parameters the architecture cannot realize, naming the value and the choices."""
    if not p.multipliers:
        raise _bad("multipliers", "must name at least one level, finest first, e.g. 1,2,4")
    levels = len(p.multipliers)
    if not 0 <= p.attention_levels <= levels:
        raise _bad("attention_levels", f"{p.attention_levels} must be in 0..{levels} (the number of levels)")
    attended = {p.width * m for m in p.multipliers[levels - p.attention_levels :]} | {p.width * p.multipliers[-1]}
    common = gcd(*attended)
    if common % p.heads:
        choices = ", ".join(str(h) for h in range(1, common + 1) if common % h == 0)
        raise _bad("heads", f"{p.heads} does not divide the attention channels {sorted(attended)}; choose {choices}")


@MODELS.register("unet", UNetParams)
def unet(params: UNetParams, context: BuildContext) -> nn.Module:
    """The paper's U-Net: levels W, 2W, 4W of ResNet blocks, attention at the 2 coarsest; ~4e3 W^2 params."""
    _check(params)
    return UNet(context.image_shape[0], params, context.require_process("model 'unet'").levels_count)
