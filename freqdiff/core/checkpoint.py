"""Run directories: their layout, log-spaced checkpoint steps, claiming one for a writer, and resume states.

A run directory is claimed before anything is written to it: a directory that is not a freqdiff run, or is a run
of another config, is refused; otherwise its one-writer lock is taken and config.json written. Resume states keep
their predecessor, so a damaged newest state falls back to the previous good one; with train.keep_states the state
of every checkpoint step is also kept under states/ (keep_state), where `freqdiff refine` resumes.
Provenance: every checkpoint and state names its run (run_hash: the part of config.json that determines each step's
arithmetic) and its step; a file of another run, of another step than its name says, or of another architecture is
refused in one line (files written before hashes existed name no run and are accepted).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
from torch import nn

from freqdiff.core.config import RunConfig, diff_configs
from freqdiff.core.io import (LOCK_NAME, TEMP_MARK, RunLock, check_writable, make_dir, one_line_errors, read_json,
                              torch_load, torch_save, write_json)
from freqdiff.core.registry import FreqdiffError

# Settings that may change between a run and its resume without changing what is trained.
RESUMABLE_KEYS = {"train.log_every", "train.tensorboard", "train.eval_checkpoints", "train.threads",
                  "train.keep_states"}
# Settings that change where checkpoints and states fall, not a step's arithmetic (a refine segment changes them).
SCHEDULE_KEYS = {"train.steps", "train.first_checkpoint", "train.n_checkpoints", "train.save_every"}
RUN_FOLDERS = ("checkpoints", "states", "samples", "nearest", "figures", "refine")  # what freqdiff writes in a run
RUN_FILES = ("config.json", "state.pt", "state.prev.pt", "log.jsonl", "metrics.csv", "eval_config.json",
             "spectral.csv", "window.json", LOCK_NAME)
STATE_KEYS = ("step", "model", "optimizer")  # what a resume state must hold
F = TypeVar("F", bound=Callable[..., Any])
_TRUSTED: set[str] = set()  # paths named on this process's command line (trust_path): config.json may name them


def run_hash(record: dict[str, Any]) -> str:
    """The id of a run's training: sha256 (16 hex digits) of its config.json record less the eval settings, the
    derived values and the keys that change no step's arithmetic (RESUMABLE_KEYS, SCHEDULE_KEYS)."""
    skip = RESUMABLE_KEYS | SCHEDULE_KEYS
    kept = {section: {k: v for k, v in values.items() if f"{section}.{k}" not in skip} if isinstance(values, dict)
            else values for section, values in record.items() if section not in ("eval", "derived")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def config_run_hash(run_dir: Path) -> str | None:
    """run_hash of the config.json of `run_dir`, or of its parent for a folder inside a run (RUN/refine); None if
    neither has one."""
    for directory in (Path(run_dir), Path(run_dir).parent):
        if (directory / "config.json").is_file():
            return run_hash(_read_config(directory / "config.json"))
    return None


def check_provenance(saved: dict[str, Any], path: Path, step: int, run: str | None) -> None:
    """Refuse a checkpoint or state whose step is not `step` (its name's, or its run's bound) or whose run is not
    `run` (a file without a run hash, written before hashes existed, names nothing and passes)."""
    if "step" in saved and saved["step"] != step:
        raise FreqdiffError(f"{path}: holds step {saved['step']}, not step {step} as its name says; it was renamed or "
                            "copied here: move it away")
    if run is not None and saved.get("run") not in (None, run):
        raise FreqdiffError(f"{path}: is from another run (config hash {saved['run']}; this run's config.json makes "
                            f"{run}); move it away")


def load_into(model: nn.Module, weights: Any, path: Path) -> None:
    """model.load_state_dict(weights); weights of another architecture are one line naming the file and the first
    difference, not torch's dump of every mismatched tensor."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError, KeyError) as err:
        details = [line.strip().rstrip(".") for line in str(err).splitlines()[1:] if line.strip()] or [str(err)]
        raise FreqdiffError(f"{path}: weights of another model, not this run's ({details[0][:160]}"
                            f"{'; ...' if len(details) > 1 else ''}); move it away") from None


def trust_path(value: str | None) -> None:
    """A path the user named on this command line: a config.json naming it may read it (check_config_paths)."""
    if value:
        _TRUSTED.add(os.path.abspath(value))


def check_config_paths(run_dir: Path, cfg: RunConfig) -> None:
    """A file that config.json names for reading (the extractor's weights) lies inside the run, or was named on this
    command line (trust_path); else refused: a run's config.json must not make freqdiff read the user's other files."""
    value = cfg.eval.extractor_weights
    if not value or os.path.abspath(value) in _TRUSTED:
        return
    inside = Path(run_dir).resolve()
    if inside not in Path(value).resolve().parents:
        raise FreqdiffError(f"{run_dir}/config.json names extractor weights outside the run ({value}); freqdiff "
                            f"reads only files inside a run from its config.json: pass --extractor.weights {value} "
                            "to read them")


def check_run_layout(run_dir: Path) -> None:
    """Refuse, before any write, a run whose folders (checkpoints/, samples/, ...) are symlinks or files, or whose
    files (config.json, state.pt, the lock, ...) are symlinks or folders: freqdiff never writes through a link."""
    for name in RUN_FOLDERS:
        check_writable(Path(run_dir) / name, root=run_dir, folder=True)
    for name in RUN_FILES:
        check_writable(Path(run_dir) / name, root=run_dir)


def checkpoint_steps(first: int, last: int, count: int) -> list[int]:
    """`count` log-spaced steps from `first` to `last` (both included), rounded and deduplicated."""
    first = min(max(first, 1), last)
    return sorted({int(round(s)) for s in np.geomspace(first, last, max(count, 1))} | {last})


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}.pt"


def save_checkpoint(run_dir: Path, step: int, model: dict[str, Any], ema: dict[str, Any] | None, run: str | None,
                    **provenance: Any) -> None:
    """The weights (and EMA) at `step`, for evaluation, naming the step and the run (run_hash), atomically;
    `provenance`: further fields (an imported checkpoint's source)."""
    torch_save({"step": step, "run": run, "model": model, "ema": ema, **provenance}, checkpoint_path(run_dir, step))


def list_checkpoints(run_dir: Path) -> list[int]:
    """Steps of the weight checkpoints present in a run directory, ascending; a misnamed one is refused, named."""
    folder, steps = Path(run_dir) / "checkpoints", []
    if folder.exists() and not folder.is_dir():
        raise FreqdiffError(f"{folder}: is a file, not a folder of checkpoints; move it away")
    for path in folder.glob("step_*.pt"):
        match = re.fullmatch(r"step_(\d{8,})\.pt", path.name)
        if match is None:
            raise FreqdiffError(f"{path}: not a checkpoint name (step_NNNNNNNN.pt, the step in 8 digits); move it out "
                                f"of {folder}")
        steps.append(int(match.group(1)))
    return sorted(steps)


def load_checkpoint(run_dir: Path, step: int) -> dict[str, Any]:
    """The weights saved at `step` (model, ema), loaded without running code; a damaged file is named, and so is one
    of another step or another run (check_provenance)."""
    path = checkpoint_path(run_dir, step)
    saved = torch_load(path)
    check_provenance(saved, path, step, config_run_hash(run_dir))
    return saved


def load_weights(model: nn.Module, run_dir: Path, step: int, use_ema: bool) -> None:
    """Load a checkpoint's EMA weights (if any and asked for) or its trained weights into `model`."""
    state = load_checkpoint(run_dir, step)  # weights only: a crafted pickle is refused, a damaged file named
    if "model" not in state:
        raise FreqdiffError(f"{checkpoint_path(run_dir, step)}: not a checkpoint (holds no model weights)")
    load_into(model, state["ema"] if use_ema and state.get("ema") is not None else state["model"],
              checkpoint_path(run_dir, step))


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


def check_state(state: dict[str, Any], path: Path, run: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """A loaded resume state, refused in one line when it misses a key, is of another run, or lies past `steps`."""
    missing = [key for key in STATE_KEYS if key not in state]
    if missing or not isinstance(state["step"], int):
        raise FreqdiffError(f"{path}: not a resume state ({'missing ' + ', '.join(missing) if missing else 'no step'}); "
                            "move it away to train from step 0")
    check_provenance(state, path, state["step"], run)
    if steps is not None and state["step"] > steps:
        raise FreqdiffError(f"{path}: is at step {state['step']}, beyond this run's --steps {steps}: not a state of "
                            "this run; nothing was trained: move it away")
    return state


def read_state(path: Path, run: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """torch_load and check_state."""
    return check_state(torch_load(path), path, run, steps)


def load_state(run_dir: Path, run: str | None = None, steps: int | None = None) -> dict[str, Any] | None:
    """The newest good resume state (None for a fresh run): state.pt, else, saying so, state.prev.pt. With `run`
    and `steps`, a state of another run or past the run's last step is refused, with no fallback (check_state).

    A damaged state.pt is kept as state.pt.corrupt, so the next save does not make it the fallback."""
    newest, previous = state_path(run_dir), previous_state_path(run_dir)
    if not newest.exists() and not previous.exists():
        return None
    try:
        state = torch_load(newest)
    except FreqdiffError as err:  # damaged or missing: the fallback below
        problem = str(err)
    else:
        return check_state(state, newest, run, steps)  # loaded but not this run's: refused, no fallback
    if not previous.exists():
        raise FreqdiffError(f"{problem}; no previous state to fall back to (remove it to train from step 0)")
    try:
        state = read_state(previous, run, steps)
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
        record = read_json(config_file)
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as err:
        raise FreqdiffError(f"{config_file}: not a valid freqdiff config ({type(err).__name__})") from None
    if not isinstance(record, dict):
        raise FreqdiffError(f"{config_file}: not a valid freqdiff config (holds a {type(record).__name__})")
    return record


def run_record(cfg: RunConfig, derived: dict[str, Any] | None = None) -> dict[str, Any]:
    """What config.json holds: the resolved config and, when a component measured them on the training data, the
    derived values it uses (equal_snr's per-frequency variances), so every number is traceable."""
    return {**cfg.to_dict(), **({"derived": derived} if derived else {})}


def check_run_dir(run_dir: Path, cfg: RunConfig, derived: dict[str, Any] | None = None) -> None:
    """Refuse, writing nothing, a directory that is not a freqdiff run or is a run made with another config, a
    symlink, a file, or a run whose folders or files are links (check_run_layout)."""
    if run_dir.is_symlink():
        raise FreqdiffError(f"--out {run_dir}: is a symlink (to {os.readlink(run_dir)}); name the directory itself")
    if run_dir.exists() and not run_dir.is_dir():
        raise FreqdiffError(f"--out {run_dir}: is a file, not a directory")
    if run_dir.is_dir():
        check_run_layout(run_dir)
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
    make_dir(run_dir, "--out ")
    trust_path(cfg.eval.extractor_weights)  # named on this command line, or equal to config.json's (checked above)
    lock = RunLock(run_dir).acquire()
    try:
        check_run_dir(run_dir, cfg, derived)  # again, holding the lock: another writer may have claimed it meanwhile
        write_json(run_dir / "config.json", run_record(cfg, derived))
    except BaseException:
        lock.release()
        raise
    return lock


def holds_run_lock(func: F) -> F:
    """Decorator: `func(run_dir, ...)` runs holding the run's one-writer lock (a command that writes into a run), after
    check_run_layout; an OSError (read-only run, full disk) is one line naming its path."""

    @functools.wraps(func)
    @one_line_errors
    def locked(run_dir: Path, *args: Any, **kwargs: Any) -> Any:
        if not (Path(run_dir) / "config.json").exists():
            raise FreqdiffError(f"{run_dir}: no config.json (not a freqdiff run directory)")
        check_run_layout(Path(run_dir))
        with RunLock(run_dir):
            return func(run_dir, *args, **kwargs)

    return locked  # type: ignore[return-value]


def load_run_config(run_dir: Path) -> RunConfig:
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise FreqdiffError(f"{run_dir}: no config.json (not a freqdiff run directory)")
    return RunConfig.from_dict(_read_config(config_file), str(config_file))
