"""Build every piece of a run from its config: data -> process -> model -> regularizer -> sampler.

Building is the validation of a run: every setting is checked against its declared range, then the constraints
between components (one line each, naming both values), all before anything is written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from freqdiff.components import REGISTRIES
from freqdiff.config import RunConfig
from freqdiff.data import Split, make_split
from freqdiff.process import DiffusionProcess
from freqdiff.registry import FreqdiffError
from freqdiff.regularizers import Regularizer
from freqdiff.samplers import Sampler
from freqdiff.spectral import radial_frequency

PRIOR_SIGNAL = 0.1  # x_T may keep at most this fraction of the signal (alphabar_T <= 0.01 for DDPM)


@dataclass
class Pipeline:
    split: Split
    process: DiffusionProcess
    model: nn.Module  # already wrapped by the regularizer
    regularizer: Regularizer
    sampler: Sampler


def set_cpu_threads(threads: int) -> None:
    """Use `threads` CPU threads (0 keeps torch's default): two threads on a tiny model are no faster than one
    and slow down ~100x when another process holds a core."""
    if threads > 0:
        torch.set_num_threads(threads)


@lru_cache(maxsize=4)
def _pool(name: str, frozen_params: tuple) -> Tensor:
    """Dataset pools are loaded once per process (sweeps reuse them)."""
    return REGISTRIES["dataset"].build(name, dict(frozen_params))


def load_pool(cfg: RunConfig) -> Tensor:
    """The dataset pool of a run, cached per process."""
    return _pool(cfg.dataset.name, tuple(sorted(cfg.to_dict()["dataset"]["params"].items())))


def pool_size(cfg: RunConfig) -> int:
    return len(load_pool(cfg))


def load_split(cfg: RunConfig) -> Split:
    pool = load_pool(cfg)
    d = cfg.data
    return make_split(pool, d.n, d.test_size, d.subset, d.subset_index, d.data_seed, d.center)


def check_mixed_precision(mode: str, device: torch.device) -> None:
    """Refuse fp16 where accelerate would silently train in fp32 (a CPU): config.json must say what ran."""
    if mode == "fp16" and device.type == "cpu":
        raise FreqdiffError("--mixed_precision fp16 needs a GPU and this run is on cpu (accelerate would train in "
                            "fp32 unannounced); choices here: no, bf16")


def check_step_table(model: dict[str, Any], T: int) -> None:
    """A model with a table of step embeddings (the U-Net's `steps`) must have one row per step of the process."""
    steps = model["params"].get("steps")
    if steps is not None and steps != T:
        raise FreqdiffError(f"--model.steps {steps} does not match --process.T {T}: the {model['name']} step table "
                            f"must cover t = 0..T-1; set --model.steps {T}")


def check_last_step_is_noise(process: Any, name: str, image_shape: tuple[int, ...]) -> None:
    """Sampling starts from pure noise, so x_T must be nearly all noise: its signal share is sqrt(alphabar_T) for DDPM."""
    x0 = torch.randn((1, *image_shape), generator=torch.Generator().manual_seed(0))
    x0 = x0 - x0.mean(dim=(-2, -1), keepdim=True)  # centered: what a blurring process keeps (the mean) is not signal
    t = torch.tensor([process.T - 1])
    signal, noise = float(process.signal(x0, t).norm()), float(process.noise(x0, t).norm())
    share = signal / max(math.hypot(signal, noise), 1e-30)
    if share > PRIOR_SIGNAL:
        raise FreqdiffError(f"process '{name}': x_T (t = T-1 = {process.T - 1}) is still {share:.0%} signal, but sampling "
                            f"starts from pure noise; at most {PRIOR_SIGNAL:.0%} is allowed: raise --process.T or the noise")


def check_sampler_steps(sampler: dict[str, Any], T: int) -> None:
    """A sampler cannot take more steps than the process has."""
    steps = sampler["params"].get("steps")
    if steps is not None and steps > T:
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
    check_last_step_is_noise(process, cfg.process.name, split.image_shape)
    check_step_table(resolved["model"], process.T)
    check_sampler_steps(resolved["sampler"], process.T)
    check_cutoff(resolved["regularizer"], split.image_shape)


def build_pipeline(cfg: RunConfig) -> Pipeline:
    """Instantiate the run's components, after checking every setting and the constraints between components
    (model weights are freshly initialised by the caller's seed)."""
    cfg.validate()
    split = load_split(cfg)
    channels, height, width = split.image_shape
    process = REGISTRIES["process"].build(cfg.process.name, cfg.process.params)
    check_compatible(cfg, split, process)
    model = REGISTRIES["model"].build(cfg.model.name, cfg.model.params, channels=channels, resolution=(height, width))
    regularizer = REGISTRIES["regularizer"].build(
        cfg.regularizer.name, cfg.regularizer.params, process=process, shape=split.image_shape
    )
    sampler = REGISTRIES["sampler"].build(cfg.sampler.name, cfg.sampler.params, x0_range=split.x0_range)
    return Pipeline(split, process, regularizer.wrap_model(model), regularizer, sampler)
