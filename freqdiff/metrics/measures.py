"""The sample-quality measures beside FD and KID, one small function each, on one (sample, reference) pair.

- precision, recall, density, coverage: k-nearest-neighbour estimates of how much of the sample set lies
  on the reference manifold and how much of it the samples cover (Kynkaanniemi et al. 2019; Naeem et al.
  2020), by the `prdc` package, in an extractor's feature space;
- recognizable: the fraction of samples the dataset's classifier labels with high confidence;
- spectral: the RMS difference, in decades, of the radially averaged power spectra of samples and
  reference images, azimuthal averages at radii 0, 1/N, 2/N, ... cycles/pixel (N the shorter side).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torch import Tensor

from freqdiff.core.spectral import MAX_RADIUS, radial_band_power

NEAREST_K = 5  # Naeem et al.'s default k for PRDC
POWER_FLOOR = 1e-12  # keeps the log finite for a band with no energy (e.g. constant images)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K) -> dict[str, float]:
    """Precision, recall, density and coverage of features `fake` (N, D) against `real` (M, D)."""
    import joblib
    from prdc import compute_prdc

    # compute_prdc prints the set sizes, and asks for 8 joblib threads: ~100x slower than one on small sets
    with contextlib.redirect_stdout(io.StringIO()), joblib.parallel_config(backend="sequential"):
        values = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(values[name]) for name in ("precision", "recall", "density", "coverage")}


def recognizable(probabilities: np.ndarray, confidence: float) -> float:
    """Fraction of samples whose largest class probability reaches `confidence`."""
    return float((probabilities.max(axis=1) >= confidence).mean())


def radial_edges(h: int, w: int) -> list[float]:
    """Bins of width 1/N around the radii 0, 1/N, 2/N, ... (N = min(h, w)), the last one up to the corner."""
    n = min(h, w)
    inner = [(k + 0.5) / n for k in range(n) if (k + 0.5) / n < MAX_RADIUS]
    return [0.0, *inner, MAX_RADIUS]


def log_radial_power(images: Tensor) -> Tensor:
    """log10 of the mean power per Fourier coefficient in each radial bin, over images and channels: (K,)."""
    power = radial_band_power(images.double(), radial_edges(*images.shape[-2:]))
    return torch.log10(power.mean(dim=(0, 1)).clamp_min(POWER_FLOOR))


def spectral_distance(samples: Tensor, reference: Tensor) -> float:
    """RMS over radial bins of the log10 ratio of the samples' and the reference's radially averaged power."""
    return (log_radial_power(samples) - log_radial_power(reference)).square().mean().sqrt().item()
