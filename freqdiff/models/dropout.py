"""Keyed dropout: masks are a hash of (example key, layer, element), never of a global random state.

A mask that depends only on its keys is the same whether a network runs alone, as one member of a
vmapped ensemble, or split across ranks: the trainer gives every example of the global batch a key drawn
from (seed, step), and each dropout layer hashes that key with its call index and the element's position.
Outside `keyed_dropout` (or with keys of None) the layer falls back to torch's own dropout.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
from einops import rearrange
from torch import Tensor, nn

MASK32 = 0xFFFFFFFF


def _mul32(x: Tensor, constant: int) -> Tensor:
    """(x * constant) mod 2^32 for x < 2^32, in 16-bit halves so no int64 product overflows."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & MASK32


def lowbias32(x: Tensor) -> Tensor:
    """Chris Wellons' 32-bit integer hash (xorshift-multiply, bias ~0.17): a uniform, avalanching mix."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def keyed_uniform(keys: Tensor, salt: int, shape: tuple[int, ...]) -> Tensor:
    """Uniform [0, 1) floats of `shape` = (B, ...): element e of example b is a hash of (keys[b], salt, e)."""
    per_example = lowbias32(lowbias32((keys & MASK32) ^ lowbias32(torch.full_like(keys, salt))) ^ (keys >> 32))
    elements = torch.arange(math.prod(shape[1:]), device=keys.device, dtype=torch.int64)
    bits = lowbias32(rearrange(per_example, "b -> b 1") ^ _mul32(elements, 0x9E3779B9))
    return ((bits >> 8).float() * 2.0**-24).reshape(shape)


@dataclass
class _Keys:
    """The keys of the current forward pass and how many keyed layers have drawn from them."""

    keys: Tensor | None
    calls: int = field(default=0)


_STACK: list[_Keys] = []


@contextlib.contextmanager
def keyed_dropout(keys: Tensor | None) -> Iterator[None]:
    """Within this block, KeyedDropout layers draw their masks from `keys` (B,) int64, one key per example."""
    _STACK.append(_Keys(keys))
    try:
        yield
    finally:
        _STACK.pop()


class KeyedDropout(nn.Dropout):
    """nn.Dropout whose mask is keyed_uniform(keys, call index) >= p inside `keyed_dropout`."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or not _STACK or _STACK[-1].keys is None:
            return super().forward(x)
        state = _STACK[-1]
        state.calls += 1
        keep = keyed_uniform(state.keys, state.calls, tuple(x.shape)) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)
