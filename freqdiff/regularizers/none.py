"""`none`: the process's plain loss (the paper's epsilon MSE for DDPM), no model or optimizer change."""
from __future__ import annotations

from freqdiff.core.registry import NoParams
from freqdiff.process.context import BuildContext
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import Regularizer


@REGULARIZERS.register("none", NoParams)
def none(params: NoParams, context: BuildContext) -> Regularizer:
    """The process's plain loss: the eps MSE for DDPM (the paper's objective), EDM's weighted loss for edm."""
    return Regularizer()
