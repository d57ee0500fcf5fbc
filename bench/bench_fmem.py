"""f_mem's exact two-nearest-neighbour search against faiss-cpu's exact flat index (IndexFlatL2), in one run.

Both find each sample's two nearest training images exactly; the calls alternate (bench/common.py) so machine
drift hits both alike. freqdiff is timed twice: `fmem()` with a fresh training set (it builds its index: principal
subspace, norms) and with the index already built, as at every checkpoint after the first of a run.
Data (the paper's scale: 10k samples x 32k training images x 1024 pixels):
  natural: 32x32 Gaussian random fields with a 1/f^2 power spectrum (the second-order statistics of natural
           images); half the samples are noisy copies of training images, as a memorizing model draws;
  noise:   white Gaussian noise, where no low-dimensional bound helps (the worst case).
faiss-cpu is a bench-only dependency: pip install -e ".[bench]".
Usage: python bench/bench_fmem.py [--data natural|noise] [--samples 10000] [--train 32768] [--side 32] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from freqdiff.data.nearest import _CACHE, cached_index
from freqdiff.metrics import fmem


def natural_images(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian random fields with a 1/f^2 power spectrum, scaled to unit pixel variance."""
    f = torch.fft.fftfreq(side)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1 / side)
    images = torch.fft.ifft2(torch.fft.fft2(torch.randn(count, 1, side, side, generator=generator)) / radius).real
    return images / images.std()


def data(kind: str, samples: int, train: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if kind == "noise":
        return torch.randn(samples, 1, side, side, generator=g), torch.randn(train, 1, side, side, generator=g)
    a = natural_images(train, side, g)
    copies = a[torch.randint(0, train, (samples // 2,), generator=g)]
    copies = copies + 0.05 * torch.randn(copies.shape, generator=g)
    return torch.cat([copies, natural_images(samples - samples // 2, side, g)]), a


def faiss_two_nearest(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(a.shape[1])
    index.add(a)
    return index.search(x, 2)[1]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("natural", "noise"), default="natural")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--train", type=int, default=32_768)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    samples, train = data(args.data, args.samples, args.train, args.side)
    x, a = samples.flatten(1).numpy(), train.flatten(1).numpy()
    results: dict[str, object] = {}

    def ours_fresh() -> None:
        _CACHE.clear()
        results["ours"] = fmem(samples, train)

    def ours_cached() -> None:
        cached_index(train)
        results["cached"] = fmem(samples, train)

    runners = {"faiss IndexFlatL2": lambda: results.__setitem__("faiss", faiss_two_nearest(x, a)),
               "fmem, index built": ours_fresh, "fmem, index reused": ours_cached}
    times: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(args.repeats):
        for label, run in runners.items():
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    agree = float((results["ours"].nearest.numpy() == results["faiss"][:, 0]).mean())
    print(f"data {args.data}: {args.samples} samples x {args.train} training images x {args.side ** 2} pixels, "
          f"{args.threads} threads, median of {args.repeats} interleaved calls")
    faiss_time = statistics.median(times["faiss IndexFlatL2"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:<20}{median:>8.2f} s   faiss / this: {faiss_time / median:.2f}x")
    print(f"same nearest training image as faiss for {agree:.4%} of samples; f_mem {results['ours'].fraction:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
