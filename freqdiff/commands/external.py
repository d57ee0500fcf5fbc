"""`freqdiff import DIR`: a UNet2DModel that diffusers trained, as a freqdiff run that `freqdiff eval RUN` and
`freqdiff window RUN` measure unchanged.

DIR is the --output_dir of diffusers' train_unconditional example: checkpoint-STEP/ folders (accelerate states; the
network in checkpoint-STEP/unet/ and, trained with --use_ema, its EMA in checkpoint-STEP/unet_ema/, both
save_pretrained folders) and the final save_pretrained pipeline (unet/, scheduler/, model_index.json), or that
pipeline alone. Each step becomes checkpoints/step_XXXXXXXX.pt in freqdiff's format: the weights as a
`diffusers_unet` run names them, the EMA beside them (eval samples the EMA, as for its own runs), the folder they came
from. The scheduler's betas become the `ddpm` process; the images become the `external` dataset (data/external.py:
diffusers' [-1, 1], not centered). Everything is read and checked before anything is written.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from freqdiff.core.checkpoint import (check_run_dir, checkpoint_path, claim_run_dir, list_checkpoints, load_checkpoint,
                                      load_into, run_hash, save_checkpoint)
from freqdiff.core.config import EvalConfig, RunConfig, apply_flags, split_argv
from freqdiff.core.io import content_digest, one_line_errors, read_json, torch_load, write_json
from freqdiff.core.registry import FreqdiffError, build_params, option_lines, param
from freqdiff.data.external import ExternalParams, image_count
from freqdiff.models.diffusers_unet import params_from_unet_config
from freqdiff.pipeline.build import Pipeline, build_pipeline

CHECKPOINT_NAME = re.compile(r"checkpoint-([1-9][0-9]*)")  # accelerate's save_state folder at an optimizer step
# What EMAModel.save_pretrained adds to a UNet's config.json (its state less the weights).
EMA_KEYS = ("decay", "min_decay", "optimization_step", "update_after_step", "use_ema_warmup", "inv_gamma", "power")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SCHEDULERS = ("DDPMScheduler", "DDIMScheduler")
BETA_SCHEDULES = {"linear": "linear", "squaredcos_cap_v2": "cosine"}  # diffusers' name -> freqdiff ddpm's schedule
DATASET_FLAGS = ("key", "scale", "channels_last")  # --dataset.X: how an .npz is read
RECORD = "import.json"  # where the run says what it was imported from


@dataclass(frozen=True)
class ImportOptions:
    """The options of `freqdiff import` (OPTION_HELP says what each does)."""

    data: str = ""
    held_out: str = ""
    out: str = ""
    n: int | None = param(None, ge=2)
    final_step: int | None = param(None, ge=1)


OPTION_HELP = {
    "data": "the training images: a folder (sorted by name) or an .npz, at the network's size (never resized)",
    "held_out": "images the network never saw (a folder or an .npz): the FD's reference and the test loss",
    "out": "the run directory to write (new or empty; an earlier import of the same checkpoints is left as it is)",
    "n": "it was trained on the first n images of --data (None: all of them)",
    "final_step": "the optimizer step of the final pipeline's unet/ (its folder names none; None: left out unless it "
                  "equals the last checkpoint's weights)",
}


def import_help() -> str:
    """`freqdiff import --help`."""
    return "\n".join([
        "usage: freqdiff import DIR --data TRAIN --held_out TEST --out RUN_DIR [options]   -> RUN_DIR/config.json, "
        "checkpoints/, import.json; then `freqdiff eval RUN_DIR`, `freqdiff window RUN_DIR`",
        "DIR: diffusers' train_unconditional --output_dir (checkpoint-STEP/unet[_ema]/, unet/ + scheduler/), or a "
        "save_pretrained DDPMPipeline", "import options:", *option_lines(ImportOptions, OPTION_HELP),
        "  --dataset.key K --dataset.scale S --dataset.channels_last B   how an .npz is read (`freqdiff list`: npz)",
        "  --process ddpm --process.PARAM V   override the mapping of scheduler/scheduler_config.json (needed without "
        "it)", "  --sampler NAME --sampler.PARAM V, eval options (`freqdiff eval --help`)   stored in config.json"])


# ---- what DIR holds ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepSource:
    """The save_pretrained UNet folders of one step: its trained weights and, when saved, its EMA."""

    model: Path
    ema: Path | None = None

    @property
    def sampled(self) -> Path:
        """The folder eval samples from: the EMA when there is one."""
        return self.ema or self.model


@dataclass(frozen=True)
class Found:
    """The checkpoint-STEP/ folders of DIR by step, its final pipeline's unet/ and its scheduler config."""

    checkpoints: dict[int, StepSource]
    final: Path | None
    scheduler: dict[str, Any] | None


def read_config(path: Path) -> dict[str, Any]:
    """A diffusers config.json as a dict, or one line naming the file."""
    try:
        config = read_json(path)
    except (OSError, ValueError) as err:
        raise FreqdiffError(f"{path}: not a readable config ({type(err).__name__})") from None
    if not isinstance(config, dict):
        raise FreqdiffError(f"{path}: not a diffusers config (holds a {type(config).__name__})")
    return config


def find_source(root: Path) -> Found:
    """The checkpoints, final UNet and scheduler config in `root`; refused without any UNet config.json."""
    if not root.is_dir():
        raise FreqdiffError(f"import: {root} is not a folder (diffusers' --output_dir or a save_pretrained pipeline)")
    checkpoints = {}
    for entry in sorted(root.iterdir()):
        match = CHECKPOINT_NAME.fullmatch(entry.name)
        if match is None or not entry.is_dir():
            continue
        if not (entry / "unet" / "config.json").is_file():
            raise FreqdiffError(f"{entry}: no unet/config.json (train_unconditional saves the network there); move "
                                "it away or save its UNet with save_pretrained")
        ema = entry / "unet_ema"
        checkpoints[int(match.group(1))] = StepSource(entry / "unet", ema if (ema / "config.json").is_file() else None)
    final = root / "unet" if (root / "unet" / "config.json").is_file() else None
    if not checkpoints and final is None:
        raise FreqdiffError(f"import: {root} holds no model config (no unet/config.json of a save_pretrained pipeline, "
                            "no checkpoint-STEP/unet/config.json); name diffusers' --output_dir")
    scheduler = root / "scheduler" / "scheduler_config.json"
    return Found(checkpoints, final, read_config(scheduler) if scheduler.is_file() else None)


def read_weights(folder: Path) -> dict[str, Tensor]:
    """A save_pretrained folder's weights (safetensors, else a .bin loaded without running code)."""
    safetensors_file, bin_file = (folder / name for name in WEIGHT_FILES)
    if safetensors_file.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(safetensors_file)
        except (SafetensorError, OSError) as err:
            raise FreqdiffError(f"{safetensors_file}: unreadable ({' '.join(str(err).split())[:120]})") from None
    if bin_file.is_file():
        return torch_load(bin_file)
    raise FreqdiffError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}; sharded and fp16 variants are not read)")


def same_weights(a: Path, b: Path) -> bool:
    return content_digest(read_weights(a)) == content_digest(read_weights(b))


def plan_steps(found: Found, final_step: int | None, root: Path) -> dict[int, StepSource]:
    """The UNet folders of every step to import: the checkpoints, and the final pipeline at --final_step (without it,
    the pipeline is the last checkpoint if it holds its weights, else left out, saying so)."""
    steps = dict(found.checkpoints)
    if found.final is None:
        if final_step is not None:
            raise FreqdiffError(f"--final_step {final_step}: {root} has no final pipeline (unet/ beside "
                                "model_index.json) to place there")
        return steps
    if final_step is None:
        last = steps[max(steps)] if steps else None
        if last is None:
            raise FreqdiffError(f"import: {root}'s pipeline names no step; pass --final_step S, the optimizer steps "
                                "it was trained for")
        if not same_weights(found.final, last.sampled):
            print(f"freqdiff import: {found.final} holds other weights than checkpoint-{max(steps)} and names no step: "
                  "left out (pass --final_step S to import it)")
        return steps
    if final_step in steps and not same_weights(found.final, steps[final_step].sampled):
        raise FreqdiffError(f"--final_step {final_step}: checkpoint-{final_step} holds other weights than "
                            f"{found.final}; name the step the pipeline was saved at")
    return {**steps, final_step: steps.get(final_step, StepSource(found.final))}


# ---- how freqdiff reads it -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    """What a UNet's config.json fixes: the diffusers_unet parameters, the image side and channels."""

    params: Any  # DiffusersUNetParams
    side: int
    channels: int


def architecture(folder: Path) -> tuple[Architecture, float | None]:
    """A UNet folder's architecture, and its EMA decay when it is an EMAModel's (config.json holds its state)."""
    config = read_config(folder / "config.json")
    try:
        params = params_from_unet_config({k: v for k, v in config.items() if k not in EMA_KEYS})
    except FreqdiffError as err:
        raise FreqdiffError(f"{folder}/config.json: {err}") from None
    size, channels = config.get("sample_size"), config.get("in_channels", 3)
    side = size[0] if isinstance(size, list) and len(size) == 2 and size[0] == size[1] else size
    if not isinstance(side, int) or channels not in (1, 3) or config.get("out_channels", 3) != channels:
        raise FreqdiffError(f"{folder}/config.json: sample_size {size!r}, in_channels {channels!r}, out_channels "
                            f"{config.get('out_channels', 3)!r} are not supported; choices: square images, "
                            "1 or 3 channels in and out")
    return Architecture(params, side, channels), config.get("decay") if "optimization_step" in config else None


def common_architecture(steps: dict[int, StepSource]) -> tuple[Architecture, float]:
    """The one architecture of every folder to import (refused, named, where one differs) and the EMA decay (0:
    no EMA)."""
    folders = [folder for source in steps.values() for folder in (source.model, source.ema) if folder is not None]
    first, decay = architecture(folders[0])[0], 0.0
    for folder in folders:
        other, ema_decay = architecture(folder)
        if other != first:
            raise FreqdiffError(f"{folder}: another network than {folders[0]} ({other} vs {first}); import one "
                                "training's checkpoints at a time")
        decay = ema_decay if ema_decay is not None else decay
    return first, float(decay)


def process_of(scheduler: dict[str, Any], where: str) -> dict[str, Any]:
    """freqdiff's ddpm process for a DDPMScheduler / DDIMScheduler config; what has no equivalent is refused."""
    name = scheduler.get("_class_name")
    refusals = [("scheduler", name, SCHEDULERS), ("prediction_type", scheduler.get("prediction_type", "epsilon"),
                                                    ("epsilon",)),
                ("beta_schedule", scheduler.get("beta_schedule", "linear"), tuple(BETA_SCHEDULES)),
                ("trained_betas", scheduler.get("trained_betas"), (None,)),
                ("rescale_betas_zero_snr", scheduler.get("rescale_betas_zero_snr", False), (False,))]
    for key, value, choices in refusals:
        if value not in choices:
            shown = repr(value) if isinstance(value, str) else json.dumps(value)[:60]
            raise FreqdiffError(f"{where}: {key} {shown} has no freqdiff equivalent (its ddpm process predicts the "
                                f"noise from fixed betas); choices: "
                                f"{', '.join(c if isinstance(c, str) else json.dumps(c) for c in choices)}")
    schedule = BETA_SCHEDULES[scheduler.get("beta_schedule", "linear")]
    betas = {"beta_start": scheduler.get("beta_start", 1e-4), "beta_end": scheduler.get("beta_end", 2e-2)}
    return {"name": "ddpm", "params": {"T": scheduler.get("num_train_timesteps", 1000), "schedule": schedule,
                                       **(betas if schedule == "linear" else {})}}


def split_flags(flags: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the dataset's .npz flags, the flags config.json takes: process, sampler, eval); anything else refused."""
    dataset, passed = {}, {}
    evaluation = {f.name for f in dataclasses.fields(EvalConfig)}
    for key, value in flags.items():
        head, _, name = key.partition(".")
        if head == "dataset" and name in DATASET_FLAGS:
            dataset[name] = value
        elif head in ("process", "sampler") or key in evaluation:
            passed[key] = value
        else:
            raise FreqdiffError(f"import: unknown option --{key}; options: --{', --'.join(OPTION_HELP)}, "
                                f"--dataset.{{{','.join(DATASET_FLAGS)}}}, --process[.PARAM], --sampler[.PARAM], "
                                "eval options (`freqdiff import --help`)")
    return dataset, passed


def run_config(found: Found, options: ImportOptions, flags: dict[str, str], steps: dict[int, StepSource],
               arch: Architecture, decay: float, root: Path) -> RunConfig:
    """The run's config: the external dataset at the network's size, the mapped (or named) ddpm process, the
    diffusers_unet of the checkpoints, n and the held-out count, the steps; then the command line's process, sampler
    and eval flags."""
    dataset_flags, passed = split_flags(flags)
    if found.scheduler is None and not any(key.partition(".")[0] == "process" for key in passed):
        raise FreqdiffError(f"import: {root} has no scheduler/scheduler_config.json (checkpoint folders hold none); "
                            "name the process it was trained with: --process ddpm --process.T 1000 "
                            "--process.beta_start 0.0001 --process.beta_end 0.02")
    process = process_of(found.scheduler, f"{root}/scheduler/scheduler_config.json") if found.scheduler else \
        {"name": "ddpm", "params": {}}
    dataset = {"train": os.path.abspath(options.data), "held_out": os.path.abspath(options.held_out),
               "resolution": arch.side, "grayscale": arch.channels == 1, **dataset_flags}
    params = build_params(ExternalParams, dataset, "dataset 'external'")
    n = options.n or image_count(params.train, params, "train")
    raw = {"dataset": {"name": "external", "params": {**dataset, "limit": n}}, "process": process,
           "model": {"name": "diffusers_unet", "params": dataclasses.asdict(arch.params)},
           "data": {"n": n, "test_size": image_count(params.held_out, params, "held_out"), "center": False},
           "train": {"steps": max(steps), "first_checkpoint": min(steps), "n_checkpoints": len(steps), "ema": decay}}
    cfg = apply_flags(RunConfig.from_values(raw), passed)
    if cfg.process.name != "ddpm":
        raise FreqdiffError(f"--process {cfg.process.name}: a diffusers DDPM/DDIM UNet predicts the noise at integer "
                            "steps of fixed betas; choices: ddpm")
    return cfg


def freqdiff_weights(pipe: Pipeline, folder: Path) -> dict[str, Tensor]:
    """A UNet folder's weights as a diffusers_unet run's checkpoint holds them (net.unet. + diffusers' keys),
    checked by loading them into the run's network."""
    load_into(pipe.model.net.unet, read_weights(folder), folder)
    return {key: value.detach().clone() for key, value in pipe.model.state_dict().items()}


def checkpoint_of(pipe: Pipeline, source: StepSource) -> dict[str, Any]:
    """The model and EMA weights of one step."""
    return {"model": freqdiff_weights(pipe, source.model),
            "ema": freqdiff_weights(pipe, source.ema) if source.ema is not None else None}


def steps_to_write(out: Path, steps: dict[int, StepSource], pipe: Pipeline) -> list[int]:
    """Every step's weights loaded and checked; those `out` does not hold yet. A checkpoint there with other weights
    is refused (an import of another training)."""
    present, todo = set(list_checkpoints(out)) if out.is_dir() else set(), []
    for step, source in sorted(steps.items()):
        weights = checkpoint_of(pipe, source)
        if step not in present:
            todo.append(step)
            continue
        saved = load_checkpoint(out, step)
        if content_digest([saved.get("model"), saved.get("ema")]) != content_digest([weights["model"], weights["ema"]]):
            raise FreqdiffError(f"{checkpoint_path(out, step)}: holds other weights than {source.model.parent}; "
                                "nothing was written: choose another --out")
    return todo


def record(root: Path, found: Found, steps: dict[int, StepSource]) -> dict[str, Any]:
    """What import.json says: the source, the scheduler config mapped, and the folders of every step."""
    import diffusers

    return {"source": os.path.abspath(root), "diffusers": diffusers.__version__, "scheduler": found.scheduler,
            "checkpoints": [{"step": step, "model": os.path.abspath(source.model),
                             "ema": os.path.abspath(source.ema) if source.ema else None,
                             "sampled": source.sampled.name} for step, source in sorted(steps.items())]}


def summary(out: Path, root: Path, steps: dict[int, StepSource], written: list[int], cfg: RunConfig) -> str:
    """What was imported, and which weights eval samples."""
    ema = sum(source.ema is not None for source in steps.values())
    process = ", ".join(f"{k} {v}" for k, v in cfg.to_dict()["process"]["params"].items())
    return (f"{out}: {len(written)} of {len(steps)} steps ({min(steps)}..{max(steps)}) imported from {root}; eval "
            f"samples unet_ema/ at {ema} steps, unet/ at {len(steps) - ema}; process ddpm ({process}); n {cfg.data.n}, "
            f"{cfg.data.test_size} held out. Next: freqdiff eval {out}; freqdiff window {out}")


@one_line_errors
def import_run(root: Path, options: ImportOptions, flags: dict[str, str]) -> Path:
    """Import the diffusers training in `root` as the run options.out; every check passes before anything is
    written (checkpoints atomically, one by one, then import.json)."""
    for what in ("data", "held_out", "out"):
        if not getattr(options, what):
            raise FreqdiffError(f"import: --{what} is missing: {OPTION_HELP[what]}")
    found = find_source(root)
    steps = plan_steps(found, options.final_step, root)
    arch, decay = common_architecture(steps)
    cfg = run_config(found, options, flags, steps, arch, decay, root)
    pipe, out = build_pipeline(cfg), Path(options.out)
    check_run_dir(out, cfg)
    written = steps_to_write(out, steps, pipe)
    lock = claim_run_dir(out, cfg)
    try:
        for step in written:
            save_checkpoint(out, step, **checkpoint_of(pipe, steps[step]), run=run_hash(cfg.to_dict()),
                            imported=os.path.abspath(steps[step].model.parent))
        write_json(out / RECORD, record(root, found, steps))
    finally:
        lock.release()
    print(summary(out, root, steps, written, cfg))
    return out


def import_main(argv: list[str]) -> int:
    """`freqdiff import DIR [options]`."""
    positional, flags = split_argv(argv)
    if len(positional) != 1:
        raise FreqdiffError(f"import: expected one folder (diffusers' --output_dir), got {len(positional)} arguments")
    names = {f.name for f in dataclasses.fields(ImportOptions)}
    options = build_params(ImportOptions, {k: v for k, v in flags.items() if k in names}, "import")
    import_run(Path(positional[0]), options, {k: v for k, v in flags.items() if k not in names})
    return 0
