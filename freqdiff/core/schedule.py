"""Deterministic data order and randomness as functions of (seed, step, rank): resume is exact by design."""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor


def step_seed(seed: int, step: int, rank: int = 0, stream: int = 0) -> int:
    """A distinct 63-bit seed for every (seed, step, rank, stream)."""
    digest = hashlib.blake2b(f"{seed}/{step}/{rank}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(seed, epoch, stream=1)))


def batch_indices(n: int, batch: int, step: int, seed: int) -> Tensor:
    """The global batch of optimizer step `step` (0-based): consecutive slices of per-epoch permutations."""
    start = step * batch
    out, position = [], start
    while position < start + batch:
        epoch, offset = divmod(position, n)
        take = min(n - offset, start + batch - position)
        out.append(epoch_permutation(n, seed, epoch)[offset:offset + take])
        position += take
    return torch.cat(out)


def rank_slice(indices: Tensor, rank: int, world: int) -> Tensor:
    """This process's share of the global batch (the batch is split, not duplicated)."""
    return torch.tensor_split(indices, world)[rank]


def dropout_keys(seed: int, step: int, batch: int) -> Tensor:
    """One 62-bit key per example of the global batch of `step`: KeyedDropout hashes its masks from them."""
    generator = torch.Generator().manual_seed(step_seed(seed, step, stream=2))
    return torch.randint(0, 2**62, (batch,), generator=generator)
