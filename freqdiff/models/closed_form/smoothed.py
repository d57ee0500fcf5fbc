"""`smoothed_empirical`: the closed-form score smoothed over input perturbations (Scarvelis, Borde & Solomon 2023,
"Closed-form diffusion models", the sigma-CFDM).

The smoothed denoiser averages the exact one over perturbations of its input of scale sigma,

    D_sigma(x_t) = E_{e ~ N(0, I)} E[x_0 | x_t + sigma e]   ~   (1/M) sum_m E[x_0 | x_t + sigma e_m],

with M draws e_m fixed per model (seeded) and shared by every input, so a trajectory sees one deterministic field
(their code also holds the draws fixed along a trajectory). As in their estimator, the perturbation moves the
posterior weights, not the point the score is taken at: score = -S^-2 (x_t - A D_sigma(x_t)). Averaging posteriors
of nearby points makes the estimate a barycenter of neighbouring training images, which generalizes: sigma = 0 is
`empirical` exactly, f_mem falls as sigma grows.

For large n their k-nearest-plus-random-subset estimator (after DEANN, Karppa et al. 2022) replaces the sum over
all N training images by the k nearest (weight 1/N each) and l others drawn uniformly from the rest (weight
(N - k)/(l N) each, an unbiased estimate of the rest's sum); the draws here are with replacement and fresh at every
call. The k nearest come from an exact streamed search, so the estimator saves the weighted sum over all N but not
the distances (their speed comes from an approximate index).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange, reduce
from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.models import MODELS
from freqdiff.models.optimal_score import (DEFAULT_CHUNK, ClosedForm, in_basis, optimal_x0, posterior_logits,
                                           process_scales)
from freqdiff.process.base import DiffusionProcess
from freqdiff.process.context import BuildContext


@dataclass(frozen=True)
class SmoothedParams:
    sigma: float = param(0.1, ge=0)  # std of the input perturbation, in units of x_t (the centered pixels near t = 0)
    draws: int = param(8, ge=1)  # M Monte Carlo draws of the perturbation (one when sigma = 0)
    k: int = param(0, ge=0)  # nearest training images summed exactly; 0: the exact sum over all N
    l: int = param(32, ge=1)  # random others, each weighted (N - k) / (l N); used when k > 0 and k + l < N
    seed: int = param(0, ge=0)  # the perturbations and the random subsets
    chunk_size: int = param(DEFAULT_CHUNK, ge=1)  # training images per step of the stream


def nearest_logits(x: Tensor, train_basis: Tensor, alpha: Tensor, variance: Tensor, k: int,
                   chunk_size: int) -> tuple[Tensor, Tensor]:
    """The k largest posterior logits of each row of x (Q, D) and their training indices, (Q, k) each, streamed."""
    best = x.new_empty((len(x), 0))
    index = torch.empty((len(x), 0), dtype=torch.long, device=x.device)
    for start in range(0, len(train_basis), chunk_size):
        chunk = train_basis[start:start + chunk_size].to(x)
        logits = torch.cat([best, posterior_logits(x, chunk, alpha, variance)], dim=1)
        positions = torch.arange(start, start + len(chunk), device=x.device).expand(len(x), -1)
        best, chosen = logits.topk(min(k, logits.shape[1]), dim=1)
        index = torch.cat([index, positions], dim=1).gather(1, chosen)
    return best, index


def remainder_draws(nearest: Tensor, n: int, l: int, generator: torch.Generator) -> Tensor:
    """(Q, l) indices drawn uniformly, with replacement, from the training images that are not in each row of
    `nearest` (Q, k): a rank j among the N - k others becomes an index by stepping over the excluded ones in order."""
    drawn = torch.randint(n - nearest.shape[1], (len(nearest), l), generator=generator).to(nearest.device)
    for excluded in nearest.sort(dim=1).values.T:
        drawn = drawn + (excluded[:, None] <= drawn)
    return drawn


def subset_logits(x: Tensor, candidates: Tensor, alpha: Tensor, variance: Tensor) -> Tensor:
    """posterior_logits of each row of x (Q, D) against its own candidates (Q, m, D): (Q, m)."""
    weight = alpha / variance
    cross = torch.einsum("qd,qmd->qm", x * weight, candidates)
    return cross - 0.5 * torch.einsum("qd,qmd->qm", (alpha * weight).expand_as(x), candidates.square())


def knn_subset_x0(x: Tensor, train_basis: Tensor, alpha: Tensor, variance: Tensor, k: int, l: int,
                  generator: torch.Generator, chunk_size: int) -> Tensor:
    """The posterior mean over the k nearest (weight 1/N) and l random others (weight (N - k)/(l N)), (Q, D)."""
    n = len(train_basis)
    near_logits, near = nearest_logits(x, train_basis, alpha, variance, k, chunk_size)
    others = remainder_draws(near, n, l, generator)
    candidates = train_basis[torch.cat([near, others], dim=1)].to(x)
    logits = torch.cat([near_logits + math.log(1 / n),
                        subset_logits(x, candidates[:, k:], alpha, variance) + math.log((n - k) / (l * n))], dim=1)
    return torch.einsum("qm,qmd->qd", torch.softmax(logits, dim=1), candidates)


class SmoothedEmpirical(ClosedForm):
    """D_sigma(x_t): the empirical posterior mean averaged over M fixed perturbations sigma * e_m of the input."""

    def __init__(self, train: Tensor, process: DiffusionProcess, perturbations: Tensor, k: int, l: int, seed: int,
                 chunk_size: int) -> None:
        super().__init__(process)
        self.register_buffer("train_basis", in_basis(process, train.detach()))
        self.register_buffer("perturbations", perturbations)  # (M, C, H, W): sigma * e_m
        self.k, self.l, self.chunk_size = k, l, chunk_size
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def subset(self) -> bool:
        """Whether the k-nearest-plus-random estimator replaces the exact sum."""
        return 0 < self.k and self.k + self.l < len(self.train_basis)

    def posterior_mean(self, x_t: Tensor, level: Tensor) -> Tensor:
        """E[x_0 | x_t], exact or by the subset estimator, in blocks of rows that bound the memory."""
        if not self.subset:
            return optimal_x0(x_t, level, self.process, self.train_basis, self.chunk_size)
        x = rearrange(self.process.to_basis(x_t), "b ... -> b (...)")
        alpha, variance = process_scales(self.process, level, x_t)
        rows = max(1, self.chunk_size // (self.k + self.l))
        blocks = [knn_subset_x0(x[i:i + rows], self.train_basis, alpha[i:i + rows], variance[i:i + rows], self.k,
                                self.l, self.generator, self.chunk_size) for i in range(0, len(x), rows)]
        return self.process.from_basis(torch.cat(blocks).reshape(x_t.shape))

    def denoise(self, x_t: Tensor, level: Tensor) -> Tensor:
        draws = len(self.perturbations)
        perturbed = rearrange(x_t[None] + self.perturbations[:, None].to(x_t), "m b ... -> (m b) ...")
        x0 = self.posterior_mean(perturbed, level.repeat(draws))
        return reduce(x0, "(m b) ... -> b ...", "mean", m=draws)


@MODELS.register("smoothed_empirical", SmoothedParams)
def smoothed_empirical(params: SmoothedParams, context: BuildContext) -> SmoothedEmpirical:
    """The optimal score averaged over input perturbations of std sigma (Scarvelis et al. 2023); sigma=0: empirical."""
    process = context.require_process("model 'smoothed_empirical'")
    draws = 1 if params.sigma == 0 else params.draws
    e = torch.randn((draws, *context.image_shape), generator=torch.Generator().manual_seed(params.seed))
    return SmoothedEmpirical(context.split.train, process, params.sigma * e, params.k, params.l, params.seed,
                             params.chunk_size)
