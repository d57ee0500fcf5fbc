"""FD/KID through clean-fid, the extractor registry, auto's choice, and the checksummed reference-feature cache."""
from __future__ import annotations

import os
import re
import urllib.error
from pathlib import Path

import cleanfid.fid
import cleanfid.inception_torchscript
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics import Extractor, extractors, get_extractor
from freqdiff.metrics.digits_cnn import HELDOUT, digits_with_labels
from freqdiff.metrics.fid import frechet_distance, kernel_distance, reference_features, stats_key
from freqdiff.metrics.lenet import accuracy, load_lenet, mnist_digits


def images(n: int, seed: int, low: float = 0.2, high: float = 0.6, size: int = 8) -> torch.Tensor:
    """Uniform grayscale images in [low, high]."""
    return low + (high - low) * torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


class FakeLayers(nn.Module):
    """Stands in for Inception's layers: (B,3,299,299) -> (B,2048,1,1)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 2048, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(x, 1))


class FakeInception(nn.Module):
    """A torchscript file shaped like clean-fid's inception-2015-12-05.pt."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = FakeLayers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty, private clean-fid folder and no network: downloading Inception fails as it does here."""
    def no_network(fpath: str = "./") -> str:
        path = Path(fpath) / extractors.INCEPTION_FILE
        if not path.is_file():
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return str(path)

    folder = tmp_path / "cleanfid"
    folder.mkdir(mode=0o755)
    monkeypatch.setattr(extractors, "cleanfid_folder", lambda: folder)
    monkeypatch.setattr(cleanfid.inception_torchscript, "check_download_inception", no_network)
    return folder


def test_clean_fid_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert cleanfid.fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_clean_fids_fid_from_feats() -> None:
    pixels = get_extractor("pixels")
    a, b = pixels(images(300, 0)), pixels(images(300, 1))
    assert frechet_distance(a, b) == pytest.approx(cleanfid.fid.fid_from_feats(a, b), rel=1e-9)


def test_fd_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_norm() -> None:
    pixels = get_extractor("pixels")
    reference = images(400, 0)
    assert abs(frechet_distance(pixels(reference), pixels(reference))) < 1e-6
    for shift in (0.1, 0.3):  # same covariance: FD = ||mu1 - mu2||^2 = 64 shift^2
        assert frechet_distance(pixels(reference + shift), pixels(reference)) == pytest.approx(64 * shift**2, rel=1e-3)


def test_fd_of_a_few_distinct_copies_is_finite() -> None:
    """Copies of 4 images have a rank-3 covariance; the square root must not fail."""
    digits = get_extractor("digits_cnn")
    x, _ = digits_with_labels()
    copies = x[:4].repeat(13, 1, 1, 1)
    value = frechet_distance(digits(copies), digits(x[-51:]))
    assert np.isfinite(value) and value > frechet_distance(digits(x[-102:-51]), digits(x[-51:]))


def test_kid_is_seeded_and_leaves_numpys_global_rng_alone() -> None:
    pixels = get_extractor("pixels")
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a, b = pixels(images(80, 0)), pixels(images(90, 1))
    assert kernel_distance(a, b, seed=0) == kernel_distance(a, b, seed=0) != kernel_distance(a, b, seed=1)
    assert np.array_equal(np.random.get_state()[1], state)
    with pytest.raises(FreqdiffError, match="at least 2 features"):
        kernel_distance(a[:1], b)


def test_digits_cnn_features_are_learned_digit_features() -> None:
    x, y = digits_with_labels()
    heldout, labels = x[-HELDOUT:], y[-HELDOUT:]
    digits = get_extractor("digits_cnn")
    zeros, ones = digits(x[:-HELDOUT][y[:-HELDOUT] == 0]), digits(x[:-HELDOUT][y[:-HELDOUT] == 1])
    held_zeros = digits(heldout[labels == 0])
    assert 5 * frechet_distance(zeros, held_zeros) < frechet_distance(ones, held_zeros)
    probabilities = digits.probabilities(heldout)
    assert (probabilities.argmax(1) == labels.numpy()).mean() > 0.93
    recognized = (probabilities.max(1) >= digits.confidence).mean()
    assert recognized == pytest.approx(0.8, abs=0.01)  # the threshold is the level 80% of held-out digits reach
    noise = digits.probabilities(torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert (noise.max(1) >= digits.confidence).mean() < 0.1


def test_lenet_features_are_learned_digit_features() -> None:
    x, y = mnist_digits()
    assert accuracy(load_lenet(), x, y) > 0.95
    zeros, ones, lenet = x[y == 0], x[y == 1], get_extractor("lenet")
    assert 5 * frechet_distance(lenet(zeros[:250]), lenet(zeros[250:])) < frechet_distance(lenet(ones[:250]), lenet(zeros[250:]))
    assert 0.9 < lenet.confidence < 1


@pytest.mark.parametrize("name, shape", [("digits_cnn", (1, 28, 28)), ("lenet", (1, 8, 8))])
def test_a_classifier_refuses_images_of_another_size(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(FreqdiffError, match=f"extractor '{name}' sees .* got {re.escape(str(shape))}.*--extractor auto"):
        get_extractor(name)(torch.rand(2, *shape))


def test_reference_cache_hits_and_is_keyed_by_content(tmp_path: Path) -> None:
    pixels = get_extractor("pixels")
    embedded = []
    counting = Extractor("pixels", pixels.key, lambda x: embedded.append(len(x)) or pixels.embed(x))
    reference = images(120, 1)
    first = reference_features(reference, counting, tmp_path)
    second = reference_features(reference, counting, tmp_path)
    assert embedded == [120] and np.array_equal(first, second)
    assert [p.name for p in tmp_path.iterdir()] == [f"{stats_key(reference, pixels)}.npz"]  # no temporary left
    changed = reference.clone()
    changed[0, 0, 0, 0] += 0.01
    assert stats_key(changed, pixels) != stats_key(reference, pixels)
    assert stats_key(reference, get_extractor("digits_cnn")) != stats_key(reference, pixels)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _edit(path: Path) -> None:
    with np.load(path) as cached:
        arrays = {k: cached[k] for k in cached.files}
    arrays["feats"] = arrays["feats"] * 1.6  # what moved a cached FID from 158 to 251 in issue 14
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _old_format(path: Path) -> None:
    with np.load(path) as cached:
        feats = cached["feats"]
    with open(path, "wb") as fh:
        np.savez(fh, mu=feats.mean(0), sigma=np.cov(feats, rowvar=False), feats=feats)


@pytest.mark.parametrize("damage, reason", [(_truncate, "unreadable"), (_edit, "checksum mismatch"),
                                            (_old_format, "unreadable: KeyError")])
def test_a_damaged_cache_is_detected_recomputed_and_reported(tmp_path: Path, damage, reason: str) -> None:
    pixels = get_extractor("pixels")
    reference = images(60, 2)
    truth = reference_features(reference, pixels, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    damage(path)
    with pytest.warns(UserWarning, match=f"cache {path} is corrupt \\({reason}"):
        assert np.array_equal(reference_features(reference, pixels, tmp_path), truth)
    assert np.array_equal(reference_features(reference, pixels, tmp_path), truth)  # repaired: no second warning


def test_unknown_extractor_names_the_choices() -> None:
    with pytest.raises(FreqdiffError, match="unknown extractor 'incepton'.*choices: auto, digits_cnn, inception, lenet, pixels"):
        get_extractor("incepton")


def test_inception_offline_fails_with_one_clear_line(offline: Path) -> None:
    with pytest.raises(FreqdiffError, match="extractor 'inception': cannot load .*inception-2015-12-05.pt") as info:
        get_extractor("inception")
    assert "\n" not in str(info.value) and "--extractor.weights" in str(info.value)
    with pytest.raises(FreqdiffError, match="cannot load"):
        get_extractor("inception", weights=str(offline))  # a directory without the file


def test_inception_downloads_only_into_clean_fids_own_folder(offline: Path, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    fresh = tmp_path / "site-packages" / "cleanfid" / "stats"
    monkeypatch.setattr(extractors, "cleanfid_folder", lambda: fresh)
    with pytest.raises(FreqdiffError, match=f"cannot load {fresh / extractors.INCEPTION_FILE}"):
        get_extractor("inception")  # the download (offline here) targets clean-fid's folder, made for it
    assert fresh.is_dir()


def test_inception_never_loads_from_a_world_writable_folder(offline: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    torch.jit.script(FakeInception()).save(str(shared / extractors.INCEPTION_FILE))
    with pytest.raises(FreqdiffError, match=f"{shared} is world-writable"):
        get_extractor("inception", weights=str(shared / extractors.INCEPTION_FILE))
    assert extractors.cleanfid_folder() != Path("/tmp")


@pytest.mark.parametrize("shape, chosen", [((1, 8, 8), "digits_cnn"), ((1, 28, 28), "lenet")])
def test_auto_picks_the_classifier_that_fits_the_images_and_says_so(offline: Path, shape: tuple[int, ...],
                                                                    chosen: str) -> None:
    extractor = get_extractor("auto", image_shape=shape)
    assert extractor.name == chosen and f"'auto' -> '{chosen}'" in extractor.note


def test_auto_falls_back_when_nothing_fits_and_warns(offline: Path) -> None:
    with pytest.warns(UserWarning, match=r"no classifier fits images \(1, 25, 25\).*using 'pixels'"):
        assert get_extractor("auto", image_shape=(1, 25, 25)).name == "pixels"


def test_auto_takes_inception_when_its_weights_are_given_or_in_clean_fids_folder(offline: Path, tmp_path: Path) -> None:
    private = tmp_path / "models"
    private.mkdir(mode=0o755)
    torch.jit.script(FakeInception()).save(str(private / extractors.INCEPTION_FILE))
    given = get_extractor("auto", image_shape=(1, 8, 8), weights=str(private / extractors.INCEPTION_FILE))
    assert given.name == "inception" and "weights given" in given.note
    features = given(images(3, 0))  # grayscale 8x8 -> RGB 299x299 in [0,255] inside
    assert features.shape == (3, 2048) and np.isfinite(features).all()
    torch.jit.script(FakeInception()).save(str(offline / extractors.INCEPTION_FILE))
    assert get_extractor("auto", image_shape=(3, 32, 32)).name == "inception"
    assert get_extractor("auto", image_shape=(1, 8, 8)).name == "digits_cnn"  # the data's own classifier first
