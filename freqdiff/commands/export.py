"""`freqdiff export RUN [--step S] --out DIR`: a trained diffusers_unet DDPM run as a diffusers pipeline folder.

DIR holds model_index.json, unet/ (the UNet2DModel's config.json and weights) and scheduler/ (a DDPMScheduler with
the run's betas: linear beta_start..beta_end over T steps, or cosine as "squaredcos_cap_v2"; epsilon prediction;
"trailing" timesteps), loadable by DDPMPipeline.from_pretrained and DDIMPipeline.from_pretrained. Trailing grids
start at step T-1, as freqdiff's, and are the ones diffusers' DDIM steps through consistently (it steps back by
T // steps, which "linspace" grids break): with a step count that divides T, DDIMPipeline's unclipped sampler is
freqdiff's ddim on that grid, equal to float rounding. The weights are the checkpoint's EMA when it has them and the
run samples from them (eval.use_ema), as freqdiff's eval does; export.json says which, and names the run, its config
hash and the step.

The pipeline samples in the run's training space: pixels in [0, 1] less the per-channel training mean m (stored in
export.json; 0 when data.center is false). diffusers maps a sample x to x / 2 + 0.5, so pixels = 2 * image - 1 + m.
When the run's sampler clamps x0_hat (clip_x0), the scheduler clamps it to [-r, r], the smallest symmetric interval
around the training pixels' range (diffusers clamps symmetrically only). Written into a temporary folder beside DIR,
renamed into place when complete: a killed export leaves no partial DIR.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqdiff.core.checkpoint import (checkpoint_path, config_run_hash, list_checkpoints, load_checkpoint, load_into,
                                      load_run_config)
from freqdiff.core.config import RunConfig, split_argv
from freqdiff.core.io import TEMP_MARK, make_dir, remove_leftovers, write_json
from freqdiff.commands.external import BETA_SCHEDULES
from freqdiff.core.registry import FreqdiffError, build_params, option_lines, param
from freqdiff.models.diffusers_unet import DiffusersUNet, import_diffusers
from freqdiff.models.preconditioned import Preconditioned
from freqdiff.pipeline.build import Pipeline, build_pipeline


@dataclass(frozen=True)
class ExportOptions:
    """The options of `freqdiff export`."""

    out: str | None = None
    step: int = param(0, ge=0)


OPTION_HELP = {"out": "the pipeline folder to write (new or empty; required)",
               "step": "the checkpoint to export (0: the last)"}


def export_help() -> str:
    """`freqdiff export --help`."""
    return "\n".join(["usage: freqdiff export RUN_DIR --out DIR [--step S]   -> DIR: a diffusers pipeline folder "
                      "(unet/, scheduler/, model_index.json, export.json)",
                      "  loadable by DDPMPipeline.from_pretrained(DIR) and DDIMPipeline.from_pretrained(DIR);",
                      "  needs a run of --model diffusers_unet --process ddpm; EMA weights when the run has them",
                      "  it samples pixels less the training mean m: pixels = 2 * image - 1 + m (export.json)",
                      "export options:", *option_lines(ExportOptions, OPTION_HELP)])


def check_exportable(cfg: RunConfig) -> None:
    """Refuse a run diffusers cannot reproduce: another model, another process."""
    if cfg.model.name != "diffusers_unet":
        raise FreqdiffError(f"export: model {cfg.model.name!r} has no diffusers equivalent; export needs "
                            "--model diffusers_unet")
    if cfg.process.name != "ddpm":
        raise FreqdiffError(f"export: process {cfg.process.name!r} has no matching diffusers scheduler; export needs "
                            "--process ddpm")


def check_out(out: Path) -> None:
    """Refuse an --out that is a link, a file or a folder holding anything."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise FreqdiffError(f"export: --out {out} is not a folder (a file or a link); name a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise FreqdiffError(f"export: --out {out} exists and is not empty; name a new or empty folder")


def pick_step(run_dir: Path, step: int) -> int:
    """`step` (0: the last checkpoint), refused when the run has no checkpoint there, listing those it has."""
    steps = list_checkpoints(run_dir)
    if not steps:
        raise FreqdiffError(f"export: {run_dir} has no checkpoints (train it first)")
    if step and step not in steps:
        raise FreqdiffError(f"export: --step {step} is not a checkpoint of {run_dir}; choices: "
                            f"{', '.join(map(str, steps))}")
    return step or steps[-1]


def trained_unet(pipe: Pipeline, cfg: RunConfig, run_dir: Path, step: int) -> tuple[Any, str]:
    """The run's UNet2DModel at `step` (checked provenance) and which weights it holds: "ema" or "model"."""
    if not isinstance(pipe.model, Preconditioned):
        raise FreqdiffError(f"export: regularizer {cfg.regularizer.name!r} changes the network's output in sampling; "
                            "a diffusers pipeline cannot carry it")
    saved = load_checkpoint(run_dir, step)
    if "model" not in saved:
        raise FreqdiffError(f"{checkpoint_path(run_dir, step)}: not a checkpoint (holds no model weights)")
    which = "ema" if cfg.eval.use_ema and saved.get("ema") is not None else "model"
    load_into(pipe.model, saved[which], checkpoint_path(run_dir, step))
    net: DiffusersUNet = pipe.model.net
    return net.unet.eval(), which


DIFFUSERS_SCHEDULES = {schedule: name for name, schedule in BETA_SCHEDULES.items()}  # freqdiff ddpm's -> diffusers'


def scheduler_config(cfg: RunConfig, pipe: Pipeline) -> dict[str, Any]:
    """The DDPMScheduler arguments of the run's process and sampler (see the module docstring)."""
    process = cfg.to_dict()["process"]["params"]
    low, high = pipe.split.x0_range
    clip = bool(cfg.to_dict()["sampler"]["params"].get("clip_x0", False))
    return dict(num_train_timesteps=process["T"], beta_start=process["beta_start"], beta_end=process["beta_end"],
                beta_schedule=DIFFUSERS_SCHEDULES[process["schedule"]], prediction_type="epsilon",
                variance_type="fixed_small", clip_sample=clip, clip_sample_range=max(abs(low), abs(high)),
                timestep_spacing="trailing")


def export_run(run_dir: Path, out: Path, step: int = 0) -> dict[str, Any]:
    """Write the run's checkpoint `step` (0: the last) as a diffusers pipeline folder `out`; returns export.json."""
    cfg = load_run_config(run_dir)
    check_exportable(cfg)
    check_out(out)
    step = pick_step(run_dir, step)
    diffusers = import_diffusers()
    pipe = build_pipeline(cfg)
    unet, which = trained_unet(pipe, cfg, run_dir, step)
    scheduler = diffusers.DDPMScheduler(**scheduler_config(cfg, pipe))
    record = {"run": str(run_dir), "run_hash": config_run_hash(run_dir), "step": step, "weights": which,
              "pixels": "2 * image - 1 + mean", "mean": pipe.split.mean.flatten().tolist()}
    make_dir(out.parent, "--out ")
    remove_leftovers(out)  # a killed export's folder
    tmp = out.parent / f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_MARK}"  # the umask's permissions
    try:
        tmp.mkdir()
        diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp)
        write_json(tmp / "export.json", record)
        os.replace(tmp, out)
    except OSError as err:
        raise FreqdiffError(f"export: --out {out}: cannot write ({err.strerror or err}); nothing was written") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def export_main(argv: list[str]) -> int:
    """`freqdiff export RUN_DIR --out DIR [--step S]`."""
    positional, flags = split_argv(argv)
    if len(positional) != 1:
        raise FreqdiffError(f"export: expected one run directory, got {len(positional)} arguments")
    options = build_params(ExportOptions, flags, "export")
    if not options.out:
        raise FreqdiffError("export: --out DIR is required (a new or empty folder for the diffusers pipeline)")
    record = export_run(Path(positional[0]), Path(options.out), options.step)
    print(f"exported {positional[0]} step {record['step']} ({record['weights']} weights) -> {options.out}")
    return 0
