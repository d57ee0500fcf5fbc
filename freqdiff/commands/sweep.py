"""`freqdiff sweep`: every (n, seed) run of a recipe -> train, eval, window (and refine with --refine true); skip what
is done, resume the rest.

Runs of one sweep share the dataset, the held-out test set and the nested training subsets (data_seed is
fixed; the seed varies the training randomness). Compatible runs train together as stacks; on a CPU the sweep uses
every core by default, relaunching itself as one process per core (accelerate's gloo ranks share the runs out; a
run's arithmetic does not depend on the count, so neither do its numbers). Under `accelerate launch` the ranks given
are used as they are; --launcher submitit sends the runs to a cluster scheduler instead.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from tqdm.auto import tqdm

from freqdiff.analysis.reading.curves import load_run
from freqdiff.analysis.reading.scaling import exact_tau_mem, fit_tau_mem
from freqdiff.analysis.reading.window import read_window
from freqdiff.analysis.reports.pareto import write_pareto
from freqdiff.analysis.reports.report import fit_text, write_report
from freqdiff.analysis.reports.run import window_main
from freqdiff.commands.recipes import RECIPES, Recipe
from freqdiff.commands.refine import check_one_process, refine_run
from freqdiff.core.checkpoint import list_checkpoints
from freqdiff.core.config import RunConfig, apply_flags, split_argv
from freqdiff.core.distributed import process_state
from freqdiff.core.io import write_json
from freqdiff.core.registry import FreqdiffError, build_params, param
from freqdiff.metrics.evaluate import evaluate_run, read_metrics
from freqdiff.pipeline.build import pool_size
from freqdiff.train.grouping import auto_group_size, group_runs
from freqdiff.train.trainer import train_runs


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

    def config(self) -> RunConfig:
        return apply_flags(RunConfig(), self.flags)


def parse_sweep_argv(argv: list[str]) -> tuple[SweepOptions, dict[str, str]]:
    """Split argv into sweep options and run flags (the `freqdiff train` syntax)."""
    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"sweep: unexpected argument {positional[0]!r}")
    names = {f.name for f in fields(SweepOptions)}
    options = build_params(SweepOptions, {k: v for k, v in flags.items() if k in names}, "sweep")
    return options, {k: v for k, v in flags.items() if k not in names}


def check_grid(n_grid: tuple[int, ...], pool_size: int) -> None:
    """Refuse duplicate n and n beyond the training pool, naming the bad values."""
    duplicates = sorted({n for n in n_grid if n_grid.count(n) > 1})
    if duplicates:
        raise FreqdiffError(f"--n: duplicate values {duplicates} in {list(n_grid)}")
    too_big = [n for n in n_grid if n > pool_size or n < 2]
    if too_big:
        raise FreqdiffError(f"--n: {too_big} outside 2..{pool_size} (training images available)")


def varied(recipe: Recipe, vary: str, run_flags: dict[str, str]) -> Recipe:
    """The recipe with --vary KEY=V1,V2,... in place of its own `vary`; the key may not also be a run flag."""
    if vary:
        key, eq, values = vary.partition("=")
        if not eq or not values.strip(","):
            raise FreqdiffError(f"--vary: expected KEY=V1,V2,..., got {vary!r}")
        recipe = dataclasses.replace(recipe, vary=(key, tuple(v for v in values.split(",") if v)))
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
        for n in n_grid:
            for seed in seeds:
                steps = max(probe.train.steps, steps_per_n * n)
                flags = {**base, **extra, "n": str(n), "seed": str(seed), "steps": str(steps)}
                runs.append(PlannedRun(n, seed, out / variant / f"n{n:05d}-seed{seed}", flags))
    for run in runs:
        run.config()  # validate every run's flags before any training starts
    return runs


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


def run_local(runs: list[PlannedRun], group_size: int = 0) -> None:
    """Train the unfinished runs in ensembles of `group_size` (0: automatic), then evaluate and read the window of
    each; under `accelerate launch` an ensemble's members and the evaluations are shared out over the ranks."""
    state = process_state()
    todo = [r for r in runs if not is_done(r)]
    if state.is_main_process:
        print(f"sweep: {len(runs) - len(todo)} of {len(runs)} runs already done")
    if not todo:
        return
    configs = [r.config() for r in todo]
    size = group_size or auto_group_size(configs[0], len(todo), state.device)
    for group in tqdm(group_runs(configs, size), desc=f"sweep (ensembles of <= {size})", disable=not state.is_main_process,
                      dynamic_ncols=True):
        train_runs([(configs[i], todo[i].run_dir) for i in group])  # one run: data-parallel; many: sharded
        state.wait_for_everyone()
        for i in group[state.process_index::state.num_processes]:
            evaluate_run(todo[i].run_dir)
            window_main(todo[i].run_dir)
        state.wait_for_everyone()


def worker_count(options: SweepOptions, runs: list[PlannedRun]) -> int:
    """Processes to share the unfinished runs out over: 1 on a GPU, on a cluster, or under a launcher that made
    several already; else --workers, by default one per CPU core this process may use."""
    state = process_state()
    if options.launcher != "local" or state.num_processes > 1 or state.device.type != "cpu":
        return 1
    wanted = options.workers or int(os.environ.get("FREQDIFF_WORKERS", "0")) or len(os.sched_getaffinity(0))
    return max(1, min(wanted, sum(not is_done(r) for r in runs)))


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


def run_on_workers(argv: list[str], workers: int) -> None:
    """Train, evaluate and read the runs on `workers` CPU processes (accelerate launch, gloo); refine and the report
    stay with this process, which then finds those runs done."""
    child = [*without_flags(argv, {"workers", "refine", "report"}), "--refine", "false", "--report", "false"]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(workers),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "freqdiff.cli", "sweep", *child]
    print(f"sweep: {workers} worker processes, one per core (--workers 1 for one)")
    result = subprocess.run(command, env={**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"})
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


def submit(runs: list[PlannedRun], options: SweepOptions, cluster: str | None = None) -> list[str]:
    """Submit the unfinished runs as one SLURM job array through submitit; returns the job ids."""
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
    if options.launcher == "submitit":
        ids = submit(runs, options)
        print(f"sweep: submitted {len(ids)} jobs: {', '.join(ids)}")
        return 0
    workers = worker_count(options, runs)
    if workers > 1:
        run_on_workers(argv, workers)
    run_local(runs, options.ensemble)
    if options.refine:
        for run in runs:
            refine_run(run.run_dir, progress=False)
    if process_state().is_main_process:
        write_json(out / "sweep.json", {"recipe": options.recipe, "argv": sys.argv,
                                        "runs": [str(r.run_dir) for r in runs]})
        print(scaling_summary(runs))
        if options.report:
            print(f"report: {write_report(out, redraw=False)}")  # each run's figures were drawn with its window
        if len(variants) > 1:
            print(f"strengths (-> {out / 'pareto.md'}): {write_pareto(variants, out)}")
    return 0


def scaling_summary(runs: list[PlannedRun]) -> str:
    """Each run's window, and per variant the log-log slope of tau_mem against n with its interval (the paper: 1)."""
    lines = []
    for variant in dict.fromkeys(r.run_dir.parent for r in runs):
        windows = [read_window(load_run(r.run_dir)[1], n=r.n) for r in runs if r.run_dir.parent == variant]
        lines += [f"{variant.name} n={w.n}: tau_gen {w.tau_gen}, tau_mem {w.tau_mem_earlier}; {w.verdict}"
                  for w in windows]
        lines.append(f"{variant.name}: {fit_text(fit_tau_mem(windows), len(exact_tau_mem(windows)))}")
    return "\n".join(lines)
