"""Image datasets as pools of float images in [0, 1], shape (N, C, H, W), in a fixed order.

A dataset's values are pixels in [0, 1] (PIXELS) unless its registration declares otherwise: `values=None` for
data that are not images (gaussian_mixture: points of R^d). A pool is checked against its declared range when it
is loaded (load_dataset): values outside it are refused in one line naming the range found, never clamped.
"""
from __future__ import annotations

import torch
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, Registry
from freqdiff.data.split import PIXELS, Split, ValueRange, make_split

DATASETS: Registry[Tensor] = Registry("dataset")


def value_range(name: str) -> ValueRange | None:
    """The declared range of dataset `name`'s values: PIXELS, or None for data that are not images."""
    return DATASETS.entry(name).meta.get("values", PIXELS)


def check_values(pool: Tensor, where: str, declared: ValueRange | None = PIXELS, fix: str = "",
                 varied: bool = True) -> Tensor:
    """`pool` itself if its values are finite, within `declared` (None: any) and, for a whole pool (`varied`), not
    all equal; otherwise one line naming the range found and, when given, the `fix` (the flag that brings the data
    into range). Never clamps."""
    if pool.numel() == 0:
        return pool
    if not bool(torch.isfinite(pool).all()):
        raise FreqdiffError(f"{where}: holds NaN or infinite values")
    low, high = float(pool.min()), float(pool.max())
    hint = f"; {fix}" if fix else ""
    if declared is not None and (low < declared[0] or high > declared[1]):
        raise FreqdiffError(f"{where}: values span [{low:g}, {high:g}], outside the pixel range "
                            f"[{declared[0]:g}, {declared[1]:g}]{hint}")
    if varied and low == high:
        raise FreqdiffError(f"{where}: every value is {low:g}: nothing to learn or measure{hint}")
    return pool


def load_dataset(name: str, params: dict | None = None) -> Tensor:
    """The pool of dataset `name`, checked against its declared range (value_range)."""
    return check_values(DATASETS.build(name, params), f"dataset '{name}'", value_range(name))


from freqdiff.core.plugins import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = ["DATASETS", "PIXELS", "Split", "check_values", "load_dataset", "make_split", "value_range"]
