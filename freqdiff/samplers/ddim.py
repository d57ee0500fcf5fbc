"""Deterministic DDIM (Song et al. 2021, eta = 0): the paper's sampler."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from freqdiff.process.base import DiffusionProcess
from freqdiff.registry import param
from freqdiff.samplers import SAMPLERS
from freqdiff.samplers.base import Noise


def clip(x0_hat: Tensor, x0_range: tuple[float, float] | tuple[Tensor, Tensor] | None) -> Tensor:
    """Clamp the denoised estimate to the data range (low, high); None leaves it as is.

    The bounds may be tensors (K,), one range per member of a stacked batch of K*B images.
    """
    if x0_range is None:
        return x0_hat
    low, high = (torch.as_tensor(v, dtype=x0_hat.dtype, device=x0_hat.device).reshape(-1) for v in x0_range)
    per_row = x0_hat.shape[0] // low.numel()
    low, high = (rearrange(v.repeat_interleave(per_row), "b -> b 1 1 1") for v in (low, high))
    return torch.maximum(torch.minimum(x0_hat, high), low)


@dataclass(frozen=True)
class DDIMParams:
    steps: int = param(100, ge=2)  # the paper's code uses 100 (the paper says 200); at least T-1 and 0
    clip_x0: bool = True  # clamp x0_hat to the data's pixel range, as Ho et al.'s sampler; false: the paper's code


def ddim_steps(T: int, steps: int) -> list[int]:
    """Evenly spaced steps from T-1 down to 0."""
    return sorted({round(i * (T - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


class DDIM:
    def __init__(self, steps: int, x0_range: tuple[float, float] | None = None) -> None:
        self.steps, self.x0_range = steps, x0_range

    def __call__(self, model: nn.Module, process: DiffusionProcess, shape: tuple[int, ...], noise: Noise) -> Tensor:
        """x_s = signal(x0_hat, s) + noise(eps_hat, s) along the step sequence; returns the last x0_hat."""
        eps = noise(shape)
        device = eps.device
        schedule = ddim_steps(process.T, self.steps)
        t_last = torch.full((shape[0],), schedule[0], device=device, dtype=torch.long)
        x = process.noise(eps, t_last)
        for t_now, t_next in zip(schedule, schedule[1:] + [None]):
            t = torch.full((shape[0],), t_now, device=device, dtype=torch.long)
            eps_hat = model(x, t)
            x0_hat = clip(process.x0_from_eps(x, t, eps_hat), self.x0_range)
            if t_next is None:
                return x0_hat
            s = torch.full_like(t, t_next)
            if self.x0_range is not None:  # keep x_s consistent with the clamped x0_hat
                eps_hat = process.eps_from_x0(x, t, x0_hat)
            x = process.signal(x0_hat, s) + process.noise(eps_hat, s)
        return x


@SAMPLERS.register("ddim", DDIMParams)
def ddim(params: DDIMParams, *, x0_range: tuple[float, float] | None = None, **_: object) -> DDIM:
    """Deterministic DDIM (eta=0) with `steps` evaluations, x0_hat clamped to the data range if clip_x0."""
    return DDIM(params.steps, x0_range if params.clip_x0 else None)
