"""The GPU check, prepared to the minute: one table in at most 8 minutes on one H100 (`bash bench/gpu.sh`).

Sections, each in its own process (a fresh accelerate state: fp32 for the parity, bf16 for the throughput), each
timed and capped so the whole stays inside BUDGET_S; a section that fails or runs past its cap is a `fail` row, and
the others still run:
  env         versions, the GPU, TF32 settings, optional packages, the peak bf16 FLOP/s used for the MFU.
  parity      CUDA against CPU: the same short run (U-Net W=8, 8x8 digits, fp32) trained on the GPU and, in a child
              process with ACCELERATE_USE_CPU=1, on the CPU. (a) "same draws": the GPU run takes its batch draws from
              the CPU's generator, so only the arithmetic differs: the loss at step 1 and the curve's window means
              must agree within TOL_FIRST and TOL_WINDOW. (b) "own RNG": the GPU run draws with its own generator, so
              the curves differ by sampling noise: window means must agree within Z_MAX standard errors. Samples of
              both runs: f_mem and mean d1/d2 with shared noise (within flips at the threshold), f_mem with each
              device's own noise (within Z_MAX binomial sigma); and the exact memorizer (closed-form `empirical`
              score of the same images) sampled on both with shared noise, where f_mem is near 1.
  throughput  the paper's U-Net at W = 32 on 32x32 images (digits resized), batch 512, bf16 (mixed_precision
              bf16): steps/s of one Trainer step of K = 1, 2, 4, 8 stacked members, member-steps/s against K = 1,
              and the model FLOP utilisation: K x the FLOPs of one member's step (forward + backward, counted by
              torch.utils.flop_counter at K = 1) x steps/s / the peak (see PEAK_BF16).
  fmem        f_mem's exact two-nearest search (freqdiff.data.nearest) on the GPU against faiss-cpu's IndexFlatL2 and
              freqdiff's own search on the CPU (all cores), 10k samples x 32k training images x 1024 pixels (1/f^2
              fields, half the samples noisy copies), with the share of samples that find the same nearest image
              and f_mem on both sides.
  eval        a default study run (digits 8x8, U-Net W=8) trained to one checkpoint, then `evaluate_run` on it with
              the default eval settings (256 samples, DDIM-100, 4 folds), timed; says the device it sampled on.
--cpu runs every section on the CPU with tiny sizes and the same code (seconds): the dry run of the test suite.

Output: one table, columns `section | what | value | unit | check`; check is `ok` or `fail` for a row with a stated
tolerance, `-` for a measurement. The last row is the total wall time against the budget. Exit status 0 when no
row failed, 1 otherwise. --json FILE also writes the rows. A failed section's stderr tail follows the table.
Usage: bash bench/gpu.sh [--cpu] [--sections env,parity,throughput,fmem,eval] [--budget 480] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

BUDGET_S = 480  # the whole check: 8 minutes
CAPS_S = {"env": 30, "parity": 120, "throughput": 150, "fmem": 90, "eval": 90}  # per section; they sum to BUDGET_S
SECTIONS = tuple(CAPS_S)
MIN_SECTION_S = 5  # a section is not started with less of the budget left
# Dense bf16 tensor-core peaks (NVIDIA datasheets, no sparsity): H100 SXM and H200 989.4 TFLOP/s, H100 NVL 835,
# H100 PCIe 756. Matched on torch.cuda.get_device_name(); --peak_tflops overrides.
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989.4e12), ("H200", 989.4e12))
NOMINAL_CPU_PEAK = 1e12  # --cpu: a NOMINAL 1 TFLOP/s, only so the MFU arithmetic runs; not a peak of anything

# CUDA against CPU. Measured on the CPU with this run (300 steps): rounding every convolution's inputs and output to
# TF32's 10-bit mantissa (what cuDNN does in fp32 by default on Ampere and Hopper) moved the step-1 loss by 3e-5 and
# the 30-step window means by at most 3e-4 (relative); float re-association alone (vmap against plain) by 4e-6. The
# tolerances leave ~50x room for that; a wrong kernel, precision or schedule moves the loss by O(1).
TOL_FIRST = 2e-3  # |loss_gpu - loss_cpu| / loss_cpu at step 1, same draws (same weights, same batch: one step)
TOL_WINDOW = 1e-2  # max relative difference of window means of the loss curve, same draws
# Own RNG: independent draws. Three such CPU pairs of this run gave window |z| <= 2.5 over 30 windows; the z of a
# window mean is near normal, so 4 has a false alarm rate of about 1e-3 over 10 windows.
Z_MAX = 4.0
FLIPS = 2  # shared noise: samples whose d1/d2 sits at the threshold k may flip; at most FLIPS of N
TOL_RATIO = 1e-2  # shared noise: mean |d1/d2 difference| over samples


@dataclass(frozen=True)
class Sizes:
    """Everything that scales: the GPU sizes, and the --cpu dry run's."""

    parity_steps: int
    parity_window: int
    parity_samples: int
    parity_sampler_steps: int
    width: int  # throughput: the U-Net's W
    side: int  # throughput: image side (digits resized)
    n: int
    batch: int
    ks: tuple[int, ...]
    warmup: int
    block: int  # steps per timed block
    repeats: int  # timed blocks (median)
    fmem_samples: int
    fmem_train: int
    fmem_side: int
    fmem_repeats: int  # on the GPU
    cpu_repeats: int  # freqdiff and faiss on the CPU
    eval_steps: int
    eval_samples: int
    eval_test: int
    eval_sampler_steps: int


GPU = Sizes(300, 30, 256, 20, 32, 32, 512, 512, (1, 2, 4, 8), 3, 10, 5, 10_000, 32_768, 32, 3, 1, 200, 256, 256, 100)
CPU = Sizes(20, 5, 32, 10, 8, 8, 8, 8, (1, 2, 4, 8), 1, 1, 2, 256, 1024, 16, 3, 1, 8, 32, 64, 10)


# ---- the comparisons (pure; unit-tested on perturbed curves) ----------------------------------------------------
def windows(curve: list[float], m: int) -> np.ndarray:
    """The curve as consecutive windows of m steps (k, m); the tail that fills no window is dropped."""
    a = np.asarray(curve, dtype=float)
    k = len(a) // m
    if k < 1:
        raise ValueError(f"a curve of {len(a)} steps has no window of {m}")
    return a[:k * m].reshape(k, m)


def first_step_diff(a: list[float], b: list[float]) -> float:
    """|a_1 - b_1| / |b_1|: the loss at step 1 (same weights and batch, so only the arithmetic differs)."""
    return abs(a[0] - b[0]) / abs(b[0])


def window_rel_diff(a: list[float], b: list[float], m: int) -> float:
    """The largest relative difference between the window means of two loss curves of equal length."""
    if len(a) != len(b):
        return math.inf
    wa, wb = windows(a, m).mean(1), windows(b, m).mean(1)
    return float(np.max(np.abs(wa - wb) / np.abs(wb)))


def window_z(a: list[float], b: list[float], m: int) -> float:
    """The largest |difference of window means| / its standard error (per-step spread within each window)."""
    if len(a) != len(b):
        return math.inf
    wa, wb = windows(a, m), windows(b, m)
    diff = np.abs(wa.mean(1) - wb.mean(1))
    se = np.sqrt((wa.var(1, ddof=1) + wb.var(1, ddof=1)) / m)
    z = np.where(se > 0, diff / np.where(se > 0, se, 1), np.where(diff > 0, np.inf, 0.0))
    return float(z.max())


def fmem_tolerance(fa: float, fb: float, n: int) -> float:
    """Z_MAX binomial sigma of a difference of two f_mem over n samples each, plus one sample."""
    p = (fa + fb) / 2
    return Z_MAX * math.sqrt(2 * p * (1 - p) / n) + 1 / n


def verdict(ok: bool) -> str:
    return "ok" if ok else "fail"


def peak_flops(device_name: str, cpu: bool, override_tflops: float = 0.0) -> tuple[float | None, str]:
    """(peak bf16 FLOP/s, where it comes from) for the MFU."""
    if override_tflops:
        return override_tflops * 1e12, "--peak_tflops"
    if cpu:
        return NOMINAL_CPU_PEAK, "NOMINAL (--cpu: not a real peak)"
    for key, value in PEAK_BF16:
        if key in device_name:
            return value, f"{key} datasheet, dense bf16"
    return None, f"unknown for {device_name!r}: MFU not computed (give --peak_tflops)"


# ---- sections (each runs in its own process) ---------------------------------------------------------------------
Emit = Callable[..., None]


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_label() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"


def section_env(size: Sizes, emit: Emit, args: argparse.Namespace) -> None:
    import importlib.metadata
    import importlib.util
    import platform

    import accelerate
    import torch

    emit("python / torch / accelerate", f"{platform.python_version()} / {torch.__version__} / {accelerate.__version__}")
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else "none"
    emit("CUDA device", name, check=verdict(cuda or args.cpu))
    if cuda:
        emit("GPU memory", f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.1f}", "GiB")
        emit("CUDA / cuDNN", f"{torch.version.cuda} / {torch.backends.cudnn.version()}")
        emit("bf16 supported", str(torch.cuda.is_bf16_supported()), check=verdict(torch.cuda.is_bf16_supported()))
    emit("TF32: cuDNN conv / matmul", f"{torch.backends.cudnn.allow_tf32} / {torch.backends.cuda.matmul.allow_tf32}")
    emit("bf16 matmul: reduced-precision reduction allowed",
         str(torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction))
    emit("CPU cores available", str(len(os.sched_getaffinity(0))))
    packages = (("faiss", "faiss-cpu", ""), ("cleanfid", "clean-fid", "eval"), ("prdc", "prdc", "eval"))
    for module, dist, needed_by in packages:
        found = importlib.util.find_spec(module) is not None
        value = importlib.metadata.version(dist) if found else "missing"
        emit(f"{dist}" + (f" (needed by {needed_by})" if needed_by else " (optional: fmem's peer)"), value,
             check=verdict(found) if needed_by else "-")
    peak, source = peak_flops(name, args.cpu, args.peak_tflops)
    emit(f"peak bf16 for MFU: {source}", f"{peak / 1e12:.1f}" if peak else "n/a", "TFLOP/s")


def parity_config(size: Sizes, model: str = "unet"):
    from freqdiff.core.config import RunConfig, apply_flags

    s, n = str(size.parity_steps), "8"
    return apply_flags(RunConfig(), {"dataset": "digits", "model": model, "n": n, "batch_size": n, "steps": s,
                                     "test_size": "64", "log_every": "1", "n_checkpoints": "1", "first_checkpoint": s,
                                     "save_every": s, "grid_size": "1", "sampler.steps": str(size.parity_sampler_steps),
                                     "threads": "1"})


def shared_draws_trainer():
    """A Trainer whose batch draws (levels, noise) come from the CPU's generator, moved to its device: on a GPU it
    then sees exactly the CPU run's batches, so only the arithmetic differs. On a CPU it is the Trainer."""
    import torch

    from freqdiff.train.trainer import Trainer

    class SharedDraws(Trainer):
        def local_batch(self, member):
            device, self.device = self.device, torch.device("cpu")
            try:
                batch = super().local_batch(member)
            finally:
                self.device = device
            return tuple(v.to(device) for v in batch)

    return SharedDraws


def shared_noise_samples(pipe, n: int, seed: int):
    """draw_samples with the noise drawn by the CPU's generator (as a CPU run draws it) and moved to the device."""
    import torch

    from freqdiff.samplers.base import Denoiser, batch_generator, sample_batch

    model, device = pipe.model, pipe.process.device
    model.eval()
    denoiser, out = Denoiser(model, pipe.process, pipe.sampler.x0_range), []
    with torch.no_grad():
        for b, start in enumerate(range(0, n, 256)):
            generator = batch_generator(seed, b, torch.device("cpu"))
            noise = lambda shape, g=generator: torch.randn(shape, generator=g).to(device)  # noqa: E731
            out.append(sample_batch(pipe.sampler, denoiser, (min(256, n - start), *pipe.split.image_shape), noise))
    return torch.cat(out)


def memorizer_samples(size: Sizes, device) -> object:
    """Samples of the exact memorizer (the closed-form `empirical` score of the same 8 images) on `device`, with the
    CPU's noise: a short trained run copies nothing, this one copies nearly every sample, so f_mem is tested at 1."""
    from freqdiff.pipeline.build import build_pipeline

    pipe = build_pipeline(parity_config(size, "empirical"))
    pipe.process.to(device)
    pipe.model.to(device)
    return shared_noise_samples(pipe, size.parity_samples, 0).cpu()


def parity_run(trainer_cls, size: Sizes, run_dir: Path, own_noise: bool) -> dict:
    """Train the parity run (Trainer.run: the project's loop), then sample it: its losses, samples and device."""
    from freqdiff.samplers import draw_samples

    cfg = parity_config(size)
    trainer = trainer_cls([(cfg, run_dir)])
    trainer.run()
    pipe = trainer.members[0].pipe
    losses = [json.loads(line)["loss"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    seed = cfg.eval.sample_seed
    samples = draw_samples(pipe.sampler, pipe.model, pipe.process, size.parity_samples, pipe.split.image_shape, seed) \
        if own_noise else shared_noise_samples(pipe, size.parity_samples, seed)
    return {"losses": losses, "samples": samples.cpu(), "device": str(trainer.device), "train": pipe.split.train.cpu()}


def reference_main(args: argparse.Namespace) -> None:
    """The CPU side of the parity check (a child process with ACCELERATE_USE_CPU=1)."""
    import torch

    from freqdiff.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        run = parity_run(Trainer, sizes(args), Path(tmp) / "cpu", own_noise=True)
    torch.save({**run, "memorizer": memorizer_samples(sizes(args), torch.device("cpu"))}, args.reference)


def section_parity(size: Sizes, emit: Emit, args: argparse.Namespace) -> None:
    import torch

    from freqdiff.metrics import fmem
    from freqdiff.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        ref_file = Path(tmp) / "reference.pt"
        command = [sys.executable, str(Path(__file__).resolve()), "--reference", str(ref_file), *mode_flags(args)]
        with open(Path(tmp) / "reference.log", "w") as log:  # a file: a full pipe would stall the reference
            reference = subprocess.Popen(command, env=child_env(cpu=True), stdout=log, stderr=subprocess.STDOUT)
            same = parity_run(shared_draws_trainer(), size, Path(tmp) / "same", own_noise=False)
            same["memorizer"] = memorizer_samples(size, torch.device(same["device"]))
            own = parity_run(Trainer, size, Path(tmp) / "own", own_noise=True)
            reference.wait()  # trained beside the device runs
        if reference.returncode != 0:
            log = (Path(tmp) / "reference.log").read_text()
            raise RuntimeError(f"the CPU reference run failed:\n{last_lines(log)}")
        cpu = torch.load(ref_file, weights_only=False)
    if cpu["device"] != "cpu":
        raise RuntimeError(f"the CPU reference ran on {cpu['device']}")
    m, n = size.parity_window, size.parity_samples
    emit("devices compared (U-Net W=8, 8x8 digits, fp32)", f"{same['device']} vs {cpu['device']}")
    d = first_step_diff(same["losses"], cpu["losses"])
    emit(f"loss at step 1, same draws: rel. diff (tol {TOL_FIRST:g})", f"{d:.2e}", check=verdict(d <= TOL_FIRST))
    d = window_rel_diff(same["losses"], cpu["losses"], m)
    emit(f"loss curve, same draws, {len(cpu['losses'])} steps: max rel. diff of {m}-step means (tol {TOL_WINDOW:g})",
         f"{d:.2e}", check=verdict(d <= TOL_WINDOW))
    z = window_z(own["losses"], cpu["losses"], m)
    emit(f"loss curve, own RNG: max |z| of {m}-step means (tol {Z_MAX:g})", f"{z:.2f}", check=verdict(z <= Z_MAX))
    train = cpu["train"]
    f_same, f_cpu, f_own = (fmem(run["samples"], train, n_boot=1) for run in (same, cpu, own))
    ok = abs(f_same.fraction - f_cpu.fraction) <= FLIPS / n
    emit(f"f_mem of {n} samples, same noise: device / cpu (tol {FLIPS}/{n})",
         f"{f_same.fraction:.3f} / {f_cpu.fraction:.3f}", check=verdict(ok))
    d = float((f_same.ratio - f_cpu.ratio).abs().mean())
    emit(f"mean |d1/d2 diff| of the samples, same noise (tol {TOL_RATIO:g})", f"{d:.2e}", check=verdict(d <= TOL_RATIO))
    f_mem_dev, f_mem_cpu = (fmem(run["memorizer"], train, n_boot=1).fraction for run in (same, cpu))
    ok = abs(f_mem_dev - f_mem_cpu) <= FLIPS / n and f_mem_cpu >= 0.5
    emit(f"f_mem of the exact memorizer, same noise: device / cpu (tol {FLIPS}/{n}, cpu >= 0.5)",
         f"{f_mem_dev:.3f} / {f_mem_cpu:.3f}", check=verdict(ok))
    tol = fmem_tolerance(f_own.fraction, f_cpu.fraction, n)
    emit(f"f_mem, own RNG: device / cpu (tol {Z_MAX:g} sigma + 1/{n} = {tol:.3f})",
         f"{f_own.fraction:.3f} / {f_cpu.fraction:.3f}", check=verdict(abs(f_own.fraction - f_cpu.fraction) <= tol))


def section_throughput(size: Sizes, emit: Emit, args: argparse.Namespace) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from freqdiff.core.config import RunConfig, apply_flags
    from freqdiff.train.trainer import Trainer

    flags = {"dataset": "digits", "model": "unet", "model.width": str(size.width), "n": str(size.n),
             "batch_size": str(size.batch), "steps": "1000000", "mixed_precision": "bf16", "threads": "1",
             **({"dataset.resize": str(size.side)} if size.side != 8 else {})}
    peak, source = peak_flops(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", args.cpu,
                              args.peak_tflops)
    emit("model, images, batch, precision", f"U-Net W={size.width}, {size.side}x{size.side}, {size.batch}, bf16")
    member_flops, base = 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for k in size.ks:
            trainer = None
            try:
                trainer = Trainer([(apply_flags(RunConfig(), {**flags, "seed": str(i)}), Path(tmp) / f"k{k}-{i}")
                                   for i in range(k)])
                if k == size.ks[0]:
                    emit("mixed precision in effect", trainer.accelerator.mixed_precision,
                         check=verdict(trainer.accelerator.mixed_precision == "bf16"))
                if k == 1:  # one member unbatched: the model's own FLOPs (vmap's batching rules count more)
                    with FlopCounterMode(display=False) as counter:
                        trainer.train_step()
                    member_flops = counter.get_total_flops()
                    emit("FLOPs of one member's step (fwd + bwd, counted)", f"{member_flops / 1e9:.2f}", "GFLOP")
                for _ in range(size.warmup):
                    trainer.train_step()
                last: list = []
                step = lambda: [last.append(trainer.train_step()) for _ in range(size.block)]  # noqa: E731
                seconds = median_time(step, size.repeats) / size.block
                finite = all(bool(torch.isfinite(loss)) for loss, _ in last[-1])
                base = base or 1 / seconds
                emit(f"K={k}: steps/s (a step of all K members)", f"{1 / seconds:.2f}", "1/s",
                     check=verdict(finite))
                emit(f"K={k}: member-steps/s against K=1", f"{k / seconds / base:.2f}", "x")
                mfu = f"{100 * k * member_flops / seconds / peak:.1f}" if peak else "n/a"
                emit(f"K={k}: MFU ({k * member_flops / seconds / 1e12:.2f} TFLOP/s of {source})", mfu, "%")
            except torch.cuda.OutOfMemoryError:
                emit(f"K={k}: steps/s", "out of GPU memory", check="fail")
            finally:
                if trainer is not None:
                    trainer.release()
                trainer = None  # its stack's memory goes before the next K
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()


def fields_and_copies(samples: int, train: int, side: int):
    """(samples, training images): training images are Gaussian random fields with a 1/f^2 power spectrum (natural
    images' second-order statistics) at unit pixel variance; half the samples are noisy copies of them (a memorizing
    model), half fresh fields (bench/bench_fmem.py's "copies")."""
    import torch

    g = torch.Generator().manual_seed(0)
    f = torch.fft.fftfreq(side)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1 / side)

    def fields(count: int):
        images = torch.fft.ifft2(torch.fft.fft2(torch.randn(count, 1, side, side, generator=g)) / radius).real
        return images / images.std()

    a = fields(train)
    copies = a[torch.randint(0, train, (samples // 2,), generator=g)]
    return torch.cat([copies + 0.05 * torch.randn(copies.shape, generator=g), fields(samples - samples // 2)]), a


def faiss_two_nearest(x, a):
    """faiss-cpu's exact flat index: the two nearest training images of each row of x."""
    import faiss

    index = faiss.IndexFlatL2(a.shape[1])
    index.add(a)
    return index.search(x, 2)[1]


def section_fmem(size: Sizes, emit: Emit, args: argparse.Namespace) -> None:
    import torch

    from freqdiff.data.nearest import build_index, two_nearest

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    samples, train = fields_and_copies(size.fmem_samples, size.fmem_train, size.fmem_side)
    emit("data: samples x training images x pixels (1/f^2 fields, half near copies)",
         f"{size.fmem_samples} x {size.fmem_train} x {size.fmem_side ** 2}")
    on_device, train_device = samples.to(device), train.to(device)
    two_nearest(on_device, build_index(train_device))  # warm-up at full size: kernels, cuBLAS handles, workspaces
    out: dict[str, tuple] = {}
    index = build_index(train_device)
    built = median_time(lambda: out.__setitem__("device", two_nearest(on_device, build_index(train_device))),
                        size.fmem_repeats)
    reused = median_time(lambda: two_nearest(on_device, index), size.fmem_repeats)
    cpu = median_time(lambda: out.__setitem__("cpu", two_nearest(samples, build_index(train))), size.cpu_repeats)
    label = device.type
    emit(f"search on {label}, index built", f"{built:.3f}", "s")
    emit(f"search on {label}, index reused", f"{reused:.3f}", "s")
    emit(f"freqdiff's search on cpu ({threads} threads)", f"{cpu:.3f}", "s")
    try:
        import faiss
    except ImportError:
        faiss = None
        emit("faiss IndexFlatL2 on cpu", "faiss-cpu not installed (pip install faiss-cpu)")
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
        x, a = samples.flatten(1).numpy(), train.flatten(1).numpy()
        seconds = median_time(lambda: out.__setitem__("faiss", faiss_two_nearest(x, a)), size.cpu_repeats)
        emit(f"faiss IndexFlatL2 on cpu ({threads} threads)", f"{seconds:.3f}", "s")
        emit(f"faiss on cpu / search on {label} (index built)", f"{seconds / built:.2f}", "x")
    emit(f"freqdiff on cpu / search on {label} (index built)", f"{cpu / built:.2f}", "x")
    (d1, d2, i1), (c1, c2, j1) = (tuple(t.cpu() for t in out[k]) for k in ("device", "cpu"))
    same = float((i1 == j1).double().mean())
    emit(f"same nearest image: {label} / freqdiff cpu (tol >= 99.9%)", f"{100 * same:.3f}", "%",
         check=verdict(same >= 0.999))
    if "faiss" in out:
        same = float((i1.numpy() == out["faiss"][:, 0]).mean())
        emit(f"same nearest image: {label} / faiss (tol >= 99.9%)", f"{100 * same:.3f}", "%",
             check=verdict(same >= 0.999))
    f_dev, f_cpu = (float((a / b.clamp_min(1e-300) < 1 / 3).double().mean()) for a, b in ((d1, d2), (c1, c2)))
    emit(f"f_mem: {label} / cpu (tol 0.001)", f"{f_dev:.4f} / {f_cpu:.4f}", check=verdict(abs(f_dev - f_cpu) <= 1e-3))


def section_eval(size: Sizes, emit: Emit, args: argparse.Namespace) -> None:
    import math as _math

    from freqdiff.core.config import RunConfig, apply_flags
    from freqdiff.metrics import evaluate
    from freqdiff.train.trainer import train

    s = str(size.eval_steps)
    cfg = apply_flags(RunConfig(), {"steps": s, "first_checkpoint": s, "n_checkpoints": "1", "save_every": s,
                                    "grid_size": "4", "n_samples": str(size.eval_samples),
                                    "test_size": str(size.eval_test), "sampler.steps": str(size.eval_sampler_steps)})
    seen: dict[str, str] = {}
    measure_into = evaluate.measure_into

    def spy(out_dir, weights_dir, steps, pipe, *rest, **kw):  # where evaluate_run's pipeline samples
        seen["device"] = str(next(pipe.model.parameters()).device)
        return measure_into(out_dir, weights_dir, steps, pipe, *rest, **kw)

    evaluate.measure_into = spy
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        train(cfg, run_dir)
        emit(f"train a default run to its checkpoint ({s} steps, U-Net W=8, 8x8, {device_label()})",
             f"{time.perf_counter() - start:.2f}", "s")
        start = time.perf_counter()
        rows = evaluate.evaluate_run(run_dir, progress=False)
        seconds = time.perf_counter() - start
    emit(f"full evaluation of 1 checkpoint ({size.eval_samples} samples, DDIM-{size.eval_sampler_steps}, "
         f"{cfg.eval.folds} folds, threads {cfg.train.threads})", f"{seconds:.2f}", "s")
    emit("evaluate_run sampled and measured on", seen.get("device", "?"))
    good = len(rows) == 1 and all(_math.isfinite(float(rows[0][k])) for k in ("fmem", "loss_train"))
    emit("metrics.csv: one row, finite f_mem and loss", f"{len(rows)} row(s)", check=verdict(good))


SECTION_FUNCTIONS = {"env": section_env, "parity": section_parity, "throughput": section_throughput,
                     "fmem": section_fmem, "eval": section_eval}


# ---- the orchestration ---------------------------------------------------------------------------------------------
def sizes(args: argparse.Namespace) -> Sizes:
    return CPU if args.cpu else GPU


def mode_flags(args: argparse.Namespace) -> list[str]:
    return [*(["--cpu"] if args.cpu else []), *(["--peak_tflops", str(args.peak_tflops)] if args.peak_tflops else [])]


def child_env(cpu: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    return {**env, "ACCELERATE_USE_CPU": "1", "CUDA_VISIBLE_DEVICES": ""} if cpu else env


def section_main(args: argparse.Namespace) -> None:
    """In the child: run one section, appending each row to args.rows as soon as it is made."""
    with open(args.rows, "a") as fh:
        def emit(what: str, value: str, unit: str = "", check: str = "-") -> None:
            fh.write(json.dumps({"section": args.section, "what": what, "value": value, "unit": unit,
                                 "check": check}) + "\n")
            fh.flush()

        SECTION_FUNCTIONS[args.section](sizes(args), emit, args)


def run_section(name: str, args: argparse.Namespace, cap: float) -> tuple[list[dict], float, str]:
    """(rows, wall seconds, error or '') of one section in its own process, killed (with its children) at `cap`."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        command = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--rows", str(rows_file),
                   *mode_flags(args)]
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=child_env(args.cpu), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, preexec_fn=os.setpgrp)  # its own group (not session): killpg takes all
        try:
            output, _ = proc.communicate(timeout=cap)
            error = "" if proc.returncode == 0 else f"exit {proc.returncode}\n{output}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            error = f"ran past its cap of {cap:.0f} s\n{output}"
        seconds = time.perf_counter() - start
        rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    return rows, seconds, error


def last_lines(text: str, count: int = 25) -> str:
    """The last lines of a child's output, each progress-bar line reduced to its final state."""
    lines = [line.split("\r")[-1] for line in text.split("\n")]
    return "\n".join([line for line in lines if line.strip()][-count:])


def format_table(rows: list[dict]) -> str:
    header = {"section": "section", "what": "what", "value": "value", "unit": "unit", "check": "check"}
    keys = list(header)
    widths = {k: max(len(str(r[k])) for r in [header, *rows]) for k in keys}
    line = lambda r: "  ".join(str(r[k]).ljust(widths[k]) for k in keys).rstrip()  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * widths[k] for k in keys), *map(line, rows)])


def orchestrate(args: argparse.Namespace) -> int:
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choices: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    if not args.cpu and "env" not in chosen:
        chosen.insert(0, "env")  # it finds the GPU; without one the other sections are not started
    mode = "--cpu dry run (tiny sizes, CPU)" if args.cpu else "GPU"
    print(f"freqdiff GPU check: {mode}; sections {', '.join(chosen)}; budget {args.budget:.0f} s", flush=True)
    start, rows, errors = time.perf_counter(), [], {}
    for name in chosen:
        left = args.budget - (time.perf_counter() - start)
        if left < MIN_SECTION_S:
            rows.append({"section": name, "what": "not run: the budget is spent", "value": "-", "unit": "",
                         "check": "fail"})
            continue
        if not args.cpu and any(r["what"] == "CUDA device" and r["check"] == "fail" for r in rows):
            rows.append({"section": name, "what": "not run: no CUDA device (--cpu for the dry run)", "value": "-",
                         "unit": "", "check": "fail"})
            continue
        cap = min(CAPS_S[name] * args.budget / BUDGET_S, left)
        section_rows, seconds, error = run_section(name, args, cap)
        rows += section_rows
        if error:
            errors[name] = error
        reason = error.splitlines()[0] if error else ""
        rows.append({"section": name, "what": f"section wall time (cap {cap:.0f} s){': ' + reason if reason else ''}",
                     "value": f"{seconds:.1f}", "unit": "s", "check": verdict(not error)})
        print(f"  {name}: {seconds:.1f} s{' FAILED' if error else ''}", flush=True)
    total = time.perf_counter() - start
    rows.append({"section": "total", "what": f"wall time of the check (budget {args.budget:.0f} s)",
                 "value": f"{total:.1f}", "unit": "s", "check": verdict(total <= args.budget)})
    print(format_table(rows))
    for name, error in errors.items():
        print(f"\n--- {name}: {error.splitlines()[0]}\n{last_lines(error)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"mode": mode, "budget_s": args.budget, "total_s": total,
                                               "rows": rows}, indent=1))
    return 1 if any(r["check"] == "fail" for r in rows) else 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the dry run: every section on the CPU, tiny sizes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset, in this order")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check (caps scale)")
    parser.add_argument("--peak_tflops", type=float, default=0.0, help="the bf16 peak for the MFU (default: by name)")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--section", default="", help=argparse.SUPPRESS)  # in a child: run this section
    parser.add_argument("--rows", default="", help=argparse.SUPPRESS)
    parser.add_argument("--reference", default="", help=argparse.SUPPRESS)  # in a child: the parity's CPU run
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))  # freqdiff importable uninstalled (the GPU machine)
    args = parse(argv)
    if args.section:
        section_main(args)
        return 0
    if args.reference:
        reference_main(args)
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
