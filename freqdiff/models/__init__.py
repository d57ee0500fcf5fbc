"""Score networks: model(x_t, t) -> eps_hat for images (B, C, H, W) and integer steps t (B,)."""
from torch import nn

from freqdiff.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")

from freqdiff.plugins import import_submodules  # noqa: E402

import_submodules(__name__)
