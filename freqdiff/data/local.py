"""Datasets the user brings from disk: an image folder, an .npz array. Never downloads (torchvision's standard sets,
CelebA among them: data/standard.py)."""
from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.data import DATASETS, PIXELS, check_values
from freqdiff.data.transforms import paper_crop

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FolderParams:
    path: str = ""
    resolution: int = param(32, ge=1)  # the paper: CelebA center-cropped to 32x32
    grayscale: bool = True  # the paper trains on grayscale (d = 1024)
    limit: int | None = param(None, ge=1)  # read only the first `limit` files (sorted by name)


WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def _pixels(img: Any, grayscale: bool) -> np.ndarray:
    """An image's pixels as floats, at its own depth: 8-bit modes / 255, 16-bit grayscale (PIL's I;16 and the I of
    a 16-bit PNG) / 65535 (converting them to L would saturate nearly every pixel to white), float (F) as stored."""
    if img.mode not in WIDE_MODES:
        return np.asarray(img.convert("L" if grayscale else "RGB"), dtype=np.float32) / 255.0
    gray = np.asarray(img, dtype=np.float32) / WIDE_MODES[img.mode]
    return gray if grayscale else np.repeat(gray[..., None], 3, axis=-1)


def load_image(path: Path, grayscale: bool, where: str = "dataset 'folder'") -> np.ndarray:
    """One image file's pixels, checked to lie in [0, 1]; an unreadable or oversized file is named in one line
    (`where`: the dataset that reads it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mode, image = img.mode, _pixels(img, grayscale)
    except Image.DecompressionBombError as err:
        raise FreqdiffError(f"{where}: image {path} is too large to read "
                            f"({str(err).rstrip('.')}); shrink it first") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise FreqdiffError(f"{where}: cannot read image {path}: {err.__class__.__name__}") from None
    check_values(torch.from_numpy(image), f"{where}: image {path} (mode {mode})",
                 fix="save it as an 8- or 16-bit image", varied=False)
    return image


def paper_preprocess(image: np.ndarray, resolution: int) -> Tensor:
    """One image (H, W) or (H, W, C) as (C, resolution, resolution): short side resized, square center-cropped
    (transforms.paper_crop, the paper's loader)."""
    x = torch.from_numpy(image)
    x = rearrange(x, "h w -> 1 1 h w") if x.ndim == 2 else rearrange(x, "h w c -> 1 c h w")
    return paper_crop(x, resolution)[0]


def image_files(root: Path, limit: int | None = None) -> list[Path]:
    """The image files of a folder, sorted by name: the first `limit` of them (all with None)."""
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:limit]


@DATASETS.register("folder", FolderParams)
def folder(params: FolderParams, **_: object) -> Tensor:
    """Every image file in a folder (sorted by name), resized, center-cropped and optionally grayscale."""
    root = Path(params.path)
    if not params.path or not root.is_dir():
        raise FreqdiffError(f"dataset 'folder'.path: {params.path!r} is not a directory")
    files = image_files(root, params.limit)
    if not files:
        raise FreqdiffError(f"dataset 'folder'.path: no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return torch.stack([paper_preprocess(load_image(p, params.grayscale), params.resolution) for p in files])


@dataclass(frozen=True)
class NpzParams:
    path: str = ""
    key: str = "images"  # array of shape (N, H, W), (N, C, H, W) or (N, H, W, C) if channels_last
    channels_last: bool = False
    scale: float = param(1.0, gt=0)  # divide by this to reach [0, 1] (255 for uint8 data)


def _npz_array(path: str, key: str) -> np.ndarray:
    """Array `key` of the .npz archive `path` (never unpickled), or a one-line error naming the file."""
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        arrays = np.load(path)
    except unreadable as err:
        raise FreqdiffError(f"dataset 'npz'.path: cannot read {path!r}: {err.__class__.__name__}") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise FreqdiffError(f"dataset 'npz'.path: {path!r} is not an .npz archive (np.savez writes one)")
    with arrays:
        if key not in arrays.files:
            raise FreqdiffError(f"dataset 'npz'.key: {key!r} not in {path}; keys: {', '.join(arrays.files)}")
        try:
            return arrays[key]
        except unreadable as err:
            raise FreqdiffError(f"dataset 'npz': cannot read array {key!r} of {path!r}: {err.__class__.__name__}") from None


def _scale_fix(array: np.ndarray) -> str:
    """The flag that brings `array` into [0, 1]: the --dataset.scale that covers its largest value (255 for 8-bit
    data, 65535 for 16-bit, else its maximum rounded up to 3 digits), or why no scale can (negative values)."""
    if array.size == 0:
        return ""
    low, high = float(array.min()), float(array.max())
    if low < 0:
        return "pixels are never negative: shift the array into [0, 1] (or [0, 255] and --dataset.scale 255) first"
    if high <= 0:
        return ""
    if high <= 1:
        return "set --dataset.scale 1"
    digits = 10.0 ** (math.floor(math.log10(high)) - 2)
    scale = next((s for s in (255, 65535) if 2 < high <= s), math.ceil(round(high / digits, 6)) * digits)
    return f"set --dataset.scale {scale:g}"


@DATASETS.register("npz", NpzParams)
def npz(params: NpzParams, **_: object) -> Tensor:
    """An array of images in an .npz file."""
    array = _npz_array(params.path, params.key)
    if array.ndim not in (3, 4) or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise FreqdiffError(f"dataset 'npz'.key: {params.key!r} in {params.path} is a {array.dtype} array of shape "
                            f"{array.shape}; expected numbers shaped (N, H, W), (N, C, H, W) or, with channels_last, (N, H, W, C)")
    x = torch.from_numpy(np.array(array, dtype=np.float32)).div_(params.scale)  # in float32, a huge scale gives 0
    scaled = f" divided by --dataset.scale {params.scale:g}" if params.scale != 1 else ""
    check_values(x, f"dataset 'npz': {params.key!r} in {params.path} ({array.dtype}){scaled}", PIXELS,
                 _scale_fix(array) if bool(torch.isfinite(x).all()) else "")
    if x.ndim == 3:
        return rearrange(x, "n h w -> n 1 h w")
    return rearrange(x, "n h w c -> n c h w") if params.channels_last else x
