"""Build every piece of a run from its config: data -> process -> model -> regularizer -> sampler."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from freqdiff.components import REGISTRIES
from freqdiff.config import RunConfig
from freqdiff.data import Split, make_split
from freqdiff.process import DiffusionProcess
from freqdiff.regularizers import Regularizer
from freqdiff.samplers import Sampler


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


def build_pipeline(cfg: RunConfig) -> Pipeline:
    """Instantiate the run's components (model weights are freshly initialised by the caller's seed)."""
    split = load_split(cfg)
    channels, height, width = split.image_shape
    process = REGISTRIES["process"].build(cfg.process.name, cfg.process.params)
    model = REGISTRIES["model"].build(cfg.model.name, cfg.model.params, channels=channels, resolution=(height, width))
    regularizer = REGISTRIES["regularizer"].build(
        cfg.regularizer.name, cfg.regularizer.params, process=process, shape=split.image_shape
    )
    sampler = REGISTRIES["sampler"].build(cfg.sampler.name, cfg.sampler.params, x0_range=split.x0_range)
    return Pipeline(split, process, regularizer.wrap_model(model), regularizer, sampler)
