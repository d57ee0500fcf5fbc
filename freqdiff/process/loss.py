"""The denoising loss, in one place and in the process's own units (Karras et al. 2022, eq. 2 and table 1).

    x_t  = A(t) x_0 + S(t) eps                    the forward process at a drawn level t   (DiffusionProcess.add_noise)
    F    = F_theta(c_in x_t, c_noise(t))          the network's output                     (models.Preconditioned)
    F*   = target(x_0, eps, x_t, t)               eps for DDPM, equal_snr and blurring;
                                                  (x_0 - c_skip x_t) / c_out for EDM and VE
    L(t) = lambda(t) mean_pixels (F - F*)^2        lambda = loss_weight (1 unless the process says otherwise)

For DDPM, L is the paper's eps-MSE. A regularizer turns a batch of terms into the objective: `none` takes the
batch mean of L, the penalties add weight x their term, frequency weighting reweights (F - F*) per frequency.
The batch may hold K networks' batches in turn (the members of a stack, `members` = K): every term is per example,
and only `batch_mean` knows the members, so one objective serves one network and K (one value each).
"""
from __future__ import annotations

from dataclasses import dataclass

from einops import rearrange
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess


@dataclass
class DenoisingTerms:
    """One denoising evaluation at `level`: what regularizers and metrics build their terms from."""

    process: DiffusionProcess
    x0: Tensor
    level: Tensor
    eps: Tensor
    x_t: Tensor
    output: Tensor  # the network's answer F (eps_hat for eps-predicting processes)
    members: int | None = None  # K: the batch is K members' batches in turn (rows k*B..(k+1)*B-1); None: one network

    def batch_mean(self, values: Tensor) -> Tensor:
        """The mean of per-example values (B,) over the batch: a scalar, or member k's mean at k (K,)."""
        if self.members is None:
            return values.mean()
        return rearrange(values, "(k b) -> k b", k=self.members).mean(1)

    def mse(self) -> Tensor:
        """Per-example weighted squared error of the output against its target, averaged over pixels (the
        paper's eps-MSE for DDPM)."""
        error = (self.output - self.process.target(self.x0, self.eps, self.x_t, self.level)).pow(2).flatten(1).mean(1)
        weight = self.process.loss_weight(self.level)
        return error if weight is None else weight * error

    @property
    def eps_hat(self) -> Tensor:
        return self.process.eps_from_output(self.x_t, self.level, self.output)

    @property
    def x0_hat(self) -> Tensor:
        return self.process.x0_from_output(self.x_t, self.level, self.output)

    @property
    def score(self) -> Tensor:
        return self.process.score(self.x_t, self.level, self.eps_hat)

    @property
    def true_score(self) -> Tensor:
        """The score of q(x_t | x_0): what `score` estimates."""
        return self.process.score(self.x_t, self.level, self.eps)


def denoise(process: DiffusionProcess, model: nn.Module, x0: Tensor, level: Tensor, eps: Tensor) -> DenoisingTerms:
    """Noise x_0 to `level` with eps and let the model answer."""
    x_t = process.add_noise(x0, level, eps)
    return DenoisingTerms(process, x0, level, eps, x_t, model(x_t, level))
