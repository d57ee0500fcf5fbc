"""PNG grids of samples, one per checkpoint, for a quick look at what the model draws."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from torch import Tensor, nn

from freqdiff.core.config import EvalConfig
from freqdiff.core.io import atomic_path
from freqdiff.samplers import draw_samples


def tile(images01: Tensor, pad: int = 1) -> np.ndarray:
    """(B, C, H, W) images in [0, 1] -> one uint8 (rows*H', cols*W', C) mosaic with white gutters."""
    cols = max(1, math.ceil(math.sqrt(len(images01))))
    rows = math.ceil(len(images01) / cols)
    blank = torch.ones(rows * cols - len(images01), *images01.shape[1:])
    padded = F.pad(torch.cat([images01.float().cpu(), blank]), (0, pad, 0, pad), value=1.0)
    mosaic = rearrange(padded, "(r c) ch h w -> (r h) (c w) ch", r=rows, c=cols)
    return (mosaic.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def save_grid(images01: Tensor, path: Path) -> None:
    """Save (B, C, H, W) images in [0, 1] as a square-ish PNG grid, atomically."""
    mosaic = tile(images01)
    with atomic_path(path) as tmp:
        Image.fromarray(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic).save(tmp, format="png")


def save_sample_grid(run_dir: Path, step: int, pipe, model: nn.Module, cfg: EvalConfig) -> Path:
    """Draw cfg.grid_size seeded samples from `model` and save them as samples/step_XXXXXXXX.png."""
    samples = draw_samples(pipe.sampler, model, pipe.process, cfg.grid_size, pipe.split.image_shape, cfg.sample_seed)
    path = run_dir / "samples" / f"step_{step:08d}.png"
    save_grid(pipe.split.to_unit(samples), path)
    return path
