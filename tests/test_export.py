"""`freqdiff export`: a diffusers_unet DDPM run as a diffusers pipeline folder that DDPMPipeline and DDIMPipeline load
and sample, whose UNet computes what freqdiff's network computes; refusals write nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler

from conftest import tiny_config
from freqdiff.cli import main
from freqdiff.commands.export import scheduler_config
from freqdiff.core.checkpoint import load_weights, run_record
from freqdiff.core.io import TEMP_MARK, write_json
from freqdiff.pipeline.build import Pipeline, build_pipeline
from freqdiff.samplers.base import Denoiser
from freqdiff.samplers.ddim import ddim
from freqdiff.train.trainer import train

RUN = {"model": "diffusers_unet", "steps": "20", "save_every": "10", "n_checkpoints": "2", "first_checkpoint": "10",
       "ema": "0.9", "grid_size": "1"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tiny_config(**RUN), tmp_path_factory.mktemp("export") / "run")


def test_export_loads_in_both_pipelines_and_matches_freqdiff(run: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipe"
    killed = tmp_path / f".pipe.999999999-abcd1234{TEMP_MARK}"  # the folder of an export killed mid-write
    (killed / "unet").mkdir(parents=True)
    assert main(["export", str(run), "--out", str(out), "--step", "10"]) == 0
    assert "step 10 (ema weights)" in capsys.readouterr().out and not killed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
    record = json.loads((out / "export.json").read_text())
    assert record["step"] == 10 and record["weights"] == "ema" and len(record["mean"]) == 1
    for pipeline in (DDPMPipeline, DDIMPipeline):
        loaded = pipeline.from_pretrained(out)
        images = loaded(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                        output_type="np").images
        assert images.shape == (2, 8, 8, 1) and bool(np.isfinite(images).all())
    pipe = build_pipeline(tiny_config(**RUN))
    load_weights(pipe.model, run, 10, use_ema=True)
    x, t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 500, 999])
    with torch.no_grad():
        ours, theirs = pipe.model.eval()(x, t), loaded.unet(x, t).sample
    assert (ours - theirs).abs().max().item() < 1e-5
    assert loaded.scheduler.config.beta_schedule == "linear" and loaded.scheduler.config.num_train_timesteps == 1000
    assert ddim_gap(pipe, loaded, x) < 1e-4


def ddim_gap(pipe: Pipeline, loaded: DDIMPipeline, x_T: torch.Tensor, steps: int = 4) -> float:
    """Largest difference between freqdiff's ddim and the exported DDIM scheduler's loop, both unclipped, on the
    scheduler's grid (the exported betas and grid are freqdiff's)."""
    scheduler = DDIMScheduler.from_config(loaded.scheduler.config, clip_sample=False)
    scheduler.set_timesteps(steps)
    x = x_T
    with torch.no_grad():
        ours = ddim(Denoiser(pipe.model, pipe.process), x_T, scheduler.timesteps)
        for t in scheduler.timesteps:
            x = scheduler.step(loaded.unet(x, t).sample, t, x, eta=0.0).prev_sample
    return (ours - x).abs().max().item()


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_scheduler_has_the_runs_noise_levels(schedule: str) -> None:
    cfg = tiny_config(**RUN, **{"process.schedule": schedule})
    pipe = build_pipeline(cfg)
    scheduler = DDPMScheduler(**scheduler_config(cfg, pipe))
    assert torch.allclose(scheduler.alphas_cumprod, pipe.process.alphabar, rtol=1e-4, atol=1e-7)


def test_refusals_name_the_reason_and_write_nothing(run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for name, flags in (("mlp", {"model": "mlp"}), ("edm", {**RUN, "process": "edm"})):
        write_json(tmp_path / name / "config.json", run_record(tiny_config(**flags)))
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    cases = [
        ([str(tmp_path / "mlp")], "model 'mlp' has no diffusers equivalent; export needs --model diffusers_unet"),
        ([str(tmp_path / "edm")], "process 'edm' has no matching diffusers scheduler"),
        ([str(run), "--step", "7"], "--step 7 is not a checkpoint of"),
        ([str(run)], "is not empty"),
    ]
    for argv, words in cases:
        out = full if words == "is not empty" else tmp_path / "out"
        assert main(["export", *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists() and [p.name for p in full.iterdir()] == ["keep.txt"]
    assert "choices: 10, 20" in _error(["export", str(run), "--step", "7", "--out", str(tmp_path / "o")], capsys)
    assert "--out DIR is required" in _error(["export", str(run)], capsys)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err
