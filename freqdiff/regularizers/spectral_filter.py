"""`spectral_filter`: a radial low-pass filter on the network's prediction, in training and sampling alike.

target=x0 (default) low-passes the denoised estimate x0_hat and returns the output that stands for it,
process.output_from_x0(x_t, level, lowpass(x0_hat)); for DDPM this is lowpass(eps_hat) + highpass(x_t)/sigma_t:
the filtered-out frequencies of x_t are all treated as noise, so samples carry no energy above the cutoff.
target=eps low-passes eps_hat itself; the model can then never remove high-frequency noise, and deterministic
sampling leaves it there scaled by the first level's noise-to-signal ratio sigma/alpha: 1/sqrt(alphabar_T)
(~160x for the paper's schedule) for DDPM, sigma_max (80) for EDM.
The filter acts on x0_hat or eps_hat and returns the process's own output for it, so the loss stays the process's
(terms.mse() through the filtered network) on every process.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from freqdiff.core.registry import param
from freqdiff.core.spectral import MASK_KINDS, MAX_RADIUS, lowpass, lowpass_mask
from freqdiff.process.base import DiffusionProcess
from freqdiff.process.context import BuildContext
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import OUWindow, Regularizer

FILTER_TARGETS = ("x0", "eps")


@dataclass(frozen=True)
class SpectralFilterParams:
    cutoff: float = param(0.25, gt=0)  # radial frequency in cycles/pixel; a hard mask is the identity from 0.707 up
    kind: str = param("hard", choices=MASK_KINDS)
    order: int = param(2, ge=1)  # Butterworth order (steepness)
    target: str = param("x0", choices=FILTER_TARGETS)  # which prediction is low-passed
    t_min: float = param(0.0, ge=0)  # OU time range where the filter acts (in training and sampling alike)
    t_max: float | None = param(None, ge=0)  # None: no upper bound


class LowpassPrediction(nn.Module):
    """model(x_t, level) with its x0 or eps prediction low-passed; the wrapped network is `.model`."""

    def __init__(self, model: nn.Module, process: DiffusionProcess, params: SpectralFilterParams) -> None:
        super().__init__()
        self.model = model
        self._process = [process]  # by reference: a checkpoint holds the network's weights only
        self.params = params
        self.window = OUWindow(params.t_min, params.t_max)

    def mask(self, x: Tensor) -> Tensor:
        """The low-pass gain for images shaped like x."""
        p = self.params
        return lowpass_mask(x.shape[-2], x.shape[-1], p.cutoff, p.kind, p.order, x.device)

    def forward(self, x_t: Tensor, level: Tensor) -> Tensor:
        process, output = self._process[0], self.model(x_t, level)
        if self.params.target == "eps":
            eps_smooth = lowpass(process.eps_from_output(x_t, level, output), self.mask(x_t))
            x0_smooth = process.x0_from_eps(x_t, level, eps_smooth)
        else:
            x0_smooth = lowpass(process.x0_from_output(x_t, level, output), self.mask(x_t))
        inside = self.window.mask(process, level).reshape(-1, *[1] * (output.dim() - 1))
        return torch.where(inside, process.output_from_x0(x_t, level, x0_smooth), output)


class SpectralFilter(Regularizer):
    """The process's plain loss through a network whose prediction is low-passed."""

    def __init__(self, process: DiffusionProcess, params: SpectralFilterParams) -> None:
        self.process = process
        self.params = params

    def passes_everything(self) -> bool:
        """True for a hard mask at or above the corner frequency, where the filter is exactly the identity."""
        return self.params.kind == "hard" and self.params.cutoff >= MAX_RADIUS

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model if self.passes_everything() else LowpassPrediction(model, self.process, self.params)


@REGULARIZERS.register("spectral_filter", SpectralFilterParams)
def spectral_filter(params: SpectralFilterParams, context: BuildContext) -> Regularizer:
    """Low-pass (hard or Butterworth) the x0 or eps prediction in Fourier space, in training and sampling."""
    return SpectralFilter(context.require_process("regularizer 'spectral_filter'"), params)
