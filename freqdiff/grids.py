"""PNG grids of samples, one per checkpoint, for a quick look at what the model draws."""
from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from freqdiff.config import EvalConfig
from freqdiff.io import atomic_path
from freqdiff.samplers import draw_samples


def save_grid(images01: Tensor, path: Path) -> None:
    """Save (B, C, H, W) images in [0, 1] as a square-ish PNG grid, atomically."""
    nrow = max(1, int(math.ceil(math.sqrt(len(images01)))))
    with atomic_path(path) as tmp:
        save_image(make_grid(images01, nrow=nrow, padding=1, pad_value=1.0), tmp, format="png")


def save_sample_grid(run_dir: Path, step: int, pipe, model: nn.Module, cfg: EvalConfig) -> Path:
    """Draw cfg.grid_size seeded samples from `model` and save them as samples/step_XXXXXXXX.png."""
    samples = draw_samples(pipe.sampler, model, pipe.process, cfg.grid_size, pipe.split.image_shape, cfg.sample_seed)
    path = run_dir / "samples" / f"step_{step:08d}.png"
    save_grid(pipe.split.to_unit(samples), path)
    return path
