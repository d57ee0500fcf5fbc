"""`nn_projection`: any model's denoised estimate pulled toward its nearest training image while sampling.

    D_s(x_t) = D(x_t) + s (a* - D(x_t)),   a* = argmin_i ||a_i - D(x_t)||   (raw L2 in the centered pixel space:
                                                                           f_mem's distance)

at the levels whose OU time lies in [t_min, t_max], and D itself elsewhere; strength s = 0 is the wrapped model
exactly (its own output is returned), s = 1 replaces the estimate by a training image (a hard projection). The
wrapped model is a trained run's checkpoint (`run`, `step`), which must have been trained on this run's training
images with this run's process, or, without a run, another registered closed-form model (`inner`, at its default
parameters). Because it is a model, it works with every sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.data.nearest import build_index, two_nearest
from freqdiff.models import MODELS
from freqdiff.models.optimal_score import ClosedForm
from freqdiff.process.base import DiffusionProcess
from freqdiff.process.context import BuildContext


@dataclass(frozen=True)
class NNProjectionParams:
    strength: float = param(1.0, ge=0, le=1)  # s: 0 the wrapped model exactly, 1 the nearest training image
    t_min: float = param(0.0, ge=0)  # the pull acts at OU times in [t_min, t_max]
    t_max: float | None = param(None, ge=0)  # None: no upper end
    run: str = ""  # a trained run directory to wrap; empty: wrap `inner`
    step: int = param(0, ge=0)  # the run's checkpoint; 0: its last
    inner: str = "smoothed_empirical"  # the closed-form model wrapped when no run is given (default parameters)


class NNProjection(ClosedForm):
    """D_s = D + s (a* - D) on the levels of an OU-time range; the wrapped model's output elsewhere or when s = 0."""

    def __init__(self, model: nn.Module, train: Tensor, process: DiffusionProcess, strength: float,
                 t_range: tuple[float, float]) -> None:
        super().__init__(process)
        self.model = model
        self.register_buffer("images", train.detach())
        self.index = build_index(train.detach())
        self.strength, self.t_range = strength, t_range

    def active(self, level: Tensor) -> Tensor:
        """(B,) whether the pull acts at each level."""
        t = self.process.ou_time(level)
        return (t >= self.t_range[0]) & (t <= self.t_range[1]) & (self.strength > 0)

    def forward(self, x_t: Tensor, level: Tensor) -> Tensor:
        output = self.model(x_t, level)
        active = self.active(level)
        if not bool(active.any()):
            return output
        x0 = self.process.x0_from_output(x_t, level, output)
        nearest = self.images[two_nearest(x0, self.index)[2].to(self.images.device)].to(x0)
        pulled = self.process.output_from_x0(x_t, level, x0 + self.strength * (nearest - x0))
        return torch.where(active.reshape(-1, 1, 1, 1).to(x_t.device), pulled, output)


@MODELS.register("nn_projection", NNProjectionParams)
def nn_projection(params: NNProjectionParams, context: BuildContext) -> NNProjection:
    """A trained run's model (or a closed-form one) with its estimate pulled toward the nearest training image."""
    process = context.require_process("model 'nn_projection'")
    t_max = float("inf") if params.t_max is None else params.t_max
    if t_max < params.t_min:
        raise FreqdiffError(f"model 'nn_projection'.t_max: {t_max} is below t_min {params.t_min}")
    model = context.trained_model(Path(params.run), params.step) if params.run else \
        MODELS.build(params.inner, context=context)
    if not params.run and not getattr(model, "closed_form", False):
        raise FreqdiffError(f"model 'nn_projection'.inner: {params.inner!r} is a network and needs training: give "
                            "--model.run RUN_DIR, or a closed-form model (empirical, smoothed_empirical, els)")
    return NNProjection(model, context.split.train, process, params.strength, (params.t_min, t_max))
