"""DDPM / variance-preserving process (Ho et al. 2020): the paper's forward process."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.process import PROCESSES
from freqdiff.process.base import DiffusionProcess, per_example
from freqdiff.process.context import BuildContext

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


def betas_of(params: DDPMParams) -> Tensor:
    """The beta schedule the parameters name: linear (the paper) or cosine."""
    if params.schedule == "cosine":
        return cosine_betas(params.T)
    return linear_betas(params.T, params.beta_start, params.beta_end)


def ddim_levels(T: int, steps: int) -> Tensor:
    """`steps` evenly spaced steps from T-1 down to 0 (the paper's code: 100 of T = 1000)."""
    chosen = sorted({round(i * (T - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)
    return torch.tensor(chosen, dtype=torch.long)


class DDPM(DiffusionProcess):
    """x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps, alphabar_t = prod_{s<=t} (1 - beta_s), t in 0..T-1.

    The network predicts eps and sees the integer step t (c_in = 1, c_noise = t); training draws t uniformly in
    {1..T-1}, as the paper's code does.
    """

    def __init__(self, betas: Tensor) -> None:
        super().__init__()
        self.levels_count = len(betas)
        alphabar = torch.cumprod(1 - betas, 0)
        self.register_buffer("beta", betas.float())
        self.register_buffer("alphabar", alphabar.float())
        self.register_buffer("alphabar_prev", torch.cat([torch.ones(1, dtype=torch.float64), alphabar[:-1]]).float())
        self.register_buffer("alphabar64", alphabar)  # the reference SNR in double precision (OU times near 0)

    @property
    def T(self) -> int:
        return self.levels_count

    def alpha(self, level: Tensor) -> Tensor:
        return per_example(self.alphabar.sqrt()[level])

    def sigma(self, level: Tensor) -> Tensor:
        return per_example((1 - self.alphabar).sqrt()[level])

    def snr(self, level: Tensor) -> Tensor:
        alphabar = self.alphabar64[level]
        return alphabar / (1 - alphabar)

    def sample_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return torch.randint(1, self.T, (batch,), generator=generator, device=device)

    def sampling_levels(self, steps: int) -> Tensor:
        return ddim_levels(self.T, steps).to(self.device)

    def c_noise(self, level: Tensor) -> Tensor:
        return level

    def posterior(self, x_t: Tensor, x0: Tensor, level: Tensor, next_level: Tensor) -> tuple[Tensor, Tensor]:
        """Ho et al. eq. (7) between consecutive steps: mean = c0 x_0 + ct x_t, var = beta_t (1 - ab_{t-1}) / (1 - ab_t);
        the general formula for steps that skip."""
        if not bool((next_level == level - 1).all()):
            return super().posterior(x_t, x0, level, next_level)
        ab, ab_prev, beta = (per_example(v[level]) for v in (self.alphabar, self.alphabar_prev, self.beta))
        c0 = ab_prev.sqrt() * beta / (1 - ab)
        ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        var = beta * (1 - ab_prev) / (1 - ab)
        return c0 * x0 + ct * x_t, var.sqrt()


@PROCESSES.register("ddpm", DDPMParams)
def ddpm(params: DDPMParams, context: BuildContext) -> DDPM:
    """Variance-preserving DDPM with a linear (the paper) or cosine beta schedule."""
    return DDPM(betas_of(params))
