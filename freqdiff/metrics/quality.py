"""Measure a set of samples: every quality value with its sampling error, both copy measures, and the quality gate.

Each quality value is the mean over `folds` disjoint (sample fold, reference fold) pairs and carries 2 sigma
over them as its error, as the paper reports FID (mean +- 2 sigma over disjoint reference sets). Folds are
interleaved (fold j holds images j, j + folds, ...), so a reference set ordered by writer spreads evenly.
The gate says whether a checkpoint generates images at all; its threshold is derived from the calibration
table (freqdiff.commands.calibrate) and stored in gates.json beside this file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from freqdiff.core.io import read_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.data import Split
from freqdiff.metrics.extractors import Extractor
from freqdiff.metrics.fid import frechet_distance, kernel_distance, reference_features
from freqdiff.metrics.fmem import check_finite, fmem, fmem_robust
from freqdiff.metrics.measures import NEAREST_K, prdc, recognizable, spectral_distance
from freqdiff.metrics.statistics import mean_and_err

QUALITY = ("fid", "kid", "precision", "recall", "density", "coverage", "recognizable", "spectral")
HIGHER_IS_BETTER = ("precision", "recall", "density", "coverage", "recognizable")
COPY = ("fmem", "fmem_low", "fmem_high", "fmem_robust", "fmem_robust_low", "fmem_robust_high")
MEASURED = (*[c for q in QUALITY for c in (q, f"{q}_err")], *COPY)  # metrics.csv columns, in order
MIN_PER_FOLD = NEAREST_K + 2  # PRDC ranks each point's k-th neighbour other than itself with argpartition(k + 1)
GATES = Path(__file__).parent / "gates.json"


@dataclass(frozen=True)
class Gate:
    """A checkpoint generates images when value - value_err >= threshold for the metrics.csv column `measure`."""

    measure: str
    threshold: float
    extractor: str  # the feature space / classifier the threshold was calibrated in
    source: str  # one line: how the threshold was derived from the calibration table

    def passes(self, value: float, err: float) -> bool:
        """Conservative: the error counts against the checkpoint; a missing value never passes."""
        return math.isfinite(value) and value - (err if math.isfinite(err) else 0.0) >= self.threshold


def gate_for(extractor: str) -> Gate | None:
    """The calibrated gate of an extractor, None when it has none (e.g. 'pixels', 'inception')."""
    gates = read_json(GATES) if GATES.is_file() else {}
    entry = gates.get(extractor)
    return Gate(**entry, extractor=extractor) if entry else None


def fold_indices(n: int, folds: int) -> list[np.ndarray]:
    """`folds` disjoint interleaved index sets of equal size n // folds (fold j: j, j + folds, ...)."""
    size = n // folds
    return [np.arange(j, size * folds, folds) for j in range(folds)]


def check_fold_sizes(n_samples: int, n_reference: int, folds: int, reference: str) -> None:
    """Refuse sets too small for MIN_PER_FOLD images per fold, naming the minimum."""
    if folds < 2:
        raise FreqdiffError(f"--folds: need at least 2 folds for an error bar, got {folds}")
    for what, n, flag in (("n_samples", n_samples, "--n_samples"), (f"the {reference} set", n_reference,
                                                                    "--test_size" if reference == "test" else "--n")):
        if n // folds < MIN_PER_FOLD:
            raise FreqdiffError(f"{flag}: {what} has {n} images, {n // folds} per fold with {folds} folds; the quality "
                                f"measures need at least {MIN_PER_FOLD} per fold ({MIN_PER_FOLD * folds} images)")


def fold_quality(feats: np.ndarray, ref_feats: np.ndarray, images01: Tensor, ref01: Tensor,
                 probabilities: np.ndarray | None, confidence: float | None, seed: int) -> dict[str, float]:
    """Every quality measure of one sample fold against one reference fold."""
    values = {"fid": frechet_distance(feats, ref_feats), "kid": kernel_distance(feats, ref_feats, seed=seed),
              **prdc(ref_feats, feats), "spectral": spectral_distance(images01, ref01)}
    if probabilities is not None and confidence is not None:
        values["recognizable"] = recognizable(probabilities, confidence)
    return values


def quality(samples01: Tensor, reference01: Tensor, extractor: Extractor, folds: int,
            cache_dir: str | Path | None = None) -> dict[str, float | None]:
    """Mean and 2-sigma error over folds of each measure in QUALITY; None where the extractor cannot give it."""
    feats, ref_feats = extractor(samples01), reference_features(reference01, extractor, cache_dir)
    check_finite(torch.from_numpy(feats), f"'{extractor.name}' features of the samples", "quality")
    probabilities = extractor.probabilities(samples01) if extractor.classify is not None else None
    per_fold = [fold_quality(feats[s], ref_feats[r], samples01[s], reference01[r],
                             None if probabilities is None else probabilities[s], extractor.confidence, seed=j)
                for j, (s, r) in enumerate(zip(fold_indices(len(feats), folds), fold_indices(len(ref_feats), folds)))]
    out: dict[str, float | None] = {}
    for name in QUALITY:
        values = [fold[name] for fold in per_fold if name in fold]
        out[name], out[f"{name}_err"] = mean_and_err(values) if values else (None, None)
    return out


def copy_measures(samples: Tensor, split: Split, eval_cfg: Any) -> dict[str, float]:
    """The paper's f_mem on raw samples and the low-passed, noise-robust one, each with its 95% interval."""
    mean = split.mean.reshape(1, -1, 1, 1)
    raw = fmem(samples, split.train, k=eval_cfg.k, quantize=eval_cfg.quantize, mean=mean)
    robust = fmem_robust(samples, split.train, k=eval_cfg.k, quantize=eval_cfg.quantize, mean=mean)
    return {"fmem": raw.fraction, "fmem_low": raw.low, "fmem_high": raw.high,
            "fmem_robust": robust.fraction, "fmem_robust_low": robust.low, "fmem_robust_high": robust.high}


def measure_samples(samples: Tensor, split: Split, eval_cfg: Any, extractor: Extractor,
                    cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Every metrics.csv column but step and the losses, for `samples` (N, C, H, W) in the split's centered space.

    Quality is measured against split.test (or split.train, per eval_cfg.fid_reference) uncentered by split.to_unit:
    image data in [0, 1] pixels (clamped there: a sample may overshoot), data that declare no pixel range
    (gaussian_mixture's points of R^d) as they are, never clamped; the copy measures against split.train. NaN or
    inf anywhere is refused in one line.
    """
    reference = split.test if eval_cfg.fid_reference == "test" else split.train
    check_finite(samples, "samples", "measure")
    check_finite(reference, f"{eval_cfg.fid_reference} images", "measure")
    check_fold_sizes(len(samples), len(reference), eval_cfg.folds, eval_cfg.fid_reference)
    if tuple(samples.shape[1:]) != tuple(reference.shape[1:]):
        raise FreqdiffError(f"measure: sample shape {tuple(samples.shape[1:])} differs from the data's "
                            f"{tuple(reference.shape[1:])}")
    values = {**quality(split.to_unit(samples), split.to_unit(reference), extractor, eval_cfg.folds, cache_dir),
              **copy_measures(samples, split, eval_cfg)}
    return {**{column: values[column] for column in MEASURED},
            "extractor": extractor.name, "n_samples": len(samples), "folds": eval_cfg.folds}
