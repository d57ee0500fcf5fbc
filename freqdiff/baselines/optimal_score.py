"""The empirical optimal score: the exact denoiser of the training set's empirical distribution (a memorizer).

For x_t = sqrt(alphabar) x_0 + sqrt(1 - alphabar) eps and training images a_i,
E[x_0 | x_t] = sum_i softmax_i(-||x_t - sqrt(alphabar) a_i||^2 / (2 (1 - alphabar))) a_i,
computed as a streaming log-sum-exp over chunks of training images, so memory is O(B * chunk) and tiny noise
gives no overflow. Sampling with it reproduces training images (f_mem -> 1).
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from freqdiff.process.ddpm import DDPM


def posterior_logits(x_t: Tensor, train: Tensor, alphabar: Tensor) -> Tensor:
    """log p(i | x_t) + const, (B, n): (sqrt(ab) x_t.a_i - ab ||a_i||^2 / 2) / (1 - ab) (||x_t||^2 cancels)."""
    ab = alphabar[:, None]
    return (ab.sqrt() * (x_t @ train.T) - ab / 2 * train.square().sum(1)) / (1 - ab)


def optimal_x0(x_t: Tensor, alphabar: Tensor, train: Tensor, chunk_size: int = 4096) -> Tensor:
    """E[x_0 | x_t] under the empirical training distribution, x_t (B, ...), alphabar (B,), train (n, ...)."""
    x = rearrange(x_t, "b ... -> b (...)")
    running_max = torch.full_like(x[:, :1], -torch.inf)
    normalizer = torch.zeros_like(x[:, :1])
    weighted_sum = torch.zeros_like(x)
    for chunk in rearrange(train, "n ... -> n (...)").to(x).split(chunk_size):
        logits = posterior_logits(x, chunk, alphabar.to(x))
        new_max = torch.maximum(running_max, logits.amax(1, keepdim=True))
        rescale, weights = torch.exp(running_max - new_max), torch.exp(logits - new_max)
        normalizer = normalizer * rescale + weights.sum(1, keepdim=True)
        weighted_sum = weighted_sum * rescale + weights @ chunk
        running_max = new_max
    return (weighted_sum / normalizer).reshape(x_t.shape)


def optimal_eps(x_t: Tensor, alphabar: Tensor, train: Tensor, chunk_size: int = 4096) -> Tensor:
    """The optimal noise prediction (x_t - sqrt(ab) E[x_0 | x_t]) / sqrt(1 - ab); the score is -it / sqrt(1 - ab)."""
    ab = rearrange(alphabar.to(x_t), "b -> b 1 1 1")
    return (x_t - ab.sqrt() * optimal_x0(x_t, alphabar, train, chunk_size)) / (1 - ab).sqrt()


class OptimalScore(nn.Module):
    """The memorizer as a noise predictor for samplers: forward(x_t, t) -> eps_hat of the training set under DDPM."""

    def __init__(self, train: Tensor, process: DDPM, chunk_size: int = 4096) -> None:
        super().__init__()
        # a frozen parameter rather than a buffer, so that draw_samples finds the device via model.parameters()
        self.train_images = nn.Parameter(train.detach().clone(), requires_grad=False)
        self.process = process
        self.chunk_size = chunk_size

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        alphabar = self.process.alphabar.to(x_t.device)[t]
        return optimal_eps(x_t, alphabar, self.train_images, self.chunk_size)
