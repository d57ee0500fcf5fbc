"""Exact two-nearest-neighbour search for f_mem: a bfloat16 screen with a rigorous error bound, then exact distances.

The ranking score of training image a for sample x is S(a) = ||a||^2 - 2 x.a (= ||x - a||^2 - ||x||^2). Computed
from bfloat16 copies of x and a (unit roundoff u = 2^-8, float32 accumulation, a bfloat16 result), x.a is off by at
most (2u + u) ||x|| ||a|| (inputs, then result), so S by at most 3 * 2^-7 ||x|| ||a||, below BF16_ERROR = 2^-5. With U the second smallest upper bound
S~ + e over all a, only images with S~ - e <= U can be among the two nearest; those few are measured exactly by
direct differences. The screen runs on the CPU's bfloat16 matrix units (AMX), several times faster than a float32
product, and the result is exact. A block whose screen leaves more than FALLBACK of all pairs (never seen on
images) falls back to the float32 product. The index (norms, bfloat16 copy) depends only on the training set:
build it once and reuse it at every checkpoint.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

BF16_ERROR = 2.0**-5  # |S~ - S| <= BF16_ERROR ||x|| ||a||: above the worst-case bfloat16 rounding, 3 * 2^-7
FALLBACK = 0.05  # a block whose screen keeps more than this share of all pairs uses the float32 product
SCREEN_MIN_DIM = 256  # smaller images: the plain float32 product is already cheap


@dataclass(frozen=True)
class NearestIndex:
    """A training set prepared for repeated exact 2-NN queries: flat images, norms, and a bfloat16 copy."""

    train: Tensor  # (N, D) float32
    train_sq: Tensor  # (N,) squared norms
    train_bf16: Tensor | None  # (N, D) for the screen; None: plain float32 search

    @property
    def screened(self) -> bool:
        return self.train_bf16 is not None


def build_index(train: Tensor) -> NearestIndex:
    """Flatten the training images; keep a bfloat16 copy when the images are large enough for the screen to pay."""
    a = rearrange(train, "n ... -> n (...)").float().contiguous()
    screen = a.bfloat16() if a.shape[1] >= SCREEN_MIN_DIM else None
    return NearestIndex(a, (a * a).sum(dim=1), screen)


def _exact_block(x: Tensor, index: NearestIndex, block: int) -> tuple[Tensor, Tensor]:
    """Top-2 (ranking score, index) of each row of x by |a|^2 - 2 x.a over all training images, in blocks."""
    best_d = torch.full((x.shape[0], 2), float("inf"), dtype=x.dtype, device=x.device)
    best_i = torch.zeros((x.shape[0], 2), dtype=torch.long, device=x.device)
    for start in range(0, len(index.train), block):
        a, a_sq = index.train[start:start + block], index.train_sq[start:start + block]
        d, i = torch.addmm(a_sq[None, :], x, a.T, alpha=-2).topk(min(2, len(a)), dim=1, largest=False)
        d, j = torch.cat([best_d, d], dim=1).topk(2, dim=1, largest=False)
        best_d, best_i = d, torch.cat([best_i, i + start], dim=1).gather(1, j)
    return best_d, best_i


def _pair_distances(x: Tensor, a: Tensor, rows: Tensor, cols: Tensor, chunk: int = 16384) -> Tensor:
    """Squared distances ||x[rows] - a[cols]||^2 of the listed pairs, by direct differences."""
    return torch.cat([(x[r] - a[c]).pow(2).sum(1) for r, c in zip(rows.split(chunk), cols.split(chunk))]) \
        if len(rows) else x.new_zeros(0)


def _screened_block(x: Tensor, index: NearestIndex, block: int) -> tuple[Tensor, Tensor]:
    """Top-2 (squared distance, index) of each row of x, measuring only the pairs the bfloat16 screen keeps."""
    approx = index.train_sq[None, :] - 2 * (x.bfloat16() @ index.train_bf16.T).float()
    slack = BF16_ERROR * x.norm(dim=1)[:, None] * index.train_sq.sqrt()[None, :]
    upper = (approx + slack).topk(2, dim=1, largest=False).values[:, 1:]
    kept = (approx - slack) <= upper
    if kept.sum() > FALLBACK * kept.numel():
        return _exact_block(x, index, block)
    rows, cols = kept.nonzero(as_tuple=True)
    distances = torch.full_like(approx, float("inf"))
    distances[rows, cols] = _pair_distances(x, index.train, rows, cols)
    return distances.topk(2, dim=1, largest=False)


def two_nearest(samples: Tensor, train: Tensor | NearestIndex, batch_size: int = 2048) -> tuple[Tensor, Tensor, Tensor]:
    """Exact (d1, d2, index of a1) of every sample against the training set (a tensor or a prepared index).

    The winners are re-measured in float64: the float32 ranking loses digits for near copies.
    """
    index = train if isinstance(train, NearestIndex) else build_index(train)
    x_all = rearrange(samples, "n ... -> n (...)").to(index.train)
    d1, d2, i1 = [], [], []
    for x in x_all.split(batch_size):
        _, best = (_screened_block if index.screened else _exact_block)(x, index, batch_size)
        exact, order = (x[:, None, :].double() - index.train[best].double()).norm(dim=2).sort(dim=1)
        d1.append(exact[:, 0])
        d2.append(exact[:, 1])
        i1.append(best.gather(1, order)[:, 0])
    return torch.cat(d1), torch.cat(d2), torch.cat(i1)


_CACHE: dict[str, NearestIndex] = {}
CACHED = 4  # indexes kept: a run's training set, raw and low-passed (fmem_robust), and the previous run's


def cached_index(train: Tensor) -> NearestIndex:
    """build_index(train), remembered by the training set's bytes: every checkpoint of a run reuses it."""
    flat = train.detach().float().contiguous().cpu()
    key = hashlib.sha256(f"{tuple(flat.shape)}".encode() + flat.numpy().tobytes()).hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= CACHED:
            del _CACHE[next(iter(_CACHE))]  # the oldest
        _CACHE[key] = build_index(train)
    return _CACHE[key]
