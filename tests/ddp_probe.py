"""Launched by test_multiprocess.py under `accelerate launch`: each rank records its batches and weights, or trains its
share of several runs trained together."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_config  # noqa: E402
from freqdiff.train.trainer import Trainer, train_runs  # noqa: E402

ENSEMBLE = {"steps": "12", "batch_size": "4", "optimizer": "sgd", "lr": "0.05", "save_every": "6"}


class RecordingTrainer(Trainer):
    """Records the training-image indices this rank used at every step."""

    seen: list[list[int]] = []

    def local_indices(self, member) -> torch.Tensor:
        idx = super().local_indices(member)
        self.seen.append(idx.tolist())
        return idx


def ensemble(out: Path) -> None:
    """Two runs trained together, sharded one per rank."""
    train_runs([(tiny_config(**ENSEMBLE, n=n, seed=str(i)), out / f"member{i}") for i, n in enumerate(("8", "16"))])


def main(out: Path) -> None:
    # SGD: Adam would turn float-rounding differences of near-zero gradients into lr-sized steps.
    # Dropout stays on: its masks are keyed by the example's place in the global batch, not by the rank.
    cfg = tiny_config(n="16", steps="6", first_checkpoint="6", optimizer="sgd", lr="0.05")
    trainer = RecordingTrainer([(cfg, out / "run")])
    trainer.run()
    weights = trainer.members[0].pipe.model.state_dict()  # this rank's own copy, written back from its stack
    rank = trainer.accelerator.process_index
    torch.save({"seen": trainer.seen, "weights": weights, "world": trainer.accelerator.num_processes},
               out / f"rank{rank}.pt")


if __name__ == "__main__":
    (ensemble if sys.argv[2:] == ["ensemble"] else main)(Path(sys.argv[1]))
