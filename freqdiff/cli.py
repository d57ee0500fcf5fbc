"""The `freqdiff` command: train, eval, window, report, list (and the studies built on them)."""
from __future__ import annotations

import dataclasses
import importlib
import sys
import typing
from pathlib import Path
from typing import Callable

from freqdiff.config import COMPONENTS, SECTIONS, EvalConfig, RunConfig, apply_flags, split_argv
from freqdiff.registry import FreqdiffError, range_text, type_name

USAGE = """usage: freqdiff COMMAND [ARGS]

commands:
  train   [--out RUN_DIR] [options]   train (or resume) one run
  baseline --model NAME [--axis PARAM --values V,...] [options]   measure a closed-form model over its parameter
  eval    RUN_DIR [options]           measure every checkpoint not yet evaluated -> metrics.csv
  window  RUN_DIR                     read tau_gen, tau_mem and the window -> window.json + figures
  refine  RUN_DIR [--target 0.05] [--samples 2048] [--points 6] [--budget STEPS] [--rounds 3]
                                      denser checkpoints, more samples where the taus fall -> RUN_DIR/refine/
  report  DIR                         report.md over every run under DIR
  sweep   --recipe NAME [--n 8,16,32] [--seeds 0,1,2] [run options]   train+eval+window every (n, seed)
  compare DIR... [--format text|csv|json] [--reference NAME]             windows of several recipes side by side
  pareto  DIR... [--reference NAME] [--out DIR]                          strengths of a regularizer at matched quality
  theory  [--psi_p 64 --psi_n 4,8,16,32 --t 0.01 ...]                   the solvable random-features model
  calibrate [--out results/calibration] [--runs RUN[:STEP] ...]           every measure on known image sets -> the quality gate
  list                                every registry with its entries and parameters
Options use one syntax: `--name value`, and `--component.param value` for a component's parameter
(e.g. --regularizer fourier_penalty --regularizer.cutoff 0.25). `freqdiff train --help` lists them.
"""


def settings_help(cls: type, indent: str = "    ") -> list[str]:
    """One line per field of a settings dataclass: --name type = default (valid range)."""
    hints = typing.get_type_hints(cls)
    return [f"{indent}--{f.name} {type_name(hints[f.name])} = {f.default!r}{range_text(f)}" for f in dataclasses.fields(cls)]


def run_options_help() -> str:
    """Every run setting with its type and default, then how components are set."""
    lines = ["run options:"]
    for section, cls in SECTIONS.items():
        lines += [f"  [{section}]", *settings_help(cls)]
    defaults = RunConfig()
    lines.append("  [components] (see `freqdiff list` for each one's parameters)")
    lines += [f"    --{c} NAME = {getattr(defaults, c).name!r}   --{c}.PARAM VALUE" for c in COMPONENTS]
    lines.append("  --out RUN_DIR  (default runs/<dataset>-<regularizer>-n<n>-seed<seed>)")
    return "\n".join(lines)


def help_text(command: str) -> str:
    """Help for one command: every run option for train, the theory's options, else the usage."""
    if command == "train":
        return run_options_help()
    if command == "theory":
        from freqdiff.theory.cli import options_help

        return options_help()
    if command == "calibrate":
        from freqdiff.metrics.calibration import options_help as calibrate_help

        return calibrate_help()
    if command == "window":
        from freqdiff.analysis.reports.run import window_help

        return window_help()
    if command == "baseline":
        from freqdiff.baselines.runs import baseline_help

        return baseline_help()
    if command == "refine":
        from freqdiff.refine import refine_help

        return refine_help()
    if command == "compare":
        from freqdiff.analysis.reports.compare import compare_help

        return compare_help()
    if command == "pareto":
        from freqdiff.analysis.reports.pareto import pareto_help

        return pareto_help()
    if command == "sweep":
        from freqdiff.sweep import SweepOptions

        return "\n".join(["usage: freqdiff sweep --recipe NAME [sweep options] [run options]", "sweep options:",
                          *settings_help(SweepOptions, "  "), "run options: any of `freqdiff train --help`, for every run"])
    return COMMAND_HELP.get(command, USAGE)


COMMAND_HELP = {
    "eval": "\n".join(["usage: freqdiff eval RUN_DIR [eval options]   -> RUN_DIR/metrics.csv, nearest/, eval_config.json",
                       "eval options (default: the run's own, from its config.json):", *settings_help(EvalConfig, "  "),
                       "  --extractor.weights PATH   Inception weights (inception-2015-12-05.pt) for --extractor inception"]),
    "report": "usage: freqdiff report DIR   -> DIR/report.md over every run below DIR (no options)",
    "list": "usage: freqdiff list   every registry with its entries, their parameters, types, defaults, ranges (no options)",
}


def default_run_dir(cfg: RunConfig) -> Path:
    return Path("runs") / f"{cfg.dataset.name}-{cfg.regularizer.name}-n{cfg.data.n}-seed{cfg.train.seed}"


def cmd_train(argv: list[str]) -> int:
    from freqdiff.trainer import train

    positional, flags = split_argv(argv)
    if positional:
        raise FreqdiffError(f"train: unexpected argument {positional[0]!r}; options are --name value")
    out = flags.pop("out", None)
    cfg = apply_flags(RunConfig(), flags)
    train(cfg, Path(out) if out else default_run_dir(cfg))
    return 0


def cmd_list(argv: list[str]) -> int:
    from freqdiff.components import REGISTRIES

    print("\n\n".join(registry.describe() for registry in REGISTRIES.values()))
    return 0


def _one_dir(argv: list[str], what: str) -> tuple[Path, dict[str, str]]:
    positional, flags = split_argv(argv)
    if len(positional) != 1:
        raise FreqdiffError(f"{what}: expected one directory, got {len(positional)} arguments")
    return Path(positional[0]), flags


def cmd_eval(argv: list[str]) -> int:
    from freqdiff.evaluate import evaluate_run

    run_dir, flags = _one_dir(argv, "eval")
    evaluate_run(run_dir, overrides=flags)
    return 0


def cmd_window(argv: list[str]) -> int:
    from freqdiff.analysis.reports.run import window_main

    run_dir, flags = _one_dir(argv, "window")
    window = window_main(run_dir, **flags)
    print(window.summary())
    return 0


def cmd_report(argv: list[str]) -> int:
    from freqdiff.analysis.reports.report import write_report

    directory, flags = _one_dir(argv, "report")
    if flags:
        raise FreqdiffError(f"report: unknown option --{next(iter(flags))}")
    print(write_report(directory))
    return 0


def lazy(module: str, name: str) -> Callable[[list[str]], int]:
    """A command implemented in `module`, imported only when it runs (so `freqdiff --help` stays fast)."""

    def run(argv: list[str]) -> int:
        return getattr(importlib.import_module(module), name)(argv)

    return run


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train, "eval": cmd_eval, "window": cmd_window, "report": cmd_report,
    "list": cmd_list, "sweep": lazy("freqdiff.sweep", "sweep_main"),
    "compare": lazy("freqdiff.analysis.reports.compare", "compare_main"), "theory": lazy("freqdiff.theory.cli", "main"),
    "calibrate": lazy("freqdiff.metrics.calibration", "main"), "pareto": lazy("freqdiff.analysis.reports.pareto", "pareto_main"),
    "baseline": lazy("freqdiff.baselines.runs", "baseline_main"), "refine": lazy("freqdiff.refine", "refine_main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a path with bytes that are not UTF-8 prints escaped, never crashes
        stream.reconfigure(errors="backslashreplace")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"freqdiff: unknown command {command!r}; choices: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:  # anywhere: the recipe scripts put their own flags first
        print(help_text(command))
        return 0
    try:
        return COMMANDS[command](rest)
    except FreqdiffError as err:
        print(f"freqdiff {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
