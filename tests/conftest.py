"""Shared fixtures: small, fast run configurations on the embedded digits."""
from __future__ import annotations

import pytest
import torch

from freqdiff.config import RunConfig, apply_flags

torch.set_num_threads(2)

TINY = {"dataset": "digits", "n": "8", "test_size": "64", "steps": "24", "first_checkpoint": "4",
        "n_checkpoints": "3", "save_every": "8", "log_every": "4", "grid_size": "4", "n_samples": "32",
        "sampler.steps": "5", "extractor": "pixels", "loss_draws": "1"}


def tiny_config(**flags: str) -> RunConfig:
    """A run that trains in about a second on a CPU."""
    return apply_flags(RunConfig(), {**TINY, **flags})


@pytest.fixture
def tiny() -> RunConfig:
    return tiny_config()
