"""Run directories: their layout, log-spaced checkpoint steps, claiming one for a writer, and resume states.

A run directory is claimed before anything is written to it: a directory that is not a freqdiff run, or is a run
of another config, is refused; otherwise its one-writer lock is taken and config.json written. Resume states keep
their predecessor, so a damaged newest state falls back to the previous good one; with train.keep_states the state
of every checkpoint step is also kept under states/ (keep_state), where `freqdiff refine` resumes.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
from torch import nn

from freqdiff.core.config import RunConfig, diff_configs
from freqdiff.core.io import LOCK_NAME, TEMP_MARK, RunLock, read_json, torch_load, torch_save, write_json
from freqdiff.core.registry import FreqdiffError

# Settings that may change between a run and its resume without changing what is trained.
RESUMABLE_KEYS = {"train.log_every", "train.tensorboard", "train.eval_checkpoints", "train.threads",
                  "train.keep_states"}
F = TypeVar("F", bound=Callable[..., Any])


def checkpoint_steps(first: int, last: int, count: int) -> list[int]:
    """`count` log-spaced steps from `first` to `last` (both included), rounded and deduplicated."""
    first = min(max(first, 1), last)
    return sorted({int(round(s)) for s in np.geomspace(first, last, max(count, 1))} | {last})


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[int]:
    """Steps of the weight checkpoints present in a run directory, ascending."""
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))


def load_checkpoint(run_dir: Path, step: int) -> dict[str, Any]:
    """The weights saved at `step` (model, ema), loaded without running code; a damaged file is named."""
    return torch_load(checkpoint_path(run_dir, step))


def load_weights(model: nn.Module, run_dir: Path, step: int, use_ema: bool) -> None:
    """Load a checkpoint's EMA weights (if any and asked for) or its trained weights into `model`."""
    state = load_checkpoint(run_dir, step)  # weights only: a crafted pickle is refused, a damaged file named
    model.load_state_dict(state["ema"] if use_ema and state.get("ema") is not None else state["model"])


def state_path(run_dir: Path) -> Path:
    return run_dir / "state.pt"


def previous_state_path(run_dir: Path) -> Path:
    return run_dir / "state.prev.pt"


def kept_state_path(run_dir: Path, step: int) -> Path:
    return run_dir / "states" / f"step_{step:08d}.pt"


def keep_state(state: dict[str, Any], run_dir: Path) -> None:
    """Keep the resume state of a checkpoint step as states/step_XXXXXXXX.pt, atomically (train.keep_states).

    A trainer keeps it after the checkpoint's weights and before state.pt, so a resume never skips one. It holds
    what state.pt holds (step, model, optimizer, EMA, the trainer that wrote it): `freqdiff refine` resumes from
    it to add checkpoints between two existing ones. Size (measured): the recipes' residual MLP (CPU_MLP: width 256,
    3 blocks, 0.43M parameters, Adam, EMA) keeps 6.9 MB a state, 4 float32 copies of the weights (model, Adam's two
    moments, EMA), twice its 3.5 MB checkpoint: its 20 checkpoints add 138 MB of states to 69 MB of checkpoints (a
    baseline study of 12 runs: 1.7 GB). The default MLP (`--model mlp`: width 128, no EMA) keeps 1.4 MB a state
    (3 copies), 16 of them 23 MB. train.keep_states false keeps none.
    """
    torch_save(state, kept_state_path(run_dir, int(state["step"])))


def save_state(state: dict[str, Any], run_dir: Path) -> None:
    """Write state.pt atomically; the state it replaces becomes state.prev.pt, the fallback of load_state."""
    torch_save(state, state_path(run_dir), previous=previous_state_path(run_dir))


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """The newest good resume state (None for a fresh run): state.pt, else, saying so, state.prev.pt.

    A damaged state.pt is kept as state.pt.corrupt, so the next save does not make it the fallback."""
    newest, previous = state_path(run_dir), previous_state_path(run_dir)
    if not newest.exists() and not previous.exists():
        return None
    try:
        return torch_load(newest)
    except FreqdiffError as err:
        problem = str(err)
    if not previous.exists():
        raise FreqdiffError(f"{problem}; no previous state to fall back to (remove it to train from step 0)")
    try:
        state = torch_load(previous)
    except FreqdiffError as err:
        raise FreqdiffError(f"{problem}; and the fallback {err}") from None
    kept = ""
    if newest.exists():
        os.replace(newest, newest.with_name(newest.name + ".corrupt"))
        kept = f"; the damaged file is kept as {newest.name}.corrupt"
    print(f"freqdiff: warning: {problem}; resuming from {previous} (step {state['step']}){kept}", file=sys.stderr)
    return state


def _read_config(config_file: Path) -> dict[str, Any]:
    try:
        return read_json(config_file)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FreqdiffError(f"{config_file}: not a valid freqdiff config ({type(err).__name__})") from None


def run_record(cfg: RunConfig, derived: dict[str, Any] | None = None) -> dict[str, Any]:
    """What config.json holds: the resolved config and, when a component measured them on the training data, the
    derived values it uses (equal_snr's per-frequency variances), so every number is traceable."""
    return {**cfg.to_dict(), **({"derived": derived} if derived else {})}


def check_run_dir(run_dir: Path, cfg: RunConfig, derived: dict[str, Any] | None = None) -> None:
    """Refuse, writing nothing, a directory that is not a freqdiff run or is a run made with another config."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FreqdiffError(f"--out {run_dir}: is a file, not a directory")
    config_file = run_dir / "config.json"
    if config_file.exists():
        differing = [k for k in diff_configs(_read_config(config_file), run_record(cfg, derived))
                     if k not in RESUMABLE_KEYS]
        if differing:
            raise FreqdiffError(
                f"{run_dir} was made with a different config (differs in {', '.join(differing)}); "
                "use another --out or remove that directory"
            )
        return
    entries = run_dir.iterdir() if run_dir.is_dir() else []
    foreign = sorted(p.name for p in entries if p.name != LOCK_NAME and TEMP_MARK not in p.name)
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise FreqdiffError(f"--out {run_dir}: holds files that are not a freqdiff run ({shown}); nothing was "
                            "written: choose a new or empty directory")


def claim_run_dir(run_dir: Path, cfg: RunConfig, derived: dict[str, Any] | None = None) -> RunLock:
    """Check the directory, take its one-writer lock, and write (or confirm) config.json; returns the held lock."""
    check_run_dir(run_dir, cfg, derived)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()
    try:
        check_run_dir(run_dir, cfg, derived)  # again, holding the lock: another writer may have claimed it meanwhile
        write_json(run_dir / "config.json", run_record(cfg, derived))
    except BaseException:
        lock.release()
        raise
    return lock


def holds_run_lock(func: F) -> F:
    """Decorator: `func(run_dir, ...)` runs holding the run's one-writer lock (a command that writes into a run)."""

    @functools.wraps(func)
    def locked(run_dir: Path, *args: Any, **kwargs: Any) -> Any:
        if not (Path(run_dir) / "config.json").exists():
            raise FreqdiffError(f"{run_dir}: no config.json (not a freqdiff run directory)")
        with RunLock(run_dir):
            return func(run_dir, *args, **kwargs)

    return locked  # type: ignore[return-value]


def load_run_config(run_dir: Path) -> RunConfig:
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise FreqdiffError(f"{run_dir}: no config.json (not a freqdiff run directory)")
    return RunConfig.from_dict(_read_config(config_file))
