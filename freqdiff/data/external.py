"""The images of a model trained elsewhere (`freqdiff import`): its training images, then held-out images.

Each set is a folder (the `folder` dataset) or an .npz (the `npz` dataset). Values are diffusers' [-1, 1]: its
training scripts normalize a pixel p to 2p - 1 (Normalize([0.5], [0.5])), and a DDPM's noise levels are only the
ones it was trained at on data of that scale, so freqdiff samples, noises and measures the network there (the run is
not centered); Split.to_unit maps samples back to [0, 1] pixels for the quality measures. Images must already have
the network's side: they are refused, never resized, since a resampling other than the one it was trained on would
move every training image away from the copies that f_mem looks for.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.data import DATASETS, load_dataset
from freqdiff.data.local import image_files

DIFFUSERS_RANGE = (-1.0, 1.0)  # the values diffusers' training scripts feed a UNet2DModel
WHERE = "dataset 'external'"


@dataclass(frozen=True)
class ExternalParams:
    train: str = ""  # folder of images or .npz: the images the network was trained on
    held_out: str = ""  # folder of images or .npz: images it never saw (the FD's reference, the test loss)
    limit: int | None = param(None, ge=2)  # train on the first `limit` training images (by name; the array's order)
    resolution: int = param(32, ge=1)  # the network's side (sample_size); other sizes are refused, never resized
    grayscale: bool = True  # one channel; false: RGB
    key: str = "images"  # the array of an .npz
    scale: float = param(1.0, gt=0)  # .npz: divide by this to reach [0, 1] (255 for uint8)
    channels_last: bool = False  # .npz laid out (N, H, W, C)


def check_folder_sizes(files: list[Path], side: int, what: str) -> None:
    """Refuse an image file whose size is not side x side (read from its header, not decoded)."""
    from PIL import Image, UnidentifiedImageError

    for path in files:
        try:
            with Image.open(path) as image:
                size = image.size
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise FreqdiffError(f"{WHERE}.{what}: cannot read image {path}: {err.__class__.__name__}") from None
        if size != (side, side):
            raise FreqdiffError(f"{WHERE}.{what}: image {path} is {size[0]}x{size[1]}, but the network takes "
                                f"{side}x{side} images; resize them as its training did")


def _source(path: str, what: str) -> Path:
    """The folder or file a set is read from, or one line saying it is neither."""
    if not path or not (Path(path).is_dir() or Path(path).is_file()):
        raise FreqdiffError(f"{WHERE}.{what}: {path!r} is neither a folder of images nor an .npz file")
    return Path(path)


def _npz(path: str, params: ExternalParams) -> Tensor:
    return load_dataset("npz", {"path": path, "key": params.key, "scale": params.scale,
                                "channels_last": params.channels_last})


def _npz_length(path: str, params: ExternalParams) -> int:
    """The length of an .npz's array from its .npy header, not decompressed; a damaged file or a missing key is
    read in full, so that the loader names the problem."""
    headers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{params.key}.npy") as member:
            shape = headers[np.lib.format.read_magic(member)](member)[0]
        return int(shape[0])
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile):
        return len(_npz(path, params))


def image_count(path: str, params: ExternalParams, what: str) -> int:
    """How many images a set holds: a folder's image files (not decoded), an array's length (not loaded)."""
    source = _source(path, what)
    count = len(image_files(source)) if source.is_dir() else _npz_length(path, params)
    if not count:
        raise FreqdiffError(f"{WHERE}.{what}: no images in {path}")
    return count


def images(path: str, params: ExternalParams, what: str, limit: int | None = None) -> Tensor:
    """The images of one set (a folder or an .npz) in [0, 1], the first `limit` of them, checked: at least `limit`,
    each of the network's side and channels."""
    source, channels = _source(path, what), 1 if params.grayscale else 3
    if source.is_dir():
        files = image_files(source, limit)
        check_folder_sizes(files, params.resolution, what)
        pool = load_dataset("folder", {"path": path, "resolution": params.resolution, "grayscale": params.grayscale,
                                       "limit": limit})
    else:
        pool = _npz(path, params)[:limit]
    if limit is not None and len(pool) < limit:
        raise FreqdiffError(f"{WHERE}.{what}: {path} holds {len(pool)} images, fewer than the {limit} the network "
                            "was trained on (--n)")
    shape = (channels, params.resolution, params.resolution)
    if tuple(pool.shape[1:]) != shape:
        raise FreqdiffError(f"{WHERE}.{what}: {path} holds images of shape {tuple(pool.shape[1:])}, but the network "
                            f"takes {shape} (channels, height, width)")
    return pool


@DATASETS.register("external", ExternalParams, values=DIFFUSERS_RANGE)
def external(params: ExternalParams, **_: object) -> Tensor:
    """Training images then held-out images (folders or .npz files), in diffusers' range [-1, 1]."""
    pool = torch.cat([images(params.train, params, "train", params.limit), images(params.held_out, params, "held_out")])
    return pool * 2 - 1
