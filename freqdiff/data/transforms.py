"""Shared image preprocessing: resize, center-crop and convert the channels of float image batches."""
from __future__ import annotations

import torch
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


def paper_crop(images: Tensor, resolution: int) -> Tensor:
    """Resize (N, C, H, W) images so that the short side is `resolution`, then center-crop a square: the paper's
    loader (torchvision's Resize(resolution) then CenterCrop(resolution)); images of that size pass unchanged."""
    h, w = images.shape[-2:]
    scale = resolution / min(h, w)
    size = (max(resolution, round(h * scale)), max(resolution, round(w * scale)))
    if size != (h, w):
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
    return center_crop(images, resolution).clamp(0, 1)


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grayscale weights (PIL's convert("L"))


def to_gray(x: Tensor) -> Tensor:
    """Luma of RGB images; grayscale passes through."""
    if x.shape[1] == 1:
        return x
    return torch.einsum("bchw,c->bhw", x, x.new_tensor(LUMA))[:, None]


def to_rgb(x: Tensor) -> Tensor:
    """Repeat a grayscale channel three times (a view); RGB passes through."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
