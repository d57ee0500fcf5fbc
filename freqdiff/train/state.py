"""Optimizer and EMA of a stack, and their exchange with the members' single-run state dicts.

A member's state (weights, optimizer, EMA) is always saved in the format of a lone network, so a run directory
does not depend on the stack that trained it, and members can leave and join stacks between steps.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from freqdiff.core.config import TrainConfig
from freqdiff.models.stack import StackedModel


def make_optimizer(cfg: TrainConfig, model: nn.Module, extra: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam(W) or SGD with momentum (the paper: SGD, lr 0.01, momentum 0.95); `extra` from the regularizer. Fused:
    one kernel for all parameters, not ten per tensor (an Adam step of the W = 8 U-Net takes 1.2 ms, not 7.4)."""
    decay = extra.get("weight_decay", 0.0)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=decay, fused=True)


def make_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights, or None when decay is 0 (the paper)."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def stack_optimizer_states(states: Sequence[dict[str, Any]], stack: StackedModel) -> dict[str, Any]:
    """One optimizer state_dict for the stack from the members' single-run state_dicts (same parameter order)."""
    stacked: dict[int, dict[str, Any]] = {}
    for index, param in enumerate(stack.parameters()):
        entries = [s["state"].get(index) for s in states]
        if entries[0] is None:
            continue
        stacked[index] = {key: (torch.stack([e[key] for e in entries])
                                if torch.is_tensor(value) and value.dim() == param.dim() - 1 else value)
                          for key, value in entries[0].items()}
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


def member_optimizer_state(state: dict[str, Any], stack: StackedModel, k: int) -> dict[str, Any]:
    """Member k's slice of the stack's optimizer state_dict, loadable by its single-run optimizer."""
    params = list(stack.parameters())
    sliced = {index: {key: (value[k].clone() if torch.is_tensor(value) and value.dim() == params[index].dim()
                            else value.clone() if torch.is_tensor(value) else value)
                      for key, value in entry.items()}
              for index, entry in state["state"].items()}
    return {"state": sliced, "param_groups": state["param_groups"]}


def stack_ema_states(states: Sequence[dict[str, Any]], stack: StackedModel) -> dict[str, Any]:
    """An AveragedModel state_dict of the stack from the members' single-run AveragedModel state_dicts."""
    out = {"n_averaged": states[0]["n_averaged"]}
    for i, name in enumerate(stack.param_names):
        out[f"module.stacked.{i}"] = torch.stack([s[f"module.{name}"] for s in states])
    for i, name in enumerate(stack.buffer_names):
        out[f"module.buffer{i}"] = torch.stack([s[f"module.{name}"] for s in states])
    return out


def member_ema_state(ema: AveragedModel, k: int) -> dict[str, Any]:
    """Member k's slice of the stack's EMA, in the format of a single run's AveragedModel state_dict."""
    module: StackedModel = ema.module
    return {"n_averaged": ema.n_averaged.clone(), **{f"module.{n}": v for n, v in module.member_state(k).items()}}


def trained_batched(state: dict[str, Any] | None) -> bool:
    """Whether a saved state's run trained batched (beside other runs); older states say it by their trainer."""
    return state is not None and bool(state.get("batched", state.get("trainer") == "ensemble"))


def clip_members(stack: StackedModel, max_norm: float) -> None:
    """Each member's gradient clipped to norm max_norm on its own, as torch.nn.utils.clip_grad_norm_ does."""
    if max_norm <= 0:
        return
    grads = [p.grad for p in stack.parameters() if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
    coef = (max_norm / (torch.linalg.vector_norm(norms, dim=1) + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.reshape(-1, *[1] * (g.dim() - 1)))
