"""cifar10, mnist, fashion_mnist and celeba read from small fake trees in torchvision's layouts: shapes, ranges,
channels, resolution, splits, the one-line refusals, no network unless --dataset.download true; the GPU recipes."""
from __future__ import annotations

import os
import pickle
import runpy
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdiff.core.registry import FreqdiffError
from freqdiff.data import load_dataset
from freqdiff.data.transforms import LUMA

ROOT = Path(__file__).resolve().parents[1]
PER_BATCH = 3  # images per fake CIFAR batch: 15 train, 3 test


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 str (BINSTRING), as CIFAR-10's batches were pickled (read back with latin1)."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(path: Path, obj: object) -> None:
    """`obj` pickled as Python 2 wrote CIFAR-10 (protocol 2, str as bytes, numpy.core's _reconstruct)."""
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)
    path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def write_cifar(root: Path) -> np.ndarray:
    """A fake cifar-10-batches-py/ with PER_BATCH images per batch; returns every image (N, 3072), train first."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (6 * PER_BATCH, 3072), dtype=np.uint8)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        part = images[i * PER_BATCH:(i + 1) * PER_BATCH]
        py2_pickle(folder / name, {b"batch_label": name.encode(), b"labels": [1] * PER_BATCH, b"data": part,
                                   b"filenames": [b"x.png"] * PER_BATCH})
    py2_pickle(folder / "batches.meta", {b"label_names": [b"airplane"], b"num_cases_per_batch": PER_BATCH})
    return images


def write_idx(root: Path, name: str, train: int = 4, test: int = 2) -> dict[str, np.ndarray]:
    """Fake uncompressed idx files under root/name/raw (torchvision's MNIST layout); returns the images per split."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    rng, out = np.random.default_rng(1), {}
    for split, prefix, count in (("train", "train", train), ("test", "t10k", test)):
        out[split] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        header = struct.pack(">iiii", 2051, count, 28, 28)  # idx3: magic (uint8, 3 dims), then the dims
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + out[split].tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, count) + bytes(count))
    return out


CELEBA = [("000001.jpg", 0, 40), ("000002.jpg", 0, 80), ("000003.jpg", 1, 120), ("000004.jpg", 2, 160),
          ("000005.jpg", 2, 200)]  # name, partition, gray level


def write_celeba(root: Path) -> None:
    """A fake celeba/ folder: 5 gray 30x24 JPEGs (top half level - 10, bottom half level + 10) and
    list_eval_partition.txt."""
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for name, _part, level in CELEBA:
        halves = np.repeat([level - 10, level + 10], 15).astype(np.uint8)
        Image.fromarray(np.broadcast_to(halves[:, None, None], (30, 24, 3)).copy()).save(images / name)
    (root / "celeba" / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p, _ in CELEBA))


def test_cifar10_splits_channels_and_resolution(tmp_path: Path) -> None:
    images = torch.from_numpy(write_cifar(tmp_path)).reshape(-1, 3, 32, 32).float() / 255
    root = {"root": str(tmp_path)}
    train = load_dataset("cifar10", root)
    assert train.shape == (5 * PER_BATCH, 3, 32, 32) and train.dtype == torch.float32
    assert torch.equal(train, images[:5 * PER_BATCH])  # batch order, CHW layout, exact at the native size
    assert torch.equal(load_dataset("cifar10", {**root, "split": "test"}), images[5 * PER_BATCH:])
    assert torch.equal(load_dataset("cifar10", {**root, "split": "all"}), images)  # the test batch last
    gray = load_dataset("cifar10", {**root, "grayscale": "true", "limit": "2"})
    assert gray.shape == (2, 1, 32, 32)
    assert torch.allclose(gray[:, 0], torch.einsum("nchw,c->nhw", images[:2], torch.tensor(LUMA)), atol=1e-6)
    small = load_dataset("cifar10", {**root, "resolution": "16"})
    assert small.shape == (5 * PER_BATCH, 3, 16, 16) and 0 <= float(small.min()) and float(small.max()) <= 1
    assert torch.allclose(small.mean((2, 3)), images[:5 * PER_BATCH].mean((2, 3)), atol=0.02)


def test_cifar10_batches_are_unpickled_without_running_code(tmp_path: Path) -> None:
    """A batch that names any global but numpy's array constructors is refused before anything runs."""

    class Payload:
        def __reduce__(self) -> tuple:
            return os.system, (f"touch {tmp_path / 'ran'}",)

    write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({"data": Payload()}, protocol=2))
    with pytest.raises(FreqdiffError, match=r"data_batch_2 as a CIFAR-10 batch: UnpicklingError: refused global "
                                            r"(os|posix)\.system"):
        load_dataset("cifar10", {"root": str(tmp_path)})
    assert not (tmp_path / "ran").exists()
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float32)}, protocol=4))  # arrays load; wrong kind
    with pytest.raises(FreqdiffError, match=r"data_batch_2 holds no CIFAR-10 batch \(expected .*uint8"):
        load_dataset("cifar10", {"root": str(tmp_path)})


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_sets_splits_channels_and_resolution(tmp_path: Path, name: str, folder: str) -> None:
    images = {k: torch.from_numpy(v).float()[:, None] / 255 for k, v in write_idx(tmp_path, folder).items()}
    root = {"root": str(tmp_path)}
    assert torch.equal(load_dataset(name, root), images["train"])  # (4, 1, 28, 28), grayscale by default
    assert torch.equal(load_dataset(name, {**root, "split": "test"}), images["test"])
    assert torch.equal(load_dataset(name, {**root, "split": "all"}), torch.cat([images["train"], images["test"]]))
    rgb = load_dataset(name, {**root, "grayscale": "false", "resolution": "14", "limit": "3"})
    assert rgb.shape == (3, 3, 14, 14) and torch.equal(rgb[:, 0], rgb[:, 2])


def test_mnist_reads_torchvisions_processed_files(tmp_path: Path) -> None:
    """The older layout: MNIST/processed/training.pt and test.pt (torch.load with weights_only, no code run)."""
    (tmp_path / "MNIST" / "processed").mkdir(parents=True)
    data = {f: torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8) for f, n in (("training.pt", 5), ("test.pt", 2))}
    for f, x in data.items():
        torch.save((x, torch.zeros(len(x), dtype=torch.long)), tmp_path / "MNIST" / "processed" / f)
    pool = load_dataset("mnist", {"root": str(tmp_path), "split": "test"})
    assert torch.equal(pool, data["test.pt"][:, None].float() / 255)


def test_celeba_partitions_resolution_and_channels(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    root = {"root": str(tmp_path)}
    pool = load_dataset("celeba", root)  # every image, the paper's 32x32 grayscale, in the partition file's order
    assert pool.shape == (5, 1, 32, 32)
    assert torch.allclose(pool.mean((1, 2, 3)), torch.tensor([lv / 255 for *_, lv in CELEBA]), atol=3 / 255)
    counts = {split: len(load_dataset("celeba", {**root, "split": split, "resolution": "8"}))
              for split in ("train", "valid", "test")}
    assert counts == {"train": 2, "valid": 1, "test": 2}
    rgb = load_dataset("celeba", {**root, "grayscale": "false", "resolution": "12", "split": "test"})
    assert rgb.shape == (2, 3, 12, 12) and torch.allclose(rgb.mean((1, 2, 3)), torch.tensor([160 / 255, 200 / 255]),
                                                          atol=3 / 255)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(FreqdiffError, match="line 1 is not 'IMAGE PARTITION'"):
        load_dataset("celeba", root)


@pytest.mark.parametrize("name, words", [
    ("cifar10", ["no cifar-10-batches-py/ under", "CIFAR10", "data_batch_1", "data_batch_5"]),
    ("mnist", ["no MNIST/raw/ under", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    ("fashion_mnist", ["no FashionMNIST/raw/ under", "train-images-idx3-ubyte"]),
    ("celeba", ["no celeba/ under", "img_align_celeba/", "list_eval_partition.txt"])])
def test_a_missing_tree_is_one_line_and_nothing_is_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             name: str, words: list[str]) -> None:
    """download defaults to False: the message says where to put which files, and no connection is tried."""
    import torchvision.datasets.utils as tv_utils

    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for module in ("utils", "mnist", "cifar", "celeba"):
        for fn in ("download_and_extract_archive", "download_url", "download_file_from_google_drive"):
            monkeypatch.setattr(f"torchvision.datasets.{module}.{fn}", refuse, raising=False)
    assert tv_utils.download_url is refuse
    with pytest.raises(FreqdiffError) as err:
        load_dataset(name, {"root": str(tmp_path)})
    message = str(err.value)
    assert "\n" not in message and message.endswith("or pass --dataset.download true")
    assert all(w in message for w in words) and str(tmp_path) in message
    with pytest.raises(FreqdiffError, match=rf"dataset '{name}'.root: not set; pass --dataset.root DIR"):
        load_dataset(name, {})
    assert not calls and not any(tmp_path.iterdir())


def test_download_true_asks_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--dataset.download true: torchvision's download runs (here faked), then the tree is read; its failure is one
    line."""
    from torchvision.datasets import CIFAR10

    urls: list[str] = []

    def fake_download(url: str, root: str, **_: object) -> None:
        urls.append(url)
        write_cifar(Path(root))

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    assert load_dataset("cifar10", {"root": str(tmp_path), "download": "true"}).shape == (5 * PER_BATCH, 3, 32, 32)
    assert urls == [CIFAR10.url]
    load_dataset("cifar10", {"root": str(tmp_path), "download": "true"})  # present: not downloaded again
    assert urls == [CIFAR10.url]

    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror, got: no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(FreqdiffError, match=r"^dataset 'mnist'.download: torchvision's download failed: Error "
                                            r"downloading train-images-idx3-ubyte.gz: Tried https://"):
        load_dataset("mnist", {"root": str(tmp_path / "m"), "download": "true"})


# ---- recipes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["paper_celeba", "cifar10"])
def test_gpu_recipe_help_and_config_build_on_a_fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], name: str) -> None:
    from freqdiff.commands.sweep import parse_sweep_argv, plan
    from freqdiff.pipeline.build import build_pipeline

    script = ROOT / "recipes" / f"{name}.py"
    assert "ESTIMATES" in script.read_text()  # the docstring states hardware and time, labelled as estimates
    monkeypatch.setattr("sys.argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0 and "--ensemble" in capsys.readouterr().out
    write_celeba(tmp_path) if name == "paper_celeba" else write_cifar(tmp_path)
    argv = ["--recipe", name, "--dataset.root", str(tmp_path), "--n", "2,3", "--test_size", "2", "--out",
            str(tmp_path / "out")]
    runs = plan(*parse_sweep_argv(argv))
    assert [r.n for r in runs] == [2, 3] and not (tmp_path / "out").exists()
    cfg = runs[0].config()
    assert (cfg.data.test_size, cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size) == (2, "sgd", 0.01, 512)
    assert cfg.process.name == "ddpm" and runs[0].flags["steps"] == "2000000"
    pipe = build_pipeline(cfg)
    assert pipe.sampler.steps == 100
    channels = 1 if name == "paper_celeba" else 3
    assert pipe.split.image_shape == (channels, 32, 32)
    assert 4.0e6 < sum(p.numel() for p in pipe.model.parameters()) < 4.1e6  # the paper's U-Net at W = 32
