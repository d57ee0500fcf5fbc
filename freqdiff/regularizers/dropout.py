"""`dropout`: set the rate of every dropout layer of the network (the paper's U-Net uses 0.1)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.models.dropout import DROPOUT_LAYERS
from freqdiff.process.context import BuildContext
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import Regularizer


@dataclass(frozen=True)
class DropoutParams:
    p: float = param(0.2, ge=0, lt=1)  # dropout probability given to every dropout layer


class Dropout(Regularizer):
    """The process's plain loss through the network with every dropout rate set to p."""

    def __init__(self, p: float) -> None:
        self.p = p

    def wrap_model(self, model: nn.Module) -> nn.Module:
        layers = [m for m in model.modules() if isinstance(m, DROPOUT_LAYERS)]
        if not layers:
            raise FreqdiffError(f"regularizer 'dropout': model {type(model).__name__} has no dropout layer to set")
        for layer in layers:
            layer.p = self.p
        return model


@REGULARIZERS.register("dropout", DropoutParams)
def dropout(params: DropoutParams, context: BuildContext) -> Regularizer:
    """Set every dropout layer of the model to rate p (sweeps the U-Net's dropout)."""
    return Dropout(params.p)
