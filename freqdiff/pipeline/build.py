"""Build every piece of a run from its config: data -> process -> model -> regularizer -> sampler.

Building is the validation of a run: every setting is checked against its declared range, then the constraints
between components (one line each, naming both values), all before anything is written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from freqdiff.core.checkpoint import list_checkpoints, load_run_config, load_weights
from freqdiff.core.config import RunConfig
from freqdiff.core.registry import FreqdiffError
from freqdiff.core.spectral import radial_frequency
from freqdiff.data import Split, load_dataset, make_split, value_range
from freqdiff.models import MODELS
from freqdiff.models.preconditioned import wrap
from freqdiff.process import PROCESSES, DiffusionProcess
from freqdiff.process.context import BuildContext
from freqdiff.regularizers import REGULARIZERS, Regularizer
from freqdiff.samplers import SAMPLERS, Sampler

PRIOR_SIGNAL = 0.1  # x_T may keep at most this fraction of the signal (alphabar_T <= 0.01 for DDPM)


@dataclass
class Pipeline:
    split: Split
    process: DiffusionProcess
    model: nn.Module  # model(x_t, level) -> output: the network, preconditioned, then wrapped by the regularizer
    regularizer: Regularizer
    sampler: Sampler


def set_cpu_threads(threads: int) -> None:
    """Use `threads` CPU threads (0 keeps torch's default): two threads on a tiny model are no faster than one
    and slow down ~100x when another process holds a core."""
    if threads > 0:
        torch.set_num_threads(threads)


@lru_cache(maxsize=4)
def _pool(name: str, frozen_params: tuple) -> Tensor:
    """Dataset pools are loaded once per process (sweeps reuse them), checked against their declared range."""
    return load_dataset(name, dict(frozen_params))


def load_pool(cfg: RunConfig) -> Tensor:
    """The dataset pool of a run, cached per process."""
    return _pool(cfg.dataset.name, tuple(sorted(cfg.to_dict()["dataset"]["params"].items())))


def pool_size(cfg: RunConfig) -> int:
    return len(load_pool(cfg))


def load_split(cfg: RunConfig) -> Split:
    pool = load_pool(cfg)
    d = cfg.data
    return make_split(pool, d.n, d.test_size, d.subset, d.subset_index, d.data_seed, d.center,
                      value_range(cfg.dataset.name))


def check_mixed_precision(mode: str, device: torch.device) -> None:
    """Refuse fp16 where accelerate would silently train in fp32 (a CPU): config.json must say what ran."""
    if mode == "fp16" and device.type == "cpu":
        raise FreqdiffError("--mixed_precision fp16 needs a GPU and this run is on cpu (accelerate would train in "
                            "fp32 unannounced); choices here: no, bf16")


def check_last_level_is_noise(process: DiffusionProcess, name: str, image_shape: tuple[int, ...]) -> None:
    """Sampling starts from pure noise, so x at the noisiest level must be nearly all noise (sqrt(alphabar_T) of
    signal for DDPM)."""
    x0 = torch.randn((1, *image_shape), generator=torch.Generator().manual_seed(0))
    x0 = x0 - x0.mean(dim=(-2, -1), keepdim=True)  # centered: what a blurring process keeps (the mean) is not signal
    level = process.sampling_levels(2)[:1]
    signal = float(process.scale(process.alpha(level), x0).norm())
    noise = float(process.scale(process.sigma(level), x0).norm())
    share = signal / max(math.hypot(signal, noise), 1e-30)
    if share > PRIOR_SIGNAL:
        raise FreqdiffError(f"process '{name}': x at its noisiest level ({float(level):g}) is still {share:.0%} signal, "
                            f"but sampling starts from pure noise; at most {PRIOR_SIGNAL:.0%} is allowed: raise the "
                            "noise of that level (for ddpm: --process.T or --process.beta_end)")


def check_sampler_steps(sampler: dict[str, Any], T: int | None) -> None:
    """A sampler cannot take more steps than a discrete process has levels."""
    steps = sampler["params"].get("steps")
    if steps is not None and T is not None and steps > T:
        raise FreqdiffError(f"--sampler.steps {steps} exceeds --process.T {T}: choose at most {T} steps")


def check_cutoff(regularizer: dict[str, Any], image_shape: tuple[int, ...]) -> None:
    """A radial cutoff must lie below the highest frequency of the image grid, or nothing lies above it."""
    cutoff = regularizer["params"].get("cutoff")
    h, w = image_shape[-2:]
    top = float(radial_frequency(h, w).max())
    if cutoff is not None and cutoff >= top:
        raise FreqdiffError(f"--regularizer.cutoff {cutoff} is outside the frequencies of {h}x{w} images "
                            f"(0 < |f| <= {top:.3f} cycles/pixel): {regularizer['name']} would change nothing; "
                            f"choose a cutoff in (0, {top:.3f})")


def check_compatible(cfg: RunConfig, split: Split, process: DiffusionProcess) -> None:
    """The constraints between components, checked once the data's image shape is known."""
    resolved = cfg.to_dict()
    check_last_level_is_noise(process, cfg.process.name, split.image_shape)
    check_sampler_steps(resolved["sampler"], process.levels_count)
    check_cutoff(resolved["regularizer"], split.image_shape)


def build_pipeline(cfg: RunConfig) -> Pipeline:
    """Instantiate the run's components, after checking every setting and the constraints between components
    (model weights are freshly initialised by the caller's seed). Each factory gets one BuildContext."""
    cfg.validate()
    split = load_split(cfg)
    context = BuildContext(split, load_trained=trained_model)
    process = PROCESSES.build(cfg.process.name, cfg.process.params, context=context)
    context = context.with_process(process)
    check_compatible(cfg, split, process)
    network = MODELS.build(cfg.model.name, cfg.model.params, context=context)
    regularizer = REGULARIZERS.build(cfg.regularizer.name, cfg.regularizer.params, context=context)
    sampler = SAMPLERS.build(cfg.sampler.name, cfg.sampler.params, context=context)
    return Pipeline(split, process, regularizer.wrap_model(wrap(network, process)), regularizer, sampler)


PROCESS_PROBE_LEVELS = 8  # levels at which two processes must agree for a trained network to be wrapped


def same_process(a: DiffusionProcess, b: DiffusionProcess, image_shape: tuple[int, ...]) -> bool:
    """Whether two processes have the same kind, sampling grid and scales there (a network's outputs mean the same)."""
    levels = a.sampling_levels(PROCESS_PROBE_LEVELS)
    if type(a) is not type(b) or not torch.equal(levels.cpu(), b.sampling_levels(PROCESS_PROBE_LEVELS).cpu()):
        return False
    shape = (len(levels), *image_shape)
    scales = [(p.alpha(levels.to(p.device)).expand(shape).cpu(), p.sigma(levels.to(p.device)).expand(shape).cpu())
              for p in (a, b)]
    return all(torch.allclose(u, v) for u, v in zip(*scales))


def trained_model(run_dir: Path, step: int, context: BuildContext) -> nn.Module:
    """A run's network at `step` (0: the last checkpoint), as its pipeline calls it, checked against this run."""
    available = list_checkpoints(run_dir)
    if not available:
        raise FreqdiffError(f"model 'nn_projection'.run: {run_dir} has no checkpoints (train it first)")
    step = step or available[-1]
    if step not in available:
        raise FreqdiffError(f"model 'nn_projection'.step: {step} is not a checkpoint of {run_dir}; choices: "
                            f"{', '.join(map(str, available))}")
    cfg = load_run_config(run_dir)
    pipe = build_pipeline(cfg)
    if pipe.split.train.shape != context.split.train.shape or not torch.equal(pipe.split.train, context.split.train):
        raise FreqdiffError(f"model 'nn_projection'.run: {run_dir} was trained on other images; use its data "
                            f"settings (--dataset {cfg.dataset.name} --n {cfg.data.n} ...)")
    if not same_process(pipe.process, context.require_process("model 'nn_projection'"), context.image_shape):
        raise FreqdiffError(f"model 'nn_projection'.run: {run_dir} was trained with another process; use its "
                            f"--process {cfg.process.name} and parameters")
    load_weights(pipe.model, run_dir, step, cfg.eval.use_ema)
    return pipe.model.eval()
