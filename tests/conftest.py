"""Shared fixtures: small, fast run configurations on the embedded digits."""
from __future__ import annotations

import os

import pytest
import torch

from freqdiff.core.config import RunConfig, apply_flags

torch.set_num_threads(2)
os.environ.setdefault("FREQDIFF_WORKERS", "1")  # a sweep in a test runs in its process unless the test asks for more

TINY = {"dataset": "digits", "n": "8", "test_size": "64", "steps": "24", "first_checkpoint": "4",
        "n_checkpoints": "3", "save_every": "8", "log_every": "4", "grid_size": "4", "n_samples": "32",
        "sampler.steps": "5", "extractor": "pixels", "loss_draws": "1"}


def tiny_config(**flags: str) -> RunConfig:
    """A run that trains in about a second on a CPU."""
    return apply_flags(RunConfig(), {**TINY, **flags})


@pytest.fixture
def tiny() -> RunConfig:
    return tiny_config()


def build_context(shape: tuple[int, ...] = (1, 8, 8), n: int = 16, process=None):
    """A BuildContext over a split of random images in [0, 1] of `shape` (n training, 16 held out)."""
    from freqdiff.data import make_split
    from freqdiff.process.context import BuildContext

    pool = torch.rand(n + 16, *shape, generator=torch.Generator().manual_seed(0))
    return BuildContext(make_split(pool, n, 16), process=process)
