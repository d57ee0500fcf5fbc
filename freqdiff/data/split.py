"""Held-out test set, deterministic nested or disjoint training subsets, and the paper's centering."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from freqdiff.core.registry import FreqdiffError

ValueRange = tuple[float, float]
PIXELS: ValueRange = (0.0, 1.0)  # the declared range of image data


@dataclass
class Split:
    """Centered training and test images, and how to map them back to [0, 1] pixels."""

    train: Tensor
    test: Tensor
    mean: Tensor  # per-channel training mean that was subtracted (zeros when not centered)
    train_indices: Tensor  # positions of the training images in the dataset pool
    value_range: ValueRange | None = PIXELS  # the data's declared range; None: not images (gaussian_mixture)

    def to_unit(self, x: Tensor) -> Tensor:
        """Undo the centering: centered images -> pixels in [0, 1], clamped to the data's declared range (a sample
        may overshoot it) and mapped from it onto [0, 1] (diffusers' [-1, 1]: (x + 1) / 2; PIXELS: unchanged); data
        that declare none (not images) come back uncentered and unclamped."""
        x = x + self.mean.to(x).reshape(1, -1, 1, 1)
        if self.value_range is None:
            return x
        low, high = self.value_range
        return (x.clamp(low, high) - low) / (high - low)

    @property
    def x0_range(self) -> tuple[float, float]:
        """The interval the training pixels span (for images in [0, 1]: within [0, 1] minus the mean)."""
        return float(self.train.min()), float(self.train.max())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])  # type: ignore[return-value]


def subset_indices(pool_size: int, n: int, subset: str, subset_index: int, data_seed: int) -> Tensor:
    """Indices of the n training images: nested (prefix of a seeded permutation) or disjoint blocks."""
    if n < 2:
        raise FreqdiffError(f"--n: need at least 2 training images, got {n}")
    if subset == "nested":
        if n > pool_size:
            raise FreqdiffError(f"--n: {n} exceeds the {pool_size} training images available")
        generator = torch.Generator().manual_seed(data_seed)
        return torch.randperm(pool_size, generator=generator)[:n]
    if subset == "disjoint":
        if (subset_index + 1) * n > pool_size:
            raise FreqdiffError(
                f"--subset_index: block {subset_index} of size {n} needs {(subset_index + 1) * n} images, "
                f"only {pool_size} available"
            )
        return torch.arange(subset_index * n, (subset_index + 1) * n)
    raise FreqdiffError(f"--subset: unknown value {subset!r}; choices: nested, disjoint")


def make_split(pool: Tensor, n: int, test_size: int, subset: str = "nested", subset_index: int = 0,
               data_seed: int = 0, center: bool = True, value_range: ValueRange | None = PIXELS) -> Split:
    """Test = the last test_size images (as the paper); train = n images of the rest; center both.
    `value_range`: the pool's declared range (data.value_range of its dataset), what to_unit clamps to."""
    if not 0 < test_size < len(pool):
        raise FreqdiffError(f"--test_size: {test_size} must be between 1 and {len(pool) - 1} (pool of {len(pool)})")
    train_pool, test = pool[:-test_size], pool[-test_size:]
    idx = subset_indices(len(train_pool), n, subset, subset_index, data_seed)
    train = train_pool[idx]
    mean = train.mean(dim=(0, 2, 3)) if center else torch.zeros(pool.shape[1])
    shift = mean.reshape(1, -1, 1, 1)
    return Split(train=train - shift, test=test - shift, mean=mean, train_indices=idx, value_range=value_range)
