"""K runs trained together against the same K runs one after another: training step and sampling, in one run.

Training: one Trainer step of K runs stacked (one vmapped U-Net) against one step of each of K Trainers of one
run; sampling: one batched DDIM pass over K stacked networks against K single passes. The calls are
interleaved round-robin (bench/common.py), so machine drift hits both alike; on a GPU every call ends with a
synchronize. Default model: the paper's U-Net at W=8 on the 8x8 digits, batch 8, Adam, one CPU thread.
Usage: python bench/bench_ensemble.py [--k 2,6,12,24] [--steps 20] [--samples 64] [--threads 1]
The paper's scale on a GPU (the U-Net at W=32 on 32x32 images, batch 512; digits resized, nothing to download):
       python bench/bench_ensemble.py --k 1,2,4,8 --width 32 --resize 32 --n 512 --batch 512 --samples 256
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from common import median_step_times
from freqdiff.core.config import RunConfig, apply_flags
from freqdiff.samplers import draw_samples
from freqdiff.samplers.stacked import draw_member_samples
from freqdiff.train.trainer import Trainer

FLAGS = {"dataset": "digits", "steps": "100000", "sampler.steps": "50", "test_size": "256"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="2,6,12,24", help="ensemble sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="timed calls of each runner")
    parser.add_argument("--samples", type=int, default=64, help="samples per member in the sampling bench")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="unet", help="unet or mlp")
    parser.add_argument("--width", type=int, default=8, help="the model's width W")
    parser.add_argument("--n", type=int, default=64, help="training images per run")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--resize", type=int, default=0, help="resize the 8x8 digits to this side (0: keep)")
    return parser.parse_args(argv)


def runners(k: int, tmp: Path, flags: dict[str, str], samples: int) -> dict[str, object]:
    """The four step functions at ensemble size k."""
    configs = [apply_flags(RunConfig(), {**flags, "seed": str(i)}) for i in range(k)]
    singles = [Trainer([(cfg, tmp / f"single{k}-{i}")]) for i, cfg in enumerate(configs)]
    ensemble = Trainer([(cfg, tmp / f"member{k}-{i}") for i, cfg in enumerate(configs)])
    pipe = singles[0].members[0].pipe

    def sample_single() -> None:
        for model in (trainer.members[0].pipe.model for trainer in singles):
            draw_samples(pipe.sampler, model, pipe.process, samples, pipe.split.image_shape, seed=0)

    def sample_stack() -> None:
        draw_member_samples(pipe.sampler, ensemble.stack, pipe.process, samples, pipe.split.image_shape, seed=0)

    def synced(fn):
        def call() -> None:
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        return call

    return {name: synced(fn) for name, fn in {
        "train: sequential": lambda: [t.train_step() for t in singles], "train: ensemble": ensemble.train_step,
        "sample: sequential": sample_single, "sample: ensemble": sample_stack}.items()}


def main(argv: list[str]) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    flags = {**FLAGS, "threads": str(args.threads), "model": args.model, "model.width": str(args.width),
             "n": str(args.n), "batch_size": str(args.batch), **({"dataset.resize": str(args.resize)} if args.resize else {})}
    side = args.resize or 8
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {args.threads} thread(s)"
    print(f"model {args.model} W={args.width}, digits {side}x{side}, batch {args.batch}, Adam, {device}, "
          f"{args.steps} timed calls each; sampling: {args.samples} DDIM-50 samples per member")
    print(f"{'K':>3} {'train seq ms':>13} {'train ens ms':>13} {'speed-up':>9} {'sample seq s':>13} "
          f"{'sample ens s':>13} {'speed-up':>9}")
    for k in (int(v) for v in args.k.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            fns = runners(k, Path(tmp), flags, args.samples)
            train = median_step_times({name: fn for name, fn in fns.items() if name.startswith("train")}, args.steps)
            sample = median_step_times({name: fn for name, fn in fns.items() if name.startswith("sample")},
                                       max(2, args.steps // 10), warmup=1)
        ts, te = train["train: sequential"], train["train: ensemble"]
        ss, se = sample["sample: sequential"], sample["sample: ensemble"]
        print(f"{k:>3} {1000 * ts:>13.1f} {1000 * te:>13.1f} {ts / te:>8.2f}x {ss:>13.2f} {se:>13.2f} {ss / se:>8.2f}x",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
