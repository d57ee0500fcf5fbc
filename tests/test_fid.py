"""FID/KID through clean-fid, the extractor registry, and the keyed reference-statistics cache."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import cleanfid.fid
import cleanfid.inception_torchscript
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqdiff.metrics import Extractor, compute_fid, get_extractor
from freqdiff.metrics import extractors
from freqdiff.metrics.fid import stats_key
from freqdiff.metrics.lenet import accuracy, load_lenet, mnist_digits
from freqdiff.registry import FreqdiffError


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
    """An empty clean-fid cache and no network: downloading Inception fails as it does here."""
    def no_network(fpath: str = "./") -> str:
        path = Path(fpath) / extractors.INCEPTION_FILE
        if not path.is_file():
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return str(path)

    monkeypatch.setattr(extractors, "CLEANFID_CACHE", tmp_path)
    monkeypatch.setattr(cleanfid.inception_torchscript, "check_download_inception", no_network)
    return tmp_path


def test_clean_fid_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert cleanfid.fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_compute_fid_calls_clean_fid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    monkeypatch.setattr(cleanfid.fid, "frechet_distance", lambda *args, **kw: calls.append("fid") or 12.5)
    monkeypatch.setattr(cleanfid.fid, "kernel_distance", lambda *args, **kw: calls.append("kid") or 0.25)
    result = compute_fid(images(50, 0), images(60, 1), get_extractor("pixels"), cache_dir=tmp_path)
    assert calls == ["fid", "kid"]
    assert (result.fid, result.kid, result.extractor, result.n_samples, result.n_reference) == (12.5, 0.25, "pixels", 50, 60)


def test_cached_statistics_give_clean_fids_fid_from_feats(tmp_path: Path) -> None:
    pixels = get_extractor("pixels")
    samples, reference = images(300, 0), images(300, 1)
    expected = cleanfid.fid.fid_from_feats(pixels(samples), pixels(reference))
    assert compute_fid(samples, reference, pixels, cache_dir=tmp_path, kid_subsets=5).fid == pytest.approx(expected, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_norm(tmp_path: Path) -> None:
    reference = images(400, 0)
    pixels = get_extractor("pixels")
    assert abs(compute_fid(reference, reference, pixels, cache_dir=tmp_path, kid_subsets=5).fid) < 1e-6
    for shift in (0.1, 0.3):  # same covariance: FID = ||mu1 - mu2||^2 = 64 shift^2
        fid = compute_fid(reference + shift, reference, pixels, cache_dir=tmp_path, kid_subsets=5).fid
        assert fid == pytest.approx(64 * shift**2, rel=1e-3)


def test_lenet_fid_grows_with_a_shift(tmp_path: Path) -> None:
    reference = images(300, 0, size=16)
    lenet = get_extractor("lenet")
    fids = [compute_fid(reference + s, reference, lenet, cache_dir=tmp_path, kid_subsets=5).fid for s in (0, 0.1, 0.3)]
    assert abs(fids[0]) < 1e-3 < fids[1] < fids[2]


def test_lenet_features_are_learned_digit_features(tmp_path: Path) -> None:
    x, y = mnist_digits()
    assert accuracy(load_lenet(), x, y) > 0.95
    zeros, ones, lenet = x[y == 0], x[y == 1], get_extractor("lenet")
    same_class = compute_fid(zeros[:250], zeros[250:], lenet, cache_dir=tmp_path, kid_subsets=5).fid
    other_class = compute_fid(ones[:250], zeros[250:], lenet, cache_dir=tmp_path, kid_subsets=5).fid
    assert same_class * 5 < other_class


def test_reference_statistics_cache_hits_and_is_keyed_by_content(tmp_path: Path) -> None:
    pixels = get_extractor("pixels")
    embedded = []
    counting = Extractor("pixels", pixels.key, lambda x: embedded.append(len(x)) or pixels.embed(x))
    samples, reference = images(100, 0), images(120, 1)
    first = compute_fid(samples, reference, counting, cache_dir=tmp_path)
    assert embedded == [120, 100] and len(list(tmp_path.glob("*.npz"))) == 1
    second = compute_fid(samples, reference, counting, cache_dir=tmp_path)
    assert embedded == [120, 100, 100] and second == first
    assert [p.name for p in tmp_path.iterdir()] == [f"{stats_key(reference, pixels)}.npz"]  # no temporary left
    changed = reference.clone()
    changed[0, 0, 0, 0] += 0.01
    assert stats_key(changed, pixels) != stats_key(reference, pixels)
    assert stats_key(reference, get_extractor("lenet")) != stats_key(reference, pixels)


def test_kid_is_seeded_and_leaves_numpys_global_rng_alone(tmp_path: Path) -> None:
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    pixels = get_extractor("pixels")
    kids = {compute_fid(images(80, 0), images(90, 1), pixels, cache_dir=tmp_path).kid for _ in range(2)}
    assert len(kids) == 1 and np.array_equal(np.random.get_state()[1], state)


def test_images_outside_unit_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FreqdiffError, match=r"\[0,1\].*un-center"):
        compute_fid(images(10, 0) - 0.5, images(10, 1), get_extractor("pixels"), cache_dir=tmp_path)


def test_unknown_extractor_names_the_choices() -> None:
    with pytest.raises(FreqdiffError, match="unknown extractor 'incepton'.*choices: auto, inception, lenet, pixels"):
        get_extractor("incepton")


def test_inception_offline_fails_with_one_clear_line(offline: Path) -> None:
    with pytest.raises(FreqdiffError, match="extractor 'inception': cannot load .*inception-2015-12-05.pt") as info:
        get_extractor("inception")
    assert "\n" not in str(info.value) and "extractor.weights" in str(info.value)
    with pytest.raises(FreqdiffError, match="cannot load"):
        get_extractor("inception", weights=str(offline))  # a directory without the file


def test_auto_falls_back_to_an_offline_extractor_and_says_so(offline: Path) -> None:
    with pytest.warns(UserWarning, match="no Inception weights.*using 'lenet'"):
        assert get_extractor("auto").name == "lenet"
    with pytest.warns(UserWarning, match="using 'pixels'"):
        assert get_extractor("auto", fallback="pixels").name == "pixels"


def test_auto_picks_inception_from_a_local_weights_file(offline: Path) -> None:
    torch.jit.script(FakeInception()).save(str(offline / extractors.INCEPTION_FILE))
    inception = get_extractor("auto")
    assert inception.name == "inception"
    features = inception(images(3, 0))  # grayscale 8x8 -> RGB 299x299 in [0,255] inside
    assert features.shape == (3, 2048) and np.isfinite(features).all()
