"""`weight_decay`: shrink the weights through the optimizer, the loss is the process's plain loss.

The trainer passes optimizer_options() to the optimizer's constructor: for adam that is AdamW (decoupled decay,
Loshchilov & Hutter 2019; torch's Adam would add it to the gradient as L2, where the adaptive scaling weakens
it), for sgd torch's built-in decay (L2 through the momentum, the usual one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from freqdiff.core.registry import param
from freqdiff.process.context import BuildContext
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import Regularizer


@dataclass(frozen=True)
class WeightDecayParams:
    value: float = param(1e-4, ge=0)  # the optimizer's weight_decay coefficient


class WeightDecay(Regularizer):
    """The process's plain loss, with weight decay requested from the optimizer."""

    def __init__(self, value: float) -> None:
        self.value = value

    def optimizer_options(self) -> dict[str, Any]:
        return {"weight_decay": self.value}


@REGULARIZERS.register("weight_decay", WeightDecayParams)
def weight_decay(params: WeightDecayParams, context: BuildContext) -> Regularizer:
    """The plain loss with optimizer weight decay (decoupled AdamW for adam, L2 for sgd)."""
    return WeightDecay(params.value)
