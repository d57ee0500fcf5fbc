"""Launched by test_multiprocess.py under `accelerate launch`: each rank records its batches and weights."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_config  # noqa: E402
from freqdiff.trainer import Trainer  # noqa: E402


class RecordingTrainer(Trainer):
    """Records the training-image indices this rank used at every step."""

    seen: list[list[int]] = []

    def local_batch(self) -> torch.Tensor:
        idx = super().local_batch()
        self.seen.append(idx.tolist())
        return idx


def main(out: Path) -> None:
    # SGD: Adam would turn float-rounding differences of near-zero gradients into lr-sized steps.
    cfg = tiny_config(n="16", steps="6", first_checkpoint="6", optimizer="sgd", lr="0.05", **{"model.dropout": "0"})
    trainer = RecordingTrainer(cfg, out / "run")
    trainer.run()
    rank = trainer.accelerator.process_index
    weights = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    torch.save({"seen": trainer.seen, "weights": weights, "world": trainer.accelerator.num_processes},
               out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
