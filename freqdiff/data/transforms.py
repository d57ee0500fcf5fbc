"""Shared image preprocessing: resize and center-crop float image batches."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def center_crop(images: Tensor, size: int) -> Tensor:
    """Crop the central size x size square of (N, C, H, W) images."""
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def resize(images: Tensor, size: int | None) -> Tensor:
    """Antialiased bilinear resize of (N, C, H, W) images to size x size; None keeps the size."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
