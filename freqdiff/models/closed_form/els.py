"""`els`: the equivariant local score machine of Kamb & Ganguli 2024 ("An analytic theory of creativity in
convolutional diffusion models"), for every process of the contract.

A convolutional denoiser sees only a window Omega_p of P x P pixels around each pixel p and treats every position
alike. The optimal denoiser under those two constraints is a separate posterior per pixel over all training
patches, wherever they sit in their image:

    D(x_t)[p] = sum_{a, p'} w_{a,p'}(p) a[p'],   w(p) = softmax_{a, p'}( -||z_{Omega_p} - mu_a{Omega_p'}||^2 / 2 ),

in whitened variables z = S^-1 x_t, mu_a = S^-1 A a, where the noise is white (for a scalar process,
-||x_t - alpha a||^2 / 2 sigma^2 on the patch: their formula). Windows are zero-padded at the border, and a pixel
within P // 2 of it compares only with training windows padded alike (their boundary-aware ELS): interior pixels
with every interior window, an edge pixel with the windows at the same distance from that edge. With P >= 2H - 1
every window covers the whole image from every pixel, each pixel is its own class, and the machine is `empirical`
exactly. The patch size is a function of the noise level (their calibrated scale): `patch[i]` below OU time
`ou_times[i]`, the last one beyond. Streamed over chunks of training windows with a running log-sum-exp.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.models import MODELS
from freqdiff.models.optimal_score import ClosedForm, SoftmaxAverage
from freqdiff.process.base import DiffusionProcess
from freqdiff.process.context import BuildContext

QUERY_BUDGET = 2**24  # logits held at once (64 MiB in float32): rows of the batch are taken in blocks to stay below


@dataclass(frozen=True)
class ELSParams:
    patch: tuple[int, ...] = param((5,), ge=1)  # odd patch sizes, for the OU-time ranges split at ou_times
    ou_times: tuple[float, ...] = param((), gt=0)  # increasing OU times where the size changes (len(patch) - 1)
    chunk_size: int = param(1024, ge=1)  # training windows per step of the stream


def axis_classes(size: int, radius: int) -> list[list[int]]:
    """Positions along one axis whose windows are padded alike: the interior together, each border position alone."""
    interior = [i for i in range(size) if radius <= i <= size - 1 - radius]
    border = [[i] for i in range(size) if i not in interior]
    return ([interior] if interior else []) + border


def pixel_classes(height: int, width: int, radius: int) -> list[Tensor]:
    """Flat pixel indices of each class of windows padded alike (rows and columns independently)."""
    return [torch.tensor([i * width + j for i in rows for j in cols])
            for rows in axis_classes(height, radius) for cols in axis_classes(width, radius)]


def windows(images: Tensor, radius: int) -> Tensor:
    """Every zero-padded (2r+1)^2 window of images (B, C, H, W): (B, H*W, C*(2r+1)^2)."""
    return rearrange(F.unfold(F.pad(images, (radius,) * 4), 2 * radius + 1), "b d p -> b p d")


def whiten(process: DiffusionProcess, level: Tensor, x: Tensor) -> Tensor:
    """S^-1 x: the variables in which the process's noise is white."""
    return process.unscale(process.sigma(level), x)


def els_x0(x_t: Tensor, level: Tensor, process: DiffusionProcess, train: Tensor, size: int,
           chunk_size: int) -> Tensor:
    """The ELS denoiser at one level (1,) for a batch x_t (B, C, H, W); train (n, C, H, W) in pixels."""
    b, c, h, w = x_t.shape
    radius = min(size // 2, max(h, w) - 1)  # a larger window adds only padding
    classes = pixel_classes(h, w, radius)
    queries = windows(whiten(process, level, x_t), radius)
    averages = [SoftmaxAverage.empty((b, len(positions)), c, x_t) for positions in classes]
    images_per_chunk = max(1, chunk_size // (h * w))
    for chunk in train.split(images_per_chunk):
        chunk = chunk.to(x_t)
        keys = windows(whiten(process, level, process.scale(process.alpha(level), chunk)), radius)
        values = rearrange(chunk, "m c h w -> m (h w) c")
        for positions, average in zip(classes, averages):
            key = rearrange(keys[:, positions], "m p d -> (m p) d")
            logits = queries[:, positions] @ key.T - 0.5 * key.square().sum(1)
            average.add(logits, rearrange(values[:, positions], "m p c -> (m p) c"))
    out = x_t.new_empty((b, h * w, c))
    for positions, average in zip(classes, averages):
        out[:, positions] = average.mean()
    return rearrange(out, "b (h w) c -> b c h w", h=h)


def level_groups(level: Tensor, rows: int) -> Iterator[Tensor]:
    """Indices of the examples that share a level, at most `rows` at a time."""
    for value in level.unique():
        yield from (level == value).nonzero().flatten().split(rows)


class ELS(ClosedForm):
    """The boundary-aware equivariant local score machine with a patch size per noise level."""

    def __init__(self, train: Tensor, process: DiffusionProcess, patch: tuple[int, ...], ou_times: tuple[float, ...],
                 chunk_size: int) -> None:
        super().__init__(process)
        self.register_buffer("images", train.detach())
        self.patch, self.ou_times, self.chunk_size = patch, ou_times, chunk_size

    def patch_at(self, level: Tensor) -> int:
        """The patch size of a level: patch[i] for the first ou_times[i] above its OU time, else the last."""
        t = float(self.process.ou_time(level.reshape(1)))
        return next((p for p, limit in zip(self.patch, self.ou_times) if t < limit), self.patch[-1])

    def denoise(self, x_t: Tensor, level: Tensor) -> Tensor:
        out = torch.empty_like(x_t)
        rows = max(1, QUERY_BUDGET // (x_t[0].numel() * self.chunk_size))
        for index in level_groups(level, rows):
            one = level[index[:1]]
            out[index] = els_x0(x_t[index], one, self.process, self.images, self.patch_at(one), self.chunk_size)
        return out


def check_schedule(patch: tuple[int, ...], ou_times: tuple[float, ...]) -> None:
    """Odd sizes, one OU time between consecutive sizes, increasing."""
    even = [p for p in patch if p % 2 == 0]
    if even:
        raise FreqdiffError(f"model 'els'.patch: {even[0]} is even; patch sizes must be odd (a window centred on its "
                            "pixel): choose 1, 3, 5, ...")
    if len(ou_times) != len(patch) - 1:
        raise FreqdiffError(f"model 'els'.ou_times: {len(ou_times)} values for {len(patch)} patch sizes; give "
                            f"{len(patch) - 1} (the OU times where the size changes)")
    if any(b <= a for a, b in zip(ou_times, ou_times[1:])):
        raise FreqdiffError(f"model 'els'.ou_times: {list(ou_times)} must increase")


@MODELS.register("els", ELSParams)
def els(params: ELSParams, context: BuildContext) -> ELS:
    """Kamb & Ganguli's equivariant local score machine: per pixel, a softmax over all training patches."""
    check_schedule(params.patch, params.ou_times)
    return ELS(context.split.train, context.require_process("model 'els'"), params.patch, params.ou_times,
               params.chunk_size)
