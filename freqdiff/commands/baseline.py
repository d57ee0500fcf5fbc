"""Baseline runs: a model that is never trained, measured over one of its own parameters as a trained run is over tau.

A baseline run directory is a run directory whose axis is a parameter of its closed-form model:

    config.json    the run record (the resolved run config, the model at the first value) plus
                   "axis": {"parameter": "sigma", "values": [...]}  (parameter null: one point, the model as it is)
    metrics.csv    one row per value: the parameter's column (named after it; "model" for one point) in place of
                   step, then every other column of a trained run's metrics.csv (evaluate.COLUMNS): quality with
                   errors, f_mem and fmem_robust with their intervals, the fixed-t losses
    eval_config.json, samples/<param>_<value>.png, nearest/<param>_<value>.npz, spectral.csv (the parameter's
                   column in place of tau), as a trained run has per checkpoint

`freqdiff baseline` creates one and measures it; `freqdiff eval` measures the values not yet in metrics.csv (it
is resumable and keeps the eval settings pinned, as for checkpoints); `freqdiff report` shows baseline runs beside
trained ones. Every value is sampled from the same seeded noise as every checkpoint of a trained run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from freqdiff.analysis.reading.baselines import AXIS, ONE_POINT, file_label
from freqdiff.core.checkpoint import (check_config_paths, check_run_dir, check_run_layout, holds_run_lock,
                                      load_run_config, run_record, trust_path)
from freqdiff.core.config import EvalConfig, RunConfig, apply_flags, diff_configs, section_from_values, split_argv
from freqdiff.core.io import RunLock, make_dir, one_line_errors, read_csv, read_json, write_csv, write_json
from freqdiff.core.registry import FreqdiffError
from freqdiff.metrics.diagnostics import band_errors
from freqdiff.metrics.evaluate import (COLUMNS, SPECTRAL_HELDOUT, extractor_of, measure_checkpoint, pin_eval_config,
                                       read_metrics, save_nearest)
from freqdiff.metrics.extractors import Extractor
from freqdiff.metrics.quality import check_fold_sizes
from freqdiff.models import MODELS
from freqdiff.models.optimal_score import is_closed_form
from freqdiff.pipeline.build import Pipeline, build_pipeline, load_split, set_cpu_threads
from freqdiff.samplers import draw_samples
from freqdiff.samplers.grids import save_grid


@dataclass(frozen=True)
class Axis:
    """The parameter a baseline run is measured over, and its values (JSON values of the model's parameter)."""

    parameter: str | None
    values: tuple[Any, ...]

    @property
    def column(self) -> str:
        return self.parameter or ONE_POINT

    @property
    def columns(self) -> list[str]:
        """metrics.csv's columns: the axis, then a trained run's columns but step."""
        return [self.column, *COLUMNS[1:]]

    def config_at(self, cfg: RunConfig, value: Any) -> RunConfig:
        """The run config of one value (the model's parameter set to it)."""
        if self.parameter is None:
            return cfg
        flags = {"model": cfg.model.name, **{f"model.{k}": v for k, v in cfg.model.params.items()}}
        return apply_flags(cfg, {**flags, f"model.{self.parameter}": value})

    def record(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "values": list(self.values)}


def read_axis(run_dir: Path) -> Axis:
    raw = read_json(Path(run_dir) / "config.json")[AXIS]
    return Axis(raw["parameter"], tuple(raw["values"]))


def value_text(value: Any) -> str:
    """A value as a cell and a file name: 0.1, 3 (a one-size patch), 3-5 (a schedule), the model's name."""
    if isinstance(value, (list, tuple)):
        return "-".join(value_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_axis(model: str, parameter: str | None, values: str) -> Axis:
    """The axis of `model` from the command line: each comma-separated value type-checked as the parameter."""
    if parameter is None:
        if values:
            raise FreqdiffError("--values needs --axis: the model parameter the values are for")
        return Axis(None, (model,))
    known = [f.name for f in dataclasses.fields(MODELS.entry(model).params)]
    if parameter not in known:
        raise FreqdiffError(f"--axis: model '{model}' has no parameter {parameter!r}; parameters: {', '.join(known)}")
    items = [v for v in values.split(",") if v.strip()]
    if not items:
        raise FreqdiffError(f"--values: give the values of {parameter}, comma-separated (e.g. --values 0,0.1,0.2)")
    parsed = [dataclasses.asdict(MODELS.params(model, {parameter: item}))[parameter] for item in items]
    return Axis(parameter, tuple(sorted(set(map(_frozen, parsed)), key=_order)))


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _order(value: Any) -> Any:
    """Values sort numerically (a tuple by its sizes), None last."""
    return (value is None, value if not isinstance(value, (str, type(None))) else str(value))


def _without_axis_value(record: dict[str, Any], parameter: str | None) -> dict[str, Any]:
    """The record as compared between invocations: the axis and the axis parameter's value left out."""
    record = {k: v for k, v in record.items() if k != AXIS}
    if parameter is not None:
        params = {k: v for k, v in record["model"]["params"].items() if k != parameter}
        record = {**record, "model": {**record["model"], "params": params}}
    return record


def claim_baseline_run(run_dir: Path, cfg: RunConfig, axis: Axis, derived: dict[str, Any]) -> Axis:
    """Write (or extend) a baseline run's config.json; refuse a directory of another run. Returns the axis with the
    values already there added. A link, a file, a folder of another's, or a run whose samples/, nearest/, ... are links
    is refused before anything is written."""
    config_file = run_dir / "config.json"
    if not config_file.exists():
        check_run_dir(run_dir, cfg, derived)  # not a link, not a file, no foreign entries
    else:
        check_run_layout(run_dir)
    make_dir(run_dir, "--out ")
    trust_path(cfg.eval.extractor_weights)  # named on this command line
    with RunLock(run_dir):
        new = run_record(axis.config_at(cfg, axis.values[0]), derived)
        if config_file.exists():
            old = read_json(config_file)
            if AXIS not in old:
                raise FreqdiffError(f"--out {run_dir}: is a trained run, not a baseline run; choose another --out")
            previous = Axis(old[AXIS]["parameter"], tuple(map(_frozen, old[AXIS]["values"])))
            differing = diff_configs(_without_axis_value(old, previous.parameter),
                                     _without_axis_value(new, axis.parameter))
            if previous.parameter != axis.parameter:
                differing.append(f"axis ({previous.parameter} != {axis.parameter})")
            if differing:
                raise FreqdiffError(f"{run_dir} was made with a different config (differs in {', '.join(differing)}); "
                                    "use another --out or remove that directory")
            axis = Axis(axis.parameter, tuple(sorted(set(previous.values) | set(axis.values), key=_order)))
            new = run_record(axis.config_at(cfg, axis.values[0]), derived)
        write_json(config_file, {**new, AXIS: axis.record()})
    return axis


def check_closed_form(pipe: Pipeline, name: str) -> None:
    """A baseline run measures a model that is never trained (closed_form, possibly inside a regularizer's wrapper)."""
    if not is_closed_form(pipe.model):
        raise FreqdiffError(f"--model {name}: a network needs training (freqdiff train); a baseline run takes a "
                            "closed-form model: empirical, smoothed_empirical, els, nn_projection")


def _save_spectral(run_dir: Path, axis: Axis, value: Any, pipe: Pipeline, cfg: EvalConfig) -> None:
    """This value's per-band errors against the memorizer (diagnostics.band_errors) into spectral.csv."""
    path, cell = run_dir / "spectral.csv", value_text(value)
    kept = [r for r in read_csv(path) if r[axis.column] != cell] if path.exists() else []
    new = [{axis.column: cell, **r} for r in band_errors(pipe.model, pipe.process, pipe.split.train,
                                                          pipe.split.test[:SPECTRAL_HELDOUT], bands=cfg.spectral_bands)]
    write_csv(path, kept + new, list(new[0]))


def measure_value(run_dir: Path, cfg: RunConfig, axis: Axis, value: Any, extractor: Extractor,
                  cache_dir: Path | None) -> dict[str, Any]:
    """Sample the model at one value of its parameter and measure it as a checkpoint: one metrics row."""
    pipe = build_pipeline(axis.config_at(cfg, value))
    check_closed_form(pipe, cfg.model.name)
    e, label = cfg.eval, file_label(axis.column, value_text(value))
    samples = draw_samples(pipe.sampler, pipe.model, pipe.process, e.n_samples, pipe.split.image_shape, e.sample_seed)
    row, nearest = measure_checkpoint(pipe, cfg, extractor, cache_dir, samples)
    save_grid(pipe.split.to_unit(samples[:e.grid_size]), run_dir / "samples" / f"{label}.png")
    save_nearest(run_dir / "nearest" / f"{label}.npz", nearest)
    if e.spectral:
        _save_spectral(run_dir, axis, value, pipe, e)
    return {axis.column: value_text(value), **row}


def measure_values(run_dir: Path, overrides: dict[str, str] | None = None, progress: bool = True,
                   cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Measure every value of the axis not yet in metrics.csv (the caller holds the run's lock)."""
    run_dir = Path(run_dir)
    cfg, axis = load_run_config(run_dir), read_axis(run_dir)
    if overrides:
        trust_path(overrides.get("extractor_weights"))
        cfg.eval = section_from_values(EvalConfig, {**dataclasses.asdict(cfg.eval), **overrides}, "eval")
    check_config_paths(run_dir, cfg)  # extractor weights outside the run: only when named on the command line
    rows = read_metrics(run_dir, axis.columns)
    reference_size = cfg.data.test_size if cfg.eval.fid_reference == "test" else cfg.data.n
    check_fold_sizes(cfg.eval.n_samples, reference_size, cfg.eval.folds, cfg.eval.fid_reference)
    pin_eval_config(run_dir, cfg.eval)
    done = {r[axis.column] for r in rows}
    todo = [v for v in axis.values if value_text(v) not in done]
    if not todo:
        return rows
    set_cpu_threads(cfg.train.threads)
    extractor = extractor_of(cfg, load_split(cfg).image_shape)
    order = [value_text(v) for v in axis.values]
    for value in tqdm(todo, desc=f"baseline {run_dir.name}", disable=not progress, dynamic_ncols=True):
        rows.append(measure_value(run_dir, cfg, axis, value, extractor, cache_dir))
        rows.sort(key=lambda r: order.index(str(r[axis.column])))
        write_csv(run_dir / "metrics.csv", rows, axis.columns)  # last: a row exists only once all its files do
    return rows


evaluate_baseline_run = holds_run_lock(measure_values)


def default_run_dir(cfg: RunConfig, axis: Axis) -> Path:
    return Path("runs") / f"{cfg.dataset.name}-{cfg.model.name}-{axis.parameter or 'point'}-n{cfg.data.n}"


def run_baseline(cfg: RunConfig, axis: Axis, run_dir: Path | None = None,
                 progress: bool = True) -> tuple[Path, list[dict[str, Any]]]:
    """Create (or extend) a baseline run and measure every value of its axis; every value's settings are checked
    before anything is written. Returns the run directory and its metrics rows."""
    probes = [build_pipeline(axis.config_at(cfg, value)) for value in axis.values]
    check_closed_form(probes[0], cfg.model.name)
    extractor_of(cfg, probes[0].split.image_shape)  # a feature extractor that does not fit the images
    run_dir = run_dir or default_run_dir(cfg, axis)
    claim_baseline_run(run_dir, cfg, axis, probes[0].process.derived())
    return run_dir, evaluate_baseline_run(run_dir, progress=progress)


@one_line_errors  # a read-only --out, a full disk: one line naming the path
def baseline_main(argv: list[str]) -> int:
    """`freqdiff baseline`: create (or extend) a baseline run and measure every value of its axis."""
    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"baseline: unexpected argument {positional[0]!r}; options are --name value")
    out, parameter, values = flags.pop("out", None), flags.pop("axis", None), flags.pop("values", "")
    cfg = apply_flags(RunConfig(), flags)
    axis = parse_axis(cfg.model.name, parameter, values)
    _, rows = run_baseline(cfg, axis, Path(out) if out else None)
    for row in rows:
        print(f"{axis.column} {row[axis.column]}: f_mem {_cell(row['fmem'])}, fmem_robust {_cell(row['fmem_robust'])}, "
              f"FD {_cell(row['fid'])} ({row['extractor']})")
    return 0


def _cell(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number:.3g}" if math.isfinite(number) else "—"


def baseline_help() -> str:
    """`freqdiff baseline --help`."""
    return "\n".join([
        "usage: freqdiff baseline --model NAME [--axis PARAM --values V1,V2,...] [--out RUN_DIR] [run options]",
        "  a model that is never trained, measured over one of its parameters as a trained run is over tau:",
        "  config.json (with the axis) and metrics.csv (one row per value), samples/, nearest/, spectral.csv.",
        "  --model NAME      a closed-form model: empirical, smoothed_empirical, els, nn_projection (freqdiff list)",
        "  --axis PARAM      the model parameter to vary (e.g. sigma, strength, patch); none: one point",
        "  --values LIST     its values, comma-separated; a later call with more values adds them to the run",
        "  --out RUN_DIR     default runs/<dataset>-<model>-<axis>-n<n>",
        "  run options       as `freqdiff train --help` (data, process, sampler, eval; e.g. --n 16 --sampler.steps 50)",
        "  `freqdiff eval RUN_DIR` measures values not yet measured; `freqdiff report DIR` shows baseline runs too.",
    ])
