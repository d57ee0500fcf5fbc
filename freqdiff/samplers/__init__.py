"""Samplers: turn a trained noise predictor into images, seeded and batched."""
from freqdiff.core.registry import Registry
from freqdiff.samplers.base import Sampler, draw_samples

SAMPLERS: Registry[Sampler] = Registry("sampler")

from freqdiff.core.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["SAMPLERS", "Sampler", "draw_samples"]
