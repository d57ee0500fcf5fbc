"""The empirical optimal score: the exact denoiser of the training set's empirical distribution (a memorizer).

For any process of the contract, x_t = A x_0 + S eps with A, S diagonal in the process's basis, and training images
a_i (in that basis):

    E[x_0 | x_t] = sum_i w_i a_i,   w = softmax_i( -||S^-1 (x_t - A a_i)||^2 / 2 ),

computed as a streaming log-sum-exp over chunks of training images (SoftmaxAverage), so the working memory is
O(B * chunk + chunk * D) whatever n is, and tiny noise gives no overflow; the score follows from the process
(score = -S^-2 (x_t - A E[x_0 | x_t])). Sampling with it reproduces training images (f_mem -> 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess

DEFAULT_CHUNK = 4096  # training images per step of the stream: the working memory is O(batch * chunk)


def underflow_free_exp(x: Tensor) -> Tensor:
    """exp(x) for x <= 0, floored at sqrt(smallest normal number) (1e-19 in float32, 1e-154 in float64): on a CPU,
    exp of results that underflow and products with subnormal weights take slow paths (~50x), and a weight that
    small is far below the rounding of any sum it enters (n * 1e-19 against float32's 6e-8)."""
    return x.clamp(min=0.5 * math.log(torch.finfo(x.dtype).tiny)).exp_()


@dataclass
class SoftmaxAverage:
    """sum_i e^{l_i} v_i / sum_i e^{l_i} per row, accumulated over chunks of candidates i with one running maximum
    per row (the log-sum-exp trick), so no exponential overflows and only one chunk of logits is ever held."""

    running_max: Tensor  # (..., 1)
    normalizer: Tensor  # (..., 1)
    weighted_sum: Tensor  # (..., V)

    @classmethod
    def empty(cls, rows: tuple[int, ...], width: int, like: Tensor) -> "SoftmaxAverage":
        return cls(like.new_full((*rows, 1), -torch.inf), like.new_zeros((*rows, 1)), like.new_zeros((*rows, width)))

    def add(self, logits: Tensor, values: Tensor) -> None:
        """Fold in candidates with logits (..., m) and values (m, V) shared by all rows, or (..., m, V) per row."""
        new_max = torch.maximum(self.running_max, logits.amax(-1, keepdim=True))
        rescale, weights = torch.exp(self.running_max - new_max), underflow_free_exp(logits - new_max)
        self.normalizer = self.normalizer * rescale + weights.sum(-1, keepdim=True)
        self.weighted_sum = self.weighted_sum * rescale + torch.matmul(weights.unsqueeze(-2), values).squeeze(-2)
        self.running_max = new_max

    def mean(self) -> Tensor:
        return self.weighted_sum / self.normalizer


def flat_diagonal(diagonal: Tensor, shape: torch.Size) -> Tensor:
    """A scale as (B, 1) when it is one number per example, else per coefficient as (B, D) over images of `shape`."""
    if diagonal.shape[-2:] == (1, 1):
        return diagonal.reshape(-1, 1)
    return rearrange(diagonal.expand(shape), "b ... -> b (...)")


def posterior_logits(x: Tensor, chunk: Tensor, alpha: Tensor, variance: Tensor) -> Tensor:
    """log p(i | x_t) + const, (B, m), for x (B, D) and training images `chunk` (m, D) in the basis:
    x.(alpha/var * a_i) - (alpha^2/var).a_i^2 / 2 (the ||x||^2 term cancels); alpha and var (B, 1) or (B, D)."""
    weight = alpha / variance
    if weight.shape[1] == 1:  # one scale per example: ||a_i||^2 once per chunk, with no chunk-sized temporary
        return weight * (x @ chunk.T) - 0.5 * (alpha * weight) * torch.linalg.vector_norm(chunk, dim=1).square()
    return (x * weight) @ chunk.T - 0.5 * (alpha * weight) @ chunk.square().T


def process_scales(process: DiffusionProcess, level: Tensor, x_t: Tensor) -> tuple[Tensor, Tensor]:
    """alpha and sigma^2 of `level` as (B, 1) or (B, D) in the dtype of x_t."""
    alpha = flat_diagonal(process.alpha(level), x_t.shape).to(x_t)
    return alpha, flat_diagonal(process.sigma(level), x_t.shape).to(x_t).square()


def optimal_x0(x_t: Tensor, level: Tensor, process: DiffusionProcess, train_basis: Tensor,
               chunk_size: int = DEFAULT_CHUNK) -> Tensor:
    """E[x_0 | x_t] under the empirical training distribution; train_basis (n, D): the images in process.to_basis."""
    x = rearrange(process.to_basis(x_t), "b ... -> b (...)")
    alpha, variance = process_scales(process, level, x_t)
    average = SoftmaxAverage.empty(x.shape[:1], x.shape[1], x)
    for chunk in train_basis.split(chunk_size):
        chunk = chunk.to(x)  # one chunk at a time: a float64 query never copies the whole training set
        average.add(posterior_logits(x, chunk, alpha, variance), chunk)
    return process.from_basis(average.mean().reshape(x_t.shape))


def in_basis(process: DiffusionProcess, train: Tensor) -> Tensor:
    """The training images (n, ...) as (n, D) coefficients in the process's basis."""
    return rearrange(process.to_basis(train), "n ... -> n (...)")


def is_closed_form(model: nn.Module) -> bool:
    """Whether a model (possibly inside a regularizer's wrapper) is a closed-form one: nothing in it is trained."""
    return any(getattr(module, "closed_form", False) for module in model.modules())


class ClosedForm(nn.Module):
    """A model that is not trained: forward(x_t, level) -> the output that stands for its denoised estimate.

    The process is held by reference (not a submodule), as Preconditioned holds it; `denoise` is the estimate."""

    closed_form = True

    def __init__(self, process: DiffusionProcess) -> None:
        super().__init__()
        self._process = [process]

    @property
    def process(self) -> DiffusionProcess:
        return self._process[0]

    def denoise(self, x_t: Tensor, level: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x_t: Tensor, level: Tensor) -> Tensor:
        return self.process.output_from_x0(x_t, level, self.denoise(x_t, level))


class OptimalScore(ClosedForm):
    """The memorizer as a closed-form model (registered as `empirical`): E[x_0 | x_t] over the training set."""

    def __init__(self, train: Tensor, process: DiffusionProcess, chunk_size: int = DEFAULT_CHUNK) -> None:
        super().__init__(process)
        self.register_buffer("train_basis", in_basis(process, train.detach()))
        self.chunk_size = chunk_size

    def denoise(self, x_t: Tensor, level: Tensor) -> Tensor:
        return optimal_x0(x_t, level, self.process, self.train_basis, self.chunk_size)
