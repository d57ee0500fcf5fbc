"""Keyed dropout: masks are a hash of (example key, layer, element), never of a global random state.

A mask that depends only on its keys is the same whether a network runs alone, as one member of a
vmapped ensemble, or split across ranks: the trainer gives every example of the global batch a key drawn
from (seed, step), and each dropout layer hashes that key with its call index and the element's position.
Outside `keyed_dropout` (or with keys of None) the layer falls back to torch's own dropout.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
from einops import rearrange
from torch import Tensor, nn

MASK32 = 0xFFFFFFFF
DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (xorshift-multiply, Wellons' hash prospector, bias 0.107) of int64 values < 2^32.

    Both multipliers are below 2^31, so no int64 product overflows."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & MASK32
    return x ^ (x >> 15)


@functools.lru_cache(maxsize=64)
def _positions(count: int, device: torch.device) -> Tensor:
    """mix32 of the element positions 0..count-1 of one example: shared by every layer of that size."""
    return mix32(torch.arange(count, device=device, dtype=torch.int64))


def keyed_uniform(keys: Tensor, salt: int, shape: tuple[int, ...]) -> Tensor:
    """Uniform [0, 1) floats of `shape` = (B, ...): element e of example b is a hash of (keys[b], salt, e)."""
    per_example = mix32(mix32((keys & MASK32) ^ mix32(torch.full_like(keys, salt))) ^ (keys >> 32))
    bits = mix32(rearrange(per_example, "b -> b 1") ^ _positions(math.prod(shape[1:]), keys.device))
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
