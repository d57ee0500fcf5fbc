"""`freqdiff refine RUN`: denser checkpoints and more samples where tau_gen and tau_mem fall.

Each transition's 95% interval, read off the run's curves merged with the refined rows, is bracketed by the
measured checkpoints around it, [a, b]. Training resumes from the state kept at a (RUN/states/ or RUN/refine/states/;
at step 0 the seed's initial weights) and runs to b with `points` extra log-spaced checkpoints in between, in a
scratch run directory RUN/refine/segment/, with the arithmetic the run's states record (batched when it trained
beside others). Every random draw of step s is seeded by (seed, s), so each new checkpoint is the one the run would
have written had it been configured to save there; the segment's weights at b are compared with the run's checkpoint
at b to show it. Every checkpoint, the run's and the new ones, is then measured with `samples` samples (the FD's
bias and error depend on the count, so the window is read off one curve measured with one count), and rounds repeat
until each interval's half-width is within `target` of its estimate, or the rounds or the budget of
extra training steps run out. A transition not reached by the last checkpoint is not refined (said so).

The run's own files are never changed: refine holds the run's lock and writes only under RUN/refine/:
  checkpoints/, states/, samples/           the extra checkpoints, their kept states (later rounds start there), grids
  metrics.csv, eval_config.json, nearest/   metrics.csv's columns, measured with `samples` samples a checkpoint
  refine.json                               per round: brackets, intervals before and after, segments, cost
Refine runs in one process (never under `accelerate launch`).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from freqdiff.analysis.reading.curves import load_run
from freqdiff.analysis.reading.onsets import Onset, WindowRule
from freqdiff.analysis.reading.window import Window, read_window
from freqdiff.commands.external import RECORD as IMPORT_RECORD
from freqdiff.commands.refine_segment import REFINE, segment_grid, state_at, train_segment, weights_dir
from freqdiff.core.checkpoint import checkpoint_steps, holds_run_lock, list_checkpoints, load_run_config
from freqdiff.core.config import EvalConfig, RunConfig, section_from_values, split_argv
from freqdiff.core.distributed import process_state
from freqdiff.core.io import read_json, write_json
from freqdiff.core.registry import FreqdiffError, build_params, option_lines, param
from freqdiff.metrics.evaluate import extractor_of, measure_into, pin_eval_config, read_metrics
from freqdiff.metrics.quality import check_fold_sizes
from freqdiff.pipeline.build import build_pipeline


@dataclass(frozen=True)
class RefineOptions:
    """The options of `freqdiff refine` (OPTION_HELP says what each does)."""

    target: float = param(0.05, gt=0)
    samples: int = param(2048, ge=2)
    points: int = param(6, ge=1)
    budget: int | None = param(None, ge=1)
    rounds: int = param(3, ge=1)


OPTION_HELP = {
    "target": "stop when each tau's 95% interval half-width, (high - low) / 2, is within this fraction of its estimate",
    "samples": "samples drawn at every measured checkpoint (the run's own eval uses eval.n_samples)",
    "points": "extra log-spaced checkpoints trained inside each bracket, per round",
    "budget": "extra training steps over all rounds (None: the run's own train.steps)",
    "rounds": "at most this many rounds of train, measure, re-read the window",
}


def refine_help() -> str:
    """`freqdiff refine --help`."""
    return "\n".join(["usage: freqdiff refine RUN_DIR [refine options]   -> RUN_DIR/refine/ (metrics.csv, refine.json, "
                      "checkpoints/, states/); the run's own files stay as they are", "refine options:",
                      *option_lines(RefineOptions, OPTION_HELP),
                      "Needs the run's kept states (train.keep_states, default true); runs in one process."])


# ---- where the transitions are ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A transition's 95% interval in steps (low 0: before the first checkpoint) and its point estimate."""

    low: float
    high: float
    estimate: float

    @property
    def half_width(self) -> float:
        """(high - low) / 2 / estimate, the width `target` is about."""
        return (self.high - self.low) / 2 / self.estimate if self.estimate > 0 else math.inf

    def __str__(self) -> str:
        return f"[{self.low:.0f}, {self.high:.0f}] ~{self.estimate:.0f} (±{self.half_width:.1%})"


@dataclass(frozen=True)
class Plan:
    """One transition in one round: its interval, the bracket to train (None: not now) and the reason if not."""

    name: str
    interval: Interval | None
    bracket: tuple[int, int] | None
    reason: str  # '' when bracketed; else met, censored, undefined or its bracket's grid already measured

    def record(self) -> dict[str, Any]:
        """The plan as refine.json holds it."""
        shown = {} if self.interval is None else {**dataclasses.asdict(self.interval),
                                                   "half_width": self.interval.half_width}
        return {**shown, "bracket": list(self.bracket) if self.bracket else None, "status": self.reason or "open"}


def interval(onset: Onset, steps: Sequence[int]) -> Interval | str:
    """A transition's 95% interval, or why it cannot be refined.

    Until the window reader fills Onset.estimate, low and high, the interval of a reached transition is the measured
    checkpoints before and at onset.step, its estimate onset.step."""
    if onset.step is None:
        return f"undefined ({onset.how}): not refined"
    if not onset.reached:
        return f"right-censored (>= {onset.step}: not reached by the last checkpoint {steps[-1]}): not refined"
    if onset.estimate is None:
        before = [s for s in steps if s < onset.step]
        return Interval(before[-1] if before else 0, onset.step, onset.step)
    if onset.high is None:
        return f"its interval reaches past the last checkpoint {steps[-1]}: not refined"
    return Interval(0 if onset.low is None else onset.low, onset.high, onset.estimate)


def bracket(iv: Interval, steps: Sequence[int]) -> tuple[int, int]:
    """The measured checkpoints around an interval: the last at or below its low end (0 if none), the first at or
    above its high end."""
    return max((s for s in steps if s <= iv.low), default=0), min((s for s in steps if s >= iv.high), default=steps[-1])


def new_steps(a: int, b: int, points: int) -> list[int]:
    """The checkpoints a segment [a, b] trains strictly inside (a, b)."""
    first, count = segment_grid(a, points)
    return [s for s in checkpoint_steps(first, b, count) if a < s < b]


def plan(name: str, onset: Onset, steps: Sequence[int], options: RefineOptions) -> Plan:
    """What to do about one transition this round."""
    iv = interval(onset, steps)
    if isinstance(iv, str):
        return Plan(name, None, None, iv)
    if iv.half_width <= options.target:
        return Plan(name, iv, None, f"met (±{iv.half_width:.1%} <= ±{options.target:.1%})")
    a, b = bracket(iv, steps)
    if not set(new_steps(a, b, options.points)) - set(steps):
        return Plan(name, iv, None, f"every step of the {options.points}-point grid inside [{a}, {b}] is measured: "
                    "the interval is set by the measurements there, not by the checkpoint spacing")
    return Plan(name, iv, (a, b), "")


def refined_window(run_dir: Path, cfg: RunConfig) -> tuple[Window, list[int]]:
    """The window read off the run's metrics merged with the refined rows (a refined row replaces the run's row at
    its step), with the detection rule of the run's window.json; and the measured steps."""
    _, curves = load_run(run_dir)
    rule = read_json(run_dir / "window.json")["rule"] if (run_dir / "window.json").exists() else {}
    known = {f.name for f in dataclasses.fields(WindowRule)}  # a window.json of an older reader may hold others
    return read_window(curves, n=cfg.data.n, **{k: v for k, v in rule.items() if k in known}), \
        [int(s) for s in curves.step]


def plans(run_dir: Path, cfg: RunConfig, options: RefineOptions) -> list[Plan]:
    """Both transitions' plans off the current refined window (tau_mem: the window's tau_mem_earlier)."""
    window, steps = refined_window(run_dir, cfg)
    return [plan("tau_gen", window.tau_gen, steps, options), plan("tau_mem", window.tau_mem_earlier, steps, options)]


# ---- measuring -------------------------------------------------------------------------------------------------
def measuring_config(run_dir: Path, samples: int) -> RunConfig:
    """The run's config with the eval settings its metrics.csv was measured with (eval_config.json) but `samples`
    samples and no spectral diagnostics; too few samples for the quality folds are refused before anything is
    written."""
    cfg = load_run_config(run_dir)
    if (run_dir / "eval_config.json").exists():
        cfg.eval = section_from_values(EvalConfig, read_json(run_dir / "eval_config.json"), "eval")
    cfg.eval = dataclasses.replace(cfg.eval, n_samples=samples, spectral=False)
    reference = cfg.data.test_size if cfg.eval.fid_reference == "test" else cfg.data.n
    try:
        check_fold_sizes(samples, reference, cfg.eval.folds, cfg.eval.fid_reference)
    except FreqdiffError as err:
        raise FreqdiffError(str(err).replace("--n_samples: n_samples", "--samples: samples")) from None
    return cfg


def measure(run_dir: Path, cfg: RunConfig, progress: bool) -> list[int]:
    """Measure every checkpoint (the run's and refine's) that RUN/refine/metrics.csv lacks, with cfg's eval settings;
    returns the steps measured. The whole curve, not only the segments: the FD's bias and error depend on the
    number of samples, so the window is read off one curve measured with one sample count throughout."""
    refine = run_dir / REFINE
    rows = read_metrics(refine)
    done = {int(r["step"]) for r in rows}
    every = sorted(set(list_checkpoints(run_dir)) | set(list_checkpoints(refine)))
    todo = [s for s in every if s not in done]
    if todo:
        pipe = build_pipeline(cfg)
        extractor = extractor_of(cfg, pipe.split.image_shape)
        for source in (run_dir, refine):
            mine = [s for s in todo if weights_dir(run_dir, s) == source]
            if mine:
                measure_into(refine, source, mine, pipe, cfg, extractor, rows, progress)
    return todo


# ---- rounds ----------------------------------------------------------------------------------------------------
def due_segments(current: Sequence[Plan], left: int) -> list[tuple[int, int]]:
    """The distinct brackets of this round that fit in the `left` extra training steps, in order."""
    chosen: list[tuple[int, int]] = []
    for p in current:
        if p.bracket is not None and p.bracket not in chosen and p.bracket[1] - p.bracket[0] <= left:
            chosen.append(p.bracket)
            left -= p.bracket[1] - p.bracket[0]
    return chosen


def run_round(run_dir: Path, cfg: RunConfig, segments: list[tuple[int, int]], options: RefineOptions,
              progress: bool) -> dict[str, Any]:
    """Train the segments, measure them, and return the round's segments, steps measured and cost."""
    for a, _ in segments:
        state_at(run_dir, a)  # every start exists before anything is written
    pin_eval_config(run_dir / REFINE, cfg.eval)
    trained = [train_segment(run_dir, a, b, options.points) for a, b in segments]
    began = time.perf_counter()
    measured = measure(run_dir, cfg, progress)
    cost = {"train_s": round(sum(s["train_s"] for s in trained), 3), "measure_s": round(time.perf_counter() - began, 3),
            "train_steps": sum(s["train_steps"] for s in trained), "samples": len(measured) * cfg.eval.n_samples}
    return {"segments": trained, "measured": measured, "cost": cost}


def status(p: Plan, left: int, rounds: int) -> str:
    """Why a transition ends where it does after this invocation."""
    if p.reason:
        return p.reason
    a, b = p.bracket or (0, 0)
    if b - a > left:
        return f"not met: budget spent ([{a}, {b}] needs {b - a} steps, {left} left)"
    return f"not met after {rounds} round(s)"


def total_cost(rounds: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The cost of every round, summed."""
    return {k: round(sum(r["cost"][k] for r in rounds), 3) for k in ("train_s", "measure_s", "train_steps", "samples")}


def table(run_dir: Path, first: Sequence[Plan], last: Sequence[Plan], statuses: dict[str, str],
          rounds: Sequence[dict[str, Any]]) -> str:
    """The terminal summary: the cost of this invocation, then each transition before, after and its status."""
    cost = total_cost(rounds)
    head = (f"refine {run_dir}: {len(rounds)} round(s), {cost['train_steps']} extra training steps in "
            f"{cost['train_s']:.1f} s, {cost['samples']} samples measured in {cost['measure_s']:.1f} s"
            if rounds else f"refine {run_dir}: nothing to do")
    lines = [head, f"{'':9}{'before':32}{'after':32}status"]
    for before, after in zip(first, last):
        shown = [str(p.interval) if p.interval else "-" for p in (before, after)]
        lines.append(f"{before.name:9}{shown[0]:31} {shown[1]:31} {statuses[before.name]}")
    return "\n".join(lines)


def check_one_process() -> None:
    """Refuse several processes (`accelerate launch`): refine trains its segments and measures in one."""
    count = process_state().num_processes
    if count > 1:
        raise FreqdiffError(f"refine runs in one process, not {count}: run it without `accelerate launch` (a sweep: "
                            "once it is done, rerun it in one process with --refine true; finished runs go straight "
                            "to refine)")


@holds_run_lock
def refine_run(run_dir: Path, options: RefineOptions = RefineOptions(), progress: bool = True) -> dict[str, Any]:
    """Refine both transitions of a run, round after round; write RUN/refine/refine.json after each round, print
    the summary table, and return refine.json's content (that of the run's earlier refines when nothing was done)."""
    check_one_process()
    run_dir = Path(run_dir)
    if (run_dir / IMPORT_RECORD).exists():
        raise FreqdiffError(f"{run_dir}: imported from diffusers ({IMPORT_RECORD}): refine resumes freqdiff's kept "
                            "training states, which an imported run has none of; import a denser checkpoint series "
                            "(diffusers' --checkpointing_steps) to measure between checkpoints")
    cfg = measuring_config(run_dir, options.samples)
    budget = options.budget or cfg.train.steps
    report_path = run_dir / REFINE / "refine.json"
    report = read_json(report_path) if report_path.exists() else {"rounds": []}
    first = current = plans(run_dir, cfg, options)
    done: list[dict[str, Any]] = []
    spent = 0
    while len(done) < options.rounds and (segments := due_segments(current, budget - spent)):
        record = {"round": len(report["rounds"]) + 1, "options": dataclasses.asdict(options),
                  "before": {p.name: p.record() for p in current},
                  **run_round(run_dir, cfg, segments, options, progress)}
        spent += record["cost"]["train_steps"]
        current = plans(run_dir, cfg, options)
        rounds = report["rounds"] + [{**record, "after": {p.name: p.record() for p in current}}]
        report = {"rounds": rounds, "status": {p.name: status(p, budget - spent, len(done) + 1) for p in current},
                  "cost": total_cost(rounds)}
        write_json(report_path, report)
        done.append(rounds[-1])
    print(table(run_dir, first, current, {p.name: status(p, budget - spent, len(done)) for p in current}, done))
    return report


def refine_main(argv: list[str]) -> int:
    """`freqdiff refine RUN_DIR [options]`."""
    positional, flags = split_argv(argv)
    if len(positional) != 1:
        raise FreqdiffError(f"refine: expected one run directory, got {len(positional)} arguments")
    refine_run(Path(positional[0]), build_params(RefineOptions, flags, "refine"))
    return 0
