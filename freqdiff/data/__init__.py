"""Image datasets as pools of float images in [0, 1], shape (N, C, H, W), in a fixed order."""
from torch import Tensor

from freqdiff.core.registry import Registry
from freqdiff.data.split import Split, make_split

DATASETS: Registry[Tensor] = Registry("dataset")

from freqdiff.core.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["DATASETS", "Split", "make_split"]
