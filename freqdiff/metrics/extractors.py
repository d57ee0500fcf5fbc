"""Feature extractors for FID and KID: images (B,C,H,W) float in [0,1] -> features (B,D).

Values from different extractors are not comparable, so every extractor carries its name and
every FID result records it. 'inception' is clean-fid's Inception-v3 (the paper's FID); 'lenet'
and 'pixels' work offline; 'auto' takes Inception when its weights are on disk, else a fallback.
"""
from __future__ import annotations

import hashlib
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from freqdiff.metrics.lenet import WEIGHTS, load_lenet
from freqdiff.registry import FreqdiffError, NoParams, Registry

EXTRACTORS: Registry[Extractor] = Registry("extractor")

INCEPTION_FILE = "inception-2015-12-05.pt"
CLEANFID_CACHE = Path("./" if platform.system() == "Windows" else "/tmp")  # where clean-fid downloads it
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grayscale weights


@dataclass(frozen=True)
class Extractor:
    """A named feature map; `key` names everything its features depend on (for the stats cache)."""

    name: str
    key: str
    embed: Callable[[Tensor], Tensor]
    batch_size: int = 256

    def __call__(self, images01: Tensor) -> np.ndarray:
        """Features (B,D) in float32, as clean-fid gets them, of images (B,C,H,W) in [0,1], in batches."""
        with torch.no_grad():
            return np.concatenate([self.embed(b).float().cpu().numpy() for b in images01.split(self.batch_size)])


def to_rgb(x: Tensor) -> Tensor:
    """Repeat a grayscale channel three times; RGB passes through."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def to_gray(x: Tensor) -> Tensor:
    """Luma of RGB images; grayscale passes through."""
    if x.shape[1] == 1:
        return x
    return torch.einsum("bchw,c->bhw", x, x.new_tensor(LUMA))[:, None]


def sha256_file(path: Path) -> str:
    """Digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@EXTRACTORS.register("pixels")
def pixels(params: NoParams, device: str | torch.device = "cpu", **_: object) -> Extractor:
    """Raw pixels, flattened: no learned features, fully offline."""
    return Extractor("pixels", "pixels", lambda x: rearrange(x.to(device), "b c h w -> b (c h w)"))


@dataclass(frozen=True)
class LenetParams:
    weights: str | None = None  # None: the committed weights, freqdiff/metrics/weights/lenet_mnist.pt


@EXTRACTORS.register("lenet", LenetParams)
def lenet(params: LenetParams, device: str | torch.device = "cpu", **_: object) -> Extractor:
    """84-d penultimate features of a LeNet-5 trained on MNIST digits, on 28x28 grayscale: offline."""
    path = Path(params.weights) if params.weights else WEIGHTS
    if not path.is_file():
        raise FreqdiffError(f"extractor 'lenet': weights file {path} not found")
    model = load_lenet(path).to(device)

    def embed(x: Tensor) -> Tensor:
        gray = to_gray(x.to(device))
        if gray.shape[-2:] != (28, 28):
            gray = F.interpolate(gray, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        return model.features(gray)

    return Extractor("lenet", f"lenet:{sha256_file(path)[:16]}", embed)


@dataclass(frozen=True)
class InceptionParams:
    weights: str | None = None  # a directory holding inception-2015-12-05.pt, or that file; None: clean-fid's cache


def inception_dir(weights: str | None) -> Path:
    """The directory that holds (or will hold) clean-fid's Inception weights file."""
    if weights is None:
        return CLEANFID_CACHE
    path = Path(weights).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and path.name == INCEPTION_FILE:
        return path.parent
    raise FreqdiffError(f"extractor 'inception': weights={weights} is neither a directory nor a file named {INCEPTION_FILE}")


def load_inception(weights: str | None, device: str | torch.device) -> torch.nn.Module:
    """clean-fid's InceptionV3W; downloads into clean-fid's cache only when no path is given."""
    from cleanfid.inception_torchscript import InceptionV3W  # clean-fid imports torchvision (~3 s)

    folder = inception_dir(weights)
    try:
        return InceptionV3W(str(folder), download=weights is None).to(device).eval()
    except (OSError, ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise FreqdiffError(
            f"extractor 'inception': cannot load {folder / INCEPTION_FILE} ({reason}); copy it from a connected "
            f"machine and pass extractor.weights=PATH, or use extractor 'lenet' or 'pixels'"
        ) from None


@EXTRACTORS.register("inception", InceptionParams)
def inception(params: InceptionParams, device: str | torch.device = "cpu", **_: object) -> Extractor:
    """clean-fid's Inception-v3 pool3 (2048-d) after its clean 299x299 bicubic resize: the paper's FID."""
    from cleanfid.resize import build_resizer

    model = load_inception(params.weights, device)
    resize = build_resizer("clean")

    def embed(x: Tensor) -> Tensor:
        images = rearrange(to_rgb(x) * 255, "b c h w -> b h w c").cpu().numpy()
        resized = torch.from_numpy(np.stack([resize(image) for image in images]))
        return model(rearrange(resized, "b h w c -> b c h w").to(device))

    return Extractor("inception", "inception:clean", embed, batch_size=64)


@dataclass(frozen=True)
class AutoParams:
    weights: str | None = None  # Inception weights path, as for 'inception'
    fallback: str = "lenet"  # the offline extractor used when Inception's weights are not on disk


@EXTRACTORS.register("auto", AutoParams)
def auto(params: AutoParams, **context: object) -> Extractor:
    """'inception' if its weights are on disk (given path or clean-fid's cache), else `fallback`, said once."""
    if params.fallback == "auto":
        raise FreqdiffError("extractor 'auto': fallback must name an offline extractor, e.g. 'lenet' or 'pixels'")
    where = inception_dir(params.weights) / INCEPTION_FILE
    if where.is_file():
        return EXTRACTORS.build("inception", InceptionParams(params.weights), **context)
    warnings.warn(
        f"FID extractor 'auto': no Inception weights at {where}; using '{params.fallback}' "
        f"(its FIDs are comparable only with other '{params.fallback}' FIDs)",
        stacklevel=3,
    )
    return EXTRACTORS.build(params.fallback, None, **context)


def get_extractor(name: str, device: str | torch.device = "cpu", **params: object) -> Extractor:
    """The extractor registered as `name` ('auto' resolves to a concrete one) with its parameters."""
    return EXTRACTORS.build(name, params, device=device)
