"""Datasets, the held-out split, nested and disjoint subsets, centering, and their errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdiff.core.registry import FreqdiffError
from freqdiff.data import DATASETS, make_split


@pytest.mark.parametrize("name, shape", [("digits", (1797, 1, 8, 8)), ("mnist5k", (5000, 1, 28, 28)),
                                         ("lfw_faces", (100, 1, 25, 25))])
def test_embedded_datasets_load_offline_in_unit_range(name: str, shape: tuple) -> None:
    pool = DATASETS.build(name)
    assert tuple(pool.shape) == shape
    assert pool.min() >= 0 and pool.max() <= 1 and pool.max() > 0.9


def test_resize_param() -> None:
    assert DATASETS.build("mnist5k", {"resize": "16"}).shape[-2:] == (16, 16)


def test_nested_subsets_contain_smaller_ones_and_test_set_is_fixed() -> None:
    pool = DATASETS.build("digits")
    small, large = make_split(pool, 16, 100), make_split(pool, 32, 100)
    assert set(small.train_indices.tolist()) <= set(large.train_indices.tolist())
    assert torch.equal(small.test + small.mean.reshape(1, -1, 1, 1), pool[-100:])
    assert not set(small.train_indices.tolist()) & set(range(len(pool) - 100, len(pool)))


def test_disjoint_subsets_are_the_papers_blocks() -> None:
    pool = DATASETS.build("digits")
    a, b = make_split(pool, 16, 100, "disjoint", 0), make_split(pool, 16, 100, "disjoint", 1)
    assert a.train_indices.tolist() == list(range(16)) and b.train_indices.tolist() == list(range(16, 32))


def test_centering_subtracts_the_training_mean_per_channel() -> None:
    split = make_split(DATASETS.build("digits"), 64, 100)
    assert abs(float(split.train.mean())) < 1e-6
    raw = make_split(DATASETS.build("digits"), 64, 100, center=False)
    assert torch.equal(raw.mean, torch.zeros(1))


@pytest.mark.parametrize("n, words", [(5000, ["--n", "5000", "1697"]), (1, ["--n", "1"])])
def test_bad_n(n: int, words: list[str]) -> None:
    with pytest.raises(FreqdiffError) as err:
        make_split(DATASETS.build("digits"), n, 100)
    assert all(w in str(err.value) for w in words)


def test_folder_dataset_crops_resizes_and_grays(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    pool = DATASETS.build("folder", {"path": str(tmp_path), "resolution": "16"})
    assert pool.shape == (3, 1, 16, 16)
    assert torch.allclose(pool[2], torch.full((1, 16, 16), 120 / 255), atol=2 / 255)


def test_folder_errors_empty_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FreqdiffError, match="no images"):
        DATASETS.build("folder", {"path": str(tmp_path)})
    (tmp_path / "folder.png").mkdir()  # a folder is no image, whatever its name
    with pytest.raises(FreqdiffError, match="no images"):
        DATASETS.build("folder", {"path": str(tmp_path)})
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(FreqdiffError, match="broken.png"):
        DATASETS.build("folder", {"path": str(tmp_path)})


def test_npz_dataset(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", images=np.random.rand(10, 8, 8).astype(np.float32))
    assert DATASETS.build("npz", {"path": str(tmp_path / "x.npz")}).shape == (10, 1, 8, 8)
    with pytest.raises(FreqdiffError, match="keys: images"):
        DATASETS.build("npz", {"path": str(tmp_path / "x.npz"), "key": "x"})


def test_sixteen_bit_pngs_are_read_at_sixteen_bits(tmp_path: Path) -> None:
    """A 16-bit grayscale PNG (PIL mode I;16) is divided by 65535; converting it to 8-bit L saturated nearly every
    pixel to white."""
    levels = (1000, 20000, 50000)
    for i, level in enumerate(levels):
        Image.fromarray(np.full((40, 50), level, dtype=np.uint16)).save(tmp_path / f"{i}.png")
    assert Image.open(tmp_path / "0.png").mode.startswith("I")
    for grayscale, channels in (("true", 1), ("false", 3)):
        pool = DATASETS.build("folder", {"path": str(tmp_path), "resolution": "16", "grayscale": grayscale})
        assert pool.shape == (3, channels, 16, 16)
        expected = torch.tensor(levels, dtype=torch.float32) / 65535
        assert torch.allclose(pool.flatten(1).mean(1), expected, atol=1e-4)


def test_pixels_out_of_range_are_refused_never_clamped(tmp_path: Path) -> None:
    from freqdiff.data import check_values, load_dataset

    pool = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert check_values(pool, "here") is pool  # in range: the pool itself, untouched
    for bad, words in ((pool * 2, "values span [0.0"), (pool - 0.5, "values span [-0.4"),
                       (torch.full((10, 1, 4, 4), 0.5), "every value is 0.5")):
        with pytest.raises(FreqdiffError, match=r"here: ") as err:
            check_values(bad, "here", fix="set --x 2")
        assert words in str(err.value) and str(err.value).endswith("; set --x 2")
    assert check_values(pool * 5, "points", declared=None) is not None  # data that declare no range: any value
    np.savez(tmp_path / "u8.npz", images=(np.random.default_rng(0).random((10, 8, 8)) * 255).round().astype(np.uint8))
    with pytest.raises(FreqdiffError, match=r"\(uint8\): values span \[0, 255\], .*set --dataset.scale 255"):
        load_dataset("npz", {"path": str(tmp_path / "u8.npz")})
    scaled = load_dataset("npz", {"path": str(tmp_path / "u8.npz"), "scale": "255"})
    assert 0 <= float(scaled.min()) and float(scaled.max()) <= 1


def test_gaussian_mixture_declares_no_pixel_range_and_is_never_clamped() -> None:
    """Its points lie in R^d: the quality measures see them as they are (78% of its coordinates were clamped to [0, 1]
    before the FD); image data are still clamped to [0, 1] (a sample may overshoot)."""
    from freqdiff.core.config import RunConfig, apply_flags
    from freqdiff.data import PIXELS, value_range
    from freqdiff.pipeline.build import load_split

    assert value_range("gaussian_mixture") is None and value_range("digits") == PIXELS == (0.0, 1.0)
    split = load_split(apply_flags(RunConfig(), {"dataset": "gaussian_mixture", "n": "16", "test_size": "64"}))
    raw = DATASETS.build("gaussian_mixture")[-64:]
    assert split.value_range is None and torch.allclose(split.to_unit(split.test), raw, atol=1e-6)
    assert ((raw < 0) | (raw > 1)).float().mean() > 0.5
    images = make_split(DATASETS.build("digits"), 16, 100)
    assert float(images.to_unit(images.test * 10).max()) == 1.0 and float(images.to_unit(images.test * 10).min()) == 0.0
