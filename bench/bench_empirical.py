"""`empirical` (the streamed optimal score) against straightforward dense implementations, in one run.

Each call is one score evaluation of a batch of B noisy 32x32 images at one DDPM level (as a sampler step makes):
E[x_0 | x_t] = sum_i softmax_i(-||x_t - alpha a_i||^2 / 2 sigma^2) a_i over n training images.
  streamed:          freqdiff.models.optimal_score.optimal_x0, a running log-sum-exp over chunks of `--chunk`
                     training images: working memory O(B * chunk + chunk * D), whatever n is
  dense (matmul):    all B x n squared distances at once (||x||^2 - 2 alpha x.a + alpha^2 ||a||^2), torch.softmax,
                     one product with the whole training set: O(B * n) memory
  dense (broadcast): the textbook (x[:, None] - alpha a[None]).square().sum(-1): O(B * n * D) memory; run only where
                     it fits under --dense_cap_gb, otherwise its memory is reported
Speed: median seconds per call with the implementations interleaved (bench/common.py), as score evaluations
(images) per second. Memory: the peak resident memory a call adds above the resident data (Linux VmHWM, reset
through /proc/self/clear_refs), each measured in a fresh process so that no freed memory is reused.
Data: Gaussian random fields with a 1/f^2 spectrum (natural-image statistics), queries noised from training images.
Usage: python bench/bench_empirical.py [--n 1024,32768] [--batch 256] [--chunk 4096] [--steps 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import torch

from common import median_step_times
from freqdiff.models.optimal_score import optimal_x0
from freqdiff.process.ddpm import DDPM, linear_betas

SIDE = 32
OU_TIME = 0.5  # a mid-noise level: the posterior spreads over several training images


def natural_images(count: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian random fields with a 1/f^2 power spectrum, unit pixel variance, (count, 1, SIDE, SIDE)."""
    f = torch.fft.fftfreq(SIDE)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1 / SIDE)
    images = torch.fft.ifft2(torch.fft.fft2(torch.randn(count, 1, SIDE, SIDE, generator=generator)) / radius).real
    return images / images.std()


def setup(n: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """Training images (n, D) flat, queries x_t (B, 1, SIDE, SIDE), their level (B,), the DDPM process."""
    process = DDPM(linear_betas(1000, 1e-4, 2e-2))  # the paper's schedule
    g = torch.Generator().manual_seed(0)
    train = natural_images(n, g)
    level = process.full(process.level_at_ou_time(OU_TIME), batch)
    eps = torch.randn(batch, 1, SIDE, SIDE, generator=g)
    x_t = process.add_noise(train[torch.randint(n, (batch,), generator=g)], level, eps)
    return train.flatten(1).contiguous(), x_t, level, process


def dense_matmul(x_t: torch.Tensor, level: torch.Tensor, process, train: torch.Tensor) -> torch.Tensor:
    alpha, variance = process.alpha(level).reshape(-1, 1), process.sigma(level).reshape(-1, 1) ** 2
    x = x_t.flatten(1)
    sq_dist = x.square().sum(1, keepdim=True) - 2 * alpha * (x @ train.T) + alpha ** 2 * train.square().sum(1)
    return (torch.softmax(-sq_dist / (2 * variance), dim=1) @ train).reshape(x_t.shape)


def dense_broadcast(x_t: torch.Tensor, level: torch.Tensor, process, train: torch.Tensor) -> torch.Tensor:
    alpha, variance = process.alpha(level).reshape(-1, 1, 1), process.sigma(level).reshape(-1, 1) ** 2
    sq_dist = (x_t.flatten(1)[:, None, :] - alpha * train[None]).square().sum(-1)
    return (torch.softmax(-sq_dist / (2 * variance), dim=1) @ train).reshape(x_t.shape)


def broadcast_bytes(n: int, batch: int) -> int:
    """The B x n x D float32 difference tensor of the broadcast implementation (its square is one more)."""
    return 4 * batch * n * SIDE * SIDE


def runners(train: torch.Tensor, x_t: torch.Tensor, level: torch.Tensor, process,
            chunk: int) -> dict[str, Callable[[], torch.Tensor]]:
    return {"streamed": lambda: optimal_x0(x_t, level, process, train, chunk),
            "dense (matmul)": lambda: dense_matmul(x_t, level, process, train),
            "dense (broadcast)": lambda: dense_broadcast(x_t, level, process, train)}


def _status(field: str) -> int:
    """A /proc/self/status value in bytes."""
    return 1024 * int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def peak_added(call: Callable[[], object]) -> int:
    """Bytes of peak resident memory `call` adds above what is resident before it."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    call()
    return _status("VmHWM") - before


def memory_child(impl: str, n: int, batch: int, chunk: int) -> None:
    """In a fresh process: print the peak memory one call of `impl` adds, as JSON."""
    train, x_t, level, process = setup(n, batch)
    print(json.dumps({"bytes": peak_added(runners(train, x_t, level, process, chunk)[impl])}))


def measure_memory(impl: str, n: int, batch: int, chunk: int, threads: int) -> int:
    command = [sys.executable, __file__, "--memory", impl, "--n", str(n), "--batch", str(batch), "--chunk", str(chunk),
               "--threads", str(threads)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])["bytes"]


def speed(n: int, args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per call of each implementation that fits, interleaved; checks they agree."""
    train, x_t, level, process = setup(n, args.batch)
    chosen = runners(train, x_t, level, process, args.chunk)
    if broadcast_bytes(n, args.batch) > args.dense_cap_gb * 2**30:
        del chosen["dense (broadcast)"]
    reference = chosen["dense (matmul)"]()
    for label, run in chosen.items():
        error = float((run() - reference).abs().max())
        assert error < 1e-3, f"{label} differs from dense (matmul) by {error}"
    return median_step_times(chosen, args.steps, warmup=1)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="1024,32768", help="training-set sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=256, help="noisy images per score evaluation (B)")
    parser.add_argument("--chunk", type=int, default=4096, help="training images per step of the stream")
    parser.add_argument("--memory_chunks", default="1024,4096", help="chunk sizes whose memory is measured")
    parser.add_argument("--steps", type=int, default=5, help="timed calls of each implementation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dense_cap_gb", type=float, default=4.0, help="run the broadcast version below this")
    parser.add_argument("--memory", default="", help=argparse.SUPPRESS)  # internal: one memory measurement
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.n.split(",")]
    if args.memory:
        return memory_child(args.memory, sizes[0], args.batch, args.chunk)
    print(f"DDPM at OU time {OU_TIME}, B = {args.batch} queries of {SIDE}x{SIDE}, {args.threads} thread(s), "
          f"median of {args.steps} interleaved calls")
    for n in sizes:
        times = speed(n, args)
        for label, seconds in times.items():
            print(f"n = {n:>6}  {label:<18} {seconds:8.3f} s/call  {args.batch / seconds:9.1f} score evaluations/s"
                  f"  (dense matmul / this: {times['dense (matmul)'] / seconds:.2f}x)")
        if "dense (broadcast)" not in times:
            print(f"n = {n:>6}  dense (broadcast)  not run: its B x n x D difference alone is "
                  f"{broadcast_bytes(n, args.batch) / 2**30:.1f} GiB (cap --dense_cap_gb {args.dense_cap_gb:g})")
    print("peak memory a call adds above the resident data (fresh process each):")
    for n in sizes:
        for chunk in [int(c) for c in args.memory_chunks.split(",")]:
            mib = measure_memory("streamed", n, args.batch, chunk, args.threads) / 2**20
            print(f"n = {n:>6}  streamed, chunk {chunk:>5}: {mib:8.1f} MiB")
        mib = measure_memory("dense (matmul)", n, args.batch, args.chunk, args.threads) / 2**20
        print(f"n = {n:>6}  dense (matmul):        {mib:8.1f} MiB")
        if broadcast_bytes(n, args.batch) <= args.dense_cap_gb * 2**30:
            mib = measure_memory("dense (broadcast)", n, args.batch, args.chunk, args.threads) / 2**20
            print(f"n = {n:>6}  dense (broadcast):     {mib:8.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
