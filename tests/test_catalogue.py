"""The bad-input catalogue: each case through the real CLI, asserting its exit code, its one-line message (no
traceback) and that nothing of the user's was lost; plus the crafted pickles that must never run."""
from __future__ import annotations

import hashlib
import os
import json
import pathlib
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from freqdiff.analysis.reading.curves import METRICS_COLUMNS
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
    # inf passes no range: each was a NaN grid, a silent no-op or a NaN loss mid-training
    "edm sigma_max inf": ({"process": "edm", "process.sigma_max": "inf"},
                          ["process 'edm'.sigma_max: inf is out of range", "a finite number > 0"]),
    "focal alpha inf": ({"regularizer": "focal_frequency", "regularizer.alpha": "inf"},
                        ["regularizer 'focal_frequency'.alpha: inf", "a finite number >= 0"]),
    "lr inf": ({"lr": "inf"}, ["--lr: inf is out of range", "finite"]),
    "grad_clip inf": ({"grad_clip": "inf"}, ["--grad_clip: inf", "finite"]),
    "fixed_t inf": ({"fixed_t": "inf"}, ["--fixed_t: inf", "finite"]),
    "edm P_mean -inf (no declared bound)": ({"process": "edm", "process.P_mean": "-inf"}, ["P_mean: -inf", "finite"]),
    "ve sigma_max inf": ({"process": "ve", "process.sigma_max": "inf"}, ["process 've'.sigma_max: inf"]),
    "fourier weight inf": ({"regularizer": "fourier_penalty", "regularizer.weight": "inf"}, ["weight: inf"]),
    "fourier t_max inf": ({"regularizer": "fourier_penalty", "regularizer.t_max": "inf"}, ["t_max: inf"]),
    "threads huge": ({"threads": "100000000000"}, ["--threads: 100000000000 is out of range", "in [0, 1024]"]),
    "seed 2^64": ({"seed": str(2**64)}, ["--seed: 18446744073709551616", "in [0, 4294967295]"]),
    "sample_seed 2^40": ({"sample_seed": str(2**40)}, ["--sample_seed: 1099511627776", "in [0, 4294967295]"]),
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


PIXELS = np.random.default_rng(0).random((100, 8, 8))  # in [0, 1]: trains as it is
NPZ = {
    "1-d": (np.zeros(10), ["shape (10,)", "expected"]),
    "2-d": (np.zeros((10, 8)), ["shape (10, 8)"]),
    "5-d": (np.zeros((10, 1, 8, 8, 1)), ["shape (10, 1, 8, 8, 1)"]),
    "strings": (np.full((10, 8, 8), "x"), ["<U1 array"]),
    "NaN": (np.full((100, 8, 8), np.nan), ["NaN or infinite"]),
    # pixels outside [0, 1] are refused with the range found and the flag that fixes it, never clamped
    "uint8 without --dataset.scale 255": ((PIXELS * 255).round().astype(np.uint8),
                                          ["(uint8): values span [0, 255]", "pixel range [0, 1]",
                                           "set --dataset.scale 255"]),
    "values near 1e6": (PIXELS * 1e6, ["values span [108.007, 999997]", "set --dataset.scale 1e+06"]),
    "negative values": (PIXELS - 0.5, ["values span [-0.49", "pixels are never negative"]),
    "all zero": (np.zeros((100, 8, 8)), ["every value is 0"]),
}
NPZ_FLAGS = {  # (array, words, flags): a scale that empties every image
    "--dataset.scale inf": (PIXELS, ["dataset 'npz'.scale: inf is out of range", "a finite number > 0"],
                            {"dataset.scale": "inf"}),
    "--dataset.scale 1e300": ((PIXELS * 255).astype(np.uint8), ["divided by --dataset.scale 1e+300",
                                                                 "every value is 0", "set --dataset.scale 255"],
                              {"dataset.scale": "1e300"}),
    "uint16 with --dataset.scale 255": ((PIXELS * 65535).astype(np.uint16), ["(uint16) divided by --dataset.scale 255",
                                                                             "set --dataset.scale 65535"],
                                        {"dataset.scale": "255"}),
}


@pytest.mark.parametrize("name", [*NPZ, *NPZ_FLAGS, "garbage", "truncated"])
def test_bad_npz_is_one_line_naming_the_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.npz"
    array, words, flags = NPZ_FLAGS[name] if name in NPZ_FLAGS else (*NPZ[name], {}) if name in NPZ else (None, [], {})
    if array is not None:
        np.savez(path, images=array)
    else:
        np.savez(path, images=np.random.rand(100, 8, 8))
        path.write_bytes(b"not an npz" if name == "garbage" else path.read_bytes()[:300])
        words = [str(path), "cannot read"]
    before = snapshot(tmp_path)
    refused(capsys, train_argv(tmp_path / "run", dataset="npz", **{"dataset.path": str(path), **flags}), *words)
    assert snapshot(tmp_path) == before


def test_npz_pixels_in_range_train(tmp_path: Path) -> None:
    """The control of the cases above: the same arrays, brought into [0, 1] by their flag, train."""
    np.savez(tmp_path / "data.npz", images=(PIXELS * 255).round().astype(np.uint8))
    flags = {"dataset.path": str(tmp_path / "data.npz"), "dataset.scale": "255", "steps": "2", "first_checkpoint": "2"}
    assert main(train_argv(tmp_path / "run", dataset="npz", **flags)) == 0


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height grayscale pixels and holds none: PIL refuses it at open when it is huge."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("case", ["no images", "only a folder named like an image", "15000x15000 image",
                                  "32-bit float image out of range"])
def test_bad_folder_is_one_line_naming_it(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    words = {"no images": ["no images", str(folder)], "only a folder named like an image": ["no images"],
             "15000x15000 image": [str(folder / "big.png"), "too large to read", "225000000 pixels"],
             "32-bit float image out of range": [str(folder / "f.tif"), "(mode F)", "values span [3, 3]"]}[case]
    if case == "only a folder named like an image":
        (folder / "sub.png").mkdir()
    elif case == "15000x15000 image":
        (folder / "big.png").write_bytes(png_header(15000, 15000))
    elif case == "32-bit float image out of range":
        Image.fromarray(np.full((8, 8), 3.0, np.float32)).save(folder / "f.tif")
    refused(capsys, train_argv(tmp_path / "run", dataset="folder", **{"dataset.path": str(folder)}), *words)
    assert not (tmp_path / "run").exists()


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


# ---- damaged results: named in one line, nothing computed from them ----------------------------------------
def metrics_text(steps: tuple[int, ...] = (5, 20)) -> str:
    """A metrics.csv as evaluate writes it, every value in its range."""
    row = {c: "0.5" for c in METRICS_COLUMNS} | {"fmem": "0.0", "extractor": "pixels", "n_samples": "32", "folds": "4"}
    return "\n".join([",".join(METRICS_COLUMNS), *[",".join({**row, "step": str(s)}.values()) for s in steps]]) + "\n"


def _cell(text: str, line: int, column: str, value: str) -> str:
    lines = text.splitlines()
    cells = lines[line - 1].split(",")
    cells[METRICS_COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


METRICS_DAMAGE = {  # name: (damaged metrics.csv from the good one, words of the one line)
    "undamaged": (lambda t: t, []),
    "truncated row": (lambda t: t[:t.rindex("\n20,") + 30], ["metrics.csv line 3:", "where the header has 28",
                                                              "truncated or damaged"]),
    "number cut mid-way": (lambda t: t[:t.rindex("\n20,") + 6], ["metrics.csv line 3: 2 cells", "header has 28"]),
    "a number's digits garbled": (lambda t: _cell(t, 2, "fid", "8.6e"), ["metrics.csv line 2: fid: expected float",
                                                                          "'8.6e'"]),
    "negative step": (lambda t: _cell(t, 2, "step", "-5"), ["metrics.csv line 2: step: -5 is out of range", ">= 0"]),
    "fractional step": (lambda t: _cell(t, 3, "step", "2.5"), ["line 3: step: expected int, got '2.5'"]),
    "f_mem above 1": (lambda t: _cell(t, 3, "fmem", "1.7"), ["line 3: fmem: 1.7 is out of range", "in [0, 1]"]),
    "inf loss": (lambda t: _cell(t, 2, "loss_train", "inf"), ["loss_train: inf is out of range", "finite"]),
}


@pytest.mark.parametrize("damage", METRICS_DAMAGE)
def test_a_damaged_metrics_table_is_named(damage: str, trained: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained, tmp_path)
    edit, words = METRICS_DAMAGE[damage]
    (run / "metrics.csv").write_text(edit(metrics_text()))
    if damage == "undamaged":  # the control: the same table, undamaged, is read and its window written
        assert main(["window", str(run)]) == 0 and (run / "window.json").is_file()
        return
    before = snapshot(run)
    refused(capsys, ["window", str(run)], str(run / "metrics.csv"), *words)
    assert snapshot(run) == before  # nothing computed from it


CONFIG_DAMAGE = {  # name: (damaged config.json from the good one, words of the one line)
    "n negative": (lambda c: {**c, "data": {**c["data"], "n": -5}}, ["data.n: -5 is out of range", ">= 2"]),
    "n a string": (lambda c: {**c, "data": {**c["data"], "n": "16"}}, ["data.n: expected int, got '16'"]),
    "lr Infinity": (lambda c: {**c, "train": {**c["train"], "lr": float("inf")}}, ["train.lr: inf is out of range"]),
    "a list": (lambda c: [c], ["expected an object of settings", "got a list"]),
    "null": (lambda c: None, ["expected an object of settings", "got null"]),
    "a component without a name": (lambda c: {**c, "dataset": {"params": {}}}, ["dataset: it has no name"]),
    "a component that is a number": (lambda c: {**c, "model": 3}, ["model: expected an object", "got a number"]),
    "a parameter of the wrong type": (lambda c: {**c, "model": {"name": "unet", "params": {"width": "8"}}},
                                      ["model 'unet'.width: expected int, got '8'"]),
}


SHAPES = ("a list", "null")  # eval refuses these before RunConfig.from_dict, in its own words


@pytest.mark.parametrize("damage, command", [(d, c) for d in CONFIG_DAMAGE for c in ("window", "eval")
                                             if c == "window" or d not in SHAPES])
def test_a_damaged_config_json_is_named(damage: str, command: str, trained: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """window reads config.json with the window's reader (load_run), eval with load_run_config: both through
    RunConfig.from_dict, which names the file (eval: by its name) and what is wrong."""
    run = copy_run(trained, tmp_path)
    (run / "metrics.csv").write_text(metrics_text())
    edit, words = CONFIG_DAMAGE[damage]
    (run / "config.json").write_text(json.dumps(edit(json.loads((run / "config.json").read_text()))))
    before = snapshot(run)
    named = str(run / "config.json") if command == "window" else "config.json: "  # eval: the file's name
    refused(capsys, [command, str(run)], named, *words)
    assert snapshot(run) == before


LOG_DAMAGE = {  # name: (log.jsonl's lines -> damaged lines, words of the one line)
    "a line cut before the last": (lambda lines: [lines[0][:9], *lines[1:]], ["log.jsonl line 1: not JSON"]),
    "a line without a step": (lambda lines: [lines[0], '{"loss": 0.5}', *lines[1:]],
                              ["log.jsonl line 2: a record without a step >= 0 (step None)"]),
    "a last line that is a list": (lambda lines: [*lines, "[5]"], ["line 5: not a record (a list)"]),
}


@pytest.mark.parametrize("damage", LOG_DAMAGE)
def test_a_damaged_training_log_is_named_on_resume(damage: str, trained: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged line that a kill cannot make (any but a last line cut short) is named, and the run left as it was."""
    run = copy_run(trained, tmp_path)
    edit, words = LOG_DAMAGE[damage]
    (run / "log.jsonl").write_text("\n".join(edit((run / "log.jsonl").read_text().splitlines())) + "\n")
    before = snapshot(run)
    refused(capsys, train_argv(run), str(run / "log.jsonl"), *words, "repair or delete that line")
    assert snapshot(run) == before


def test_a_log_line_cut_by_a_kill_is_dropped_on_resume(trained: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Killed while writing step 10's record (the state of step 5 saved): resume drops the cut line, says so in one
    line, and the log ends as the uninterrupted run's."""
    run = copy_run(trained, tmp_path)
    shutil.copyfile(run / "states" / "step_00000005.pt", run / "state.pt")
    (run / "state.prev.pt").unlink()
    lines = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text(lines[0] + "\n" + lines[1][:12])
    assert main(train_argv(run)) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "log.jsonl" in line]
    assert notes == [f"freqdiff: warning: {run / 'log.jsonl'}: dropped line 2, cut short when the run was stopped "
                     "(12 characters)"]
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [5, 10, 15, 20]


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


EXTRACTOR_FILES = {"digits_cnn": "digits_cnn.pt", "lenet": "lenet.pt", "inception": "inception-2015-12-05.pt"}
EXTRACTOR_WORDS = {"empty": "unreadable, truncated or not a torch file", "crafted": "refused: it asks to build"}


@pytest.mark.parametrize("content", ["empty", "crafted"])
@pytest.mark.parametrize("extractor", EXTRACTOR_FILES)
def test_bad_extractor_weights_are_one_line_and_never_run(extractor: str, content: str, trained: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The classifiers load through torch_load (weights_only), Inception through TorchScript: no pickle runs, and the
    refusal of the run's first eval comes before it writes anything (eval_config.json included)."""
    run, weights, marker = copy_run(trained, tmp_path), tmp_path / EXTRACTOR_FILES[extractor], tmp_path / "ran"
    weights.write_bytes(b"") if content == "empty" else craft(weights, marker)
    before = snapshot(tmp_path)
    words = ["cannot load", str(weights)] if extractor == "inception" else [str(weights), EXTRACTOR_WORDS[content]]
    refused(capsys, ["eval", str(run), "--extractor", extractor, "--extractor.weights", str(weights)], *words)
    assert not marker.exists() and snapshot(tmp_path) == before


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
