"""Networks and closed-form models: model(x_t, level) -> output F for images (B, C, H, W) and levels (B,).

A registered network is a backbone F(x, c_noise); the pipeline wraps it in Preconditioned, which feeds it the
process's c_in x_t and c_noise(level). A closed-form model (closed_form = True) answers (x_t, level) itself.
"""
from torch import nn

from freqdiff.core.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")

from freqdiff.core.plugins import import_submodules  # noqa: E402

import_submodules(__name__)
import_submodules("freqdiff.models.closed_form")  # the closed-form baselines register here too
