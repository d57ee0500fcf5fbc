"""f_mem's exact two-nearest-neighbour search against faiss-cpu's exact flat index (IndexFlatL2), in one run.

Both find each sample's two nearest training images; the calls alternate (bench/common.py) so machine drift hits
both alike. freqdiff is timed twice: `fmem()` with a fresh training set (it builds its index: norms, sort, bfloat16
copy) and with the index already built, as at every checkpoint after the first of a run. `fmem()` searches by the
method freqdiff.data.nearest.choose_method picks here (printed); --method forces one (bfloat16, float32, float64,
faiss), e.g. float32 to see the screen that serves where bfloat16 does not pay and faiss is not installed.
Training set: 32x32 Gaussian random fields with a 1/f^2 power spectrum (the second-order statistics of natural
images). Sample kinds (the paper's scale: 10k samples x 32k training images x 1024 pixels):
  copies:  half noisy copies of training images, half fresh fields (a memorizing model);
  natural: fresh 1/f^2 fields, independent of the training set (a generalizing model: no copies to prune on);
  noise:   white Gaussian noise at the fields' pixel variance;
  noise/noise: white noise against a white-noise training set, where no structure narrows the search (worst case).
Agreement: the share of samples whose nearest training image is faiss's, and f_mem from each side's two neighbours
(both re-measured in float64). faiss-cpu is optional for freqdiff: pip install -e ".[bench]"
Usage: python bench/bench_fmem.py [--kinds copies,natural,noise,noise/noise] [--samples 10000] [--train 32768]
       [--side 32] [--repeats 3] [--threads 2] [--method auto]
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_step_times  # noqa: E402

from freqdiff.data import nearest  # noqa: E402
from freqdiff.data.nearest import _CACHE, METHODS, cached_index  # noqa: E402
from freqdiff.metrics import fmem  # noqa: E402

fmem_module = sys.modules["freqdiff.metrics.fmem"]  # the package's `fmem` attribute is the function

KINDS = ("copies", "natural", "noise", "noise/noise")


def natural_images(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian random fields with a 1/f^2 power spectrum, scaled to unit pixel variance."""
    f = torch.fft.fftfreq(side)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1 / side)
    images = torch.fft.ifft2(torch.fft.fft2(torch.randn(count, 1, side, side, generator=generator)) / radius).real
    return images / images.std()


def data(kind: str, samples: int, train: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, training images) of one kind; every kind draws from its own seeded generator."""
    g = torch.Generator().manual_seed(KINDS.index(kind))
    if kind == "noise/noise":
        return torch.randn(samples, 1, side, side, generator=g), torch.randn(train, 1, side, side, generator=g)
    a = natural_images(train, side, g)
    if kind == "noise":
        return torch.randn(samples, 1, side, side, generator=g), a
    fresh = natural_images(samples - samples // 2 if kind == "copies" else samples, side, g)
    if kind == "natural":
        return fresh, a
    copies = a[torch.randint(0, train, (samples // 2,), generator=g)]
    return torch.cat([copies + 0.05 * torch.randn(copies.shape, generator=g), fresh]), a


def faiss_two_nearest(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """faiss's exact flat index: the two nearest training images of each row of x (float32 expansion)."""
    import faiss

    index = faiss.IndexFlatL2(a.shape[1])
    index.add(a)
    return index.search(x, 2)[1]


def fmem_of(samples: torch.Tensor, train: torch.Tensor, pairs: np.ndarray, k: float = 1 / 3) -> float:
    """f_mem from given (nearest, second nearest) indices, both distances re-measured in float64."""
    x, a = samples.flatten(1).double(), train.flatten(1).double()
    d = torch.stack([(x - a[torch.as_tensor(pairs[:, j])]).norm(dim=1) for j in (0, 1)], dim=1).sort(dim=1).values
    return float((d[:, 0] / d[:, 1].clamp_min(torch.finfo(torch.float64).tiny) < k).double().mean())


def bench(kind: str, args: argparse.Namespace) -> None:
    samples, train = data(kind, args.samples, args.train, args.side)
    x, a = samples.flatten(1).numpy(), train.flatten(1).numpy()
    results: dict[str, object] = {}

    def ours_fresh() -> None:
        _CACHE.clear()
        results["ours"] = fmem(samples, train, n_boot=1)

    def ours_cached() -> None:
        fmem_module.cached_index(train)
        results["cached"] = fmem(samples, train, n_boot=1)

    runners = {"faiss IndexFlatL2": lambda: results.__setitem__("faiss", faiss_two_nearest(x, a)),
               "fmem, index built": ours_fresh, "fmem, index reused": ours_cached}
    times = median_step_times(runners, args.repeats, warmup=0)
    ours = results["ours"]
    agree = float((ours.nearest.numpy() == results["faiss"][:, 0]).mean())
    method = fmem_module.cached_index(train).method
    print(f"{kind}: {args.samples} samples x {args.train} training images x {args.side ** 2} pixels, "
          f"{args.threads} threads, median of {args.repeats} interleaved calls; fmem searches by {method}")
    faiss_time = times["faiss IndexFlatL2"]
    for label, median in times.items():
        print(f"  {label:<20}{median:>8.2f} s   faiss / this: {faiss_time / median:.2f}x")
    print(f"  same nearest training image as faiss for {agree:.4%} of samples; "
          f"f_mem {ours.fraction:.4f} (from faiss's neighbours: {fmem_of(samples, train, results['faiss']):.4f})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--train", type=int, default=32_768)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", choices=("auto", *METHODS), default="auto")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    if unknown := sorted(set(kinds) - set(KINDS)):
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    if args.method != "auto":
        fmem_module.cached_index = functools.partial(cached_index, method=args.method)
    print(f"this CPU multiplies bfloat16 natively: {nearest.native_bfloat16()}")
    for kind in kinds:
        bench(kind, args)


if __name__ == "__main__":
    main(sys.argv[1:])
