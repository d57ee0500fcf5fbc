"""The regularizer interface the trainer calls; `none` is this base class unchanged."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from freqdiff.core.registry import FreqdiffError
from freqdiff.process.base import DiffusionProcess
from freqdiff.process.loss import DenoisingTerms


class Regularizer:
    """Plain denoising: the process's own loss terms.mse() (the paper's eps MSE for DDPM, EDM's weighted denoiser
    loss for edm), no model change, no optimizer change."""

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The network actually trained and sampled (a filter or dropout wraps or edits it)."""
        return model

    def objective(self, terms: DenoisingTerms) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss and named parts to log (detached), each a batch mean (terms.batch_mean): scalars for one
        network, one per member (K,) for a stack's members; the default is the process's loss, logged as "mse"."""
        mse = terms.batch_mean(terms.mse())
        return mse, {"mse": mse.detach()}

    def optimizer_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the optimizer (e.g. weight_decay)."""
        return {}


@dataclass(frozen=True)
class OUWindow:
    """The range t_min <= OU time <= t_max (None: no upper bound) of the paper's time where a term applies.

    OU time is the process's own convention (process.ou_time), so a window means the same noise for every process.
    """

    t_min: float = 0.0
    t_max: float | None = None

    def __post_init__(self) -> None:
        if self.t_max is not None and self.t_min > self.t_max:
            raise FreqdiffError(f"time window: t_min {self.t_min} > t_max {self.t_max}")

    def mask(self, process: DiffusionProcess, level: Tensor) -> Tensor:
        """(B,) True for the examples whose level lies in the window."""
        ou_time = process.ou_time(level)
        return (ou_time >= self.t_min) & (ou_time <= (torch.inf if self.t_max is None else self.t_max))


class WindowedPenalty(Regularizer):
    """The process's loss + weight * the batch mean of a per-example penalty, counted only at levels inside an
    OU-time window. The penalty is in its own units (each subclass says which), not the process's: the same weight
    trades differently against the loss of an eps-predicting process and of EDM or VE. Weight 0 is the plain loss."""

    name = "penalty"

    def __init__(self, weight: float, window: OUWindow) -> None:
        self.weight, self.window = weight, window

    def penalty(self, terms: DenoisingTerms) -> Tensor:
        """The per-example penalty, shape (B,)."""
        raise NotImplementedError

    def objective(self, terms: DenoisingTerms) -> tuple[Tensor, dict[str, Tensor]]:
        mse = terms.batch_mean(terms.mse())
        inside = self.window.mask(terms.process, terms.level).to(terms.x0.dtype)
        penalty = terms.batch_mean(inside * self.penalty(terms))
        return mse + self.weight * penalty, {"mse": mse.detach(), self.name: penalty.detach()}
