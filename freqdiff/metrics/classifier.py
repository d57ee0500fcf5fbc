"""What freqdiff's dataset classifiers share: penultimate features, deterministic training, float16 weights.

A classifier's penultimate pre-activations are a feature space for FD, KID and PRDC; its softmax gives the
recognizability rate. Training is seeded and single-threaded, so `python -m freqdiff.metrics.<name>` rewrites
the committed weights bit for bit.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqdiff.core.io import torch_load, torch_save
from freqdiff.core.registry import FreqdiffError

RECOGNIZED_HELDOUT = 0.8  # a classifier's confidence threshold is the max-softmax level 80% of its held-out images reach


class FeatureClassifier(nn.Module):
    """A classifier whose logits are head(relu(features(x))); subclasses define `features` and `head`."""

    head: nn.Linear

    def features(self, x: Tensor) -> Tensor:
        """The penultimate pre-activations: no ReLU, so no dead coordinates in a covariance."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of images classified correctly."""
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


Augment = Callable[[Tensor, torch.Generator], Tensor]


def confidence_threshold(model: nn.Module, heldout: Tensor) -> float:
    """The max-softmax level that a fraction RECOGNIZED_HELDOUT of the held-out images reach."""
    with torch.no_grad():
        confidence = F.softmax(model(heldout), dim=1).amax(dim=1)
    return torch.quantile(confidence, 1 - RECOGNIZED_HELDOUT).item()


def fit(model: nn.Module, x: Tensor, y: Tensor, train: Tensor, seed: int, epochs: int, batch_size: int,
        lr: float, augment: Augment | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """Adam on cross-entropy over the images `train` indexes, shuffled each epoch by a generator seeded seed + 1,
    which also draws the augmentation of each batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train), generator=shuffle)].split(batch_size):
            images = x[batch] if augment is None else augment(x[batch], shuffle)
            loss = F.cross_entropy(model(images), y[batch], label_smoothing=label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def save_classifier(model: nn.Module, path: str | Path, **meta: object) -> None:
    """Write the weights in float16 (features move by ~1e-3 of their spread) with the training metadata."""
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch_save({"state_dict": state, "meta": meta}, path)


def load_classifier(model: nn.Module, path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """`model` with the weights of `path` in float32, in eval mode, and the metadata saved with them. An empty,
    damaged or crafted file (a pickle that would run code) is refused in one line by torch_load, never run."""
    checkpoint = torch_load(path)
    try:
        model.load_state_dict({k: v.float() for k, v in checkpoint["state_dict"].items()})
        meta = dict(checkpoint.get("meta", {}))
    except (RuntimeError, KeyError, TypeError, AttributeError, ValueError) as err:
        reason = " ".join(str(err).split())[:200]
        raise FreqdiffError(f"classifier weights {path}: cannot load ({type(err).__name__}: {reason})") from None
    return model.eval(), meta


def train_main(doc: str, train: Callable[..., tuple[nn.Module, dict[str, Any]]], weights: Path, epochs: int,
               where: str = "") -> None:
    """The command that retrains a feature extractor deterministically and writes its weights and calibration."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", default=str(weights))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=epochs)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one fixed summation order (and the fastest for these small nets)
    torch.use_deterministic_algorithms(True)
    model, calibration = train(seed=args.seed, epochs=args.epochs)
    save_classifier(model, args.out, seed=args.seed, epochs=args.epochs, **calibration)
    print(f"held-out accuracy {calibration['heldout_accuracy']:.4f}{where}, "
          f"confidence threshold {calibration['confidence']:.4f}; wrote {args.out}")
