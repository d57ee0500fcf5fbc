"""`freqdiff sweep`: every (n, seed) run of a recipe -> train, eval, window (and refine with --refine true); skip what
is done, resume the rest.

Runs of one sweep share the dataset, the held-out test set and the nested training subsets (data_seed is
fixed; the seed varies the training randomness). Compatible runs train together as stacks; on a CPU the sweep uses
every core by default, relaunching itself as one process per core (accelerate's gloo ranks share each stack out).
Under `accelerate launch` the ranks given are used as they are; --launcher submitit sends the runs to a cluster
scheduler instead. Duplicate values, a --vary key another flag sets, an --out that is not this sweep's (a user's
folder, runs of other settings) are refused before anything is written; OUT/sweep.json, written first, marks it as
a sweep's. A killed sweep resumes exactly: stacks are fixed by the plan (every planned run grouped, finished or
not, at the size sweep.json records), so each unfinished run trains in the stack and rank it had uninterrupted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from freqdiff.analysis.reading.curves import load_run
from freqdiff.analysis.reading.scaling import exact_tau_mem, fit_tau_mem
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.pareto import sweep_strengths
from freqdiff.analysis.reports.report import fit_text, write_report
from freqdiff.analysis.reports.run import window_main
from freqdiff.commands.recipes import RECIPES, Recipe
from freqdiff.commands.refine import check_one_process, refine_run
from freqdiff.core.checkpoint import RESUMABLE_KEYS, list_checkpoints
from freqdiff.core.config import FLAG_ALIASES, RunConfig, apply_flags, diff_configs, split_argv
from freqdiff.core.distributed import process_state
from freqdiff.core.io import TEXT, claim_output_dir, read_json, write_json
from freqdiff.core.registry import FreqdiffError, build_params, param
from freqdiff.metrics.evaluate import evaluate_run, read_metrics
from freqdiff.pipeline.build import pool_size
from freqdiff.train.grouping import group_runs, planned_group_size
from freqdiff.train.trainer import train_runs

MARKER = "sweep.json"  # OUT/sweep.json: written before anything else, it marks OUT as a sweep's output
SET_PER_RUN = {"n": "--n", "seed": "--seeds", "steps": "--steps (the least) and --steps_per_n"}  # the sweep sets them
PER_RUN_KEYS = {"data.n", "train.seed", "train.steps"}  # what may differ between the runs of one variant


@dataclass(frozen=True)
class SweepOptions:
    """Sweep-level options; every other flag is a run flag passed to each run."""

    recipe: str = "baseline"
    n: tuple[int, ...] = ()  # empty: the recipe's grid
    seeds: tuple[int, ...] = ()  # empty: the recipe's seeds
    out: str = ""  # empty: results/<recipe>
    steps_per_n: int | None = None  # None: the recipe's
    launcher: str = param("local", choices=("local", "submitit"))  # submitit: SLURM only, never a hidden local run
    slurm_partition: str = ""
    slurm_gpus: int = 1
    slurm_hours: float = 48.0
    slurm_parallel: int = 8
    report: bool = True
    ensemble: int = param(0, ge=0)  # runs trained together as one vmapped ensemble; 0: as many as fit, 1: one at a time
    vary: str = ""  # KEY=V1,V2,...: one run flag over several values (the first the reference); empty: the recipe's
    refine: bool = False  # then `freqdiff refine` every run with its default options (one process only)
    workers: int = param(0, ge=0)  # CPU processes sharing the runs; 0: one per core (env FREQDIFF_WORKERS overrides)


@dataclass(frozen=True)
class PlannedRun:
    n: int
    seed: int
    run_dir: Path
    flags: dict[str, str]
    variant: str = ""  # its directory below --out ("": none)

    @property
    def out(self) -> Path:  # the sweep's --out
        return self.run_dir.parent.parent if self.variant else self.run_dir.parent

    def config(self) -> RunConfig:
        return apply_flags(RunConfig(), self.flags)


def parse_sweep_argv(argv: list[str]) -> tuple[SweepOptions, dict[str, str]]:
    """Split argv into sweep options and run flags (the `freqdiff train` syntax)."""
    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"sweep: unexpected argument {positional[0]!r}")
    names = {f.name for f in fields(SweepOptions)}
    options = build_params(SweepOptions, {k: v for k, v in flags.items() if k in names}, "sweep")
    run_flags = {k: v for k, v in flags.items() if k not in names}
    check_unique("--seeds", options.seeds)
    if "seed" in run_flags:
        raise FreqdiffError("--seed: a sweep sets each run's seed from --seeds; use --seeds "
                            f"{run_flags['seed']} (or a list: --seeds 0,1,2)")
    return options, run_flags


def check_unique(name: str, values: tuple[Any, ...]) -> None:
    """Refuse a list holding a value twice, naming it."""
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    if duplicates:
        raise FreqdiffError(f"{name}: duplicate values {duplicates} in {list(values)}")


def check_grid(n_grid: tuple[int, ...], pool_size: int) -> None:
    """Refuse duplicate n and n beyond the training pool, naming the bad values."""
    check_unique("--n", n_grid)
    too_big = [n for n in n_grid if n > pool_size or n < 2]
    if too_big:
        raise FreqdiffError(f"--n: {too_big} outside 2..{pool_size} (training images available)")


def varied(recipe: Recipe, vary: str, run_flags: dict[str, str]) -> Recipe:
    """The recipe with --vary KEY=V1,V2,... in place of its own `vary`; the key may not also be a run flag, nor a
    setting the sweep sets per run (n, seed, steps), and no value may come twice."""
    if vary:
        key, eq, values = vary.partition("=")
        key = FLAG_ALIASES.get(key, key)
        if not eq or not values.strip(","):
            raise FreqdiffError(f"--vary: expected KEY=V1,V2,..., got {vary!r}")
        if key in SET_PER_RUN:
            raise FreqdiffError(f"--vary {key}: the sweep sets each run's {key} from {SET_PER_RUN[key]}; "
                                f"use those instead of --vary")
        recipe = dataclasses.replace(recipe, vary=(key, tuple(v for v in values.split(",") if v)))
    if recipe.vary is not None:
        check_unique(f"--vary {recipe.vary[0]}", recipe.vary[1])
    if recipe.vary is not None and recipe.vary[0] in run_flags:
        raise FreqdiffError(f"--{recipe.vary[0]} is varied by the sweep ({', '.join(recipe.vary[1])}); "
                            "drop the flag or set --vary")
    return recipe


def plan(options: SweepOptions, run_flags: dict[str, str]) -> list[PlannedRun]:
    """The runs of the sweep, with their directories and full flags; checks the grid against the data."""
    recipe: Recipe = varied(RECIPES.build(options.recipe), options.vary, run_flags)
    n_grid = options.n or recipe.n_grid
    seeds = options.seeds or recipe.seeds
    steps_per_n = recipe.steps_per_n if options.steps_per_n is None else options.steps_per_n
    out = output_dir(options, recipe, run_flags)
    base = {**recipe.flags, **run_flags}
    probe = apply_flags(RunConfig(), {**base, "n": "2"})
    check_grid(tuple(n_grid), pool_size(probe) - probe.data.test_size)
    runs = []
    for variant, extra in recipe.variants():
        directory = variant_dir(variant)
        if directory != variant and process_state().is_main_process:
            print(f"sweep: variant {variant!r} is written to {out / directory} (a safe directory name)")
        for n in n_grid:
            for seed in seeds:
                steps = max(probe.train.steps, steps_per_n * n)
                flags = {**base, **extra, "n": str(n), "seed": str(seed), "steps": str(steps)}
                runs.append(PlannedRun(n, seed, out / directory / f"n{n:05d}-seed{seed}", flags, directory))
    seen: dict[str, PlannedRun] = {}
    for run in runs:  # validates every run's flags before any training starts
        other = seen.setdefault(json.dumps(run.config().to_dict(), sort_keys=True), run)
        if other is not run:  # --vary lr=1e-3,0.001
            raise FreqdiffError(f"{other.run_dir} and {run.run_dir} would be the same run (equal settings); "
                                "drop one of the values")
    return runs


UNSAFE = re.compile(r"[^A-Za-z0-9._,+=@-]+")


def variant_dir(name: str) -> str:
    """The variant's directory name, one path component below --out: a name with other characters than letters,
    digits and ._,+=@- (a path separator, `..`), or a long one, becomes a safe one with 8 hex digits of the
    original, so that no value leaves --out and no two values share a directory."""
    if not name or (UNSAFE.search(name) is None and len(name) <= 100 and name.strip(".")):
        return name
    digest = hashlib.sha256(name.encode("utf-8", TEXT["errors"])).hexdigest()[:8]
    return f"{UNSAFE.sub('_', name)[:80]}-{digest}"


def output_dir(options: SweepOptions, recipe: Recipe, run_flags: dict[str, str]) -> Path:
    """--out, else results/<recipe>, suffixed by the regularizer when it was swapped on the command line."""
    if options.out:
        return Path(options.out)
    swapped = run_flags.get("regularizer", recipe.flags.get("regularizer", "none")) != recipe.flags.get("regularizer", "none")
    return Path("results") / (f"{options.recipe}-{run_flags['regularizer']}" if swapped else options.recipe)


def is_done(run: PlannedRun) -> bool:
    """Trained to the end, every checkpoint evaluated, window read."""
    if not (run.run_dir / "window.json").exists() or not (run.run_dir / "state.pt").exists():
        return False
    evaluated = {int(r["step"]) for r in read_metrics(run.run_dir)}
    return set(list_checkpoints(run.run_dir)) <= evaluated and bool(evaluated)


def run_local(runs: list[PlannedRun], size: int) -> None:
    """Train each planned stack (group_runs of every run, at most `size`) holding an unfinished run, whole: its
    finished members only load, so the others train beside the members, and on the rank, they had uninterrupted.
    Then evaluate and read the window of each unfinished run (shared out over the ranks under accelerate launch)."""
    state = process_state()
    done = [is_done(r) for r in runs]
    if state.is_main_process:
        print(f"sweep: {sum(done)} of {len(runs)} runs already done")
    if all(done):
        return
    configs = [r.config() for r in runs]
    groups = [group for group in group_runs(configs, size) if not all(done[i] for i in group)]
    for group in tqdm(groups, desc=f"sweep (ensembles of <= {size})", disable=not state.is_main_process,
                      dynamic_ncols=True):
        train_runs([(configs[i], runs[i].run_dir) for i in group], shard=bool(os.environ.get(WORKER_ENV)))
        state.wait_for_everyone()
        for i in [i for i in group if not done[i]][state.process_index::state.num_processes]:
            evaluate_run(runs[i].run_dir)
            window_main(runs[i].run_dir)
        state.wait_for_everyone()


def worker_count(options: SweepOptions, runs: list[PlannedRun], size: int) -> int:
    """Processes sharing each stack out: 1 on a GPU, on a cluster, under a launcher that made several, or when all
    is done; else --workers (default one per usable CPU core), at most the stack size: fixed by the plan, not by
    what is left, so a resumed sweep shares each stack out as the first did."""
    state = process_state()
    if options.launcher != "local" or state.num_processes > 1 or state.device.type != "cpu" or \
            all(is_done(r) for r in runs):
        return 1
    wanted = options.workers or int(os.environ.get("FREQDIFF_WORKERS", "0")) or len(os.sched_getaffinity(0))
    return max(1, min(wanted, size))


def without_flags(argv: list[str], keys: set[str]) -> list[str]:
    """argv with the `--key value` / `--key=value` pairs of `keys` removed."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token.startswith("--") and token[2:].partition("=")[0] in keys:
            skip = "=" not in token
        else:
            out.append(token)
    return out


WORKER_ENV = "FREQDIFF_SWEEP_WORKER"  # set in run_on_workers' processes: a lone run trains on one, as with one worker


def run_on_workers(argv: list[str], workers: int) -> None:
    """Train, evaluate and read the runs on `workers` CPU processes (accelerate launch, gloo); refine and the report
    stay with this process, which then finds those runs done."""
    child = [*without_flags(argv, {"workers", "refine", "report"}), "--refine", "false", "--report", "false"]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(workers),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-q",  # quiet: no traceback
               "-m", "freqdiff.cli", "sweep", *child]
    launched = "ACCELERATE_MIXED_PRECISION" in os.environ  # under `accelerate launch`, which lists its defaults above
    print(f"sweep: {workers} worker processes, one per core (--workers 1 for one)"
          + ("; accelerate's 'values were not passed' notice is harmless: the workers get every setting" if launched else ""))
    result = subprocess.run(command, env={**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", WORKER_ENV: "1"})
    if result.returncode != 0:
        raise FreqdiffError(f"the {workers} worker processes stopped (exit {result.returncode}); rerun to resume, "
                            "or --workers 1 to train in this process")


def job_command(run: PlannedRun, gpus: int, refine: bool = False) -> str:
    """The shell command of one cluster job: an `accelerate launch` training, then eval, window (and refine)."""
    flags = " ".join(f"--{k} {shlex.quote(v)}" for k, v in run.flags.items())
    multi = f"--multi_gpu --num_processes {gpus}" if gpus > 1 else "--num_processes 1"
    d = shlex.quote(str(run.run_dir))
    return (f"accelerate launch {multi} -m freqdiff.cli train --out {d} {flags}"
            f" && freqdiff eval {d} && freqdiff window {d}" + (f" && freqdiff refine {d}" if refine else ""))


def submit(runs: list[PlannedRun], options: SweepOptions, cluster: str | None = None,
           on_ready: Callable[[], None] | None = None) -> list[str]:
    """Submit the unfinished runs as one SLURM job array through submitit; returns the job ids. `on_ready` is
    called once a scheduler answered, before anything is written."""
    import submitit

    todo = [r for r in runs if not is_done(r)]
    if not todo:
        return []
    folder = todo[0].run_dir.parent / "slurm"
    try:  # cluster "slurm", never None: submitit would pick its local executor when no scheduler answers
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster or "slurm")
    except RuntimeError as err:
        raise FreqdiffError(f"--launcher submitit: no SLURM scheduler reachable from here ({err}); "
                            "run the sweep on the cluster's login node, or use --launcher local") from None
    if on_ready is not None:
        on_ready()
    executor.update_parameters(timeout_min=int(options.slurm_hours * 60), gpus_per_node=options.slurm_gpus,
                               slurm_partition=options.slurm_partition or None,
                               slurm_array_parallelism=options.slurm_parallel)
    jobs = []
    try:
        with executor.batch():  # one job array
            for run in todo:
                command = submitit.helpers.CommandFunction(["bash", "-c", job_command(run, options.slurm_gpus,
                                                                                  options.refine)])
                jobs.append(executor.submit(command))
    except RuntimeError as err:  # submitit's FailedJobError / FailedSubmissionError: sbatch refused the array
        raise FreqdiffError(f"--launcher submitit: sbatch failed ({' '.join(str(err).split())[:200]})") from None
    return [job.job_id for job in jobs]


def sweep_main(argv: list[str]) -> int:
    options, run_flags = parse_sweep_argv(argv)
    if options.refine and options.launcher == "local":
        check_one_process()  # before any training
    runs = plan(options, run_flags)
    variants = list(dict.fromkeys(r.run_dir.parent for r in runs))
    out = variants[0].parent if len(variants) > 1 else variants[0]
    check_out(runs)  # before anything is written
    state = process_state()
    if options.launcher == "submitit":
        ids = submit(runs, options, on_ready=lambda: write_marker(options, runs, options.ensemble or None))
        print(f"sweep: submitted {len(ids)} jobs: {', '.join(ids)}")
        return 0
    size = planned_group_size(runs[0].config(), len(runs), options.ensemble, read_marker(runs[0].out).get("ensemble"))
    state.wait_for_everyone()  # every rank checked --out before the main one writes into it
    if state.is_main_process:
        write_marker(options, runs, size)
    if (workers := worker_count(options, runs, size)) > 1:
        run_on_workers(argv, workers)
    run_local(runs, size)
    if options.refine:
        for run in runs:
            refine_run(run.run_dir, progress=False)
    if state.is_main_process and not os.environ.get(WORKER_ENV):  # a worker leaves the summary to its caller
        write_marker(options, runs, size)
        print(scaling_summary(runs))
        if options.report:
            print(f"report: {write_report(out, redraw=False)}")  # each run's figures were drawn with its window
        if len(variants) > 1:
            print(sweep_strengths(variants, out, [r.config().to_dict() for r in runs]))
    return 0


def read_marker(out: Path, name: str = MARKER, key: str | None = "runs") -> dict[str, Any]:
    """OUT/sweep.json (or another JSON object, holding `key` unless None), {} if there is none or it is not one."""
    try:
        record = read_json(out / name) if (out / name).is_file() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and (key is None or key in record) else {}


def write_marker(options: SweepOptions, runs: list[PlannedRun], size: int | None) -> None:
    """OUT/sweep.json: what the sweep is (recipe, command line, runs) and its stack size, for a resume; the first
    write into OUT, claimed first (claim_output_dir)."""
    out = claim_output_dir(runs[0].out, MARKER)
    write_json(out / MARKER, {"recipe": options.recipe, "argv": sys.argv, "ensemble": size,
                              "runs": [str(r.run_dir) for r in runs]})


def check_out(runs: list[PlannedRun]) -> None:
    """Refuse, writing nothing, an --out that is not freqdiff's (claim_output_dir: a file, a link, a user's folder;
    a sweep's holds sweep.json) or that holds runs made with other settings than planned, naming the keys."""
    out = claim_output_dir(runs[0].out, MARKER, create=False)
    if changed := changed_settings(runs):
        keys, names = sorted({k for _, ks in changed for k in ks}), [str(d.relative_to(out)) for d, _ in changed]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise FreqdiffError(f"--out {out} holds runs made with other settings (differ in {', '.join(keys)}: "
                            f"{shown}); nothing was written: use another --out, or remove those runs")


def changed_settings(runs: list[PlannedRun]) -> list[tuple[Path, list[str]]]:
    """(run directory, keys) of each run below the sweep's variant folders whose config.json differs from the plan:
    a planned run in any key but RESUMABLE_KEYS, another run (an earlier grid) in any but those and n, seed, steps."""
    planned = {r.run_dir: r for r in runs}
    changed = []
    for variant in dict.fromkeys(r.run_dir.parent for r in runs):
        reference = next(r for r in runs if r.run_dir.parent == variant).config().to_dict()
        for config_file in sorted(variant.glob("*/config.json")) if variant.is_dir() else []:
            run = planned.get(config_file.parent)
            if not (old := read_marker(config_file.parent, config_file.name, None)):
                raise FreqdiffError(f"{config_file}: not a valid freqdiff config")
            new = run.config().to_dict() if run is not None else reference
            ignored = RESUMABLE_KEYS | (set() if run is not None else PER_RUN_KEYS)
            if differing := [k for k in diff_configs(settings_of(old), new) if k not in ignored]:
                changed.append((config_file.parent, differing))
    return changed


def settings_of(record: dict[str, Any]) -> dict[str, Any]:
    """A config.json's settings as read today (a parameter added since, its default the old behaviour, is no
    change), or as they are where they no longer read."""
    try:
        return RunConfig.from_dict(record).to_dict()
    except FreqdiffError:
        return {k: v for k, v in record.items() if k != "derived"}


def scaling_summary(runs: list[PlannedRun]) -> str:
    """Each run's window, and per variant the log-log slope of tau_mem against n with its interval (the paper: 1)."""
    lines = []
    for variant in dict.fromkeys(r.run_dir.parent for r in runs):
        windows = [read_window(load_run(r.run_dir)[1], n=r.n) for r in runs if r.run_dir.parent == variant]
        lines += [f"{variant.name} n={w.n}: tau_gen {w.tau_gen}, tau_mem {w.tau_mem_earlier}; {w.verdict}"
                  for w in windows]
        lines.append(f"{variant.name}: {fit_text(fit_tau_mem(windows), len(exact_tau_mem(windows)))}")
    return "\n".join(lines)
