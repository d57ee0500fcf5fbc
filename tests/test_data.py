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
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(FreqdiffError, match="broken.png"):
        DATASETS.build("folder", {"path": str(tmp_path)})


def test_npz_dataset(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", images=np.random.rand(10, 8, 8).astype(np.float32))
    assert DATASETS.build("npz", {"path": str(tmp_path / "x.npz")}).shape == (10, 1, 8, 8)
    with pytest.raises(FreqdiffError, match="keys: images"):
        DATASETS.build("npz", {"path": str(tmp_path / "x.npz"), "key": "x"})


def test_celeba_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(FreqdiffError, match="celeba"):
        DATASETS.build("celeba", {"root": str(tmp_path)})
