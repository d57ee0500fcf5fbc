"""freqdiff import: a UNet2DModel trained by diffusers' own loop becomes a run that eval and window read unchanged;
what cannot be mapped is refused in one line, leaving nothing written."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from PIL import Image

from freqdiff.cli import main
from freqdiff.core.checkpoint import list_checkpoints, load_checkpoint, load_run_config, load_weights
from freqdiff.data import load_dataset
from freqdiff.metrics.evaluate import read_metrics
from freqdiff.pipeline.build import build_pipeline

STEPS, SAVED = 60, (20, 40, 60)  # optimizer steps, and where train_unconditional's --checkpointing_steps saves
EVAL = ["--n_samples", "32", "--sampler.steps", "5", "--extractor", "pixels", "--loss_draws", "1"]


def write_pngs(folder: Path, images: torch.Tensor) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8), mode="L").save(folder / f"{i:03d}.png")
    return folder


def train_like_diffusers(out: Path, x0: torch.Tensor) -> UNet2DModel:
    """diffusers' train_unconditional, shrunk: add_noise, eps MSE, EMA; checkpoint-STEP/unet(_ema)/ and the final
    DDPMPipeline saved with the EMA weights. Returns the EMA network."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: one thread is fastest, and ~100x faster than two on a shared core
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
                       norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    ema = EMAModel(unet.parameters(), decay=0.9, model_cls=UNet2DModel, model_config=unet.config)
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-3)
    for step in range(1, STEPS + 1):
        noise, t = torch.randn_like(x0), torch.randint(0, 1000, (len(x0),))
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.step(unet.parameters())
        if step in SAVED:
            ema.save_pretrained(out / f"checkpoint-{step}" / "unet_ema")
            unet.save_pretrained(out / f"checkpoint-{step}" / "unet")
    ema.copy_to(unet.parameters())
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(out)
    torch.set_num_threads(threads)
    return unet.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("external")
    digits = load_dataset("digits")
    train = write_pngs(root / "train", digits[:8])
    np.savez(root / "held_out.npz", images=digits[-64:, 0].numpy())
    pixels = load_dataset("folder", {"path": str(train), "resolution": 8})  # what freqdiff reads back from the PNGs
    train_like_diffusers(root / "diffusers", pixels * 2 - 1)
    return {"root": root, "source": root / "diffusers", "train": train, "held_out": root / "held_out.npz"}


def import_args(paths: dict[str, Path], out: Path, *extra: str, source: Path | None = None,
                data: Path | None = None) -> list[str]:
    return ["import", str(source or paths["source"]), "--data", str(data or paths["train"]), "--held_out",
            str(paths["held_out"]), "--out", str(out), *extra]


def test_imported_run_is_measured_by_eval_and_window(trained: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(import_args(trained, run, *EVAL)) == 0
    assert "unet_ema/ at 3 steps" in capsys.readouterr().out  # the final pipeline is checkpoint-60's EMA: no 4th
    assert list_checkpoints(run) == list(SAVED)
    saved = load_checkpoint(run, SAVED[-1])
    assert saved["imported"] == str(trained["source"] / f"checkpoint-{SAVED[-1]}") and saved["ema"] is not None
    record = json.loads((run / "import.json").read_text())
    assert [c["sampled"] for c in record["checkpoints"]] == ["unet_ema"] * 3
    cfg = load_run_config(run)
    assert (cfg.model.name, cfg.process.name, cfg.dataset.name, cfg.data.n, cfg.data.test_size) == \
        ("diffusers_unet", "ddpm", "external", 8, 64)
    pipe = build_pipeline(cfg)
    pixels = load_dataset("folder", {"path": str(trained["train"]), "resolution": 8})
    assert torch.equal(pipe.split.train.sort(0).values, (pixels * 2 - 1).sort(0).values)  # diffusers' [-1, 1]
    load_weights(pipe.model, run, SAVED[-1], use_ema=True)
    ema = UNet2DModel.from_pretrained(trained["source"] / "unet").eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.allclose(pipe.model(x, t), ema(x, t).sample, atol=1e-6)
    capsys.readouterr()
    assert main(["eval", str(run), "--quantize", "true"]) == 2  # uint8 rounding of [-1, 1] data: refused, unwritten
    assert "values in [-1.0, 1.0]" in capsys.readouterr().err and not (run / "eval_config.json").exists()
    assert main(["eval", str(run)]) == 0 and main(["window", str(run)]) == 0
    assert [int(row["step"]) for row in read_metrics(run)] == list(SAVED)
    assert "tau_gen" in json.loads((run / "window.json").read_text())
    assert main(import_args(trained, run, *EVAL)) == 0  # again: the same checkpoints, nothing changes
    assert "0 of 3 steps" in capsys.readouterr().out
    assert main(["refine", str(run)]) == 2 and not (run / "refine").exists()
    assert "imported from diffusers (import.json): refine resumes freqdiff's kept training states" in \
        capsys.readouterr().err


def pipeline_only(paths: dict[str, Path], where: Path, **scheduler: object) -> Path:
    """The final save_pretrained pipeline alone, its scheduler config edited."""
    for name in ("unet", "scheduler"):
        shutil.copytree(paths["source"] / name, where / name)
    shutil.copy(paths["source"] / "model_index.json", where)
    config = where / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **scheduler}))
    return where


@pytest.mark.parametrize("edit, message", [
    ({"prediction_type": "v_prediction"}, "prediction_type 'v_prediction' has no freqdiff equivalent.*choices: "
                                          "epsilon"),
    ({"beta_schedule": "scaled_linear"}, "beta_schedule 'scaled_linear'.*choices: linear, squaredcos_cap_v2"),
    ({"_class_name": "PNDMScheduler"}, "scheduler 'PNDMScheduler'.*choices: DDPMScheduler, DDIMScheduler"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr true .*choices: false")])
def test_schedulers_without_an_equivalent_are_refused(trained: dict[str, Path], tmp_path: Path, edit: dict,
                                                        message: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = pipeline_only(trained, tmp_path / "pipeline", **edit)
    out = tmp_path / "run"
    assert main(import_args(trained, out, "--final_step", "60", source=source)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err)
    assert not out.exists()


def test_cosine_scheduler_maps_to_ddpm_cosine(trained: dict[str, Path], tmp_path: Path) -> None:
    source = pipeline_only(trained, tmp_path / "pipeline", beta_schedule="squaredcos_cap_v2", num_train_timesteps=500)
    run = tmp_path / "run"
    assert main(import_args(trained, run, "--final_step", "60", "--process.T", "400", source=source)) == 0
    process = load_run_config(run).process
    assert (process.name, process.params["schedule"], process.params["T"]) == ("ddpm", "cosine", 400)  # flag wins
    assert list_checkpoints(run) == [60] and load_checkpoint(run, 60)["ema"] is None


def test_final_pipeline_needs_its_step_unless_it_is_the_last_checkpoint(trained: dict[str, Path], tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "diffusers"
    shutil.copytree(trained["source"], source)
    shutil.rmtree(source / "unet")
    shutil.copytree(source / "checkpoint-20" / "unet", source / "unet")  # weights of no checkpoint's EMA
    assert main(import_args(trained, tmp_path / "a", source=source)) == 0
    assert "left out (pass --final_step S" in capsys.readouterr().out
    assert list_checkpoints(tmp_path / "a") == [20, 40, 60]
    assert main(import_args(trained, tmp_path / "b", "--final_step", "80", source=source)) == 0
    assert list_checkpoints(tmp_path / "b") == [20, 40, 60, 80] and load_checkpoint(tmp_path / "b", 80)["ema"] is None
    assert main(import_args(trained, tmp_path / "c", "--final_step", "40", source=source)) == 2
    assert "checkpoint-40 holds other weights" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_bad_inputs_are_refused_writing_nothing(trained: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    no_config = tmp_path / "empty"
    (no_config / "unet").mkdir(parents=True)
    big = write_pngs(tmp_path / "big", torch.rand(8, 1, 16, 16))
    shutil.copytree(trained["source"] / "checkpoint-20", tmp_path / "checkpoints" / "checkpoint-20")
    out = tmp_path / "run"
    cases = [(import_args(trained, out, source=no_config), "holds no model config"),
             (import_args(trained, out, source=tmp_path / "checkpoints"), "no scheduler/scheduler_config.json"),
             (import_args(trained, out, data=big), "is 16x16, but the network takes 8x8"),
             (import_args(trained, out, "--n", "20"), "holds 8 images, fewer than the 20"),
             (import_args(trained, out, "--process", "edm"), "choices: ddpm"),
             (import_args(trained, out, "--lr", "0.1"), "unknown option --lr")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_help_lists_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "--help"]) == 0
    shown = capsys.readouterr().out
    assert all(f"--{name}" in shown for name in ("data", "held_out", "out", "n", "final_step", "process"))


@pytest.mark.parametrize("compressed", [False, True])
def test_an_npz_is_counted_from_its_header_without_loading_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              compressed: bool) -> None:
    from freqdiff.data import external
    path = tmp_path / "set.npz"
    (np.savez_compressed if compressed else np.savez)(path, images=np.zeros((37, 8, 8), np.float32))
    params = external.ExternalParams(train=str(path))
    monkeypatch.setattr(external, "_npz", lambda *_: pytest.fail("the array was loaded to count it"))
    assert external.image_count(str(path), params, "train") == 37
    with pytest.raises(pytest.fail.Exception):  # a missing key is read in full, so that the loader names it
        external.image_count(str(path), external.ExternalParams(train=str(path), key="pixels"), "train")
