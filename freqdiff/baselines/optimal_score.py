"""The empirical optimal score: the exact denoiser of the training set's empirical distribution (a memorizer).

For any process of the contract, x_t = A x_0 + S eps with A, S diagonal in the process's basis, and training images
a_i (in that basis):

    E[x_0 | x_t] = sum_i w_i a_i,   w = softmax_i( -||S^-1 (x_t - A a_i)||^2 / 2 ),

computed as a streaming log-sum-exp over chunks of training images, so memory is O(B * chunk) and tiny noise
gives no overflow; the score follows from the process (score = -S^-2 (x_t - A E[x_0 | x_t])). Sampling with
it reproduces training images (f_mem -> 1).
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess


def flat_diagonal(diagonal: Tensor, shape: torch.Size) -> Tensor:
    """A scale (B,1,1,1) or per-coefficient (B,1,H,W) diagonal as (B, D) over the D values of images of `shape`."""
    return rearrange(diagonal.expand(shape), "b ... -> b (...)")


def posterior_logits(x: Tensor, chunk: Tensor, alpha: Tensor, variance: Tensor) -> Tensor:
    """log p(i | x_t) + const, (B, m), for x (B, D) and training images `chunk` (m, D) in the basis:
    x.(alpha/var * a_i) - (alpha^2/var).a_i^2 / 2 (the ||x||^2 term cancels)."""
    weight = alpha / variance
    return (x * weight) @ chunk.T - 0.5 * (alpha * weight) @ chunk.square().T


def optimal_x0(x_t: Tensor, level: Tensor, process: DiffusionProcess, train_basis: Tensor,
               chunk_size: int = 4096) -> Tensor:
    """E[x_0 | x_t] under the empirical training distribution; train_basis (n, D): the images in process.to_basis."""
    x = rearrange(process.to_basis(x_t), "b ... -> b (...)")
    alpha = flat_diagonal(process.alpha(level), x_t.shape).to(x)
    variance = flat_diagonal(process.sigma(level), x_t.shape).to(x).square()
    running_max = torch.full_like(x[:, :1], -torch.inf)
    normalizer = torch.zeros_like(x[:, :1])
    weighted_sum = torch.zeros_like(x)
    for chunk in train_basis.to(x).split(chunk_size):
        logits = posterior_logits(x, chunk, alpha, variance)
        new_max = torch.maximum(running_max, logits.amax(1, keepdim=True))
        rescale, weights = torch.exp(running_max - new_max), torch.exp(logits - new_max)
        normalizer = normalizer * rescale + weights.sum(1, keepdim=True)
        weighted_sum = weighted_sum * rescale + weights @ chunk
        running_max = new_max
    return process.from_basis((weighted_sum / normalizer).reshape(x_t.shape))


def in_basis(process: DiffusionProcess, train: Tensor) -> Tensor:
    """The training images (n, ...) as (n, D) coefficients in the process's basis."""
    return rearrange(process.to_basis(train), "n ... -> n (...)")


class OptimalScore(nn.Module):
    """The memorizer as a closed-form model: forward(x_t, level) -> the output that stands for E[x_0 | x_t]."""

    closed_form = True

    def __init__(self, train: Tensor, process: DiffusionProcess, chunk_size: int = 4096) -> None:
        super().__init__()
        self.register_buffer("train_basis", in_basis(process, train.detach()))
        self._process = [process]
        self.chunk_size = chunk_size

    def forward(self, x_t: Tensor, level: Tensor) -> Tensor:
        process = self._process[0]
        x0 = optimal_x0(x_t, level, process, self.train_basis, self.chunk_size)
        return process.output_from_x0(x_t, level, x0)
