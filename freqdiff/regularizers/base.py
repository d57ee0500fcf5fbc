"""The regularizer interface the trainer calls; `none` is this base class unchanged."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from freqdiff.process.base import DenoisingTerms


class Regularizer:
    """Plain denoising: the epsilon MSE, no model change, no optimizer change."""

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The network actually trained and sampled (a filter or dropout wraps or edits it)."""
        return model

    def objective(self, terms: DenoisingTerms) -> tuple[Tensor, dict[str, float]]:
        """Scalar training loss and named parts to log; the default is the paper's MSE."""
        mse = terms.mse().mean()
        return mse, {"mse": float(mse.detach())}

    def optimizer_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the optimizer (e.g. weight_decay)."""
        return {}


class WindowedPenalty(Regularizer):
    """MSE + weight * the batch mean of a per-example penalty, counted only at steps where window[t] = 1."""

    name = "penalty"

    def __init__(self, weight: float, window: Tensor) -> None:
        self.weight, self.window = weight, window

    def penalty(self, terms: DenoisingTerms) -> Tensor:
        """The per-example penalty, shape (B,)."""
        raise NotImplementedError

    def objective(self, terms: DenoisingTerms) -> tuple[Tensor, dict[str, float]]:
        mse = terms.mse().mean()
        active = self.window.to(terms.t.device)[terms.t]
        penalty = (active * self.penalty(terms)).mean()
        return mse + self.weight * penalty, {"mse": float(mse.detach()), self.name: float(penalty.detach())}
