"""One refine segment: a run trained again from its kept state at a to b, with extra log-spaced checkpoints in
between, in RUN/refine/segment/; the new checkpoints, their kept states and grids move into RUN/refine/, and the
segment's weights at b are compared with the run's own checkpoint at b (bit for bit when the arithmetic matches)."""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from freqdiff.analysis.reading.curves import REFINED as REFINE
from freqdiff.core.checkpoint import (checkpoint_path, holds_run_lock, kept_state_path, list_checkpoints,
                                      load_checkpoint, load_state, run_record)
from freqdiff.core.config import RunConfig
from freqdiff.core.io import read_json, write_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.train.state import trained_batched
from freqdiff.train.trainer import train


def segment_grid(a: int, points: int) -> tuple[int, int]:
    """(first_checkpoint, n_checkpoints) of a segment from a: log-spaced from a (from step 1 when a is 0) to its end,
    `points` of them strictly inside."""
    return max(a, 1), points + (2 if a else 1)


def weights_dir(run_dir: Path, step: int) -> Path:
    """The directory holding the checkpoint of `step`: RUN/refine when refine made it, else the run."""
    return run_dir / REFINE if checkpoint_path(run_dir / REFINE, step).exists() else run_dir


def state_at(run_dir: Path, step: int) -> Path | None:
    """The kept state to resume from at `step` (None at step 0: the seed's initial weights), or a one-line error."""
    if step == 0:
        return None
    path = kept_state_path(weights_dir(run_dir, step), step)
    if not path.exists():
        raise FreqdiffError(f"{path}: no kept state at step {step}, where refine must resume training; retrain the run "
                            "with --keep_states true (the default) to keep the state of every checkpoint")
    return path


def max_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The largest |difference| over the model and EMA tensors of two checkpoints (inf when only one has an EMA)."""
    if (a.get("ema") is None) != (b.get("ema") is None):
        return math.inf
    pairs = [(x, b[key][name]) for key in ("model", "ema") for name, x in (a.get(key) or {}).items()]
    return max((float((x.double() - y.double()).abs().max()) for x, y in pairs), default=0.0)


def same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two checkpoints hold equal model and EMA tensors, bit for bit (torch.equal)."""
    return all((x is None and y is None) or (x is not None and y is not None and x.keys() == y.keys() and
                                             all(torch.equal(x[k], y[k]) for k in x))
               for x, y in ((a.get(key), b.get(key)) for key in ("model", "ema")))


def segment_config(run_dir: Path, a: int, b: int, points: int) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config trained to b with checkpoints log-spaced from a (none of these settings changes a step's
    arithmetic), and the config.json record of the scratch directory (with the run's derived values)."""
    record = read_json(run_dir / "config.json")
    cfg = RunConfig.from_dict(record)
    first, count = segment_grid(a, points)
    cfg.train = dataclasses.replace(cfg.train, steps=b, first_checkpoint=first, n_checkpoints=count, save_every=b,
                                    eval_checkpoints=False, tensorboard=False, keep_states=True)
    return cfg, run_record(cfg, record.get("derived"))


def adopt(scratch: Path, refine: Path, step: int) -> None:
    """Move a segment's kept state, grid and checkpoint of `step` into RUN/refine/, the checkpoint last: a checkpoint
    of refine always has its kept state."""
    for folder, suffix in (("states", "pt"), ("samples", "png"), ("checkpoints", "pt")):
        source = scratch / folder / f"step_{step:08d}.{suffix}"
        if source.exists():
            (refine / folder).mkdir(parents=True, exist_ok=True)
            os.replace(source, refine / folder / source.name)


@holds_run_lock
def train_segment(run_dir: Path, a: int, b: int, points: int) -> dict[str, Any]:
    """Train the run from its kept state at a to b in RUN/refine/segment/, move the new checkpoints inside (a, b)
    with their kept states and grids into RUN/refine/, and return what happened: the steps added, the
    wall seconds, and whether the weights at b equal the run's checkpoint at b."""
    run_dir, start = Path(run_dir), state_at(Path(run_dir), a)
    refine, scratch = run_dir / REFINE, run_dir / REFINE / "segment"
    shutil.rmtree(scratch, ignore_errors=True)  # a killed refine's leftover
    cfg, record = segment_config(run_dir, a, b, points)
    write_json(scratch / "config.json", record)
    if start is not None:
        shutil.copyfile(start, scratch / "state.pt")
    began = time.perf_counter()
    train(cfg, scratch, batched=trained_batched(load_state(run_dir)))
    seconds = time.perf_counter() - began
    ours, theirs = load_checkpoint(scratch, b), load_checkpoint(weights_dir(run_dir, b), b)
    reproduced, difference = same_weights(ours, theirs), max_difference(ours, theirs)
    known = set(list_checkpoints(run_dir)) | set(list_checkpoints(refine))
    added = [s for s in list_checkpoints(scratch) if a < s < b and s not in known]
    for step in added:
        adopt(scratch, refine, step)
    shutil.rmtree(scratch)
    if not reproduced:
        print(f"freqdiff refine: warning: the segment [{a}, {b}] ends {difference:.3g} away from the run's checkpoint "
              f"at {b}: not bit for bit (another device, process count or freqdiff version trained the run)",
              file=sys.stderr)
    return {"bracket": [a, b], "new_steps": added, "train_s": round(seconds, 3),
            "train_steps": b - a, "reproduces_b": reproduced, "max_difference_at_b": difference}
