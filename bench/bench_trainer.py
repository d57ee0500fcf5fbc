"""freqdiff's training step against a peer: the minimal plain-PyTorch DDPM step of the paper's code style
(sample t and noise, MSE on eps, Adam step), on the same model, data and batch, interleaved in one run.

The ratio says what freqdiff's bookkeeping (seeded per-step draws, regularizer interface, Accelerate) costs.
Usage: python bench/bench_trainer.py [--steps 100] [--n 16] [--threads 1]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from common import median_step_times, parse
from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.commands.registries import REGISTRIES
from freqdiff.process.context import BuildContext
from freqdiff.train.trainer import Trainer


class PlainLoop:
    """The peer: a bare DDPM training step as in the paper's public code."""

    def __init__(self, model: torch.nn.Module, images: torch.Tensor, alphabar: torch.Tensor, lr: float) -> None:
        self.model, self.images, self.alphabar = model, images, alphabar
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def train_step(self) -> None:
        x0 = self.images[torch.randperm(len(self.images))]
        t = torch.randint(1, len(self.alphabar), (len(x0),))
        eps = torch.randn_like(x0)
        ab = self.alphabar[t].reshape(-1, 1, 1, 1)
        loss = (self.model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def main(argv: list[str]) -> None:
    args = parse(__doc__, argv, steps=100)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ours = Trainer([(apply_flags(RunConfig(), {"n": str(args.n), "steps": "100000", "threads": str(args.threads)}),
                         Path(tmp) / "run")])
        context = BuildContext(ours.members[0].pipe.split, process=ours.members[0].pipe.process)
        peer_model = REGISTRIES["model"].build("unet", {}, context=context)
        pipe = ours.members[0].pipe
        peer = PlainLoop(peer_model, pipe.split.train, pipe.process.alphabar, ours.members[0].cfg.train.lr)
        times = median_step_times({"freqdiff": ours.train_step, "plain loop": peer.train_step}, args.steps)
    print(f"unet W=8, digits 8x8, batch {args.n}, {args.threads} threads, {args.steps} steps each")
    for label, median in times.items():
        print(f"{label:<12}{1000 * median:>8.2f} ms/step  ratio {median / times['plain loop']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
