"""Cost of each regularizer per training step, as a ratio to `none`, measured in one run on the default model.

Steps of all regularizers are interleaved round-robin (none, A, B, ..., none, A, B, ...) so machine drift hits
all of them alike; the ratio is median(step time with A) / median(step time with none).
Usage: python bench/bench_regularizers.py [--steps 60] [--n 16] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from freqdiff.config import RunConfig, apply_flags
from freqdiff.trainer import Trainer

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
    return Trainer(cfg, root / label)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {label: trainer(label, flags, Path(tmp), args.n) for label, flags in REGULARIZERS.items()}
        times: dict[str, list[float]] = {label: [] for label in trainers}
        for _ in range(5):  # warm-up
            for t in trainers.values():
                t.train_step()
        for _ in range(args.steps):
            for label, t in trainers.items():
                start = time.perf_counter()
                t.train_step()
                times[label].append(time.perf_counter() - start)
    base = statistics.median(times["none"])
    print(f"default model (unet W=8), digits 8x8, batch {args.n}, {args.threads} threads, {args.steps} steps each")
    print(f"{'regularizer':<26}{'ms/step':>9}{'ratio to none':>15}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:<26}{1000 * median:>9.2f}{median / base:>15.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
