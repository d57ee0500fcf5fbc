"""Feature extractors: images (B,C,H,W) float in [0,1] -> features (B,D), and a classifier's probabilities.

Values from different extractors are not comparable, so every extractor carries its name and every
measured row records it. 'digits_cnn' (the 8x8 digits) and 'lenet' (28x28 MNIST digits) are classifiers
trained on their dataset at its own resolution, so they also give the recognizability rate; 'inception'
is clean-fid's Inception-v3 (the paper's FID), loaded only from a path given or clean-fid's own folder;
'pixels' is raw pixels; 'auto' picks the one that fits the images and says which.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from freqdiff.core.registry import FreqdiffError, NoParams, Registry
from freqdiff.data.transforms import to_gray, to_rgb
from freqdiff.metrics.classifier import load_classifier
from freqdiff.metrics.digits_cnn import WEIGHTS as DIGITS_CNN_WEIGHTS
from freqdiff.metrics.digits_cnn import DigitsCNN
from freqdiff.metrics.lenet import WEIGHTS as LENET_WEIGHTS
from freqdiff.metrics.lenet import LeNet

EXTRACTORS: Registry[Extractor] = Registry("extractor")

INCEPTION_FILE = "inception-2015-12-05.pt"
CLASSIFIER_SHAPES = {(1, 8, 8): "digits_cnn", (1, 28, 28): "lenet"}  # image shape -> its dataset's classifier


@dataclass(frozen=True)
class Extractor:
    """A named feature map; `key` names everything its features depend on (for the reference cache)."""

    name: str
    key: str
    embed: Callable[[Tensor], Tensor]
    batch_size: int = 256
    classify: Callable[[Tensor], Tensor] | None = None  # class logits, for extractors that are classifiers
    confidence: float | None = None  # the max-softmax level at which a sample counts as recognizable
    note: str = ""  # how 'auto' chose this extractor

    def _batched(self, fn: Callable[[Tensor], Tensor], images01: Tensor) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([fn(b).float().cpu().numpy() for b in images01.split(self.batch_size)])

    def __call__(self, images01: Tensor) -> np.ndarray:
        """Features (B,D) in float32, as clean-fid gets them, of images (B,C,H,W) in [0,1], in batches."""
        return self._batched(self.embed, images01)

    def probabilities(self, images01: Tensor) -> np.ndarray:
        """Softmax class probabilities (B, classes) of the extractor's classifier."""
        if self.classify is None:
            raise FreqdiffError(f"extractor '{self.name}' is not a classifier: no recognizability")
        return self._batched(lambda b: torch.softmax(self.classify(b), dim=1), images01)


def sha256_file(path: Path) -> str:
    """Digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@EXTRACTORS.register("pixels")
def pixels(params: NoParams, device: str | torch.device = "cpu", **_: object) -> Extractor:
    """Raw pixels, flattened: no learned features, fully offline."""
    return Extractor("pixels", "pixels", lambda x: rearrange(x.to(device), "b c h w -> b (c h w)"))


@dataclass(frozen=True)
class ClassifierParams:
    weights: str | None = None  # a weights file; None: the committed one in freqdiff/metrics/weights/


def classifier_extractor(name: str, model: nn.Module, default: Path, weights: str | None, side: int,
                         device: str | torch.device) -> Extractor:
    """A classifier's penultimate features and logits, on grayscale side x side images only."""
    path = Path(weights).expanduser() if weights else default
    if not path.is_file():
        raise FreqdiffError(f"extractor '{name}': weights file {path} not found")
    model, meta = load_classifier(model, path)
    model = model.to(device)

    def gray(x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (side, side):
            raise FreqdiffError(f"extractor '{name}' sees {side}x{side} images, got {tuple(x.shape[1:])}; "
                                "use --extractor auto to get the one that fits")
        return to_gray(x.to(device))

    return Extractor(name, f"{name}:{sha256_file(path)[:16]}", lambda x: model.features(gray(x)),
                     classify=lambda x: model(gray(x)), confidence=meta.get("confidence"))


@EXTRACTORS.register("digits_cnn", ClassifierParams)
def digits_cnn(params: ClassifierParams, device: str | torch.device = "cpu", **_: object) -> Extractor:
    """32-d features of a CNN trained on the 8x8 digits at 8x8 (never on the held-out 256); its softmax too."""
    return classifier_extractor("digits_cnn", DigitsCNN(), DIGITS_CNN_WEIGHTS, params.weights, 8, device)


@EXTRACTORS.register("lenet", ClassifierParams)
def lenet(params: ClassifierParams, device: str | torch.device = "cpu", **_: object) -> Extractor:
    """84-d penultimate features of a LeNet-5 trained on MNIST digits, on 28x28 grayscale; its softmax too."""
    return classifier_extractor("lenet", LeNet(), LENET_WEIGHTS, params.weights, 28, device)


@dataclass(frozen=True)
class InceptionParams:
    weights: str | None = None  # a directory holding inception-2015-12-05.pt, or that file; None: clean-fid's folder


def cleanfid_folder() -> Path:
    """clean-fid's own folder for its downloads (stats/ inside the installed package), found without importing it."""
    spec = importlib.util.find_spec("cleanfid")
    if spec is None or spec.origin is None:
        raise FreqdiffError("extractor 'inception': clean-fid is not installed")
    return Path(spec.origin).parent / "stats"


def inception_dir(weights: str | None) -> Path:
    """The directory that holds (or will hold) clean-fid's Inception weights file."""
    if weights is None:
        return cleanfid_folder()
    path = Path(weights).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and path.name == INCEPTION_FILE:
        return path.parent
    raise FreqdiffError(f"extractor 'inception': weights={weights} is neither a directory nor a file named {INCEPTION_FILE}")


def check_private(folder: Path) -> None:
    """Refuse a folder anyone can write to (like /tmp): a file planted there would run as the Inception network."""
    if folder.is_dir() and folder.stat().st_mode & stat.S_IWOTH:
        raise FreqdiffError(f"extractor 'inception': {folder} is world-writable; copy {INCEPTION_FILE} to a folder "
                            "only you can write and pass --extractor.weights PATH")


def load_inception(weights: str | None, device: str | torch.device) -> torch.nn.Module:
    """clean-fid's InceptionV3W; downloads into clean-fid's own folder only when no path is given."""
    from cleanfid.inception_torchscript import InceptionV3W  # clean-fid imports torchvision (~3 s)

    folder = inception_dir(weights)
    check_private(folder)
    try:
        if weights is None:
            folder.mkdir(parents=True, exist_ok=True)  # clean-fid makes its stats/ folder only for statistics
        with warnings.catch_warnings():  # torch's notice that torch.jit.load is deprecated is not the user's concern
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            return InceptionV3W(str(folder), download=weights is None).to(device).eval()
    except (OSError, ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise FreqdiffError(
            f"extractor 'inception': cannot load {folder / INCEPTION_FILE} ({reason}); copy it from a connected "
            f"machine and pass --extractor.weights PATH, or use extractor 'auto', 'digits_cnn', 'lenet' or 'pixels'"
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
    weights: str | None = None  # Inception weights path: given, Inception is used
    fallback: str = "pixels"  # used when no classifier fits the images and no Inception weights are on disk


def auto_choice(params: AutoParams, image_shape: tuple[int, ...] | None) -> tuple[str, dict[str, str], str]:
    """(extractor name, its parameters, why): given Inception weights, the dataset's classifier, Inception, fallback."""
    if params.weights is not None:
        return "inception", {"weights": params.weights}, "Inception weights given"
    shape = tuple(image_shape) if image_shape is not None else None
    if shape in CLASSIFIER_SHAPES:
        return CLASSIFIER_SHAPES[shape], {}, f"its classifier fits images {shape}"
    if (cleanfid_folder() / INCEPTION_FILE).is_file():
        return "inception", {}, f"no classifier fits images {shape}; Inception found in {cleanfid_folder()}"
    if params.fallback == "auto":
        raise FreqdiffError("extractor 'auto': fallback must name a concrete extractor, e.g. 'pixels'")
    warnings.warn(f"extractor 'auto': no classifier fits images {shape} and no Inception weights in "
                  f"{cleanfid_folder()}; using '{params.fallback}' (comparable only with other "
                  f"'{params.fallback}' values)", stacklevel=3)
    return params.fallback, {}, f"fallback: nothing fits images {shape}"


@EXTRACTORS.register("auto", AutoParams)
def auto(params: AutoParams, image_shape: tuple[int, ...] | None = None, **context: object) -> Extractor:
    """The dataset's classifier (8x8 -> digits_cnn, 28x28 -> lenet), Inception when its weights are given, else fallback."""
    name, chosen_params, why = auto_choice(params, image_shape)
    chosen = EXTRACTORS.build(name, chosen_params, image_shape=image_shape, **context)
    return dataclasses.replace(chosen, note=f"extractor 'auto' -> '{name}' ({why})")


def get_extractor(name: str, device: str | torch.device = "cpu", image_shape: tuple[int, ...] | None = None,
                  **params: object) -> Extractor:
    """The extractor registered as `name` ('auto' resolves to a concrete one for `image_shape`) with its parameters."""
    return EXTRACTORS.build(name, params, device=device, image_shape=image_shape)
