"""FID and KID through clean-fid's own formulas, on features from a named extractor.

FID is the Frechet (2-Wasserstein) distance between Gaussians fitted to the two feature sets:
||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (cleanfid.fid.frechet_distance); KID is the
unbiased polynomial-kernel MMD^2 averaged over random subsets (cleanfid.fid.kernel_distance).
Images are float tensors (B,C,H,W) in [0,1]: un-center model samples before calling.
The reference set's statistics are cached on disk, keyed by its bytes and the extractor.
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from freqdiff.io import atomic_path
from freqdiff.metrics.extractors import Extractor
from freqdiff.registry import FreqdiffError

DEFAULT_CACHE = Path("~/.cache/freqdiff/fid_stats")


@dataclass(frozen=True)
class FidResult:
    """FID and KID of a sample set, with the extractor that produced them."""

    fid: float
    kid: float
    extractor: str
    n_samples: int
    n_reference: int


@dataclass(frozen=True)
class FeatureStats:
    """Gaussian fit (mean, covariance) of a feature set, and the features themselves for KID."""

    mu: np.ndarray
    sigma: np.ndarray
    feats: np.ndarray


def feature_stats(feats: np.ndarray) -> FeatureStats:
    """Mean and covariance exactly as cleanfid.fid.fid_from_feats computes them."""
    return FeatureStats(np.mean(feats, axis=0), np.cov(feats, rowvar=False), feats)


def check_images(images01: Tensor, what: str) -> Tensor:
    """A float (B,C,H,W) batch of at least two images in [0,1], or a one-line error naming `what`."""
    if not torch.is_tensor(images01) or images01.ndim != 4 or not images01.is_floating_point():
        raise FreqdiffError(f"fid: {what} must be a float tensor (B,C,H,W), got {getattr(images01, 'shape', type(images01))}")
    if images01.shape[0] < 2:
        raise FreqdiffError(f"fid: {what} needs at least 2 images for a covariance, got {images01.shape[0]}")
    low, high = images01.min().item(), images01.max().item()
    if low < -1e-3 or high > 1 + 1e-3:
        raise FreqdiffError(f"fid: {what} must lie in [0,1] (got {low:.3g}..{high:.3g}); un-center samples first")
    return images01


def stats_key(reference01: Tensor, extractor: Extractor) -> str:
    """Hash of the reference images' bytes, shape and dtype, and of the extractor's key."""
    images = reference01.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{extractor.key}|{images.dtype}|{tuple(images.shape)}|".encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()[:32]


def reference_stats(reference01: Tensor, extractor: Extractor, cache_dir: str | Path | None = None) -> FeatureStats:
    """Statistics of the reference set: read from the cache, or computed and written there atomically."""
    path = Path(cache_dir or DEFAULT_CACHE).expanduser() / f"{stats_key(reference01, extractor)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return FeatureStats(cached["mu"], cached["sigma"], cached["feats"])
    stats = feature_stats(extractor(reference01))
    with atomic_path(path) as tmp:
        np.savez(tmp, mu=stats.mu, sigma=stats.sigma, feats=stats.feats)
    return stats


@contextlib.contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """clean-fid's KID draws subsets from numpy's global RNG: seed it, then restore the caller's state."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def compute_fid(samples01: Tensor, reference01: Tensor, extractor: Extractor,
                cache_dir: str | Path | None = None, kid_subsets: int = 100, seed: int = 0) -> FidResult:
    """FID and KID of `samples01` against `reference01`, both (B,C,H,W) in [0,1], by clean-fid."""
    from cleanfid import fid as cleanfid_fid  # clean-fid imports torchvision (~3 s): load it on first use

    check_images(samples01, "samples")
    check_images(reference01, "reference")
    if samples01.shape[1:] != reference01.shape[1:]:
        raise FreqdiffError(
            f"fid: sample shape {tuple(samples01.shape[1:])} differs from reference shape {tuple(reference01.shape[1:])}"
        )
    ref = reference_stats(reference01, extractor, cache_dir)
    gen = feature_stats(extractor(samples01))
    fid = cleanfid_fid.frechet_distance(gen.mu, gen.sigma, ref.mu, ref.sigma)
    with numpy_seed(seed):
        kid = cleanfid_fid.kernel_distance(gen.feats, ref.feats, num_subsets=kid_subsets)
    return FidResult(float(fid), float(kid), extractor.name, len(gen.feats), len(ref.feats))
