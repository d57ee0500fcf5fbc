"""Variance exploding (Song et al. 2021, the SMLD/NCSN SDE): x_t = x_0 + sigma eps, sigma in [sigma_min, sigma_max].

EDM's VE preconditioning (Karras et al. 2022, table 1): c_skip = 1, c_out = sigma, c_in = 1, c_noise = ln(sigma/2),
so the network outputs F = (x_0 - x_t) / sigma = -eps. Training draws sigma log-uniformly in
[sigma_min, sigma_max] with the weight 1/sigma^2 on ||D - x_0||^2, which is 1 on the network output
(D - x_0 = sigma (F - F_target)). Samplers walk EDM's rho grid between the same bounds (Heun by default).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.core.registry import param
from freqdiff.process import PROCESSES
from freqdiff.process.base import per_example
from freqdiff.process.context import BuildContext
from freqdiff.process.edm import SigmaProcess, check_sigma_range


@dataclass(frozen=True)
class VEParams:
    sigma_min: float = param(0.02, gt=0)  # smallest training and sampling level
    sigma_max: float = param(100.0, gt=0)  # largest: the prior's std
    rho: float = param(7.0, gt=0)  # curvature of the sampling grid (EDM's rho grid)


class VE(SigmaProcess):
    """c_skip = 1, c_out = sigma, c_in = 1, c_noise = ln(sigma / 2); sigma log-uniform in training."""

    def sample_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """sigma = sigma_min (sigma_max / sigma_min)^u, u ~ U[0, 1)."""
        sigma_min, sigma_max = self.sigma_bounds.tolist()
        u = torch.rand(batch, generator=generator, device=device)
        return sigma_min * (sigma_max / sigma_min) ** u

    def c_skip(self, level: Tensor) -> Tensor:
        return per_example(torch.ones_like(level))

    def c_out(self, level: Tensor) -> Tensor:
        return per_example(level)

    def c_noise(self, level: Tensor) -> Tensor:
        return (level / 2).log()


@PROCESSES.register("ve", VEParams)
def ve(params: VEParams, context: BuildContext) -> VE:
    """Variance exploding: x_0 + sigma eps, sigma log-uniform in [0.02, 100], EDM's VE preconditioning, Heun."""
    check_sigma_range(params.sigma_min, params.sigma_max, "ve")
    return VE(params.sigma_min, params.sigma_max, params.rho)
