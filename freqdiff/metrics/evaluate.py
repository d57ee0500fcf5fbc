"""`freqdiff eval`: per checkpoint, samples -> quality with errors, both copy measures, fixed-t losses -> metrics.csv.

The measures are freqdiff.metrics.quality.measure_samples: FD, KID, precision/recall/density/coverage,
recognizability and the spectral distance, each the mean +- 2 sigma over disjoint folds, in the feature space
of the extractor named on every row; f_mem and the noise-robust f_mem with their 95% intervals.

Sampling, most of an eval's cost, draws up to SAMPLED_TOGETHER checkpoints at once as one stacked network.
A baseline run (a closed-form model, freqdiff.commands.baseline) is measured with these functions per value of its
own parameter. Resumable: a checkpoint already in metrics.csv is skipped, each row is committed atomically as soon as
it is measured, and the eval settings are pinned in eval_config.json so rows are never mixed.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm

from freqdiff.core.checkpoint import (check_config_paths, holds_run_lock, list_checkpoints, load_run_config,
                                      load_weights, trust_path)
from freqdiff.core.config import EvalConfig, RunConfig, diff_configs, section_from_values
from freqdiff.core.io import atomic_path, read_csv, read_json, write_csv, write_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.data import value_range
from freqdiff.data.split import PIXELS
from freqdiff.metrics import fmem, get_extractor
from freqdiff.metrics.diagnostics import band_errors, plot_band_errors
from freqdiff.metrics.extractors import Extractor
from freqdiff.metrics.losses import fixed_t_loss
from freqdiff.metrics.quality import MEASURED, check_fold_sizes, measure_samples
from freqdiff.models.stack import StackedModel
from freqdiff.pipeline.build import Pipeline, build_pipeline, set_cpu_threads
from freqdiff.samplers import draw_samples
from freqdiff.samplers.stacked import draw_member_samples

COLUMNS = ["step", *MEASURED, "loss_train", "loss_test", "extractor", "n_samples", "folds"]
NEAREST_SHOWN = 16  # samples saved beside their nearest training image, per checkpoint
SPECTRAL_HELDOUT = 256  # held-out images noised for the spectral diagnostics
SAMPLED_TOGETHER = 16  # checkpoints sampled in one batched pass (bench/bench_ensemble.py: sampling)


def read_metrics(run_dir: Path, columns: list[str] = COLUMNS) -> list[dict[str, str]]:
    """The rows of metrics.csv, refusing a file whose columns this version does not write."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    rows = read_csv(path)
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    if header != columns:
        raise FreqdiffError(f"{path} was written by an incompatible version (columns {header}); move it away to re-evaluate")
    return rows


def check_eval_config(run_dir: Path, cfg: EvalConfig) -> None:
    """Refuse eval settings other than those the rows of metrics.csv were measured with."""
    path = run_dir / "eval_config.json"
    if path.exists() and (run_dir / "metrics.csv").exists():
        differing = diff_configs(read_json(path), dataclasses.asdict(cfg))
        if differing:
            raise FreqdiffError(
                f"{run_dir}/metrics.csv was measured with other eval settings (differs in {', '.join(differing)}); "
                "move metrics.csv away to re-evaluate"
            )


def pin_eval_config(run_dir: Path, cfg: EvalConfig) -> None:
    """Record the eval settings on first use; refuse to add rows made with other settings."""
    check_eval_config(run_dir, cfg)
    write_json(run_dir / "eval_config.json", dataclasses.asdict(cfg))


def check_quantize(cfg: RunConfig) -> None:
    """--quantize rounds pixel = x + mean to uint8, which holds only for data declared in [0, 1]: refuse it elsewhere
    (an imported diffusers run is in [-1, 1]; gaussian_mixture is not images)."""
    declared = value_range(cfg.dataset.name)
    if cfg.eval.quantize and declared != PIXELS:
        raise FreqdiffError(f"--quantize true: uint8 rounding needs pixels in [0, 1], but dataset '{cfg.dataset.name}' "
                            f"holds {'points, not images' if declared is None else f'values in {list(declared)}'}; "
                            "leave --quantize false")


_NOTED: set[str] = set()  # the extractor notes this process has printed


def extractor_of(cfg: RunConfig, image_shape: tuple[int, ...]) -> Extractor:
    """The run's extractor for its images, with --extractor.weights when given; says what 'auto' chose."""
    weights = {"weights": cfg.eval.extractor_weights} if cfg.eval.extractor_weights else {}
    extractor = get_extractor(cfg.eval.extractor, image_shape=image_shape, **weights)
    if extractor.note and extractor.note not in _NOTED:  # once per process, not once per run of a sweep
        _NOTED.add(extractor.note)
        tqdm.write(extractor.note)
    return extractor


def sample_checkpoints(pipe: Pipeline, cfg: RunConfig, run_dir: Path, steps: list[int],
                       group: int = SAMPLED_TOGETHER) -> Iterator[tuple[int, Tensor]]:
    """(step, samples) of every checkpoint in `steps`, `group` checkpoints drawn at once as one stacked network.

    Every checkpoint starts from the same seeded noise, so neighbouring checkpoints are compared on common draws.
    """
    e, split = cfg.eval, pipe.split
    for start in range(0, len(steps), group):
        chosen = steps[start:start + group]
        models = []
        for step in chosen:
            model = copy.deepcopy(pipe.model)
            load_weights(model, run_dir, step, e.use_ema)
            models.append(model)
        if len(models) == 1:
            samples = draw_samples(pipe.sampler, models[0], pipe.process, e.n_samples, split.image_shape, e.sample_seed)[None]
        else:
            samples = draw_member_samples(pipe.sampler, StackedModel(models), pipe.process, e.n_samples,
                                          split.image_shape, e.sample_seed)
        yield from zip(chosen, samples)


def measure_checkpoint(pipe: Pipeline, cfg: RunConfig, extractor: Extractor, cache_dir: Path | None,
                       samples: Tensor) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One metrics row for a checkpoint's samples and the weights in pipe.model, plus nearest-neighbour examples."""
    e, split = cfg.eval, pipe.split
    row = {**measure_samples(samples, split, e, extractor, cache_dir),
           "loss_train": fixed_t_loss(pipe.model, pipe.process, split.train, e.fixed_t, e.loss_draws),
           "loss_test": fixed_t_loss(pipe.model, pipe.process, split.test, e.fixed_t, e.loss_draws)}
    shown = samples[:NEAREST_SHOWN]
    memo = fmem(shown, split.train, k=e.k, quantize=e.quantize, mean=split.mean.reshape(1, -1, 1, 1), n_boot=1)
    nearest = {"samples": split.to_unit(shown).numpy(), "nearest": split.to_unit(split.train[memo.nearest]).numpy(),
               "ratio": memo.ratio.numpy()}
    return row, nearest


def measure_into(out_dir: Path, weights_dir: Path, steps: list[int], pipe: Pipeline, cfg: RunConfig,
                 extractor: Extractor, rows: list[dict[str, Any]], progress: bool = True,
                 cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Measure the checkpoints `steps` of weights_dir into out_dir: each row joins `rows` (sorted by step) and is
    committed to out_dir/metrics.csv as soon as it is measured, after its nearest/ examples (and, with
    cfg.eval.spectral, its spectral.csv rows). Returns `rows`."""
    sampled = sample_checkpoints(pipe, cfg, weights_dir, steps)
    for step, samples in tqdm(sampled, total=len(steps), desc=f"eval {out_dir.name}", disable=not progress,
                              dynamic_ncols=True):
        load_weights(pipe.model, weights_dir, step, cfg.eval.use_ema)
        row, nearest = measure_checkpoint(pipe, cfg, extractor, cache_dir, samples)
        if cfg.eval.spectral:
            _save_spectral(out_dir, step, pipe, cfg.eval)
        rows.append({"step": step, **row})
        rows.sort(key=lambda r: int(r["step"]))
        save_nearest(out_dir / "nearest" / f"step_{step:08d}.npz", nearest)
        write_csv(out_dir / "metrics.csv", rows, COLUMNS)  # last: a row exists only once all its files do
    return rows


@holds_run_lock  # one writer per run: a second eval, or a train of this run, is refused naming the holder
def evaluate_run(run_dir: Path, steps: list[int] | None = None, overrides: dict[str, str] | None = None,
                 progress: bool = True, cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Evaluate every checkpoint (or `steps`) of a run that metrics.csv does not hold yet. Extractor weights that
    config.json names outside the run are refused unless named on the command line (check_config_paths)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if overrides:
        trust_path(overrides.get("extractor_weights"))
        cfg.eval = section_from_values(EvalConfig, {**dataclasses.asdict(cfg.eval), **overrides}, "eval")
    check_config_paths(run_dir, cfg)
    available = list_checkpoints(run_dir)
    if not available:
        raise FreqdiffError(f"{run_dir}: no checkpoints to evaluate (train first)")
    rows = read_metrics(run_dir)
    reference_size = cfg.data.test_size if cfg.eval.fid_reference == "test" else cfg.data.n
    check_fold_sizes(cfg.eval.n_samples, reference_size, cfg.eval.folds, cfg.eval.fid_reference)  # before any write
    check_quantize(cfg)
    check_eval_config(run_dir, cfg.eval)
    done = {int(r["step"]) for r in rows}
    todo = [s for s in (steps or available) if s not in done and s in available]
    if not todo:
        return rows
    set_cpu_threads(cfg.train.threads)
    pipe = build_pipeline(cfg)
    extractor = extractor_of(cfg, pipe.split.image_shape)  # bad weights are refused before eval_config.json is written
    pin_eval_config(run_dir, cfg.eval)
    measure_into(run_dir, run_dir, todo, pipe, cfg, extractor, rows, progress, cache_dir)
    if cfg.eval.spectral:
        spectral = [{k: (int if k in ("tau", "band") else float)(v) for k, v in r.items()}
                    for r in read_csv(run_dir / "spectral.csv")]
        plot_band_errors(spectral, run_dir / "figures" / "spectral_bands.png")
    return rows


def _save_spectral(run_dir: Path, step: int, pipe: Pipeline, cfg: EvalConfig) -> None:
    """Append this checkpoint's per-band errors (diagnostics.band_errors) to spectral.csv."""
    path = run_dir / "spectral.csv"
    kept = [r for r in read_csv(path) if int(r["tau"]) != step] if path.exists() else []
    heldout = pipe.split.test[:SPECTRAL_HELDOUT]
    new = [{"tau": step, **r} for r in band_errors(pipe.model, pipe.process, pipe.split.train, heldout,
                                                   bands=cfg.spectral_bands)]
    write_csv(path, sorted(kept + new, key=lambda r: int(r["tau"])), list(new[0]))


def save_nearest(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save a few samples beside their nearest training images for the nearest-neighbour figure."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)

