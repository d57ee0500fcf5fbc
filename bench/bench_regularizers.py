"""Cost of each regularizer per training step, as a ratio to `none`, measured in one run on the default model.

Steps of all regularizers are interleaved round-robin (none, A, B, ..., none, A, B, ...) so machine drift hits
all of them alike; the ratio is median(step time with A) / median(step time with none).
Usage: python bench/bench_regularizers.py [--steps 60] [--n 16] [--threads 1]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from common import median_step_times, parse
from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.train.trainer import Trainer

REGULARIZERS = {
    "none": {},
    "fourier_penalty": {},
    "fourier_penalty(score)": {"regularizer.target": "score"},
    "frequency_weighted_loss": {},
    "focal_frequency": {},
    "spectral_filter": {},
    "weight_decay": {},
    "dropout": {},
}


def trainer(label: str, flags: dict[str, str], root: Path, n: int) -> Trainer:
    name = label.split("(")[0]
    cfg = apply_flags(RunConfig(), {"n": str(n), "steps": "100000", "regularizer": name, **flags})
    return Trainer([(cfg, root / label)])


def main(argv: list[str]) -> None:
    args = parse(__doc__, argv, steps=60)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {label: trainer(label, flags, Path(tmp), args.n) for label, flags in REGULARIZERS.items()}
        times = median_step_times({label: t.train_step for label, t in trainers.items()}, args.steps)
    print(f"default model (unet W=8), digits 8x8, batch {args.n}, {args.threads} threads, {args.steps} steps each")
    print(f"{'regularizer':<26}{'ms/step':>9}{'ratio to none':>15}")
    for label, median in times.items():
        print(f"{label:<26}{1000 * median:>9.2f}{median / times['none']:>15.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
