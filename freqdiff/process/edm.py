"""EDM (Karras et al. 2022): x_t = x_0 + sigma eps, the network preconditioned to unit-variance inputs and targets.

The level is sigma itself (continuous, alpha = 1). Table 1 of the paper, "Ours" column:
    c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),  c_in = 1 / sqrt(s^2 + sd^2),  c_noise = ln(s) / 4,
training draws ln(s) ~ N(P_mean, P_std^2), and the loss weight lambda(s) = (s^2 + sd^2) / (s sd)^2 on ||D - x_0||^2
is exactly 1 on the network output (D - x_0 = c_out (F - F_target) and lambda c_out^2 = 1). Samplers walk the
rho = 7 grid from sigma_max to sigma_min, with Heun's method (EDM's Algorithm 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.process import PROCESSES
from freqdiff.process.base import DenoiserProcess, per_example
from freqdiff.process.context import BuildContext


@dataclass(frozen=True)
class EDMParams:
    sigma_data: float | None = param(None, gt=0)  # std of the data; None: measured on the training subset
    P_mean: float = param(-1.2)  # mean of ln(sigma) in training
    P_std: float = param(1.2, gt=0)  # std of ln(sigma) in training
    sigma_min: float = param(0.002, gt=0)  # the sampling grid's last level
    sigma_max: float = param(80.0, gt=0)  # the sampling grid's first level (the prior's std)
    rho: float = param(7.0, gt=0)  # grid curvature: larger rho puts more steps at small sigma


def karras_levels(steps: int, sigma_min: float, sigma_max: float, rho: float) -> Tensor:
    """sigma_i = (sigma_max^(1/rho) + i/(steps-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, EDM eq. (5)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def check_sigma_range(sigma_min: float, sigma_max: float, who: str) -> None:
    if not sigma_min < sigma_max:
        raise FreqdiffError(f"process '{who}': sigma_min {sigma_min} must be below sigma_max {sigma_max}")


def data_std(train: Tensor) -> float:
    """The standard deviation of the (centered) training pixels: sqrt of their mean square."""
    return float(train.double().square().mean().sqrt())


class SigmaProcess(DenoiserProcess):
    """x_t = x_0 + sigma eps with the level being sigma (EDM, VE): alpha = 1, reference SNR 1 / sigma^2, the
    rho grid between sigma_min and sigma_max, Heun's sampler. Subclasses give the preconditioning and the
    training levels."""

    default_sampler = "heun"

    def __init__(self, sigma_min: float, sigma_max: float, rho: float) -> None:
        super().__init__()
        self.register_buffer("sigma_bounds", torch.tensor([sigma_min, sigma_max]))  # a buffer: .to() moves the levels
        self.rho = rho

    def alpha(self, level: Tensor) -> Tensor:
        return per_example(torch.ones_like(level))

    def sigma(self, level: Tensor) -> Tensor:
        return per_example(level)

    def snr(self, level: Tensor) -> Tensor:
        return level.double().pow(-2)

    def level_at_snr(self, snr: float) -> Tensor:
        return torch.tensor(snr ** -0.5, device=self.device)

    def sampling_levels(self, steps: int) -> Tensor:
        sigma_min, sigma_max = self.sigma_bounds.tolist()
        return karras_levels(steps, sigma_min, sigma_max, self.rho).to(self.device, torch.get_default_dtype())


class EDM(SigmaProcess):
    """EDM's preconditioning and log-normal training levels (Karras et al. 2022, table 1)."""

    def __init__(self, sigma_data: float, P_mean: float, P_std: float, sigma_min: float, sigma_max: float,
                 rho: float) -> None:
        super().__init__(sigma_min, sigma_max, rho)
        self.register_buffer("sigma_data", torch.tensor(sigma_data))
        self.P_mean, self.P_std = P_mean, P_std

    def sample_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """ln(sigma) ~ N(P_mean, P_std^2)."""
        return (self.P_mean + self.P_std * torch.randn(batch, generator=generator, device=device)).exp()

    def c_skip(self, level: Tensor) -> Tensor:
        return per_example(self.sigma_data**2 / (level**2 + self.sigma_data**2))

    def c_out(self, level: Tensor) -> Tensor:
        return per_example(level * self.sigma_data / (level**2 + self.sigma_data**2).sqrt())

    def c_in(self, level: Tensor) -> Tensor:
        return per_example(1 / (level**2 + self.sigma_data**2).sqrt())

    def c_noise(self, level: Tensor) -> Tensor:
        return level.log() / 4

    def derived(self) -> dict[str, Any]:
        return {"sigma_data": float(self.sigma_data)}


@PROCESSES.register("edm", EDMParams)
def edm(params: EDMParams, context: BuildContext) -> EDM:
    """EDM: preconditioned denoiser, log-normal training sigma, Heun on the rho = 7 grid from 80 to 0.002."""
    check_sigma_range(params.sigma_min, params.sigma_max, "edm")
    sigma_data = params.sigma_data if params.sigma_data is not None else data_std(context.split.train)
    return EDM(sigma_data, params.P_mean, params.P_std, params.sigma_min, params.sigma_max, params.rho)
