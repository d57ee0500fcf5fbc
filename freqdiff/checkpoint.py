"""Run-directory layout, log-spaced checkpoint steps, and the config check that guards resumes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from freqdiff.config import RunConfig, diff_configs
from freqdiff.io import read_json, write_json
from freqdiff.registry import FreqdiffError

# Settings that may change between a run and its resume without changing what is trained.
RESUMABLE_KEYS = {"train.log_every", "train.tensorboard", "train.eval_checkpoints", "train.threads"}


def checkpoint_steps(first: int, last: int, count: int) -> list[int]:
    """`count` log-spaced steps from `first` to `last` (both included), rounded and deduplicated."""
    if last < 1:
        raise FreqdiffError(f"--steps: must be positive, got {last}")
    first = min(max(first, 1), last)
    return sorted({int(round(s)) for s in np.geomspace(first, last, max(count, 1))} | {last})


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[int]:
    """Steps of the weight checkpoints present in a run directory, ascending."""
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))


def state_path(run_dir: Path) -> Path:
    return run_dir / "state.pt"


def prepare_run_dir(run_dir: Path, cfg: RunConfig) -> None:
    """Write config.json for a new run, or check that an existing run was made with the same config."""
    new = cfg.to_dict()
    config_file = run_dir / "config.json"
    if config_file.exists():
        differing = [k for k in diff_configs(read_json(config_file), new) if k not in RESUMABLE_KEYS]
        if differing:
            raise FreqdiffError(
                f"{run_dir} was made with a different config (differs in {', '.join(differing)}); "
                "use another --out or remove that directory"
            )
    write_json(config_file, new)


def load_run_config(run_dir: Path) -> RunConfig:
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise FreqdiffError(f"{run_dir}: no config.json (not a freqdiff run directory)")
    return RunConfig.from_dict(read_json(config_file))
