"""The runs one trainer trains together: what each member holds, and which runs may share a stack.

Members may differ in their seed, their n (own training subset, own run length) and the numeric parameters of a
regularizer that only changes the objective; everything else is shared, so one network definition serves all.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO

import torch

from freqdiff.core.config import RunConfig
from freqdiff.core.io import RunLock
from freqdiff.core.registry import FreqdiffError
from freqdiff.pipeline.build import Pipeline, build_pipeline
from freqdiff.regularizers import Regularizer

# The settings in which the members of one stack may differ (besides numeric regularizer parameters).
MEMBER_KEYS = {"data.n", "data.subset_index", "train.seed", "train.steps"}


@dataclass
class Member:
    """One run: its config, directory and pipeline, and where it stands (its state while out of the stack)."""

    cfg: RunConfig
    run_dir: Path
    pipe: Pipeline
    lock: RunLock | None  # held by the rank that writes the run's files
    step: int = 0
    optimizer_state: dict[str, Any] | None = None
    ema_state: dict[str, Any] | None = None
    checkpoints: set[int] = field(default_factory=set)
    log: TextIO | None = None
    last_log: tuple[float, int] = (0.0, 0)  # (time, step) of the last log record, for steps/s
    failed: str = ""
    batched: bool = False  # trained batched (once beside other runs); kept for life, so resume and refine are exact

    @property
    def done(self) -> bool:
        return bool(self.failed) or self.step >= self.cfg.train.steps


def batch_size(cfg: RunConfig) -> int:
    """The paper's batch: min(n, B)."""
    return min(cfg.data.n, cfg.train.batch_size)


def init_pipeline(cfg: RunConfig) -> Pipeline:
    """The run's components with the initial weights of its seed (identical on every rank and in every stack)."""
    torch.manual_seed(cfg.train.seed)
    return build_pipeline(cfg)


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as {"section.key": value}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(flat_config(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def check_members(configs: Sequence[RunConfig]) -> None:
    """Refuse runs that cannot share one stacked network, naming the first setting that differs."""
    if not configs:
        raise FreqdiffError("train: no runs given")
    first = flat_config(configs[0].to_dict())
    for cfg in configs[1:]:
        other = flat_config(cfg.to_dict())
        for key in sorted(first.keys() | other.keys()):
            a, b = first.get(key), other.get(key)
            numeric = isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            if a == b or key in MEMBER_KEYS or (key.startswith("regularizer.params.") and numeric):
                continue
            raise FreqdiffError(f"train: runs differ in {key} ({a!r} vs {b!r}); runs trained together may differ only "
                                "in n, seed, steps and numeric regularizer parameters")
    sizes = sorted({batch_size(cfg) for cfg in configs})
    if len(sizes) > 1:
        raise FreqdiffError(f"train: runs have batch sizes {sizes} (min(n, --batch_size)); they must share one")


def wraps_model(regularizer: Regularizer) -> bool:
    """Whether the regularizer changes the network (a filter, dropout) rather than only the objective."""
    return type(regularizer).wrap_model is not Regularizer.wrap_model


def check_shared_forward(members: Sequence[Member]) -> None:
    """Regularizers that change the network or the optimizer, and the values a process derives from its data (the
    stack runs one template's process), cannot differ between members of one stack."""
    first = members[0]
    for member in members[1:]:
        reg, ref = member.pipe.regularizer, first.pipe.regularizer
        same_params = member.cfg.to_dict()["regularizer"] == first.cfg.to_dict()["regularizer"]
        if wraps_model(reg) and not same_params:
            raise FreqdiffError(f"train: regularizer '{member.cfg.regularizer.name}' changes the network, so its "
                                "parameters must be equal across runs trained together")
        if member.pipe.process.derived() != first.pipe.process.derived():  # one template process runs the stack
            raise FreqdiffError(f"train: {member.run_dir.name} and {first.run_dir.name} derive other process values "
                                "from their data (e.g. EDM's sigma_data); runs trained together must share them")
        if reg.optimizer_options() != ref.optimizer_options():
            raise FreqdiffError(f"train: optimizer options {reg.optimizer_options()} vs {ref.optimizer_options()} "
                                "differ between runs trained together; they must be equal")


def objective_settings(member: Member) -> str:
    """What noising a member's batch and scoring it depend on: its process (settings and the values derived from
    its data) and its regularizer's settings."""
    cfg = member.cfg.to_dict()
    return json.dumps([cfg["process"], cfg["regularizer"], member.pipe.process.derived()], sort_keys=True)


def shared_runs(members: Sequence[Member]) -> list[slice]:
    """The runs of consecutive members with equal objective settings, each noised and scored at once: seeds share
    one, and so does n where the process takes nothing from the data (DDPM); a sweep over a weight has one per value."""
    keys = [objective_settings(m) for m in members]
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    return [slice(a, b) for a, b in zip(starts, starts[1:] + [len(keys)])]
