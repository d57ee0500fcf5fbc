"""A small CNN that classifies the embedded 8x8 digits at their own resolution: their feature space.

Why: an MNIST LeNet fed 8x8 digits upsampled to 28x28 cannot tell noise from digits (its Frechet distance
put binary noise closer to held-out digits than exact training copies). This network sees the digits as
the diffusion models do, 8x8 in [0, 1], and is trained on scikit-learn's digits minus the last HELDOUT = 256
(the default held-out set of every run, `--test_size`), so the images it is measured against are never trained on.
Its penultimate layer (FEATURE_DIM pre-activations) feeds FD, KID and PRDC; its softmax feeds the
recognizability rate. Training adds white noise to the digits (a noisy digit is still that digit) and
smooths the labels, so that noise alone earns no confidence; it never sees noise without a digit.
Deterministic (about 20 s on one CPU thread):

    python -m freqdiff.metrics.digits_cnn      # writes freqdiff/metrics/weights/digits_cnn.pt

Held-out accuracy on the last 256 digits (other writers than most of the training digits): 0.953.
Recognizability threshold: max softmax >= 0.755, the level 80% of those held-out digits reach.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqdiff.data import DATASETS
from freqdiff.metrics.classifier import (FeatureClassifier, accuracy, confidence_threshold, fit, load_classifier,
                                         train_main)

WEIGHTS = Path(__file__).parent / "weights" / "digits_cnn.pt"
FEATURE_DIM = 32
NOISE_STD = 0.3  # training digits carry white noise up to this std: a noisy digit is still that digit
LABEL_SMOOTHING = 0.1  # no class target above 0.91, so confidence is earned rather than saturated
# The last images of the pool these weights never saw: the default held-out set of a run (DataConfig.test_size;
# tests/test_config.py checks they agree). A property of the weights: changing it means retraining them.
HELDOUT = 256


class DigitsCNN(FeatureClassifier):
    """Two 3x3 conv stages with 2x2 max-pooling, 8x8 -> 2x2 x 64, then 256 -> FEATURE_DIM -> 10 classes.

    The features are the penultimate pre-activations, centered and scaled to unit mean variance per
    coordinate on the training digits (one global scale, so distances keep their geometry): KID's kernel
    (x.y / d + 1)^3 then sees O(1) inner products, as on Inception's features.
    """

    def __init__(self, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Linear(256, feature_dim)
        self.head = nn.Linear(feature_dim, 10)
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_scale", torch.ones(()))

    def penultimate(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))

    def features(self, x: Tensor) -> Tensor:
        return (self.penultimate(x) - self.feature_mean) / self.feature_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.penultimate(x)))

    @torch.no_grad()
    def standardize(self, x: Tensor) -> None:
        """Set the feature centering and scale from images x (the training digits)."""
        raw = self.penultimate(x)
        self.feature_mean.copy_(raw.mean(0))
        self.feature_scale.copy_((raw - raw.mean(0)).square().mean().sqrt())


def add_noise(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each digit plus white Gaussian noise of a std drawn uniformly in [0, NOISE_STD], clamped to [0, 1]."""
    std = NOISE_STD * torch.rand(len(images), 1, 1, 1, generator=generator)
    return (images + std * torch.randn(images.shape, generator=generator)).clamp(0, 1)


def digits_with_labels() -> tuple[Tensor, Tensor]:
    """The 'digits' pool exactly as the dataset registry gives it, (1797,1,8,8) in [0,1], and its labels."""
    from sklearn.datasets import load_digits

    return DATASETS.build("digits"), torch.from_numpy(load_digits().target).long()


def train_digits_cnn(seed: int = 0, epochs: int = 40, batch_size: int = 64,
                     lr: float = 1e-3) -> tuple[DigitsCNN, dict[str, float]]:
    """Train on all but the last HELDOUT digits, deterministically from `seed`; return the held-out calibration."""
    torch.manual_seed(seed)
    x, y = digits_with_labels()
    train, heldout = x[:-HELDOUT], x[-HELDOUT:]
    model = DigitsCNN()
    fit(model, x, y, torch.arange(len(train)), seed, epochs, batch_size, lr, add_noise, LABEL_SMOOTHING)
    model.standardize(train)
    return model, {"heldout_accuracy": accuracy(model, heldout, y[-HELDOUT:]),
                   "confidence": confidence_threshold(model, heldout)}


def load_digits_cnn(path: str | Path = WEIGHTS) -> DigitsCNN:
    """The trained network in float32, in eval mode."""
    return load_classifier(DigitsCNN(), path)[0]


def main() -> None:
    """Train the digits CNN and write its weights."""
    train_main(__doc__, train_digits_cnn, WEIGHTS, epochs=40, where=f" on the last {HELDOUT} digits")


if __name__ == "__main__":
    main()
