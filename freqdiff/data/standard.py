"""torchvision's standard image sets, read from a local root in torchvision's own layout: CIFAR-10, MNIST,
Fashion-MNIST and CelebA. Nothing is downloaded unless --dataset.download true asks torchvision to.

CIFAR-10's batches are pickles: they are read by an unpickler that resolves numpy's array constructors and nothing
else (torchvision's CIFAR10 calls pickle.load, which would run whatever a tampered file names). MNIST's idx files
(or the older processed/*.pt, loaded with weights_only) are read by torchvision. CelebA is its img_align_celeba/ in
list_eval_partition.txt's order (the paper: file order), each image resized and center-cropped as the paper's
loader (local.paper_preprocess); the other text files torchvision's CelebA checks are not needed.
"""
from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from freqdiff.core.registry import FreqdiffError, param
from freqdiff.data import DATASETS
from freqdiff.data.local import load_image, paper_preprocess
from freqdiff.data.transforms import paper_crop, to_gray, to_rgb


@dataclass(frozen=True)
class StandardParams:
    root: str = ""  # the folder given to torchvision's class: it holds cifar-10-batches-py/, MNIST/, celeba/, ...
    split: str = param("train", choices=("train", "test", "all"))  # all: train then test (the test set held out last)
    resolution: int = param(32, ge=1)  # side after the paper's resize of the short side and center crop
    grayscale: bool = False
    download: bool = False  # true: torchvision downloads the files into root first (the only network access)
    limit: int | None = param(None, ge=1)  # only the first `limit` images of the split


@dataclass(frozen=True)
class MnistParams(StandardParams):
    resolution: int = param(28, ge=1)
    grayscale: bool = True


@dataclass(frozen=True)
class CelebAParams(StandardParams):
    split: str = param("all", choices=("all", "train", "valid", "test"))  # all: the paper's (test images last)
    grayscale: bool = True  # the paper: 32x32 grayscale (d = 1024)


def _root(name: str, params: StandardParams, folder: str) -> Path:
    """The root as a path, or one line saying that it is unset."""
    if not params.root:
        raise FreqdiffError(f"dataset '{name}'.root: not set; pass --dataset.root DIR, the folder that holds {folder}/ "
                            "(or will: --dataset.download true)")
    return Path(params.root)


def _present(path: Path, entry: str) -> bool:
    """Whether `entry` is under `path`: a folder if it ends in '/', else a file."""
    return (path / entry).is_dir() if entry.endswith("/") else (path / entry).is_file()


def _require(name: str, root: Path, folder: str, files: list[str], source: str) -> None:
    """Refuse in one line, naming where to put which files, unless every one of `files` is under root/folder."""
    missing = [f for f in files if not _present(root / folder, f)]
    if missing:
        present = (root / folder).is_dir()
        where = f"{root / folder} lacks {', '.join(missing)}" if present else f"no {folder}/ under {root}"
        raise FreqdiffError(f"dataset '{name}'.root: {where}; put {', '.join(files)} there ({source}) "
                            "or pass --dataset.download true")


def _download(name: str, fetch: Callable[[], object]) -> None:
    """Run torchvision's download `fetch()`; its failure (no network, no gdown) in one line."""
    try:
        fetch()
    except (RuntimeError, OSError, ValueError) as err:
        raise FreqdiffError(f"dataset '{name}'.download: torchvision's download failed: "
                            f"{' '.join(str(err).split())[:300]}") from None


def _finish(x: Tensor, params: StandardParams) -> Tensor:
    """uint8 images (N, C, H, W) -> floats in [0, 1], in the channels and resolution asked for."""
    x = x[: params.limit].float().div_(255)
    x = to_gray(x) if params.grayscale else to_rgb(x).contiguous()
    return paper_crop(x, params.resolution)


_MULTIARRAY = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
                 ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
                 ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class ArrayUnpickler(pickle.Unpickler):
    """pickle's reader resolving numpy's array constructors and no other global: a file rebuilds dicts, lists,
    strings, numbers and arrays, and can call nothing else (the Python docs' "restricting globals")."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return ARRAY_GLOBALS[module, name]


def read_cifar_batch(path: Path) -> np.ndarray:
    """The uint8 images (N, 3072) of one CIFAR-10 batch (pickled by Python 2), unpickled without running code."""
    try:
        with open(path, "rb") as f:
            entry = ArrayUnpickler(f, encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 -- a corrupt pickle can raise nearly any error; each is one line here
        raise FreqdiffError(f"dataset 'cifar10': cannot read {path} as a CIFAR-10 batch: "
                            f"{err.__class__.__name__}: {' '.join(str(err).split())[:200]}") from None
    data = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise FreqdiffError(f"dataset 'cifar10': {path} holds no CIFAR-10 batch (expected a dict whose 'data' is a "
                            "uint8 array of shape (N, 3072))")
    return data


CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


@DATASETS.register("cifar10", StandardParams)
def cifar10(params: StandardParams, **_: object) -> Tensor:
    """CIFAR-10's 50000 train / 10000 test images, 32x32 RGB, from root/cifar-10-batches-py/."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets import utils as tv_utils

    root, folder = _root("cifar10", params, CIFAR10.base_folder), CIFAR10.base_folder
    files = [f for split in ("train", "test") if params.split in (split, "all") for f in CIFAR_FILES[split]]
    if params.download and not all(_present(root / folder, f) for f in files):
        _download("cifar10", lambda: tv_utils.download_and_extract_archive(
            CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5))
    _require("cifar10", root, folder, files, "torchvision's CIFAR10: cifar-10-python.tar.gz unpacked in root")
    data = np.concatenate([read_cifar_batch(root / folder / f) for f in files])
    return _finish(rearrange(torch.from_numpy(data), "n (c h w) -> n c h w", c=3, h=32), params)


def _idx_images(name: str, params: StandardParams, cls: type) -> Tensor:
    """MNIST-style idx images (N, 1, 28, 28) of the split from root/<class name>/raw (or processed/), by torchvision."""
    root, folder = _root(name, params, f"{cls.__name__}/raw"), f"{cls.__name__}/raw"
    if params.download:
        _download(name, lambda: cls(str(root), train=True, download=True))
    processed = [cls.training_file, cls.test_file]
    if not all((root / cls.__name__ / "processed" / f).is_file() for f in processed):
        raw = [Path(url).stem for url, _md5 in cls.resources]  # train-images-idx3-ubyte, ... (uncompressed)
        _require(name, root, folder, raw, f"torchvision's {cls.__name__} idx files, uncompressed")
    splits = ("train", "test") if params.split == "all" else (params.split,)
    try:
        images = [cls(str(root), train=split == "train").data for split in splits]
    except (RuntimeError, OSError, ValueError, AssertionError) as err:
        raise FreqdiffError(f"dataset '{name}': cannot read {root / cls.__name__}: {err.__class__.__name__}: "
                            f"{' '.join(str(err).split())[:200]}") from None
    return rearrange(torch.cat(images), "n h w -> n 1 h w")


@DATASETS.register("mnist", MnistParams)
def mnist(params: MnistParams, **_: object) -> Tensor:
    """MNIST's 60000 train / 10000 test digits, 28x28 grayscale, from root/MNIST/raw/."""
    from torchvision.datasets import MNIST

    return _finish(_idx_images("mnist", params, MNIST), params)


@DATASETS.register("fashion_mnist", MnistParams)
def fashion_mnist(params: MnistParams, **_: object) -> Tensor:
    """Fashion-MNIST's 60000 train / 10000 test images, 28x28 grayscale, from root/FashionMNIST/raw/."""
    from torchvision.datasets import FashionMNIST

    return _finish(_idx_images("fashion_mnist", params, FashionMNIST), params)


CELEBA_PARTS = {"train": "0", "valid": "1", "test": "2"}


def celeba_files(root: Path, split: str) -> list[str]:
    """The image names of `split` in list_eval_partition.txt's order (`all`: every image)."""
    path = root / "celeba" / "list_eval_partition.txt"
    rows = [line.split() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    bad = next((i for i, row in enumerate(rows, 1) if len(row) != 2 or row[1] not in CELEBA_PARTS.values()), None)
    if bad is not None:
        raise FreqdiffError(f"dataset 'celeba': {path} line {bad} is not 'IMAGE PARTITION' with a partition 0, 1 or 2")
    return [image for image, part in rows if split == "all" or part == CELEBA_PARTS[split]]


@DATASETS.register("celeba", CelebAParams)
def celeba(params: CelebAParams, **_: object) -> Tensor:
    """CelebA's aligned faces from root/celeba/, resized and center-cropped as the paper (32x32 grayscale)."""
    from torchvision.datasets import CelebA

    root = _root("celeba", params, "celeba")
    if params.download:
        _download("celeba", lambda: CelebA(str(root), split="all", target_type=[], download=True))
    _require("celeba", root, "celeba", ["img_align_celeba/", "list_eval_partition.txt"],
             "torchvision's CelebA: img_align_celeba.zip unzipped")
    names = celeba_files(root, params.split)[: params.limit]
    if not names:
        raise FreqdiffError(f"dataset 'celeba'.split: no image of split {params.split!r} in list_eval_partition.txt")
    images = (load_image(root / "celeba" / "img_align_celeba" / name, params.grayscale, "dataset 'celeba'")
              for name in names)
    return torch.stack([paper_preprocess(image, params.resolution) for image in images])
