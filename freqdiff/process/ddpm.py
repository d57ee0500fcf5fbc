"""DDPM / variance-preserving process (Ho et al. 2020): the paper's forward process."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.process import PROCESSES
from freqdiff.process.base import DiffusionProcess
from freqdiff.registry import param


SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class DDPMParams:
    T: int = param(1000, ge=2)
    schedule: str = param("linear", choices=SCHEDULES)  # linear (the paper: beta 1e-4 -> 2e-2) | cosine (Nichol & Dhariwal)
    beta_start: float = param(1e-4, gt=0, lt=1)
    beta_end: float = param(2e-2, gt=0, lt=1)


def linear_betas(T: int, beta_start: float, beta_end: float) -> Tensor:
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008) -> Tensor:
    """betas from alphabar(t) = cos^2((t/T + s)/(1 + s) pi/2), clipped at 0.999."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    alphabar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - alphabar[1:] / alphabar[:-1]).clamp(max=0.999)


def _per_example(values: Tensor, t: Tensor) -> Tensor:
    """values[t] shaped (B, 1, 1, 1) to broadcast against images."""
    return values[t].reshape(-1, 1, 1, 1)


class DDPM(DiffusionProcess):
    """x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps, alphabar_t = prod_{s<=t} (1 - beta_s)."""

    def __init__(self, betas: Tensor) -> None:
        self.T = len(betas)
        self.beta = betas.float()
        alphabar = torch.cumprod(1 - betas, 0)
        self.alphabar = alphabar.float()
        self.alphabar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphabar[:-1]]).float()

    def signal(self, x0: Tensor, t: Tensor) -> Tensor:
        return _per_example(self.alphabar.sqrt(), t) * x0

    def noise(self, eps: Tensor, t: Tensor) -> Tensor:
        return _per_example((1 - self.alphabar).sqrt(), t) * eps

    def x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        return (x_t - self.noise(eps, t)) / _per_example(self.alphabar.sqrt(), t)

    def eps_from_x0(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        return (x_t - self.signal(x0, t)) / _per_example((1 - self.alphabar).sqrt(), t)

    def score_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        return -eps / _per_example((1 - self.alphabar).sqrt(), t)

    def posterior(self, x_t: Tensor, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Ho et al. eq. (7): mean = c0 x_0 + ct x_t, variance = beta_t (1 - alphabar_{t-1}) / (1 - alphabar_t)."""
        ab, ab_prev, beta = (_per_example(v, t) for v in (self.alphabar, self.alphabar_prev, self.beta))
        c0 = ab_prev.sqrt() * beta / (1 - ab)
        ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        var = beta * (1 - ab_prev) / (1 - ab)
        return c0 * x0 + ct * x_t, var.sqrt()

    def ou_time(self, t: int) -> float:
        return float(-0.5 * torch.log(self.alphabar[t].double()))


@PROCESSES.register("ddpm", DDPMParams)
def ddpm(params: DDPMParams, **_: object) -> DDPM:
    """Variance-preserving DDPM with a linear (the paper) or cosine beta schedule."""
    if params.schedule == "cosine":
        return DDPM(cosine_betas(params.T))
    return DDPM(linear_betas(params.T, params.beta_start, params.beta_end))
