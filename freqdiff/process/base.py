"""The interface every diffusion process implements, so samplers, losses and regularizers swap freely.

A process is a family of Gaussian marginals q(x_t | x_0) = N(signal(x_0, t), noise covariance) indexed by
an integer step t in {0..T-1}; the model predicts the noise eps that made x_t.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class DiffusionProcess(ABC):
    """Forward process with epsilon parametrisation; tensors of steps `t` are LongTensor of shape (B,)."""

    T: int

    @abstractmethod
    def signal(self, x0: Tensor, t: Tensor) -> Tensor:
        """Mean of q(x_t | x_0): a linear map of x_0 (sqrt(alphabar_t) x_0 for DDPM)."""

    @abstractmethod
    def noise(self, eps: Tensor, t: Tensor) -> Tensor:
        """The noise part of x_t made from standard normal eps (sqrt(1 - alphabar_t) eps for DDPM)."""

    @abstractmethod
    def x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """Invert x_t = signal(x_0, t) + noise(eps, t) for x_0."""

    @abstractmethod
    def eps_from_x0(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """Invert x_t = signal(x_0, t) + noise(eps, t) for eps."""

    @abstractmethod
    def score_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """grad log q_t(x_t) implied by a noise prediction eps."""

    @abstractmethod
    def posterior(self, x_t: Tensor, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of q(x_{t-1} | x_t, x_0), for ancestral sampling."""

    @abstractmethod
    def ou_time(self, t: int) -> float:
        """Continuous Ornstein-Uhlenbeck time of step t: -1/2 log alphabar_t for DDPM."""

    def add_noise(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_t = signal(x_0, t) + noise(eps, t)."""
        return self.signal(x0, t) + self.noise(eps, t)

    def step_at_time(self, ou_time: float) -> int:
        """The step whose OU time is closest to `ou_time` (t = 0.01 is DDPM step ~40)."""
        times = torch.tensor([self.ou_time(i) for i in range(self.T)])
        return int(torch.argmin((times - ou_time).abs()))

    def sample_steps(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """Training steps drawn uniformly in {1..T-1}, as in the paper's code."""
        return torch.randint(1, self.T, (batch,), generator=generator, device=device)

    def to(self, device: torch.device) -> "DiffusionProcess":
        """Move every tensor attribute to `device`."""
        for key, value in vars(self).items():
            if isinstance(value, Tensor):
                setattr(self, key, value.to(device))
        return self


@dataclass
class DenoisingTerms:
    """One denoising evaluation: what regularizers and metrics need to build their terms."""

    process: DiffusionProcess
    x0: Tensor
    t: Tensor
    eps: Tensor
    x_t: Tensor
    eps_hat: Tensor

    def mse(self) -> Tensor:
        """Per-example epsilon-prediction MSE, averaged over pixels (the paper's loss)."""
        return (self.eps_hat - self.eps).pow(2).flatten(1).mean(1)

    @property
    def x0_hat(self) -> Tensor:
        return self.process.x0_from_eps(self.x_t, self.t, self.eps_hat)

    @property
    def score(self) -> Tensor:
        return self.process.score_from_eps(self.x_t, self.t, self.eps_hat)


def denoise(process: DiffusionProcess, model: nn.Module, x0: Tensor, t: Tensor, eps: Tensor) -> DenoisingTerms:
    """Noise x_0 to step t with eps and let the model predict eps back."""
    x_t = process.add_noise(x0, t, eps)
    return DenoisingTerms(process, x0, t, eps, x_t, model(x_t, t))
