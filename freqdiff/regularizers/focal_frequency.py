"""`focal_frequency`: the process's loss + weight * the focal frequency loss (Jiang et al. 2021) of a prediction,
default x0_hat.

FFL(pred, true) = mean_f w_f d_f with d_f = |F pred - F true|^2 (unitary FFT) and focal weight
w_f = |F pred - F true|^alpha / its maximum over the image's frequencies (per image and channel), clamped to
[0, 1] and detached: hard frequencies count most. With alpha = 0 it is the MSE of pred (Parseval) on every
process. It is in the prediction's units (pixels for x0), not the process's loss's.
For DDPM x0_hat - x0 = -sqrt((1 - alphabar)/alphabar) (eps_hat - eps) and the focal weight is scale free, so on
x0 the loss is the eps one weighted by (1 - alphabar)/alphabar: up to ~2.5e4 at the last step of the paper's
schedule. Hence the default OU-time window t <= 1 (alphabar >= e^-2, weight <= 6.4). For EDM
x0_hat - x0 = c_out (F - F_target), so it is the loss's error weighted by c_out^2 <= sigma_data^2, bounded at
every level; for VE by sigma^2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.core.spectral import power
from freqdiff.process.context import BuildContext
from freqdiff.process.loss import DenoisingTerms
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import OUWindow, Regularizer, WindowedPenalty
from freqdiff.regularizers.fourier_penalty import TARGETS, prediction, truth


@dataclass(frozen=True)
class FocalFrequencyParams:
    weight: float = param(1.0, ge=0)
    alpha: float = param(1.0, ge=0)  # focusing exponent of the spectral weight (Jiang et al.: 1)
    target: str = param("x0", choices=TARGETS)  # which prediction is compared with its truth
    t_min: float = param(0.0, ge=0)  # OU time range where the loss applies
    t_max: float | None = param(1.0, ge=0)  # None: no upper bound


def focal_weights(distance: Tensor, alpha: float) -> Tensor:
    """|dF|^alpha from squared distances |dF|^2, over its per-image-and-channel maximum, in [0, 1], detached."""
    magnitude = distance.detach().sqrt() ** alpha
    peak = magnitude.amax(dim=(-2, -1), keepdim=True)
    return torch.nan_to_num(magnitude / peak).clamp(0, 1)


def focal_frequency_loss(pred: Tensor, true: Tensor, alpha: float) -> Tensor:
    """Jiang et al.'s focal frequency loss per example (B,): mean over frequencies of w_f |F pred - F true|^2."""
    distance = power(pred - true)
    return (focal_weights(distance, alpha) * distance).flatten(1).mean(1)


class FocalFrequency(WindowedPenalty):
    """The process's loss plus weight * the focal frequency loss of one prediction, inside an OU-time window."""

    name = "focal_frequency"

    def __init__(self, params: FocalFrequencyParams) -> None:
        super().__init__(params.weight, OUWindow(params.t_min, params.t_max))
        self.params = params

    def penalty(self, terms: DenoisingTerms) -> Tensor:
        target = self.params.target
        return focal_frequency_loss(prediction(terms, target), truth(terms, target), self.params.alpha)


@REGULARIZERS.register("focal_frequency", FocalFrequencyParams)
def focal_frequency(params: FocalFrequencyParams, context: BuildContext) -> Regularizer:
    """Loss + weight * focal frequency loss (Jiang et al. 2021) of the x0 (or eps/score) prediction."""
    return FocalFrequency(params)
