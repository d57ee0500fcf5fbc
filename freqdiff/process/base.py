"""The noise-level contract: every diffusion process is a linear Gaussian corruption, diagonal in a fixed basis.

    x_t = A(level) x_0 + S(level) eps,    A = V diag(alpha) V^T,    S = V diag(sigma) V^T,

V the identity (the pixel basis: DDPM, VE, EDM, with alpha and sigma one number per example) or the orthonormal
2-D DCT (blurring and equal-SNR noise, alpha and sigma per frequency). A process defines its levels: how training
draws them, the grid a sampler walks, a reference SNR from which the paper's Ornstein-Uhlenbeck time follows;
the network's preconditioning (Karras et al. 2022, table 1: D(x) = c_skip x + c_out F(c_in x, c_noise)); and the
loss weight. Everything else follows here from alpha and sigma (conversions between x0, eps and the score, the
posterior of an ancestral step, the training terms), so samplers, regularizers, losses, diagnostics and the
closed-form baselines use the contract only, and a new process is one file.
Schedules are buffers: `.to(device)` moves them.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from freqdiff.core.spectral import dct_2d, idct_2d

BASES = ("pixel", "dct")


def per_example(values: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1), to broadcast one number per example against images."""
    return values.reshape(-1, 1, 1, 1)


def snr_at_ou_time(t: float) -> float:
    """The SNR e^{-2t} / (1 - e^{-2t}) of the Ornstein-Uhlenbeck process at time t (the paper's t)."""
    return 1.0 / math.expm1(2.0 * t)


class DiffusionProcess(nn.Module):
    """A linear Gaussian forward process; by default the network predicts eps (F = eps, c_in = 1)."""

    basis: str = "pixel"  # where alpha and sigma are diagonal: pixel | dct
    levels_count: int | None = None  # T for discrete levels 0..T-1 (a network's step table has T rows); None: continuous
    default_sampler: str = "ddim"  # the sampler its recipe uses

    # ---- what a process defines ---------------------------------------------------------------------------
    def alpha(self, level: Tensor) -> Tensor:
        """Signal scale of x_t, (B, 1, 1, 1) or per frequency (B, 1, H, W) in the basis."""
        raise NotImplementedError

    def sigma(self, level: Tensor) -> Tensor:
        """Noise scale of x_t, shaped as alpha."""
        raise NotImplementedError

    def snr(self, level: Tensor) -> Tensor:
        """A reference signal-to-noise ratio per example (B,), decreasing in the noise: it defines the OU time."""
        raise NotImplementedError

    def level_at_snr(self, snr: float) -> Tensor:
        """The continuous level whose reference SNR is `snr`, a 0-d tensor (discrete processes need not define it)."""
        raise NotImplementedError

    def sample_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """The training levels of one batch, (B,)."""
        raise NotImplementedError

    def sampling_levels(self, steps: int) -> Tensor:
        """A grid of `steps` levels from the most to the least noisy, for samplers (the last one's x0_hat is returned)."""
        raise NotImplementedError

    def c_noise(self, level: Tensor) -> Tensor:
        """What the network's time embedding sees (B,): integer steps index a step table, other values are embedded."""
        raise NotImplementedError

    def c_in(self, level: Tensor) -> Tensor | None:
        """Input scaling of the network (None: the identity)."""
        return None

    def loss_weight(self, level: Tensor) -> Tensor | None:
        """Weight (B,) of the squared error of the network's output against its target (None: 1)."""
        return None

    def derived(self) -> dict[str, Any]:
        """Values computed from the training data, recorded in config.json (e.g. per-frequency variances)."""
        return {}

    # ---- the network's output: eps prediction unless a process says otherwise -----------------------------
    def x0_from_output(self, x_t: Tensor, level: Tensor, output: Tensor) -> Tensor:
        """D(x_t): the denoised estimate the network's output stands for."""
        return self.x0_from_eps(x_t, level, output)

    def output_from_x0(self, x_t: Tensor, level: Tensor, x0: Tensor) -> Tensor:
        """The output that stands for the denoised estimate x0 (filters and closed-form baselines)."""
        return self.eps_from_x0(x_t, level, x0)

    def eps_from_output(self, x_t: Tensor, level: Tensor, output: Tensor) -> Tensor:
        return output

    def target(self, x0: Tensor, eps: Tensor, x_t: Tensor, level: Tensor) -> Tensor:
        """What the network should output for (x0, eps)."""
        return eps

    def preconditioning(self, level: Tensor) -> tuple[Any, Any, Any, Tensor]:
        """(c_skip, c_out, c_in, c_noise) with D(x) = c_skip x + c_out F(c_in x, c_noise) in the basis.

        For eps prediction D = A^-1 (x - S F): c_skip = 1/alpha, c_out = -sigma/alpha.
        """
        alpha, sigma = self.alpha(level), self.sigma(level)
        return 1 / alpha, -sigma / alpha, self.c_in(level), self.c_noise(level)

    # ---- derived: the basis -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        tensors = list(self.buffers())
        return tensors[0].device if tensors else torch.device("cpu")

    def to_basis(self, x: Tensor) -> Tensor:
        return dct_2d(x) if self.basis == "dct" else x

    def from_basis(self, coefficients: Tensor) -> Tensor:
        return idct_2d(coefficients) if self.basis == "dct" else coefficients

    def scale(self, diagonal: Tensor, x: Tensor) -> Tensor:
        """V diag V^T x: a product for one number per example, otherwise per coefficient in the basis."""
        if diagonal.shape[-2:] == (1, 1):
            return diagonal * x
        return self.from_basis(diagonal * self.to_basis(x))

    def unscale(self, diagonal: Tensor, x: Tensor) -> Tensor:
        """V diag^-1 V^T x."""
        if diagonal.shape[-2:] == (1, 1):
            return x / diagonal
        return self.from_basis(self.to_basis(x) / diagonal)

    # ---- derived: the marginals and their conversions ------------------------------------------------------
    def add_noise(self, x0: Tensor, level: Tensor, eps: Tensor) -> Tensor:
        """x_t = A x_0 + S eps."""
        return self.scale(self.alpha(level), x0) + self.scale(self.sigma(level), eps)

    def prior(self, eps: Tensor, level: Tensor) -> Tensor:
        """The start of sampling at the noisiest level: S eps (A x_0 is negligible there; pipeline checks it)."""
        return self.scale(self.sigma(level), eps)

    def x0_from_eps(self, x_t: Tensor, level: Tensor, eps: Tensor) -> Tensor:
        return self.unscale(self.alpha(level), x_t - self.scale(self.sigma(level), eps))

    def eps_from_x0(self, x_t: Tensor, level: Tensor, x0: Tensor) -> Tensor:
        return self.unscale(self.sigma(level), x_t - self.scale(self.alpha(level), x0))

    def score(self, x_t: Tensor, level: Tensor, eps: Tensor) -> Tensor:
        """grad log q(x_t | x_0) = -(S S^T)^-1 (x_t - A x_0) = -S^-1 eps."""
        return -self.unscale(self.sigma(level), eps)

    def noise_to_signal(self, level: Tensor) -> Tensor:
        """sigma / alpha (per frequency): the noise level of y = A^-1 x_t, the variable of the probability-flow ODE."""
        return self.sigma(level) / self.alpha(level)

    def posterior(self, x_t: Tensor, x0: Tensor, level: Tensor, next_level: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of q(x_s | x_t, x_0) for the less noisy level s (Kingma et al. 2021, eq. 33, per frequency):
        alpha_ts = alpha_t/alpha_s, sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2,
        mean = (alpha_ts sigma_s^2 x_t + alpha_s sigma_ts^2 x_0) / sigma_t^2, var = sigma_ts^2 sigma_s^2 / sigma_t^2."""
        a_t, s_t, a_s, s_s = self.alpha(level), self.sigma(level), self.alpha(next_level), self.sigma(next_level)
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        mean = self.scale(a_ts * s_s**2 / s_t**2, x_t) + self.scale(a_s * var_ts / s_t**2, x0)
        return mean, (var_ts * s_s**2 / s_t**2).clamp_min(0).sqrt()

    def ou_time(self, level: Tensor) -> Tensor:
        """The paper's continuous time t of each level, from SNR = e^{-2t} / (1 - e^{-2t}): t = log(1 + 1/SNR) / 2."""
        return 0.5 * torch.log1p(1 / self.snr(level).double())

    def level_at_ou_time(self, t: float) -> Tensor:
        """The level at OU time t, for discrete levels the nearest one (the paper's t = 0.01 is DDPM step 40)."""
        if self.levels_count is None:
            return self.level_at_snr(snr_at_ou_time(t))
        levels = torch.arange(self.levels_count, device=self.device)
        return levels[torch.argmin((self.ou_time(levels) - t).abs())]

    def full(self, level: Tensor | float, batch: int) -> Tensor:
        """A batch of one level, with the dtype and device of this process's levels."""
        level = torch.as_tensor(level)
        dtype = torch.long if self.levels_count is not None else torch.get_default_dtype()
        return torch.full((batch,), level.item(), dtype=dtype, device=self.device)


class DenoiserProcess(DiffusionProcess):
    """A process whose network output F parametrizes the denoiser directly, D = c_skip x + c_out F (EDM, VE).

    Defines c_skip(level) and c_out(level), one number per example; the target is (x_0 - c_skip x_t) / c_out.
    """

    def c_skip(self, level: Tensor) -> Tensor:
        raise NotImplementedError

    def c_out(self, level: Tensor) -> Tensor:
        raise NotImplementedError

    def preconditioning(self, level: Tensor) -> tuple[Any, Any, Any, Tensor]:
        return self.c_skip(level), self.c_out(level), self.c_in(level), self.c_noise(level)

    def x0_from_output(self, x_t: Tensor, level: Tensor, output: Tensor) -> Tensor:
        return self.c_skip(level) * x_t + self.c_out(level) * output

    def output_from_x0(self, x_t: Tensor, level: Tensor, x0: Tensor) -> Tensor:
        return (x0 - self.c_skip(level) * x_t) / self.c_out(level)

    def eps_from_output(self, x_t: Tensor, level: Tensor, output: Tensor) -> Tensor:
        return self.eps_from_x0(x_t, level, self.x0_from_output(x_t, level, output))

    def target(self, x0: Tensor, eps: Tensor, x_t: Tensor, level: Tensor) -> Tensor:
        return self.output_from_x0(x_t, level, x0)
