"""The bad-input catalogue: each case through the real CLI, asserting its exit code, its one-line message (no
traceback) and that nothing of the user's was lost; plus the crafted pickles that must never run."""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from freqdiff.cli import main

FAST = {"n": "8", "test_size": "64", "steps": "20", "first_checkpoint": "5", "n_checkpoints": "2",
        "save_every": "5", "log_every": "5", "sampler.steps": "5", "n_samples": "32", "extractor": "pixels",
        "loss_draws": "1", "grid_size": "4"}


def train_argv(out: Path, **flags: str) -> list[str]:
    merged = {**FAST, **flags}
    return ["train", "--out", str(out), *[t for k, v in merged.items() for t in (f"--{k}", v)]]


def snapshot(root: Path) -> dict[str, str]:
    """Every file below root (hidden ones too) with the sha256 of its bytes."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """Run the CLI, expect exit code 2 and, as the last line of stderr (after any progress bar), the one line
    `freqdiff CMD: error: ...` holding every word."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    line = err.splitlines()[-1]
    assert code == 2, err
    assert line.startswith(f"freqdiff {argv[0]}: error: ") and err.count("error:") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run whose path holds a byte that is not UTF-8, made by the corrected rerun of a refused
    command: the refusal (--model.width 7) must leave nothing that blocks it."""
    run = tmp_path_factory.mktemp("runs") / os.fsdecode(b"run-\xff")
    assert main(train_argv(run, **{"model.width": "7"})) == 2
    assert not run.exists()
    assert main(train_argv(run)) == 0
    assert sorted(int(p.stem[5:]) for p in (run / "checkpoints").glob("step_*.pt")) == [5, 20]
    return run


def copy_run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


# ---- settings refused before anything is written -----------------------------------------------------------
CASES = {
    "sampler steps 0": ({"sampler.steps": "0"}, ["sampler 'ddim'.steps: 0", ">= 2"]),
    "sampler steps above T": ({"sampler.steps": "1001"}, ["--sampler.steps 1001 exceeds --process.T 1000"]),
    "T 10 leaves x_T mostly signal": ({"process.T": "10"}, ["95% signal", "--process.T"]),
    "beta_end 1.5": ({"process.beta_end": "1.5"}, ["beta_end: 1.5", "in (0, 1)"]),
    "batch_size 0": ({"batch_size": "0"}, ["--batch_size: 0", ">= 1"]),
    "save_every 0": ({"save_every": "0"}, ["--save_every: 0", ">= 1"]),
    "log_every 0": ({"log_every": "0"}, ["--log_every: 0", ">= 1"]),
    "loss_draws 0": ({"loss_draws": "0"}, ["--loss_draws: 0", ">= 1"]),
    "spectral_bands 0": ({"spectral_bands": "0"}, ["--spectral_bands: 0", ">= 1"]),
    "lr nan": ({"lr": "nan"}, ["--lr: nan is not a number"]),
    "fourier cutoff 0.8 above the 8x8 grid": ({"regularizer": "fourier_penalty", "regularizer.cutoff": "0.8"},
                                              ["--regularizer.cutoff 0.8", "8x8", "(0, 0.707)"]),
    "filter cutoff 0.75": ({"regularizer": "spectral_filter", "regularizer.cutoff": "0.75"}, ["0.75", "(0, 0.707)"]),
    "weighted-loss cutoff 1": ({"regularizer": "frequency_weighted_loss", "regularizer.cutoff": "1"}, ["(0, 0.707)"]),
    "fp16 on a CPU": ({"mixed_precision": "fp16"}, ["--mixed_precision fp16 needs a GPU", "cpu", "no, bf16"]),
    "width 7": ({"model.width": "7"}, ["model 'unet'.width: 7 is not a positive multiple of 8"]),
    "unknown extractor": ({"extractor": "pixelz"}, ["pixelz", "pixels"]),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_setting_is_one_line_and_writes_nothing(name: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    flags, words = CASES[name]
    refused(capsys, train_argv(tmp_path / "run", **flags), *words)
    assert list(tmp_path.iterdir()) == []


def test_a_longer_chain_trains_its_step_table_follows_the_process(tmp_path: Path) -> None:
    """--process.T 2000 once failed in the U-Net's 1000-row table; the table is now the process's own."""
    assert main(train_argv(tmp_path / "run", **{"process.T": "2000", "steps": "2"})) == 0


NPZ = {
    "1-d": (np.zeros(10), ["shape (10,)", "expected"]),
    "2-d": (np.zeros((10, 8)), ["shape (10, 8)"]),
    "5-d": (np.zeros((10, 1, 8, 8, 1)), ["shape (10, 1, 8, 8, 1)"]),
    "strings": (np.full((10, 8, 8), "x"), ["<U1 array"]),
    "NaN": (np.full((100, 8, 8), np.nan), ["NaN or infinite"]),
}


@pytest.mark.parametrize("name", [*NPZ, "garbage", "truncated"])
def test_bad_npz_is_one_line_naming_the_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.npz"
    if name in NPZ:
        np.savez(path, images=NPZ[name][0])
    else:
        np.savez(path, images=np.random.rand(100, 8, 8))
        path.write_bytes(b"not an npz" if name == "garbage" else path.read_bytes()[:300])
    words = NPZ[name][1] if name in NPZ else [str(path), "cannot read"]
    before = snapshot(tmp_path)
    refused(capsys, train_argv(tmp_path / "run", dataset="npz", **{"dataset.path": str(path)}), *words)
    assert snapshot(tmp_path) == before


def test_submitit_without_a_scheduler_fails_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--recipe", "baseline", "--n", "8", "--seeds", "0", "--steps_per_n", "0", "--launcher", "submitit",
            "--out", str(tmp_path / "sweep"), *[t for k, v in FAST.items() if k != "n" for t in (f"--{k}", v)]]
    refused(capsys, argv, "--launcher submitit: no SLURM scheduler reachable")
    assert not (tmp_path / "sweep").exists()


# ---- the user's files --------------------------------------------------------------------------------------
def test_out_on_a_users_directory_is_refused_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "log.jsonl").write_text('{"my": "notes"}\n')
    (mine / "checkpoints" / "step_00000020.pt").write_bytes(b"my weights")
    before = snapshot(mine)
    refused(capsys, train_argv(mine), str(mine), "not a freqdiff run", "checkpoints, log.jsonl")
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["checkpoints", "log.jsonl"]
    (tmp_path / "file").write_text("x")
    refused(capsys, train_argv(tmp_path / "file"), "is a file")


def test_a_run_of_another_config_is_refused_untouched(trained: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    refused(capsys, train_argv(run, lr="0.002"), "different config", "train.lr")
    assert snapshot(run) == before


def test_a_damaged_config_is_named(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained, tmp_path)
    (run / "config.json").write_text('{"data": ')
    refused(capsys, ["eval", str(run)], "config.json", "not a valid freqdiff config")


# ---- damaged and crafted checkpoints and states -------------------------------------------------------------
class RunsCode:
    """Unpickling this calls Path.touch(marker): a stand-in for any code a downloaded file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def craft(path: Path, marker: Path) -> None:
    """A torch file that looks like a checkpoint and runs code when loaded with weights_only=False."""
    torch.save({"step": 5, "model": RunsCode(marker), "ema": None, "optimizer": {}}, path)


def test_the_crafted_file_does_run_code_when_unpickled(tmp_path: Path) -> None:
    """The control: the file of the next tests is really malicious (torch.load without weights_only runs it)."""
    craft(tmp_path / "evil.pt", tmp_path / "ran")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "ran").exists()


def test_a_crafted_checkpoint_never_runs_on_eval(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, marker = copy_run(trained, tmp_path), tmp_path / "ran"
    craft(run / "checkpoints" / "step_00000005.pt", marker)
    refused(capsys, ["eval", str(run)], "step_00000005.pt", "refused", "freqdiff loads only tensors")
    assert not marker.exists()


def test_a_crafted_state_never_runs_on_resume(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, marker = copy_run(trained, tmp_path), tmp_path / "ran"
    for name in ("state.pt", "state.prev.pt"):
        craft(run / name, marker)
    refused(capsys, train_argv(run), "state.pt: refused", "state.prev.pt: refused")
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "altered"])
def test_a_damaged_checkpoint_is_named(damage: str, trained: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained, tmp_path)
    path = run / "checkpoints" / "step_00000005.pt"
    if damage == "altered":  # a valid torch file whose weights were edited after it was written
        saved = torch.load(path, weights_only=True)
        next(iter(saved["model"].values())).add_(1.0)
        torch.save(saved, path)
    else:
        path.write_bytes(path.read_bytes()[:1000] if damage == "truncated" else b"garbage" * 100)
    word = "checksum mismatch" if damage == "altered" else "unreadable, truncated or not a torch file"
    refused(capsys, ["eval", str(run)], str(path), word)


def test_a_damaged_newest_state_falls_back_to_the_previous_one_and_says_so(trained: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run, marker = copy_run(trained, tmp_path), tmp_path / "ran"
    craft(run / "state.pt", marker)
    previous_step = torch.load(run / "state.prev.pt", weights_only=True)["step"]
    assert main(train_argv(run)) == 0
    err = capsys.readouterr().err
    assert "state.pt: refused" in err and f"resuming from {run / 'state.prev.pt'} (step {previous_step})" in err
    assert not marker.exists() and (run / "state.pt.corrupt").exists()
    final = torch.load(run / "state.pt", weights_only=True)["model"]
    reference = torch.load(trained / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(final[k], reference[k]) for k in reference)  # retrained from the fallback, bit for bit


def test_a_truncated_state_without_fallback_is_named(trained: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained, tmp_path)
    (run / "state.prev.pt").unlink()
    (run / "state.pt").write_bytes((run / "state.pt").read_bytes()[:2000])
    before = snapshot(run)
    refused(capsys, train_argv(run), str(run / "state.pt"), "truncated", "no previous state to fall back to")
    assert snapshot(run) == before
