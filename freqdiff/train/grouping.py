"""Which runs of a study train together: groups that can share a stack and fit in the device's memory."""
from __future__ import annotations

import json
import os
from typing import Sequence

import torch

from freqdiff.core.config import RunConfig
from freqdiff.train.members import batch_size, init_pipeline, wraps_model

MAX_MEMBERS = 24  # beyond this a CPU gains nothing (bench/bench_ensemble.py) and a progress bar per member is noise
MEMORY_SHARE = 0.25  # the share of the device's memory a stack may plan for


def member_bytes(cfg: RunConfig) -> int:
    """A generous estimate of one member's memory in bytes: weights, gradients, two optimizer moments and an EMA
    (5 copies of the parameters), plus twice the activations of one forward pass at the run's batch size."""
    pipe = init_pipeline(cfg)
    sizes: list[int] = []
    leaves = [m for m in pipe.model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() if torch.is_tensor(out) else 0))
             for m in leaves]
    B = batch_size(cfg)
    with torch.no_grad():
        pipe.model(torch.zeros(B, *pipe.split.image_shape), torch.zeros(B, dtype=torch.long))
    for hook in hooks:
        hook.remove()
    return 4 * (5 * sum(p.numel() for p in pipe.model.parameters()) + 2 * sum(sizes))


def device_memory(device: torch.device) -> int:
    """Free memory of a GPU, or the physical memory of the host."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def auto_group_size(cfg: RunConfig, runs: int, device: torch.device) -> int:
    """As many members as fit in MEMORY_SHARE of the device (member_bytes each), at most MAX_MEMBERS."""
    fit = int(MEMORY_SHARE * device_memory(device) // max(member_bytes(cfg), 1))
    return max(1, min(runs, MAX_MEMBERS, fit))


def changes_forward(cfg: RunConfig) -> bool:
    """Whether the run's regularizer changes the network or the optimizer (members.check_shared_forward): then runs
    may share a stack only with equal regularizer settings. Building the regularizer once tells."""
    regularizer = init_pipeline(cfg).regularizer
    return wraps_model(regularizer) or bool(regularizer.optimizer_options())


def group_runs(configs: Sequence[RunConfig], size: int) -> list[list[int]]:
    """Indices of the runs, in groups of at most `size` that can share a stack (same batch size, and the same
    regularizer settings where changes_forward; runs in order). Each distinct regularizer setting is built once."""
    shared: dict[str, bool] = {}
    by_key: dict[tuple[int, str], list[int]] = {}
    for i, cfg in enumerate(configs):
        regularizer = json.dumps(cfg.to_dict()["regularizer"], sort_keys=True)
        if regularizer not in shared:
            shared[regularizer] = changes_forward(cfg)
        by_key.setdefault((batch_size(cfg), regularizer if shared[regularizer] else ""), []).append(i)
    return [group[j:j + size] for group in by_key.values() for j in range(0, len(group), size)]
