"""`none`: the paper's plain epsilon MSE, no model or optimizer change."""
from __future__ import annotations

from freqdiff.context import BuildContext
from freqdiff.registry import NoParams
from freqdiff.regularizers import REGULARIZERS
from freqdiff.regularizers.base import Regularizer


@REGULARIZERS.register("none", NoParams)
def none(params: NoParams, context: BuildContext) -> Regularizer:
    """Plain epsilon-prediction MSE (the paper's objective)."""
    return Regularizer()
