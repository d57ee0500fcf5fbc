"""`frequency_weighted_loss`: the eps MSE computed in Fourier space with a weight per radial frequency.

loss = mean_B sum_f w(|f|) |F(eps_hat - eps)|^2 / (C H W), with w = 1 for |f| <= cutoff and
w = high_weight * (|f| / cutoff)^power above, at the levels inside an OU-time window (the plain MSE outside it).
With unit weights (high_weight=1, power=0) it is the plain MSE exactly (unitary FFT, Parseval); high_weight < 1
makes high-frequency errors cheaper, so they are learned later.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.context import BuildContext
from freqdiff.process.base import DenoisingTerms
from freqdiff.registry import param
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import OUWindow, Regularizer
from freqdiff.spectral import power, radial_frequency


@dataclass(frozen=True)
class FrequencyWeightedParams:
    cutoff: float = param(0.25, gt=0)  # radial frequency in cycles/pixel where the high weight starts
    high_weight: float = param(0.1, ge=0)  # weight just above the cutoff
    power: float = 0.0  # the weight above the cutoff grows (>0) or decays (<0) like (|f|/cutoff)^power
    t_min: float = param(0.0, ge=0)  # OU time range where the weights apply; the plain MSE elsewhere
    t_max: float | None = param(None, ge=0)  # None: no upper bound


def frequency_weights(h: int, w: int, params: FrequencyWeightedParams, device: torch.device) -> Tensor:
    """w(|f|) per fft2 coefficient, shape (h, w): 1 up to the cutoff, high_weight (|f|/cutoff)^power above."""
    radius = radial_frequency(h, w, device)
    above = params.high_weight * (radius / params.cutoff) ** params.power
    return torch.where(radius <= params.cutoff, torch.ones_like(radius), above).float()


def weighted_spectral_mse(error: Tensor, weights: Tensor) -> Tensor:
    """sum_f w_f |F error|^2 / (C H W) per example (B,): the MSE when every weight is 1."""
    return (power(error) * weights).flatten(1).sum(1) / error[0].numel()


class FrequencyWeighted(Regularizer):
    """The denoising loss with per-frequency weights replacing the plain MSE."""

    def __init__(self, params: FrequencyWeightedParams) -> None:
        self.params = params
        self.window = OUWindow(params.t_min, params.t_max)

    def objective(self, terms: DenoisingTerms) -> tuple[Tensor, dict[str, float]]:
        error = terms.eps_hat - terms.eps
        weights = frequency_weights(error.shape[-2], error.shape[-1], self.params, error.device)
        mse = terms.mse()
        inside = self.window.mask(terms.process, terms.level)
        loss = torch.where(inside, weighted_spectral_mse(error, weights), mse).mean()
        return loss, {"mse": float(mse.mean().detach()), "frequency_weighted": float(loss.detach())}


@REGULARIZERS.register("frequency_weighted_loss", FrequencyWeightedParams)
def frequency_weighted_loss(params: FrequencyWeightedParams, context: BuildContext) -> Regularizer:
    """Eps MSE in Fourier space, errors above a radial cutoff weighted by high_weight * (|f|/cutoff)^power."""
    return FrequencyWeighted(params)
