"""Equal-SNR noise (Falck et al. 2025): DDPM's schedule with the noise shaped per DCT frequency so that every
frequency has the same signal-to-noise ratio.

    x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) V diag(c) V^T eps,
    SNR_f = alphabar_t C_f / ((1 - alphabar_t) c_f^2) = alphabar_t / (1 - alphabar_t) * mean(C)   for every f,

with C_f the per-frequency variance of the training subset's DCT coefficients (over the n images, per channel),
floored at `floor` times its mean so that no frequency is left without noise (a coefficient that happens to be
equal in every training image), and c_f^2 = C_f / mean(C): the total noise power, and hence the prior's, is
DDPM's. Levels, training draws, the network's step table and the OU time are DDPM's; the network predicts eps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.core.spectral import dct_2d
from freqdiff.process import PROCESSES
from freqdiff.process.base import DiffusionProcess
from freqdiff.process.context import BuildContext
from freqdiff.process.ddpm import DDPM, DDPMParams, betas_of

DIGITS = 6  # significant digits of the recorded variances; the process uses the recorded values


@dataclass(frozen=True)
class EqualSNRParams(DDPMParams):
    floor: float = param(0.01, gt=0, le=1)  # least variance of a frequency, as a fraction of the mean variance


def significant(x: float, digits: int = DIGITS) -> float:
    return float(f"{x:.{digits - 1}e}")


def frequency_variance(train: Tensor) -> Tensor:
    """C_f: the variance over the images of every DCT coefficient, (C, H, W), rounded as it is recorded."""
    variance = dct_2d(train.double()).var(0, unbiased=False)
    return torch.tensor([significant(v) for v in variance.flatten().tolist()], dtype=torch.float64).view_as(variance)


def noise_variance(variance: Tensor, floor: float) -> Tensor:
    """c_f^2 = max(C_f, floor mean(C)) / mean(max(C, floor mean(C))): proportional to the floored C, mean 1."""
    floored = variance.clamp_min(floor * float(variance.mean()))
    return floored / floored.mean()


class EqualSNR(DDPM):
    """DDPM whose noise is V diag(c) V^T eps, c_f^2 proportional to the training subset's variance C_f."""

    basis = "dct"

    def __init__(self, betas: Tensor, variance: Tensor, floor: float) -> None:
        super().__init__(betas)
        c_squared = noise_variance(variance, floor)
        self.register_buffer("noise_scale", c_squared.sqrt().float()[None])  # c, (1, C, H, W)
        self.record = {"signal_variance": variance.tolist(), "floor": floor, "noise_variance": c_squared.tolist()}

    def sigma(self, level: Tensor) -> Tensor:
        return super().sigma(level) * self.noise_scale

    # The shaped noise makes DDPM's scalar posterior variance per-frequency: the contract's general formula.
    posterior = DiffusionProcess.posterior

    def derived(self) -> dict[str, Any]:
        """C_f (as used) and c_f^2 per channel and frequency, and the floor."""
        return self.record


@PROCESSES.register("equal_snr", EqualSNRParams)
def equal_snr(params: EqualSNRParams, context: BuildContext) -> EqualSNR:
    """DDPM's schedule with noise shaped per DCT frequency to the training subset's variance: every SNR_f equal."""
    return EqualSNR(betas_of(params), frequency_variance(context.split.train), params.floor)
