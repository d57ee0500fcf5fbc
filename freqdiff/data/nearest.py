"""Exact two-nearest-neighbour search for f_mem: a low-precision screen with a rigorous bound, then exact distances.

A sample x's nearest training images are those with the largest q(a) = x.a - ||a||^2 / 2 = (||x||^2 - ||x - a||^2) / 2.
The screen computes q in one matrix product of x' = [x, 1, 1] with a' = [a, -h, -l] (h + l = ||a||^2 / 2, split in
two columns to keep its precision) and bounds its error (`_widths`). With L the second largest lower bound, only
images whose upper bound reaches L can be among the two nearest; those few candidates (about 3 per sample on
image-like data and on white noise) are measured exactly, float64 direct differences, so the result is exact.

On the CPU the product is bfloat16 (unit roundoff u = 2^-8) with float32 accumulation and a bfloat16 result. Its
error is bounded from the actual rounding residuals ||x - x~||, ||a - a~|| (Cauchy-Schwarz) and the accumulation
(gamma_D); the result's rounding (u |q~|) is monotone in the result, so it moves each threshold instead of widening
every pair. A bfloat16 product runs at about twice the float32 rate on CPUs with AVX512-BF16 (more with AMX), and
that is the whole gain over a float32 search such as faiss's IndexFlatL2; the rest is one top-k per tile of TILE
training images (TOP per sample; a sample with more candidates in a tile is rescanned there in float32).

Where bfloat16 does not pay (images under SCREEN_MIN_DIM or over SCREEN_MAX_DIM pixels, a CPU without native
bfloat16 dot products, where oneDNN emulates them) faiss-cpu's IndexFlatL2 is faster than this module's float32
screen and searches instead when installed (`choose_method`); without faiss (freqdiff does not require it) the
float32 screen does, with the same bound. On a GPU (cuBLAS may reduce bfloat16 products in reduced precision) the
screen is float32, which needs IEEE float32 matmuls (no TF32, PyTorch's default), else float64. The training images
are stored sorted by norm, so that a tile's last image bounds every ||a|| in it: the bound is one scalar per sample
and tile. Among exactly equidistant training images the lowest index wins. The index depends only on the training
set: build it once and reuse it at every checkpoint (`cached_index`).
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

SCREEN_MIN_DIM = 256  # smaller images: the float32 product is already cheap
SCREEN_MAX_DIM = 2**14  # larger: the rounding bound (~u ||x|| ||a||, like D) outgrows the spread of q (~sqrt(D))
TILE = 4096  # training images per product: its result stays a few tens of MiB per block of samples
TOP = 8  # candidates read per sample and tile from a top-k; a sample with more is rescanned there in float32
METHODS = ("bfloat16", "float32", "float64", "faiss")
UNIT = {torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}  # unit roundoff


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere oneDNN emulates it, slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


@dataclass(frozen=True)
class NearestIndex:
    """A training set prepared for repeated exact 2-NN queries: augmented images sorted by norm, the screen's copy."""

    train: Tensor  # (N, D + 2) float32 in ascending norm: the image, then -h, -l (h + l = ||a||^2 / 2)
    order: Tensor  # (N,) int64: each row's index in the training set as given
    norm: Tensor  # (N,) float32 norms, ascending
    screen: Tensor  # (N, D + 2) the screen's copy: bfloat16, or train itself, or float64
    residual: Tensor  # (N,) ||a - a~|| of the image part of the screen's copy (zero unless bfloat16)
    offset: Tensor  # (N,) float64 |h + l - ||a||^2 / 2| as the screen's copy holds h and l
    flat: object | None = None  # faiss.IndexFlatL2 of the sorted images, where faiss searches instead of the screen

    @property
    def method(self) -> str:
        """bfloat16, float32 or float64 (the screen's product), or faiss."""
        return "faiss" if self.flat is not None else str(self.screen.dtype).removeprefix("torch.")

    @property
    def screened(self) -> bool:
        """Whether the screen's product is bfloat16."""
        return self.screen.dtype == torch.bfloat16


def _augmented(a: Tensor, half_sq: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """[a, -h, -l] in `dtype` with h + l = half_sq (float64) to twice dtype's precision, and what it misses."""
    h = half_sq.to(dtype)
    low = (half_sq - h.double()).to(dtype)
    copy = torch.cat([a.to(dtype), -h[:, None], -low[:, None]], dim=1).contiguous()
    return copy, (half_sq - h.double() - low.double()).abs() + 2.0**-40 * half_sq  # + float64 sum of squares


def faiss_installed() -> bool:
    """Whether faiss-cpu can be imported (an optional dependency: `pip install -e ".[faiss]"`)."""
    try:
        importlib.import_module("faiss")
    except ImportError:
        return False
    return True


def choose_method(dim: int, device: torch.device) -> str:
    """The fastest exact search for images of `dim` pixels on `device` (bench/bench_fmem.py, bench/README.md).

    CPU: this module's bfloat16 screen where the CPU multiplies bfloat16 natively and images have SCREEN_MIN_DIM to
    SCREEN_MAX_DIM pixels: its product runs at twice faiss's float32 rate, and it beats faiss's IndexFlatL2 on every
    kind of sample. Elsewhere the screen would be float32, which faiss's BLAS search matches or beats at scale
    (4096 x 16384, one thread: 1.0x at 1024 pixels, 1.6x at 64), so faiss searches when installed. The float32
    screen remains for installs without faiss-cpu, which freqdiff does not require: it is optional (the faiss extra;
    tests need it through the dev extra). GPU: the float32 screen (float64 where TF32 matmuls are allowed).
    """
    if device.type != "cpu":
        return "float32" if torch.get_float32_matmul_precision() == "highest" else "float64"
    if SCREEN_MIN_DIM <= dim <= SCREEN_MAX_DIM and native_bfloat16():
        return "bfloat16"
    return "faiss" if faiss_installed() else "float32"


def build_index(train: Tensor, method: str | None = None) -> NearestIndex:
    """Flatten, augment and sort the training images by norm, prepared for `method` (None: choose_method's).

    Every method gives the two nearest exactly (see `_faiss_block` for faiss's one caveat); forcing one is for tests
    and benches. bfloat16 and faiss: CPU only.
    """
    a = rearrange(train, "n ... -> n (...)").float()
    if len(a) < 2:
        raise ValueError(f"two nearest training images need at least 2 of them, got {len(a)}")
    method = method or choose_method(a.shape[1], a.device)
    if method not in METHODS or (method in ("bfloat16", "faiss") and a.device.type != "cpu"):
        raise ValueError(f"nearest-neighbour method {method!r} on {a.device.type}: choose from {METHODS} (bfloat16, "
                         f"faiss: CPU only; the bfloat16 screen's bound needs float32 accumulation)")
    half_sq = torch.cat([rows.double().pow(2).sum(dim=1) for rows in a.split(TILE)]) / 2  # no float64 copy of all
    norm, order = (2 * half_sq).sqrt().float().sort(stable=True)
    a, half_sq, norm = a[order].contiguous(), half_sq[order], norm * (1 + 2.0**-20)
    full, offset = _augmented(a, half_sq, torch.float32)
    if method == "bfloat16":
        screen, offset = _augmented(a, half_sq, torch.bfloat16)
        residual = torch.cat([(rows.double() - copy[:, :-2].double()).norm(dim=1)
                              for rows, copy in zip(a.split(TILE), screen.split(TILE))]).float() * (1 + 2.0**-20)
        return NearestIndex(full, order, norm, screen, residual, offset)
    flat = None
    if method == "faiss":
        import faiss

        flat = faiss.IndexFlatL2(a.shape[1])
        flat.add(a.numpy())
    screen = full.double() if method == "float64" else full
    return NearestIndex(full, order, norm, screen, torch.zeros_like(norm), offset, flat)


@dataclass(frozen=True)
class _Tiles:
    """The index cut into tiles of training images, with each tile's bounds on ||a||, ||a - a~|| and the offset."""

    starts: list[int]
    stops: list[int]
    a_max: Tensor  # (T,) float64
    a_err: Tensor  # (T,) float64, of the screen's copy
    offset: Tensor  # (T,) float64, of the screen's copy


def _tiles(index: NearestIndex, tile: int) -> _Tiles:
    """Tiles of `tile` training images (the last one may be shorter) with their bounds."""
    starts = list(range(0, len(index.train), tile))
    stops = [min(start + tile, len(index.train)) for start in starts]
    a_err = torch.stack([index.residual[start:stop].max() for start, stop in zip(starts, stops)]).double()
    offset = torch.stack([index.offset[start:stop].max() for start, stop in zip(starts, stops)])
    return _Tiles(starts, stops, index.norm[[stop - 1 for stop in stops]].double(), a_err, offset)


def _widths(x_norm: Tensor, x_err: Tensor, a_max: Tensor, a_err: Tensor, offset: Tensor, copy: Tensor) -> Tensor:
    """W (B, T) float64 with |q~ - q| <= W for each sample and tile, q~ the product before its result's rounding.

    x.a's error: inputs (||x - x~|| a_max + ||x~|| a_err, Cauchy-Schwarz), the split of ||a||^2 / 2 (offset),
    accumulation over D + 2 terms (gamma (||x~|| ||a~|| + h + l)), and a margin for this bookkeeping's roundings.
    The result's rounding (bfloat16 only) is handled by `_lower` and `_raise_inverse`.
    """
    gamma = 1.01 * copy.shape[1] * (UNIT[torch.float64] if copy.dtype == torch.float64 else UNIT[torch.float32])
    x_norm, x_err = x_norm[:, None], x_err[:, None]
    scale = x_norm * (a_max + a_err) + (a_max + a_err) ** 2 / 2 * (1 + 2.0**-6)
    return x_err * a_max + x_norm * a_err + offset + (gamma + 2.0**-20) * scale


def _lower(p: Tensor, u: float) -> Tensor:
    """The smallest q~ that rounds (relative error u) to p."""
    return torch.where(p >= 0, p / (1 + u), p / (1 - u))


def _raise_inverse(v: Tensor, u: float) -> Tensor:
    """The smallest result p whose largest preimage, p / (1 - u) or p / (1 + u), reaches v (a little lower: safety)."""
    t = torch.where(v >= 0, v * (1 - u), v * (1 + u))
    return t - 2.0**-40 * t.abs() - 1e-30


def _rescan(x: Tensor, index: NearestIndex, rows: Tensor, start: int, stop: int,
            second: Tensor) -> tuple[Tensor, Tensor]:
    """Candidates (rows, cols) of one tile for rows with more than TOP of them in the screen, found in float32.

    float32 (float64 where the index's screen is): inputs exact, no result rounding, so a far narrower width.
    """
    copy = index.train if index.screened else index.screen
    x_rows = x.index_select(0, rows)
    p = (x_rows.to(copy.dtype) @ copy[start:stop].T).double()
    a_max = index.norm[stop - 1:stop].double()
    x_norm = x_rows[:, :-2].double().norm(dim=1) * (1 + 2.0**-20)
    width = _widths(x_norm, torch.zeros_like(x_norm), a_max, torch.zeros_like(a_max), 2.0**-40 * a_max**2, copy)
    r, c = (p >= _raise_inverse(second[:, None] - width, 0.0)).nonzero(as_tuple=True)
    return rows[r], c + start


def _pair_distances(x: Tensor, a: Tensor, rows: Tensor, cols: Tensor, chunk: int = 4096) -> Tensor:
    """Squared distances ||x[rows] - a[cols]||^2 in float64, by direct differences."""
    parts = [x.new_zeros(0, dtype=torch.float64)]
    for r, c in zip(rows.split(chunk), cols.split(chunk)):
        difference = x.index_select(0, r).double().sub_(a.index_select(0, c).double())
        parts.append(torch.linalg.vector_norm(difference, dim=1).square_())
    return torch.cat(parts)


def _two_smallest(count: int, rows: Tensor, ids: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """(count, 2) distances and training indices: each row's two smallest (distance, then index) of its candidates."""
    order = ids.argsort(stable=True)
    order = order[d[order].argsort(stable=True)]
    order = order[rows[order].argsort(stable=True)]
    sorted_rows = rows[order]
    counts = torch.bincount(sorted_rows, minlength=count)
    rank = torch.arange(len(order), device=rows.device) - (counts.cumsum(0) - counts)[sorted_rows]
    take = rank < 2
    best_d = d.new_full((count, 2), float("inf"))
    best_i = ids.new_full((count, 2), -1)
    best_d[sorted_rows[take], rank[take]] = d[order[take]]
    best_i[sorted_rows[take], rank[take]] = ids[order[take]]
    return best_d, best_i


def _block(x: Tensor, index: NearestIndex, tiles: _Tiles) -> tuple[Tensor, Tensor]:
    """Exact (squared distances, training indices), (B, 2) each, of the two nearest training images of each row of x.

    One pass of products keeps each tile's TOP largest results per row; the second largest lower bound L over all
    of them then sets each tile's threshold, below which no training image can be among a row's two nearest. A
    tile whose TOP-th result still reaches its threshold may hold more candidates: that row is rescanned.
    """
    count, top = x.shape[0], min(TOP, tiles.stops[0] - tiles.starts[0])
    x32 = torch.cat([x, x.new_ones(count, 2)], dim=1)
    x_screen = x32.to(index.screen.dtype)
    x_part = x_screen[:, :-2].float()  # the screen's x~: ||x~|| and ||x - x~|| (zero unless bfloat16)
    x_norm, x_err = (v.norm(dim=1) * (1 + 2.0**-20) for v in (x_part.double(), x.double() - x_part.double()))
    widths = _widths(x_norm, x_err, tiles.a_max, tiles.a_err, tiles.offset, index.screen)
    u = UNIT[torch.bfloat16] if index.screened else 0.0
    product = x_screen.new_empty(count * (tiles.stops[0] - tiles.starts[0]))
    values = x.new_full((count, len(tiles.starts), top), float("-inf"), dtype=torch.float64)
    cols = x.new_zeros((count, len(tiles.starts), top), dtype=torch.long)
    for t, (start, stop) in enumerate(zip(tiles.starts, tiles.stops)):
        p = torch.mm(x_screen, index.screen[start:stop].T, out=product[:count * (stop - start)].view(count, -1))
        v, c = p.topk(min(top, stop - start), dim=1)
        values[:, t, :v.shape[1]], cols[:, t, :v.shape[1]] = v, c + start
    second = (_lower(values, u) - widths[:, :, None]).flatten(1).topk(2, dim=1).values[:, 1]
    threshold = _raise_inverse(second[:, None] - widths, u)
    keep = values >= threshold[:, :, None]
    wide = torch.tensor([stop - start > top for start, stop in zip(tiles.starts, tiles.stops)], device=x.device)
    overflow = keep[:, :, -1] & wide
    r, t, k = (keep & ~overflow[:, :, None]).nonzero(as_tuple=True)
    rows, picked = [r], [cols[r, t, k]]
    for t in overflow.any(dim=0).nonzero().flatten().tolist():  # rare: a row with more than TOP candidates
        many = overflow[:, t].nonzero().flatten()
        extra_rows, extra_cols = _rescan(x32, index, many, tiles.starts[t], tiles.stops[t], second[many])
        rows.append(extra_rows)
        picked.append(extra_cols)
    rows, picked = torch.cat(rows), torch.cat(picked)
    distances = _pair_distances(x, index.train[:, :-2], rows, picked)
    return _two_smallest(count, rows, index.order[picked], distances)


def _faiss_block(x: Tensor, index: NearestIndex) -> tuple[Tensor, Tensor]:
    """faiss's TOP nearest of each row of x, re-measured in float64: (squared distances, training indices), (B, 2).

    faiss ranks by its float32 expansion ||x||^2 + ||a||^2 - 2 x.a, which loses digits for near copies; re-measured,
    the two nearest are exact unless more than TOP - 2 other images lie within that rounding of the second nearest.
    """
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    top = min(TOP, len(index.train))
    cols = torch.from_numpy(index.flat.search(x.detach().numpy(), top)[1]).flatten()
    rows = torch.arange(len(x)).repeat_interleave(top)
    distances = _pair_distances(x, index.train[:, :-2], rows, cols)
    return _two_smallest(len(x), rows, index.order[cols], distances)


def two_nearest(samples: Tensor, train: Tensor | NearestIndex, batch_size: int = 2048,
                tile: int = TILE) -> tuple[Tensor, Tensor, Tensor]:
    """Exact (d1, d2, index of a1), float64 distances, of every sample against the training set (tensor or index)."""
    index = train if isinstance(train, NearestIndex) else build_index(train)
    x_all = rearrange(samples, "n ... -> n (...)").to(index.train)
    tiles = _tiles(index, tile)
    d1, d2, i1 = [], [], []
    for x in x_all.split(batch_size):
        x = x.contiguous()
        best_d, best_i = _faiss_block(x, index) if index.flat is not None else _block(x, index, tiles)
        d1.append(best_d[:, 0].sqrt())
        d2.append(best_d[:, 1].sqrt())
        i1.append(best_i[:, 0])
    return torch.cat(d1), torch.cat(d2), torch.cat(i1)


_CACHE: dict[str, NearestIndex] = {}
CACHED = 4  # indexes kept: a run's training set, raw and low-passed (fmem_robust), and the previous run's


def cached_index(train: Tensor, method: str | None = None) -> NearestIndex:
    """build_index(train, method), remembered by the training set's bytes: every checkpoint of a run reuses it."""
    flat = train.detach().float().contiguous().cpu()
    digest = hashlib.sha256(f"{tuple(flat.shape)} {train.device} {method}".encode())
    digest.update(flat.numpy().data)  # the buffer itself, no copy
    key = digest.hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= CACHED:
            del _CACHE[next(iter(_CACHE))]  # the oldest
        _CACHE[key] = build_index(train, method)
    return _CACHE[key]
