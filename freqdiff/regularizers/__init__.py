"""Regularizers: what is added to (or replaces) the denoising loss, or wraps the model, to widen the window."""
from freqdiff.core.registry import Registry
from freqdiff.regularizers.base import Regularizer

REGULARIZERS: Registry[Regularizer] = Registry("regularizer")

from freqdiff.core.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["REGULARIZERS", "Regularizer"]
