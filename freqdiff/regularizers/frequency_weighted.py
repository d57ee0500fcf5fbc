"""`frequency_weighted_loss`: the process's own denoising loss computed in Fourier space, with a weight per radial
frequency.

loss = mean_B lambda(level) sum_f w(|f|) |F(F_theta - target)|^2 / (C H W), with F_theta the network's output,
target = process.target(x0, eps, x_t, level) and lambda = process.loss_weight(level) (1 when the process has none):
the process's units, i.e. the eps error for the eps-predicting processes (DDPM, equal_snr, blurring), the
preconditioned output F for EDM and VE. w = 1 for |f| <= cutoff and w = high_weight * (|f| / cutoff)^power above,
at the levels inside an OU-time window (the process's plain loss, terms.mse(), outside it).
With unit weights (high_weight=1, power=0) it is terms.mse() exactly on every process (unitary FFT, Parseval);
high_weight < 1 makes high-frequency errors cheaper, so they are learned later.
The weighting acts on the output's error in pixel space, whatever basis the process is diagonal in. For EDM,
F - target = (D - x0) / c_out with c_out one number per example, so there it weights the denoiser's (x0) error
spectrum; for DDPM the eps error is -sqrt(alphabar / (1 - alphabar)) times the x0 error, the same spectrum.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.core.spectral import power, radial_frequency
from freqdiff.process.context import BuildContext
from freqdiff.process.loss import DenoisingTerms
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import OUWindow, Regularizer


@dataclass(frozen=True)
class FrequencyWeightedParams:
    cutoff: float = param(0.25, gt=0)  # radial frequency in cycles/pixel where the high weight starts
    high_weight: float = param(0.1, ge=0)  # weight just above the cutoff
    power: float = 0.0  # the weight above the cutoff grows (>0) or decays (<0) like (|f|/cutoff)^power
    t_min: float = param(0.0, ge=0)  # OU time range where the weights apply; the process's plain loss elsewhere
    t_max: float | None = param(None, ge=0)  # None: no upper bound


def frequency_weights(h: int, w: int, params: FrequencyWeightedParams, device: torch.device) -> Tensor:
    """w(|f|) per fft2 coefficient, shape (h, w): 1 up to the cutoff, high_weight (|f|/cutoff)^power above."""
    radius = radial_frequency(h, w, device)
    above = params.high_weight * (radius / params.cutoff) ** params.power
    return torch.where(radius <= params.cutoff, torch.ones_like(radius), above).float()


def weighted_spectral_mse(error: Tensor, weights: Tensor) -> Tensor:
    """sum_f w_f |F error|^2 / (C H W) per example (B,): the MSE of error when every weight is 1."""
    return (power(error) * weights).flatten(1).sum(1) / error[0].numel()


def weighted_loss(terms: DenoisingTerms, weights: Tensor) -> Tensor:
    """lambda(level) sum_f w_f |F(output - target)|^2 / (C H W) per example (B,): terms.mse() for unit weights."""
    process = terms.process
    error = terms.output - process.target(terms.x0, terms.eps, terms.x_t, terms.level)
    loss = weighted_spectral_mse(error, weights)
    lam = process.loss_weight(terms.level)
    return loss if lam is None else lam * loss


class FrequencyWeighted(Regularizer):
    """The process's denoising loss with per-frequency weights, inside an OU-time window."""

    def __init__(self, params: FrequencyWeightedParams) -> None:
        self.params = params
        self.window = OUWindow(params.t_min, params.t_max)

    def objective(self, terms: DenoisingTerms) -> tuple[Tensor, dict[str, Tensor]]:
        h, w = terms.output.shape[-2:]
        weights = frequency_weights(h, w, self.params, terms.output.device)
        mse = terms.mse()
        inside = self.window.mask(terms.process, terms.level)
        loss = terms.batch_mean(torch.where(inside, weighted_loss(terms, weights), mse))
        return loss, {"mse": terms.batch_mean(mse).detach(), "frequency_weighted": loss.detach()}


@REGULARIZERS.register("frequency_weighted_loss", FrequencyWeightedParams)
def frequency_weighted_loss(params: FrequencyWeightedParams, context: BuildContext) -> Regularizer:
    """The process's loss in Fourier space, errors above a radial cutoff weighted by high_weight (|f|/cutoff)^power."""
    return FrequencyWeighted(params)
