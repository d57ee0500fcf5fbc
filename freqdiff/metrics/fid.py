"""Frechet and kernel distances through clean-fid's own formulas, and the checksummed cache of reference features.

FD is the Frechet (2-Wasserstein) distance between Gaussians fitted to two feature sets:
||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (cleanfid.fid.frechet_distance); KID is the unbiased
polynomial-kernel MMD^2 averaged over random subsets (cleanfid.fid.kernel_distance). Both take feature
arrays (N, D); which extractor made them is recorded by the caller.
The reference set's features are cached on disk, keyed by its bytes and the extractor, with a checksum:
a truncated or edited cache file is detected, recomputed and reported.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy.linalg import LinAlgWarning
from torch import Tensor

from freqdiff.core.io import atomic_path
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.extractors import Extractor

DEFAULT_CACHE = Path("~/.cache/freqdiff/fid_stats")
CACHE_FORMAT = 2  # 1: mu, sigma, feats without a checksum


def stats_key(reference01: Tensor, extractor: Extractor) -> str:
    """Hash of the reference images' bytes, shape and dtype, and of the extractor's key."""
    images = reference01.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{extractor.key}|{images.dtype}|{tuple(images.shape)}|".encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()[:32]


def checksum(feats: np.ndarray) -> str:
    """sha256 of a feature array's dtype, shape and bytes."""
    digest = hashlib.sha256(f"{feats.dtype}|{feats.shape}|".encode())
    digest.update(np.ascontiguousarray(feats).tobytes())
    return digest.hexdigest()


def read_cached(path: Path) -> np.ndarray:
    """The features stored at `path`, or ValueError saying why the file cannot be trusted."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            if int(cached["format"]) != CACHE_FORMAT:
                raise ValueError(f"format {int(cached['format'])}, expected {CACHE_FORMAT}")
            feats, stored = cached["feats"], str(cached["checksum"])
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"unreadable: {type(err).__name__}") from None
    if checksum(feats) != stored:
        raise ValueError("checksum mismatch: the file was truncated or edited")
    return feats


def reference_features(reference01: Tensor, extractor: Extractor, cache_dir: str | Path | None = None) -> np.ndarray:
    """Features of the reference images: read from the cache when intact, else computed and written atomically."""
    path = Path(cache_dir or DEFAULT_CACHE).expanduser() / f"{stats_key(reference01, extractor)}.npz"
    if path.is_file():
        try:
            return read_cached(path)
        except ValueError as err:
            warnings.warn(f"reference-feature cache {path} is corrupt ({err}); recomputing it", stacklevel=2)
    feats = extractor(reference01)
    with atomic_path(path) as tmp:
        np.savez(tmp, feats=feats, checksum=np.array(checksum(feats)), format=np.array(CACHE_FORMAT))
    return feats


@contextlib.contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """clean-fid's KID draws subsets from numpy's global RNG: seed it, then restore the caller's state."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def gaussian_fit(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance exactly as cleanfid.fid.fid_from_feats computes them."""
    return np.mean(feats, axis=0), np.atleast_2d(np.cov(feats, rowvar=False))


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """clean-fid's Frechet distance between Gaussian fits of two feature sets (N1, D), (N2, D).

    When S1 S2 is so singular that its square root keeps an imaginary part (a few distinct images, e.g.
    copies of 4 training images), both covariances get clean-fid's own 1e-6 ridge, scaled to the features.
    """
    from cleanfid.fid import frechet_distance as cleanfid_frechet  # clean-fid imports torchvision (~3 s)

    (mu1, s1), (mu2, s2) = gaussian_fit(feats1), gaussian_fit(feats2)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # clean-fid prints when it regularizes
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy deprecates sqrtm's disp, which clean-fid passes
        warnings.simplefilter("ignore", LinAlgWarning)  # a singular product: clean-fid's ridge below handles it
        try:
            return float(cleanfid_frechet(mu1, s1, mu2, s2))
        except ValueError:
            ridge = 1e-6 * max(np.trace(s1), np.trace(s2), 1e-12) / len(mu1) * np.eye(len(mu1))
            return float(cleanfid_frechet(mu1, s1 + ridge, mu2, s2 + ridge))


def kernel_distance(feats1: np.ndarray, feats2: np.ndarray, subsets: int = 100, seed: int = 0) -> float:
    """clean-fid's KID (unbiased cubic-kernel MMD^2) of two feature sets, its subsets drawn from `seed`."""
    from cleanfid.fid import kernel_distance as cleanfid_kernel

    if min(len(feats1), len(feats2)) < 2:
        raise FreqdiffError(f"kid: needs at least 2 features per set, got {len(feats1)} and {len(feats2)}")
    with numpy_seed(seed):
        return float(cleanfid_kernel(feats1, feats2, num_subsets=subsets))
