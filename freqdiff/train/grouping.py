"""Which runs of a study train together: groups that can share a stack and fit in the device's memory."""
from __future__ import annotations

import json
import os
from typing import Sequence

import torch
from accelerate.utils import broadcast_object_list

from freqdiff.core.config import RunConfig
from freqdiff.core.distributed import process_state
from freqdiff.train.members import MEMBER_KEYS, batch_size, flat_config, init_pipeline, wraps_model

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


def planned_group_size(cfg: RunConfig, runs: int, ensemble: int = 0, recorded: object = None) -> int:
    """Runs per stack of a study of `runs` runs (the first `cfg`), counting finished runs too: `ensemble` if given,
    else `recorded` (the size the study started with: a resumed study stacks as the first did), else
    auto_group_size, decided by the main rank (a GPU's free memory differs between ranks and calls)."""
    state = process_state()
    if ensemble and isinstance(recorded, int) and recorded != ensemble and state.is_main_process:
        print(f"--ensemble {ensemble}, not the {recorded} this study started with: its unfinished runs train in "
              "other stacks (equal up to float re-association)")
    size = ensemble or (recorded if isinstance(recorded, int) and recorded > 0 else 0)
    if not size:
        size = auto_group_size(cfg, runs, state.device) if state.is_main_process else 0
        if state.num_processes > 1:
            size = broadcast_object_list([size])[0]
    return size


def stack_traits(cfg: RunConfig) -> tuple[bool, bool]:
    """Whether the run's regularizer changes the network or the optimizer (then runs share a stack only with equal
    regularizer settings), and whether its process derives values from the data (then only with equal data): both
    members.check_shared_forward's rules, told by building the run's pipeline once."""
    pipe = init_pipeline(cfg)
    return wraps_model(pipe.regularizer) or bool(pipe.regularizer.optimizer_options()), bool(pipe.process.derived())


def stack_key(cfg: RunConfig) -> str:
    """What the runs of one stack share (members.check_members): every setting but n, seed, steps and the values of
    numeric regularizer parameters."""
    shared = {k: "<number>" if k.startswith("regularizer.params.") and isinstance(v, (int, float))
              and not isinstance(v, bool) else v for k, v in flat_config(cfg.to_dict()).items() if k not in MEMBER_KEYS}
    return json.dumps(shared, sort_keys=True, default=str)


def group_runs(configs: Sequence[RunConfig], size: int) -> list[list[int]]:
    """Indices of the runs, in groups of at most `size` that can share a stack (same batch size, same settings but
    n, seed, steps and numeric regularizer parameters, the same regularizer settings where it changes the forward,
    the same data where the process derives values from it, e.g. EDM's sigma_data; runs in order). Each distinct
    pair of regularizer and process settings is built once (stack_traits)."""
    traits: dict[str, tuple[bool, bool]] = {}
    by_key: dict[tuple[int, str, str, str], list[int]] = {}
    for i, cfg in enumerate(configs):
        resolved = cfg.to_dict()
        regularizer = json.dumps(resolved["regularizer"], sort_keys=True)
        settings = json.dumps([resolved["regularizer"], resolved["process"]], sort_keys=True)
        if settings not in traits:
            traits[settings] = stack_traits(cfg)
        shared, derives = traits[settings]
        data = f"{cfg.data.n}/{cfg.data.subset_index}" if derives else ""
        key = (batch_size(cfg), stack_key(cfg), regularizer if shared else "", data)
        by_key.setdefault(key, []).append(i)
    return [group[j:j + size] for group in by_key.values() for j in range(0, len(group), size)]
